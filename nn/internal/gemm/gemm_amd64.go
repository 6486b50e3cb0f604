//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

//go:generate go run gen_asm.go

// hasAVX2FMA reports whether the AVX2+FMA micro-kernel can run here.
var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func defaultKernels() microKernels {
	if hasAVX2FMA {
		return microKernels{full: fullAVX2, edge: edgeAVX2}
	}
	return genericKernels
}

// fullAVX2 is the AVX2+FMA microKernels.full.
func fullAVX2(tiles, cols, kc int, a []float32, aStep, rsA, csA int, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[(tiles-1)*aStep+(mr-1)*rsA+(kc-1)*csA]
	_ = b[kc*nr-1]
	_ = c[(tiles*mr-1)*ldc+cols-1]
	kernel6x16(tiles, cols, kc, &a[0], aStep, rsA, csA, &b[0], &c[0], ldc, alpha, beta)
}

// edgeAVX2 is the AVX2+FMA microKernels.edge.
func edgeAVX2(rows, cols, kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[kc*mr-1]
	_ = b[kc*nr-1]
	_ = c[(rows-1)*ldc+cols-1]
	switch {
	case rows <= 2:
		kernel2x16(rows, cols, kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
	case rows <= 4:
		kernel4x16(rows, cols, kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
	default: // 5 rows: 4 + 1
		kernel4x16(4, cols, kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
		kernel2x16(rows-4, cols, kc, &a[4], &b[0], &c[4*ldc], ldc, alpha, beta)
	}
}

// kernel6x16 computes tiles consecutive 6×16 tiles. Tile t is
// acc = Σ_p A(i, p)*b[p*16+j], p < kc, with A(i, p) = a[t*aStep+i*rsA+p*csA],
// stored as c[(6t+i)*ldc+j] = alpha*acc + beta*c[(6t+i)*ldc+j] for j < cols
// (masked moves when cols < 16; C is not read if beta == 0).
// tiles, cols and kc must be >= 1, cols <= 16.
//
//go:noescape
func kernel6x16(tiles, cols, kc int, a *float32, aStep, rsA, csA int, b, c *float32, ldc int, alpha, beta float32)

// kernel4x16 and kernel2x16 compute a 4×16 (2×16) tile from a packed A
// panel (A(i, p) = a[p*6+i]) as kernel6x16 does, storing only its first
// rows rows (1 <= rows <= 4, resp. 2).
//
//go:noescape
func kernel4x16(rows, cols, kc int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernel2x16(rows, cols, kc int, a, b, c *float32, ldc int, alpha, beta float32)

// packB16Full copies kc rows of nr = 16 floats, ldb apart in b, to dst.
func packB16Full(kc int, b []float32, ldb int, dst []float32) {
	_ = b[(kc-1)*ldb+nr-1]
	_ = dst[kc*nr-1]
	packB16(kc, &b[0], ldb, &dst[0])
}

//go:noescape
func packB16(kc int, src *float32, ldb int, dst *float32)

// packBT16Full packs a full nr = 16 column panel of op(B) = Bᵀ: for p < kc,
// j < 16, dst[p*16+j] = b[j*ldb+p].
func packBT16Full(kc int, b []float32, ldb int, dst []float32) {
	_ = b[15*ldb+kc-1]
	_ = dst[kc*nr-1]
	n8 := kc / 8
	if n8 > 0 {
		transpose8(n8, &b[0], ldb, &dst[0])
		transpose8(n8, &b[8*ldb], ldb, &dst[8])
	}
	packBTGo(kc-8*n8, b[8*n8:], ldb, nr, dst[8*n8*nr:])
}

//go:noescape
func transpose8(n8 int, src *float32, ldb int, dst *float32)
