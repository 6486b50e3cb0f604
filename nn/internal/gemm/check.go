package gemm

import "fmt"

// checkArgs panics, like gonum's BLAS, when the arguments cannot describe
// the matrices of a product.
func checkArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k // stored shape of A
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("a", ar, ac, a, lda)
	checkMatrix("b", br, bc, b, ldb)
	checkMatrix("c", m, n, c, ldc)
}

func checkMatrix(name string, rows, cols int, x []float32, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("gemm: ld%s=%d < max(1, %d)", name, ld, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		panic(fmt.Sprintf("gemm: len(%s)=%d < %d for %dx%d with ld%s=%d", name, len(x), need, rows, cols, name, ld))
	}
}
