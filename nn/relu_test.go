package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestBiasReLUMatchesGo checks the assembly bias/ReLU kernels (where
// available) against Go's max(v+b, 0) bit for bit (NaN: any NaN) on edge
// values and every length up to 40.
func TestBiasReLUMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	edge := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), -float32(math.NaN()),
		float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(1), math.Float32frombits(0x80000001), -1, 1, math.MaxFloat32, -math.MaxFloat32}
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
	}
	for n := 0; n <= 40; n++ {
		x := make([]float32, n)
		for i := range x {
			if r.IntN(2) == 0 {
				x[i] = edge[r.IntN(len(edge))]
			} else {
				x[i] = float32(r.NormFloat64())
			}
		}
		for _, b := range []float32{0, 0.5, -0.25, float32(math.Copysign(0, -1))} {
			for _, relu := range []bool{false, true} {
				got := append([]float32(nil), x...)
				want := append([]float32(nil), x...)
				biasReLU(got, b, relu)
				biasReLUGo(want, b, relu)
				for i := range got {
					if !same(got[i], want[i]) {
						t.Fatalf("n %d b %v relu %v: x %v: got %x, want %x", n, b, relu, x[i], math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
			}
		}
		got, want := make([]float32, n), make([]float32, n)
		reluSlice(got, x)
		reluSliceGo(want, x)
		for i := range got {
			if !same(got[i], want[i]) {
				t.Fatalf("relu n %d: x %v: got %x, want %x", n, x[i], math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
	}
}
