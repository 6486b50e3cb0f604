package recorder

import (
	"maps"
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
		x := randNormal(r, n, 0.1, 2)
		for i := 0; i < n; i += 3 {
			x[i] = special[r.IntN(len(special))]
		}
		for _, hint := range testHints(x) {
			y := slices.Clone(x)
			nn.ReLUSlice(y, y)
			k, ky := float64(x[0]), float64(max(x[0], 0))
			h1, h2 := new([denseLen]uint32), new([denseLen]uint32)
			m, my, ok := chunkStatsReLU(h1, x, k, ky, hint)
			if !ok {
				t.Fatal("kernel not used")
			}
			wm := chunkStats(h2, x, k, hint)
			wy := momentsFast(y, ky)
			if m != wm || !sameDense(h1, h2) {
				t.Fatalf("n=%d hint=%+v: moments %+v, chunkStats %+v (or histograms differ)", n, hint, m, wm)
			}
			if my != wy {
				t.Fatalf("n=%d hint=%+v: ReLU moments %+v, of the ReLU output %+v", n, hint, my, wy)
			}
			m2, my2, ok := momentsReLU(x, k, ky)
			if !ok || m2 != momentsFast(x, k) || my2 != wy {
				t.Fatalf("n=%d: momentsReLU %+v %+v, want %+v %+v", n, m2, my2, momentsFast(x, k), wy)
			}
		}
	}
}

// TestHotKey: a value repeated in a third or more of the elements is
// predicted as the hot key (never a key of ±0), and the two-pass AVX-512
// loop that spreads it over spare slots (chunkKeysAVX512) counts exactly
// what the portable loop counts, whatever key it is told (right, wrong, or
// a key x lacks); so do the one-pass loops, which ignore it.
func TestHotKey(t *testing.T) {
	defer func() { useKeys = true }()
	r := rand.New(rand.NewPCG(47, 48))
	six := math.Float32bits(6) >> 16
	if k := hotKey(randNormal(r, chunkLen, 0, 1)); k != noHot {
		t.Errorf("hotKey of normal data = %#x, want none", k)
	}
	if k := hotKey(make([]float32, chunkLen)); k != noHot {
		t.Errorf("hotKey of zeros = %#x, want none (zeros have their own slots)", k)
	}
	for _, n := range []int{16, 17, 256, 1000, chunkLen} {
		for _, pct := range []int{0, 30, 100} {
			x := randNormal(r, n, 0, 3)
			for i := range x {
				switch v := r.IntN(100); {
				case v < pct:
					x[i] = 6
				case v < pct+10:
					x[i] = float32(math.Copysign(0, float64(v-pct-5)))
				}
			}
			if pct == 100 && n >= 256 {
				if k := hotKey(x); k != six {
					t.Errorf("n=%d: hotKey = %#x, want %#x", n, k, six)
				}
			}
			want := new([denseLen]uint32)
			histChunkGo(want, x)
			foldZeros(want)
			for _, c := range []struct {
				hot     uint32
				simple  bool
				onePass bool
			}{{six, false, false}, {noHot, false, false}, {0xc2f7, true, false}, {hotKey(x), false, false}, {six, false, true}, {noHot, true, true}, {noHot, false, true}} {
				hot := c.hot
				useKeys = !c.onePass
				h := new([denseLen]uint32)
				k := float64(x[0])
				m := chunkStats(h, x, k, histHint{hot: hot, simple: c.simple})
				foldZeros(h)
				if !sameDense(h, want) || m.zeros != int64(zerosOf(x)) {
					t.Fatalf("n=%d pct=%d hot=%#x: histogram differs from histChunkGo's", n, pct, hot)
				}
				h2 := new([denseLen]uint32)
				if _, _, ok := chunkStatsReLU(h2, x, k, float64(max(x[0], 0)), histHint{hot: hot, simple: c.simple}); ok {
					foldZeros(h2)
					if !sameDense(h2, want) {
						t.Fatalf("n=%d pct=%d hot=%#x: chunkStatsReLU histogram differs", n, pct, hot)
					}
				}
			}
		}
	}
}

// foldZeros moves the ±0 spare slots of h to the keys of +0 and -0.
func foldZeros(h *[denseLen]uint32) {
	for r := 0; r < zeroRot; r++ {
		h[0] += h[zeroBase+r]
		h[0x8000] += h[zeroBase+0x8000+r]
		h[zeroBase+r], h[zeroBase+0x8000+r] = 0, 0
	}
}

// An accumulator fed many chunks whose values are mostly one value (and,
// midway, another) predicts the hot key from its first chunk on (so the
// two-pass loop spreads it) and counts exactly what a plain count of the
// keys gives.
func TestAccumulatorHotData(t *testing.T) {
	r := rand.New(rand.NewPCG(49, 50))
	x := randNormal(r, 40*chunkLen+7, 0, 2)
	for i := range x {
		switch {
		case i < 20*chunkLen && r.IntN(10) < 6:
			x[i] = 6
		case i >= 20*chunkLen && r.IntN(10) < 8:
			x[i] = -0.75
		case r.IntN(10) == 0:
			x[i] = 0
		}
	}
	a := newAccumulator()
	defer a.release()
	hot := 0
	forChunks(x, func(c []float32) {
		a.add(c)
		if a.hint.hot != noHot {
			hot++
		}
	})
	if useAVX512 && hot < 30 {
		t.Errorf("hot-key loop predicted for %d of 41 chunks", hot)
	}
	row := a.result(true)
	want := map[uint16]uint64{}
	for _, v := range x {
		want[uint16(math.Float32bits(v)>>16)]++
	}
	if z, nz := want[0], want[0x8000]; z+nz == 0 {
		t.Fatal("no zeros in the data")
	}
	got := map[uint16]uint64{}
	for i, k := range row.Hist.Keys {
		got[k] = row.Hist.Counts[i]
	}
	if !maps.Equal(got, want) {
		t.Errorf("histogram of %d keys, want %d (or counts differ)", len(got), len(want))
	}
}

// The two-pass kernels leave element i's counter at keysBase+i (the
// layout stats.go and the assembly's literals must agree on): its key, a
// zero spare slot for ±0, a hot spare slot for the hot key.
func TestKeysLayout(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512")
	}
	x := randNormal(rand.New(rand.NewPCG(51, 52)), 64, 0, 1)
	x[3], x[17], x[40] = 0, float32(math.Copysign(0, -1)), 6
	six := math.Float32bits(6) >> 16
	want := func(i int) uint32 {
		k := math.Float32bits(x[i]) >> 16
		switch {
		case x[i] == 0:
			return zeroBase + k + uint32(i%16)
		case k == six:
			return hotBase + uint32(i%16)
		}
		return k
	}
	for _, relu := range []bool{false, true} {
		h := new([denseLen]uint32)
		var o, oy momentsOut
		if relu {
			chunkKeysReLUAVX512(h, x, 0, 0, six, &o, &oy)
		} else {
			chunkKeysAVX512(h, x, 0, six, &o)
		}
		for i := range x {
			if got := h[keysBase+i]; got != want(i) {
				t.Fatalf("relu=%v: scratch[%d] = %#x, want %#x", relu, i, got, want(i))
			}
		}
	}
}
