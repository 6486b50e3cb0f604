package gemm

import (
	"math"
	"math/rand"
	"testing"
)

func TestSgemmSmoke(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	m, n, k := 7, 5, 13
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	c := make([]float32, m*n)
	for i := range a {
		a[i] = r.Float32() - 0.5
	}
	for i := range b {
		b[i] = r.Float32() - 0.5
	}
	Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a[i*k+p]) * float64(b[p*n+j])
			}
			if math.Abs(s-float64(c[i*n+j])) > 1e-5 {
				t.Fatalf("c[%d,%d] = %v, want %v", i, j, c[i*n+j], s)
			}
		}
	}
}
