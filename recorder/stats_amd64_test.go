package recorder

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/actrec/actrec/nn"
)

// The portable kernels, used where AVX2+FMA is missing, pass the same
// reference tests.
func TestStatsWithoutAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("AVX2 not in use anyway")
	}
	useAVX2 = false
	defer func() { useAVX2 = true }()
	t.Run("reference", TestStatsAgainstReference)
	t.Run("piecewise", TestStatsPiecewiseAndFold)
	t.Run("merge", TestHistogramMergeOfHalves)
}

// The AVX2 kernels, used where AVX-512 is missing, pass the same reference
// tests (on a machine with AVX-512, which would otherwise never run them).
func TestStatsWithoutAVX512(t *testing.T) {
	if !useAVX512 {
		t.Skip("AVX-512 not in use anyway")
	}
	useAVX512 = false
	defer func() { useAVX512 = true }()
	t.Run("reference", TestStatsAgainstReference)
	t.Run("piecewise", TestStatsPiecewiseAndFold)
	t.Run("merge", TestHistogramMergeOfHalves)
}

// chunkStatsReLU (and momentsReLU, without histogram) gives exactly
// chunkStats' histogram and moments and, for
// the ReLU, exactly the moments of nn's ReLU output, at every length
// around the kernel's block and with zeros, -0, subnormals and huge values.
func TestChunkStatsReLU(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512VL")
	}
	r := rand.New(rand.NewPCG(43, 44))
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-40, -1e-40, 3e38, -3e38, 1, -1}
	for _, n := range []int{16, 17, 31, 32, 47, 255, 256, 1000, 4096} {
		for _, simple := range []bool{false, true} {
			x := randNormal(r, n, 0.1, 2)
			for i := 0; i < n; i += 3 {
				x[i] = special[r.IntN(len(special))]
			}
			y := slices.Clone(x)
			nn.ReLUSlice(y, y)
			k, ky := float64(x[0]), float64(max(x[0], 0))
			h1, h2 := new([denseLen]uint32), new([denseLen]uint32)
			m, my, ok := chunkStatsReLU(h1, x, k, ky, simple)
			if !ok {
				t.Fatal("kernel not used")
			}
			wm := chunkStats(h2, x, k, simple)
			wy := momentsFast(y, ky)
			if m != wm || *h1 != *h2 {
				t.Fatalf("n=%d simple=%v: moments %+v, chunkStats %+v (or histograms differ)", n, simple, m, wm)
			}
			if my != wy {
				t.Fatalf("n=%d simple=%v: ReLU moments %+v, of the ReLU output %+v", n, simple, my, wy)
			}
			m2, my2, ok := momentsReLU(x, k, ky)
			if !ok || m2 != momentsFast(x, k) || my2 != wy {
				t.Fatalf("n=%d: momentsReLU %+v %+v, want %+v %+v", n, m2, my2, momentsFast(x, k), wy)
			}
		}
	}
}
