package recorder

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// refStats is the float64 reference: two-pass mean/variance over finite
// values, exact nearest-rank percentiles by sorting.
type refStats struct {
	count, n, nan, inf            int64
	mean, std, min, max, l2, zero float64
	pct                           [7]float64
	pctTol                        [7]float64 // 2^-8 * max |closest ranks|
}

func reference(x []float32) refStats {
	r := refStats{count: int64(len(x))}
	var fin []float64
	for _, v := range x {
		f := float64(v)
		switch {
		case math.IsNaN(f):
			r.nan++
		case math.IsInf(f, 0):
			r.inf++
		default:
			fin = append(fin, f)
		}
	}
	r.n = int64(len(fin))
	if r.n == 0 {
		return r
	}
	var s float64
	for _, f := range fin {
		s += f
	}
	r.mean = s / float64(r.n)
	var m2, ss float64
	zeros := 0
	for _, f := range fin {
		d := f - r.mean
		m2 += d * d
		ss += f * f
		if f == 0 {
			zeros++
		}
	}
	r.std = math.Sqrt(m2 / float64(r.n))
	r.l2 = math.Sqrt(ss)
	r.zero = float64(zeros) / float64(r.n)
	slices.Sort(fin)
	r.min, r.max = fin[0], fin[len(fin)-1]
	// numpy's default quantile: linear interpolation between closest ranks.
	for i, q := range store.Quantiles {
		pos := q * float64(len(fin)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(fin)-1)
		f := pos - float64(lo)
		r.pct[i] = fin[lo] + (fin[hi]-fin[lo])*f
		r.pctTol[i] = math.Max(math.Abs(fin[lo]), math.Abs(fin[hi])) / 256
	}
	return r
}

func closeRel(got, want, rel, abs float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= rel*math.Abs(want)+abs
}

func checkStats(t *testing.T, x []float32, got store.StatsRow) {
	t.Helper()
	want := reference(x)
	if got.Count != want.count || got.NaN != want.nan || got.Inf != want.inf {
		t.Fatalf("count/nan/inf = %d/%d/%d, want %d/%d/%d", got.Count, got.NaN, got.Inf, want.count, want.nan, want.inf)
	}
	if want.n == 0 {
		if !math.IsNaN(got.Mean) || !math.IsNaN(got.Std) || got.Hist.Total() != 0 {
			t.Fatalf("no finite values: mean %v std %v hist total %d, want NaN NaN 0", got.Mean, got.Std, got.Hist.Total())
		}
		return
	}
	// Mean: float64 accumulation; error relative to the spread of the data.
	scale := math.Max(math.Abs(want.min), math.Abs(want.max))
	if !closeRel(got.Mean, want.mean, 1e-12, 1e-12*scale) {
		t.Errorf("mean = %.17g, want %.17g", got.Mean, want.mean)
	}
	if !closeRel(got.Std, want.std, 1e-9, 1e-12*scale) {
		t.Errorf("std = %.17g, want %.17g", got.Std, want.std)
	}
	if got.Min != want.min || got.Max != want.max {
		t.Errorf("min/max = %v/%v, want %v/%v", got.Min, got.Max, want.min, want.max)
	}
	if !closeRel(got.L2, want.l2, 1e-9, 0) {
		t.Errorf("L2 = %.17g, want %.17g", got.L2, want.l2)
	}
	if got.ZeroFrac != want.zero {
		t.Errorf("zero frac = %v, want %v", got.ZeroFrac, want.zero)
	}
	if tot := got.Hist.Total(); tot != uint64(want.n) {
		t.Errorf("hist total = %d, want %d finite values", tot, want.n)
	}
	for i, k := range got.Hist.Keys {
		if got.Hist.Counts[i] == 0 {
			t.Errorf("hist key %#x has zero count", k)
		}
		if i > 0 && !store.KeyLess(got.Hist.Keys[i-1], k) {
			t.Errorf("hist keys not in value order at %d: %#x then %#x", i, got.Hist.Keys[i-1], k)
		}
	}
	// Documented bound: |p - exact| <= 2^-8 max(|x_lo|, |x_hi|) + 2^-133
	// where x_lo, x_hi are the two closest ranks interpolated between.
	for i := range store.Quantiles {
		if !closeRel(got.Percentiles[i], want.pct[i], 0, want.pctTol[i]+math.Ldexp(1, -133)) {
			t.Errorf("p%v = %.9g, want %.9g (+-2^-8 rel)", store.Quantiles[i]*100, got.Percentiles[i], want.pct[i])
		}
	}
}

func computeStats(x []float32) store.StatsRow {
	a := newAccumulator()
	defer a.release()
	a.add(x)
	return a.result(true)
}

func randNormal(r *rand.Rand, n int, mean, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(mean + std*r.NormFloat64())
	}
	return x
}

func TestStatsAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	relu := randNormal(r, 5000, 0, 1)
	for i, v := range relu {
		relu[i] = max(v, 0)
	}
	withNaN := randNormal(r, 3000, 1, 2)
	withNaN[0] = float32(math.NaN())
	withNaN[1500] = float32(math.Inf(1))
	withNaN[1501] = float32(math.Inf(-1))
	withNaN[2999] = float32(math.NaN())
	huge := randNormal(r, 2100, 0, 1e37)
	huge[5] = math.MaxFloat32
	huge[6] = -math.MaxFloat32
	huge[7] = 1e38
	denorm := make([]float32, 1500)
	for i := range denorm {
		denorm[i] = math.Float32frombits(uint32(r.IntN(1 << 23)))
		if i%3 == 0 {
			denorm[i] = -denorm[i]
		}
	}
	negZero := []float32{float32(math.Copysign(0, -1)), 0, 1, -1, float32(math.Copysign(0, -1))}
	onlyNegZero := []float32{float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))}
	allNaN := make([]float32, 2000)
	for i := range allNaN {
		allNaN[i] = float32(math.NaN())
	}
	// Positive values with a few -0 and +0: after the first chunk the
	// histogram loop that counts zeros in place is used.
	posNegZero := randNormal(r, 3000, 5, 1)
	for i := range posNegZero {
		posNegZero[i] = float32(math.Abs(float64(posNegZero[i])))
	}
	posNegZero[1500] = float32(math.Copysign(0, -1))
	posNegZero[2500] = float32(math.Copysign(0, -1))
	posNegZero[2600] = 0
	cases := []struct {
		name string
		x    []float32
	}{
		{"positive-with-signed-zeros", posNegZero},
		{"empty", nil},
		{"one", []float32{3.5}},
		{"one-negative", []float32{-2}},
		{"three", []float32{1, 2, 3}},
		{"normal", randNormal(r, 10000, 0, 1)},
		{"normal-odd-length", randNormal(r, 4097, 3, 0.5)},
		{"large-offset", randNormal(r, 5000, 1e4, 1e-3)},
		{"relu", relu},
		{"all-zeros", make([]float32, 3000)},
		{"nan-inf", withNaN},
		{"all-nan", allNaN},
		{"only-inf", []float32{float32(math.Inf(1)), float32(math.Inf(-1))}},
		{"huge", huge},
		{"denormals", denorm},
		{"negative-zero", negZero},
		{"only-negative-zero", onlyNegZero},
		{"all-negative", randNormal(r, 3000, -100, 1)},
		{"constant", slices.Repeat([]float32{0.1}, 3000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkStats(t, c.x, computeStats(c.x))
		})
	}
}

// Feeding the data in several add calls, and folding the dense counters
// into uint64 in between, gives the same statistics.
func TestStatsPiecewiseAndFold(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := randNormal(r, 7000, 0.5, 2)
	for i := 0; i < len(x); i += 7 {
		x[i] = 0
	}
	x[100] = float32(math.NaN())
	a := newAccumulator()
	defer a.release()
	for i := 0; i < len(x); i += 999 {
		a.add(x[i:min(i+999, len(x))])
		if i%2 == 0 {
			a.fold()
		}
	}
	checkStats(t, x, a.result(true))
	// The accumulator is reusable after result.
	y := randNormal(r, 100, -1, 1)
	a.add(y)
	checkStats(t, y, a.result(true))
}

func TestHistogramMergeOfHalves(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := randNormal(r, 9000, 0, 3)
	for i := 0; i < len(x); i += 5 {
		x[i] = 0
	}
	whole := computeStats(x).Hist
	a := computeStats(x[:4000]).Hist
	b := computeStats(x[4000:]).Hist
	m := a
	m.Merge(b)
	if !slices.Equal(m.Keys, whole.Keys) || !slices.Equal(m.Counts, whole.Counts) {
		t.Fatalf("merge of halves differs from whole: %d vs %d buckets", len(m.Keys), len(whole.Keys))
	}
}

func TestChannelStats(t *testing.T) {
	// shape [2, 3, 2]: sample-major, channel, 2 positions.
	x := []float32{
		1, 2, -1, -2, 5, float32(math.NaN()),
		3, 4, -3, -4, 7, 9,
	}
	mean, mx := channelStats(x, 2, 3, 2)
	wantMean := []float32{2.5, -2.5, 7}
	wantMax := []float32{4, -1, 9}
	if !slices.Equal(mean, wantMean) || !slices.Equal(mx, wantMax) {
		t.Fatalf("channel mean %v max %v, want %v %v", mean, mx, wantMean, wantMax)
	}
}

func benchData(n int, relu bool) []float32 {
	r := rand.New(rand.NewPCG(9, 9))
	x := randNormal(r, n, 0, 1)
	if relu {
		for i, v := range x {
			x[i] = max(v, 0)
		}
	}
	return x
}

func BenchmarkStats(b *testing.B) {
	for _, c := range []struct {
		name string
		relu bool
	}{{"normal", false}, {"relu", true}} {
		x := benchData(1<<20, c.relu)
		b.Run(c.name, func(b *testing.B) {
			a := newAccumulator()
			defer a.release()
			b.SetBytes(int64(4 * len(x)))
			b.ResetTimer()
			for b.Loop() {
				a.add(x)
				a.result(true)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
		})
	}
}

func BenchmarkStatsParts(b *testing.B) {
	x := benchData(1<<20, false)
	b.Run("hist", func(b *testing.B) {
		a := newAccumulator()
		for b.Loop() {
			for i := 0; i < len(x); i += chunkLen {
				histChunk(a.dense, x[i:i+chunkLen])
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
	})
	b.Run("hist-go", func(b *testing.B) {
		a := newAccumulator()
		for b.Loop() {
			for i := 0; i < len(x); i += chunkLen {
				histChunkGo(a.dense, x[i:i+chunkLen])
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
	})
	b.Run("moments", func(b *testing.B) {
		a := newAccumulator()
		for b.Loop() {
			for i := 0; i < len(x); i += chunkLen {
				a.chunk(x[i : i+chunkLen])
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
	})
	b.Run("moments-go", func(b *testing.B) {
		for b.Loop() {
			for i := 0; i < len(x); i += chunkLen {
				momentsGo(x[i:i+chunkLen], 0)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
	})
}

func momentsClose(a, b moments) bool {
	return closeRel(a.s, b.s, 1e-12, 1e-12) && closeRel(a.q, b.q, 1e-12, 1e-12) &&
		a.mn == b.mn && a.mx == b.mx && a.zeros == b.zeros && a.negZeros == b.negZeros
}

// The assembly kernels (where present) agree with the Go ones.
func TestKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 7, 15, 16, 17, 100, 1024} {
		x := randNormal(r, n, 1, 3)
		for i := 0; i < n; i += 3 {
			x[i] = 0
		}
		if n > 5 {
			x[5] = float32(math.Copysign(0, -1))
		}
		h1, h2 := new([denseLen]uint32), new([denseLen]uint32)
		histChunk(h1, x)
		histChunkGo(h2, x)
		fold := func(h *[denseLen]uint32) {
			for r := 0; r < zeroRot; r++ {
				h[0] += h[zeroBase+r]
				h[0x8000] += h[zeroBase+0x8000+r]
				h[zeroBase+r], h[zeroBase+0x8000+r] = 0, 0
			}
		}
		fold(h1)
		fold(h2)
		if !sameDense(h1, h2) {
			t.Fatalf("n=%d: histChunk and histChunkGo differ", n)
		}
		for _, hint := range testHints(x) {
			h3 := new([denseLen]uint32)
			m3 := chunkStats(h3, x, float64(x[0]), hint)
			fold(h3)
			m4 := chunkStatsGo(new([denseLen]uint32), x, float64(x[0]))
			if !sameDense(h3, h2) || !momentsClose(m3, m4) {
				t.Fatalf("n=%d hint=%+v: chunkStats %+v, chunkStatsGo %+v (hist equal %v)", n, hint, m3, m4, sameDense(h3, h2))
			}
		}
		m1 := momentsFast(x, float64(x[0]))
		m2 := momentsGo(x, float64(x[0]))
		if !momentsClose(m1, m2) || m1.negZeros == 0 && n > 5 {
			t.Fatalf("n=%d: momentsFast %+v, momentsGo %+v", n, m1, m2)
		}
	}
}

// Splitting across goroutines gives the same statistics.
func TestStatsParallel(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	x := randNormal(r, 3*parallelMin+123, 2, 5)
	for i := 0; i < len(x); i += 3 {
		x[i] = 0
	}
	x[7] = float32(math.Copysign(0, -1))
	x[parallelMin+5] = float32(math.NaN())
	x[2*parallelMin+9] = float32(math.Inf(-1))
	a := newAccumulator()
	defer a.release()
	accumulate(a, x)
	got := a.result(true)
	checkStats(t, x, got)
	want := computeStats(x)
	if !slices.Equal(got.Hist.Keys, want.Hist.Keys) || !slices.Equal(got.Hist.Counts, want.Hist.Counts) || got.ZeroFrac != want.ZeroFrac {
		t.Fatal("parallel histogram differs from sequential")
	}
}

// sameDense reports whether two dense histograms hold the same counts
// (the two-pass kernel's scratch area aside).
func sameDense(a, b *[denseLen]uint32) bool {
	return *(*[keysBase]uint32)(a[:keysBase]) == *(*[keysBase]uint32)(b[:keysBase]) &&
		*(*[denseLen - keysBase - chunkLen]uint32)(a[keysBase+chunkLen:]) == *(*[denseLen - keysBase - chunkLen]uint32)(b[keysBase+chunkLen:])
}

// testHints are the histogram hints to run a kernel with on x: both AVX2
// loops without hot key, the hot key predicted from x, and hot keys that
// are wrong (absent from x, or a key x holds once).
func testHints(x []float32) []histHint {
	hs := []histHint{{hot: noHot}, {simple: true, hot: noHot}, {hot: 0x40c0}, {simple: true, hot: 0xc2f7}}
	if len(x) > 0 {
		hs = append(hs, histHint{hot: hotKey(x)})
		if k := math.Float32bits(x[len(x)/2]) >> 16; k&0x7fff != 0 {
			hs = append(hs, histHint{hot: k})
		}
	}
	return hs
}

// BenchmarkKernelsL1 runs the kernels on one L1-resident chunk and reports
// CPU time per element (robust to the load of a shared machine).
func BenchmarkKernelsL1(b *testing.B) {
	x := benchData(chunkLen, true)
	h := new([denseLen]uint32)
	run := func(b *testing.B, fn func()) {
		c0 := cpuTime()
		for b.Loop() {
			fn()
		}
		b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N)/chunkLen, "cpu-ns/elem")
	}
	b.Run("hist", func(b *testing.B) { run(b, func() { histChunk(h, x) }) })
	b.Run("hist-go", func(b *testing.B) { run(b, func() { histChunkGo(h, x) }) })
	b.Run("moments", func(b *testing.B) { run(b, func() { momentsFast(x, 0) }) })
	none := histHint{hot: noHot}
	b.Run("fused-dummy", func(b *testing.B) { run(b, func() { chunkStats(h, x, 0, none) }) })
	b.Run("fused-simple", func(b *testing.B) { run(b, func() { chunkStats(h, x, 0, histHint{simple: true, hot: noHot}) }) })
	y := benchData(chunkLen, false)
	b.Run("fused-simple-nozeros", func(b *testing.B) { run(b, func() { chunkStats(h, y, 0, histHint{simple: true, hot: noHot}) }) })
	// A value repeated in a fraction of the elements (ReLU6's six, a
	// quantized level), with the hot key hotKey predicts and without one.
	for _, pct := range []int{25, 50, 90} {
		z := benchData(chunkLen, false)
		for i := range z {
			if (i*7919)%100 < pct {
				z[i] = 6
			}
		}
		hot := histHint{hot: hotKey(z)}
		b.Run(fmt.Sprintf("fused-hot%d%%-nohint", pct), func(b *testing.B) { run(b, func() { chunkStats(h, z, 0, none) }) })
		b.Run(fmt.Sprintf("fused-hot%d%%", pct), func(b *testing.B) { run(b, func() { chunkStats(h, z, 0, hot) }) })
	}
	b.Run("moments-go", func(b *testing.B) { run(b, func() { momentsGo(x, 0) }) })
}

// quantiles agrees exactly with store.Histogram.Quantile.
func TestQuantilesMatchStore(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, n := range []int{1, 2, 3, 7, 100, 5000} {
		x := randNormal(r, n, 0, 2)
		for i := 0; i < n; i += 4 {
			x[i] = float32(math.Round(float64(x[i])))
		}
		h := computeStats(x).Hist
		got := quantiles(h, h.Total())
		for i, q := range store.Quantiles {
			if want := h.Quantile(q); got[i] != want {
				t.Errorf("n=%d q=%v: quantiles %v, store %v", n, q, got[i], want)
			}
		}
	}
}

// BenchmarkAddSizes reports CPU ns/element of add+result by input size
// (L2-resident vs. larger than L2).
func BenchmarkAddSizes(b *testing.B) {
	for _, n := range []int{1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22} {
		for _, relu := range []bool{false, true} {
			x := benchData(n, relu)
			b.Run(fmt.Sprintf("n=%d/relu=%v", n, relu), func(b *testing.B) {
				a := newAccumulator()
				defer a.release()
				c0 := cpuTime()
				for b.Loop() {
					a.add(x)
					a.result(true)
				}
				b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/elem")
			})
		}
	}
}

// reluMomentsFast gives exactly the moments of the ReLU's output (nn's),
// computed without writing it, on data with zeros, -0, subnormals and huge
// values, at every length around the kernel's block size.
func TestReLUMomentsFast(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-40, -1e-40, 3e38, -3e38, 1, -1}
	for _, n := range []int{1, 2, 15, 16, 17, 31, 33, 255, 256, 257, 1024} {
		x := randNormal(r, n, 0.1, 2)
		for i := 0; i < n; i += 3 {
			x[i] = special[r.IntN(len(special))]
		}
		y := slices.Clone(x)
		nn.ReLUSlice(y, y)
		for _, k := range []float64{0, float64(max(x[0], 0)), 0.5} {
			got, want := reluMomentsFast(x, k), momentsFast(y, k)
			if got != want {
				t.Fatalf("n=%d k=%v: reluMomentsFast %+v, moments of the ReLU %+v", n, k, got, want)
			}
			if g := reluMomentsGo(x, k); g != momentsGo(y, k) {
				t.Fatalf("n=%d k=%v: reluMomentsGo %+v, want %+v", n, k, g, momentsGo(y, k))
			}
		}
	}
}
