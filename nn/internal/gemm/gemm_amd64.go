//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// hasAVX2FMA reports whether the AVX2+FMA micro-kernel can run here.
var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func defaultKernel() kernelFunc {
	if hasAVX2FMA {
		return kernelAVX2
	}
	return kernelGeneric
}

// kernelAVX2 is the AVX2+FMA micro-kernel (see kernelFunc).
func kernelAVX2(kc int, a []float32, rsA, csA int, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[(mr-1)*rsA+(kc-1)*csA]
	_ = b[kc*nr-1]
	_ = c[(mr-1)*ldc+nr-1]
	kernel6x16(kc, &a[0], rsA, csA, &b[0], &c[0], ldc, alpha, beta)
}

// kernel6x16 computes the 6×16 tile acc = Σ_p A(i, p)*b[p*16+j], p < kc,
// with A(i, p) = a[i*rsA+p*csA], and stores
// c[i*ldc+j] = alpha*acc + beta*c[i*ldc+j] (C unread if beta == 0).
// kc must be >= 1.
//
//go:noescape
func kernel6x16(kc int, a *float32, rsA, csA int, b, c *float32, ldc int, alpha, beta float32)

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
