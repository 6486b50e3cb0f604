//go:build !amd64 || purego

package gemm

func defaultKernels() microKernels { return genericKernels }

// packB16Full copies kc rows of nr = 16 floats, ldb apart in b, to dst.
func packB16Full(kc int, b []float32, ldb int, dst []float32) {
	packB16Go(kc, b, ldb, dst)
}

// packBT16Full packs a full nr = 16 column panel of op(B) = Bᵀ: for p < kc,
// j < 16, dst[p*16+j] = b[j*ldb+p].
func packBT16Full(kc int, b []float32, ldb int, dst []float32) {
	packBTGo(kc, b, ldb, nr, dst)
}
