//go:build !amd64

package gemm

func defaultKernel() kernelFunc { return kernelGeneric }

// packB16Full copies kc rows of nr = 16 floats, ldb apart in b, to dst.
func packB16Full(kc int, b []float32, ldb int, dst []float32) {
	packB16Go(kc, b, ldb, dst)
}
