package gemm

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// problem is one Sgemm call with its own copies of the operands.
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
}

// newProblem makes a problem with random operands; pad is added to every
// leading dimension. C's padding and the tail of every slice hold a sentinel
// that must survive.
func newProblem(r *rand.Rand, transA, transB bool, m, n, k, pad int, alpha, beta float32) *problem {
	p := &problem{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	p.lda, p.ldb, p.ldc = ac+pad, bc+pad, n+pad
	p.a = randMatrix(r, ar, p.lda)
	p.b = randMatrix(r, br, p.ldb)
	p.c = randMatrix(r, m, p.ldc)
	return p
}

// randMatrix returns rows*ld values in [-1, 1) plus 3 trailing values.
func randMatrix(r *rand.Rand, rows, ld int) []float32 {
	x := make([]float32, rows*ld+3)
	for i := range x {
		x[i] = 2*r.Float32() - 1
	}
	return x
}

func (p *problem) clone() *problem {
	q := *p
	q.a = append([]float32(nil), p.a...)
	q.b = append([]float32(nil), p.b...)
	q.c = append([]float32(nil), p.c...)
	return &q
}

func (p *problem) opA(i, l int) float64 {
	if p.transA {
		return float64(p.a[l*p.lda+i])
	}
	return float64(p.a[i*p.lda+l])
}

func (p *problem) opB(l, j int) float64 {
	if p.transB {
		return float64(p.b[j*p.ldb+l])
	}
	return float64(p.b[l*p.ldb+j])
}

func (p *problem) String() string {
	return fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d alpha=%v beta=%v lda=%d ldb=%d ldc=%d",
		p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.beta, p.lda, p.ldb, p.ldc)
}

// run computes the product in place with f.
func (p *problem) run(f func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)) {
	f(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, p.c, p.ldc)
}

// verify checks got (the problem after the call) against a float64 naive
// triple loop on the original operands in p.
func verify(t *testing.T, p, got *problem) {
	t.Helper()
	for i := range p.a {
		if math.Float32bits(p.a[i]) != math.Float32bits(got.a[i]) {
			t.Fatalf("%v: a[%d] modified", p, i)
		}
	}
	for i := range p.b {
		if math.Float32bits(p.b[i]) != math.Float32bits(got.b[i]) {
			t.Fatalf("%v: b[%d] modified", p, i)
		}
	}
	inC := func(idx int) bool {
		return idx < p.m*p.ldc && idx%p.ldc < p.n
	}
	for idx := range p.c {
		if !inC(idx) && math.Float32bits(p.c[idx]) != math.Float32bits(got.c[idx]) {
			t.Fatalf("%v: c[%d] outside the m×n matrix modified", p, idx)
		}
	}
	eps := float64(1e-6) * float64(p.k+2)
	for i := 0; i < p.m; i++ {
		for j := 0; j < p.n; j++ {
			var s, abs float64
			for l := 0; l < p.k; l++ {
				v := p.opA(i, l) * p.opB(l, j)
				s += v
				abs += math.Abs(v)
			}
			want := float64(p.alpha) * s
			abs = math.Abs(float64(p.alpha)) * abs
			if p.beta != 0 {
				cv := float64(p.c[i*p.ldc+j])
				want += float64(p.beta) * cv
				abs += math.Abs(float64(p.beta) * cv)
			}
			g := float64(got.c[i*p.ldc+j])
			if math.IsNaN(g) || math.Abs(g-want) > eps*abs+1e-30 {
				t.Fatalf("%v: c[%d,%d] = %v, want %v (tolerance %g)", p, i, j, g, want, eps*abs)
			}
		}
	}
}

type sgemmFunc = func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

// impls are the implementations under test: the default path (AVX2 on
// capable amd64 machines), the portable kernel forced, and parallel runs.
func impls() []struct {
	name string
	f    sgemmFunc
} {
	generic := func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
		checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
		sgemm(genericKernels, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
	par3 := func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
		SgemmParallel(3, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
	all := []struct {
		name string
		f    sgemmFunc
	}{{"default", Sgemm}, {"generic", generic}, {"parallel3", par3}}
	if raceEnabled {
		// The portable kernel runs no goroutines; the race detector only
		// slows it down.
		all = append(all[:1], all[2:]...)
	}
	return all
}

var sizes = []int{1, 2, 3, 5, 7, 13, 17, 31, 64, 100, 129}

// TestSgemmGrid runs every m, n, k from sizes with every transpose
// combination; alpha, beta and the leading-dimension padding vary with the case.
func TestSgemmGrid(t *testing.T) {
	scalars := []struct{ alpha, beta float32 }{{1, 0}, {1, 1}, {0.5, 0.5}, {1, 0.5}, {0.5, 0}, {0.5, 1}}
	for _, impl := range impls() {
		t.Run(impl.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(1))
			cas := 0
			sz := sizes
			if raceEnabled {
				sz = []int{1, 2, 7, 17, 64}
			}
			for _, m := range sz {
				for _, n := range sz {
					for _, k := range sz {
						if testing.Short() && (m+n+k)%5 != 0 {
							continue
						}
						for tr := 0; tr < 4; tr++ {
							s := scalars[cas%len(scalars)]
							p := newProblem(r, tr&1 != 0, tr&2 != 0, m, n, k, cas%3*2, s.alpha, s.beta)
							got := p.clone()
							got.run(impl.f)
							verify(t, p, got)
							cas++
						}
					}
				}
			}
		})
	}
}

// TestSgemmScalars covers the full alpha × beta grid, including alpha = 0
// and beta = 0 with NaN in C (C must not be read).
func TestSgemmScalars(t *testing.T) {
	vals := []float32{0, 1, 0.5}
	for _, impl := range impls() {
		for _, alpha := range vals {
			for _, beta := range vals {
				for tr := 0; tr < 4; tr++ {
					for _, sh := range [][3]int{{7, 17, 5}, {13, 31, 100}, {64, 33, 3}, {1, 1, 1}} {
						name := fmt.Sprintf("%s/alpha=%v/beta=%v/tr=%d/%v", impl.name, alpha, beta, tr, sh)
						r := rand.New(rand.NewSource(int64(tr)))
						p := newProblem(r, tr&1 != 0, tr&2 != 0, sh[0], sh[1], sh[2], 1, alpha, beta)
						got := p.clone()
						if beta == 0 {
							for i := 0; i < p.m; i++ {
								for j := 0; j < p.n; j++ {
									got.c[i*p.ldc+j] = float32(math.NaN())
								}
							}
						}
						got.run(impl.f)
						t.Run(name, func(t *testing.T) { verify(t, p, got) })
					}
				}
			}
		}
	}
}

// TestSgemmBlocking crosses the kc, mc and nc block boundaries and the
// recipe CNN's shapes.
func TestSgemmBlocking(t *testing.T) {
	shapes := []struct {
		name           string
		transA, transB bool
		m, n, k        int
	}{
		{"k>kc", false, false, 20, 40, 2*kcBlock + 3},
		{"m>mc", true, false, 2*mcBlock + 7, 19, 40},
		{"n>nc", false, true, 7, ncBlock + 21, 5},
		{"all", true, true, mcBlock + 1, 2 * nr * 3, kcBlock + 1},
		{"conv1", false, false, 32, 676, 27},
		{"conv2", false, false, 64, 121, 288},
		{"fc1", false, true, 64, 128, 1600},
		{"fc2", false, true, 64, 10, 128},
	}
	for _, impl := range impls() {
		if raceEnabled && impl.name != "parallel3" {
			continue // the same code paths, minus goroutines
		}
		for _, s := range shapes {
			t.Run(impl.name+"/"+s.name, func(t *testing.T) {
				r := rand.New(rand.NewSource(2))
				p := newProblem(r, s.transA, s.transB, s.m, s.n, s.k, 3, 0.5, 0.5)
				got := p.clone()
				got.run(impl.f)
				verify(t, p, got)
			})
		}
	}
}

// TestSgemmParallelIdentical checks that SgemmParallel gives the same bits
// as Sgemm for any thread count.
func TestSgemmParallelIdentical(t *testing.T) {
	shapes := [][3]int{{64, 128, 1600}, {32, 676, 27}, {129, 100, 300}, {200, 7, 64}, {5, 1000, 70}, {100, 129, 31}}
	for _, sh := range shapes {
		for tr := 0; tr < 4; tr++ {
			r := rand.New(rand.NewSource(3))
			p := newProblem(r, tr&1 != 0, tr&2 != 0, sh[0], sh[1], sh[2], 2, 1, 0.5)
			want := p.clone()
			want.run(Sgemm)
			for _, threads := range []int{0, 1, 2, 3, 4, 7, 16} {
				got := p.clone()
				SgemmParallel(threads, p.transA, p.transB, p.m, p.n, p.k, p.alpha, got.a, p.lda, got.b, p.ldb, p.beta, got.c, p.ldc)
				for i := range want.c {
					if math.Float32bits(want.c[i]) != math.Float32bits(got.c[i]) {
						t.Fatalf("%v threads=%d: c[%d] = %v, serial %v", p, threads, i, got.c[i], want.c[i])
					}
				}
			}
		}
	}
}

// TestSgemmPanics checks that malformed arguments are rejected before any
// memory is touched.
func TestSgemmPanics(t *testing.T) {
	buf := make([]float32, 16)
	cases := []struct {
		name string
		f    func()
	}{
		{"negative m", func() { Sgemm(false, false, -1, 2, 2, 1, buf, 2, buf, 2, 0, buf, 2) }},
		{"small lda", func() { Sgemm(false, false, 2, 2, 3, 1, buf, 2, buf, 2, 0, buf, 2) }},
		{"small ldb trans", func() { Sgemm(false, true, 2, 2, 3, 1, buf, 3, buf, 2, 0, buf, 2) }},
		{"short c", func() { Sgemm(false, false, 4, 4, 2, 1, buf, 2, buf, 4, 0, buf[:15], 4) }},
		{"short a parallel", func() { SgemmParallel(2, true, false, 4, 4, 5, 1, buf, 4, make([]float32, 20), 4, 0, buf, 4) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tc.f()
		})
	}
}

// TestSplitGrid checks that the parallel split uses the threads it is given
// and never more blocks than tiles.
func TestSplitGrid(t *testing.T) {
	for _, tc := range []struct{ threads, mTiles, nTiles, tm, tn int }{
		{2, 11, 8, 1, 2},
		{2, 1, 1, 1, 1},
		{4, 11, 43, 1, 4},
		{4, 20, 1, 4, 1},
		{6, 2, 3, 2, 3},
	} {
		tm, tn := splitGrid(tc.threads, tc.mTiles, tc.nTiles)
		if tm != tc.tm || tn != tc.tn {
			t.Errorf("splitGrid(%d, %d, %d) = %d, %d; want %d, %d", tc.threads, tc.mTiles, tc.nTiles, tm, tn, tc.tm, tc.tn)
		}
	}
}

// TestPackFull checks the full-panel packers (assembly on amd64) against
// the portable loops.
func TestPackFull(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for _, kc := range []int{1, 7, 8, 9, 16, 23, 256} {
		ldb := kc + 5
		b := randMatrix(r, 16, ldb)
		got := make([]float32, kc*nr)
		want := make([]float32, kc*nr)
		packBT16Full(kc, b, ldb, got)
		packBTGo(kc, b, ldb, nr, want)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("packBT16Full kc=%d: dst[%d] = %v, want %v", kc, i, got[i], want[i])
			}
		}
		b = randMatrix(r, kc, 19)
		packB16Full(kc, b, 19, got)
		packB16Go(kc, b, 19, want)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("packB16Full kc=%d: dst[%d] = %v, want %v", kc, i, got[i], want[i])
			}
		}
	}
}

// TestSgemmEmpty covers zero sizes: k == 0 leaves beta*C, m or n == 0
// touches nothing.
func TestSgemmEmpty(t *testing.T) {
	for _, impl := range impls() {
		for _, sh := range [][3]int{{3, 4, 0}, {0, 4, 5}, {3, 0, 5}, {0, 0, 0}} {
			for _, beta := range []float32{0, 0.5, 1} {
				t.Run(fmt.Sprintf("%s/%v/beta=%v", impl.name, sh, beta), func(t *testing.T) {
					r := rand.New(rand.NewSource(5))
					p := newProblem(r, false, false, sh[0], sh[1], sh[2], 1, 1, beta)
					got := p.clone()
					if beta == 0 {
						for i := range got.c[:p.m*p.ldc] {
							if i%p.ldc < p.n {
								got.c[i] = float32(math.NaN())
							}
						}
					}
					got.run(impl.f)
					verify(t, p, got)
				})
			}
		}
	}
}
