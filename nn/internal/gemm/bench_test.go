package gemm

import (
	"math/rand"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// benchShapes are the recipe CNN's GEMMs at batch 64 (conv as im2col:
// weights [out, in*3*3] × columns [in*3*3, H*W]) plus square references.
// beta = 1 is how nn adds a bias (C prefilled with it).
var benchShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
	beta           float32
}{
	{"conv1_c1", false, false, 32, 26 * 26, 9, 0},
	{"conv1_c3", false, false, 32, 26 * 26, 27, 0},
	{"conv1_c3_b64", false, false, 32, 64 * 26 * 26, 27, 0},
	{"conv2", false, false, 64, 11 * 11, 288, 0},
	{"conv2_bias", false, false, 64, 11 * 11, 288, 1},
	{"conv2_b64", false, false, 64, 64 * 11 * 11, 288, 0},
	{"fc1", false, true, 64, 128, 1600, 0},
	{"fc1_bias", false, true, 64, 128, 1600, 1},
	{"fc2", false, true, 64, 10, 128, 0},
	{"sq256", false, false, 256, 256, 256, 0},
	{"sq1024", false, false, 1024, 1024, 1024, 0},
}

type benchOperands struct {
	a, b, c       []float32
	lda, ldb, ldc int
}

func newBenchOperands(transA, transB bool, m, n, k int) benchOperands {
	r := rand.New(rand.NewSource(1))
	o := benchOperands{lda: k, ldb: n, ldc: n}
	if transA {
		o.lda = m
	}
	if transB {
		o.ldb = k
	}
	o.a = randMatrix(r, m*k/o.lda, o.lda)
	o.b = randMatrix(r, k*n/o.ldb, o.ldb)
	o.c = randMatrix(r, m, o.ldc)
	return o
}

// benchLoop runs f b.N times and reports GFLOP/s over wall time and
// GFLOP/cpu-s over the process's CPU time (all threads). On a shared,
// loaded machine the second is the steadier figure: time spent descheduled
// does not count, while parallel runs pay for every core they use.
func benchLoop(b *testing.B, m, n, k int, f func()) {
	cpu0 := processCPU()
	for b.Loop() {
		f()
	}
	flops := 2 * float64(m) * float64(n) * float64(k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := processCPU() - cpu0; cpu0 > 0 && cpu > 0 {
		b.ReportMetric(flops/cpu.Seconds()/1e9, "GFLOP/cpu-s")
	}
}

// BenchmarkSgemm measures this package: serial (Sgemm), parallel
// (SgemmParallel over GOMAXPROCS) and the portable kernel forced.
func BenchmarkSgemm(b *testing.B) {
	for _, s := range benchShapes {
		o := newBenchOperands(s.transA, s.transB, s.m, s.n, s.k)
		b.Run(s.name+"/serial", func(b *testing.B) {
			benchLoop(b, s.m, s.n, s.k, func() {
				Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, o.a, o.lda, o.b, o.ldb, s.beta, o.c, o.ldc)
			})
		})
		b.Run(s.name+"/parallel", func(b *testing.B) {
			benchLoop(b, s.m, s.n, s.k, func() {
				SgemmParallel(0, s.transA, s.transB, s.m, s.n, s.k, 1, o.a, o.lda, o.b, o.ldb, s.beta, o.c, o.ldc)
			})
		})
		if s.m*s.n*s.k <= 1<<26 {
			b.Run(s.name+"/generic", func(b *testing.B) {
				benchLoop(b, s.m, s.n, s.k, func() {
					sgemm(genericKernels, s.transA, s.transB, s.m, s.n, s.k, 1, o.a, o.lda, o.b, o.ldb, s.beta, o.c, o.ldc)
				})
			})
		}
	}
}

// BenchmarkGonum measures gonum's pure-Go blas32 Sgemm on the same shapes
// (gonum splits large products over goroutines by itself).
func BenchmarkGonum(b *testing.B) {
	for _, s := range benchShapes {
		o := newBenchOperands(s.transA, s.transB, s.m, s.n, s.k)
		ta, tb := blas.NoTrans, blas.NoTrans
		if s.transA {
			ta = blas.Trans
		}
		if s.transB {
			tb = blas.Trans
		}
		a := blas32.General{Rows: s.m, Cols: s.k, Stride: o.lda, Data: o.a}
		if s.transA {
			a.Rows, a.Cols = s.k, s.m
		}
		bm := blas32.General{Rows: s.k, Cols: s.n, Stride: o.ldb, Data: o.b}
		if s.transB {
			bm.Rows, bm.Cols = s.n, s.k
		}
		c := blas32.General{Rows: s.m, Cols: s.n, Stride: o.ldc, Data: o.c}
		b.Run(s.name, func(b *testing.B) {
			benchLoop(b, s.m, s.n, s.k, func() {
				blas32.Gemm(ta, tb, 1, a, bm, s.beta, c)
			})
		})
	}
}
