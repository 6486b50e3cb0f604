package query

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveMetrics is the reference: the definitions written out directly in
// float64, one element at a time, with the same non-finite rule.
func naiveMetrics(a, b []float32, tol Tolerance) ErrorMetrics {
	var n, nonFinite, outside int64
	var maxAbs, sumAbs, sumSq, sa, sb, sab float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		n++
		if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
			if (math.IsNaN(x) && math.IsNaN(y)) || x == y {
				continue
			}
			nonFinite++
			outside++
			continue
		}
		d := math.Abs(x - y)
		maxAbs = math.Max(maxAbs, d)
		sumAbs += d
		sumSq += d * d
		sa += x * x
		sb += y * y
		sab += x * y
		if d > tol.Atol+tol.Rtol*math.Abs(y) {
			outside++
		}
	}
	m := ErrorMetrics{N: n, NonFinite: nonFinite, MaxAbsErr: Float(maxAbs), MaxAbsErrFinite: Float(maxAbs), OutsideCount: outside}
	if nonFinite > 0 {
		m.MaxAbsErr = Float(math.NaN())
	}
	if n > 0 {
		m.MeanAbsErr = Float(sumAbs / float64(n))
		m.RMSE = Float(math.Sqrt(sumSq / float64(n)))
		m.OutsideFrac = Float(float64(outside) / float64(n))
	}
	m.RelL2 = Float(math.Sqrt(sumSq) / math.Sqrt(sb))
	if sumSq == 0 {
		m.RelL2 = 0
	}
	m.Cosine = Float(sab / math.Sqrt(sa*sb))
	if sa == 0 && sb == 0 {
		m.Cosine = 1
	} else if sa == 0 || sb == 0 {
		m.Cosine = 0
	}
	m.SQNRdB = Float(10 * math.Log10(sb/sumSq))
	if sumSq == 0 {
		m.SQNRdB = Float(math.Inf(1)) // equal tensors, including two zero vectors
	}
	return m
}

func closeTo(got, want Float) bool {
	g, w := float64(got), float64(want)
	if math.IsInf(w, 0) || math.IsNaN(w) {
		return g == w || (math.IsNaN(g) && math.IsNaN(w))
	}
	return math.Abs(g-w) <= 1e-9*math.Max(1, math.Abs(w))
}

func checkMetrics(t *testing.T, got, want ErrorMetrics) {
	t.Helper()
	if got.N != want.N || got.NonFinite != want.NonFinite || got.OutsideCount != want.OutsideCount {
		t.Errorf("counts: got n=%d nonfinite=%d outside=%d, want %d %d %d",
			got.N, got.NonFinite, got.OutsideCount, want.N, want.NonFinite, want.OutsideCount)
	}
	for _, c := range []struct {
		name      string
		got, want Float
	}{
		{"max_abs", got.MaxAbsErr, want.MaxAbsErr},
		{"max_abs_finite", got.MaxAbsErrFinite, want.MaxAbsErrFinite},
		{"mean_abs", got.MeanAbsErr, want.MeanAbsErr},
		{"rmse", got.RMSE, want.RMSE},
		{"rel_l2", got.RelL2, want.RelL2},
		{"cosine", got.Cosine, want.Cosine},
		{"sqnr", got.SQNRdB, want.SQNRdB},
		{"outside_frac", got.OutsideFrac, want.OutsideFrac},
	} {
		if !closeTo(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestErrorAccumulatorAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, n := range []int{0, 1, 2, 3, 7, 2047, 2048, 2049, 10000} {
		for _, tc := range []struct {
			name string
			gen  func(i int) (float32, float32)
		}{
			{"random", func(int) (float32, float32) {
				b := float32(rng.NormFloat64())
				return b + float32(rng.NormFloat64()*0.01), b
			}},
			{"identical", func(int) (float32, float32) { v := float32(rng.NormFloat64()); return v, v }},
			{"zeros", func(int) (float32, float32) { return 0, 0 }},
			{"a_zero", func(int) (float32, float32) { return 0, float32(rng.NormFloat64()) }},
			{"b_zero", func(int) (float32, float32) { return float32(rng.NormFloat64()), 0 }},
			{"nan_sprinkled", func(i int) (float32, float32) {
				b := float32(rng.NormFloat64())
				switch i % 97 {
				case 5:
					return nan, b
				case 6:
					return nan, nan
				case 7:
					return inf, inf
				case 8:
					return b, -inf
				}
				return b * 1.001, b
			}},
		} {
			a := make([]float32, n)
			b := make([]float32, n)
			for i := range a {
				a[i], b[i] = tc.gen(i)
			}
			tol := Tolerance{Atol: 1e-3, Rtol: 1e-3}
			var acc ErrorAccumulator
			acc.Tol = tol
			acc.Add(a, b)
			t.Run(fmt.Sprintf("%s/n=%d", tc.name, n), func(t *testing.T) {
				checkMetrics(t, acc.Metrics(), naiveMetrics(a, b, tol))
			})
			// Merging per-part accumulators gives the same result.
			t.Run(fmt.Sprintf("%s/n=%d/merged", tc.name, n), func(t *testing.T) {
				total := ErrorAccumulator{Tol: tol}
				for lo := 0; lo < n; lo += 333 {
					hi := min(n, lo+333)
					part := ErrorAccumulator{Tol: tol}
					part.Add(a[lo:hi], b[lo:hi])
					total.Merge(&part)
				}
				checkMetrics(t, total.Metrics(), naiveMetrics(a, b, tol))
			})
		}
	}
}

func TestErrorAccumulatorEdgeValues(t *testing.T) {
	tests := []struct {
		name string
		a, b []float32
		want ErrorMetrics
	}{
		{"identical", []float32{1, -2, 3}, []float32{1, -2, 3},
			ErrorMetrics{N: 3, Cosine: 1, SQNRdB: Float(math.Inf(1))}},
		{"both_zero", []float32{0, 0}, []float32{0, 0},
			ErrorMetrics{N: 2, Cosine: 1, SQNRdB: Float(math.Inf(1))}},
		{"ref_zero", []float32{3, 4}, []float32{0, 0},
			ErrorMetrics{N: 2, MaxAbsErr: 4, MaxAbsErrFinite: 4, MeanAbsErr: 3.5, RMSE: Float(math.Sqrt(12.5)), RelL2: Float(math.Inf(1)),
				Cosine: 0, SQNRdB: Float(math.Inf(-1)), OutsideFrac: 1, OutsideCount: 2}},
		{"opposite", []float32{1, 0}, []float32{-1, 0},
			ErrorMetrics{N: 2, MaxAbsErr: 2, MaxAbsErrFinite: 2, MeanAbsErr: 1, RMSE: Float(math.Sqrt(2)), RelL2: 2,
				Cosine: -1, SQNRdB: Float(10 * math.Log10(1.0/4)), OutsideFrac: 0.5, OutsideCount: 1}},
		{"nan_equal", []float32{float32(math.NaN()), 1}, []float32{float32(math.NaN()), 1},
			ErrorMetrics{N: 2, Cosine: 1, SQNRdB: Float(math.Inf(1))}},
		{"nan_vs_value", []float32{float32(math.NaN()), 1}, []float32{2, 1},
			ErrorMetrics{N: 2, NonFinite: 1, MaxAbsErr: Float(math.NaN()), Cosine: 1, SQNRdB: Float(math.Inf(1)), OutsideFrac: 0.5, OutsideCount: 1}},
		{"empty", nil, nil, ErrorMetrics{Cosine: 1, SQNRdB: Float(math.Inf(1))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var acc ErrorAccumulator
			acc.Add(tc.a, tc.b)
			checkMetrics(t, acc.Metrics(), tc.want)
		})
	}
}

func BenchmarkErrorAccumulator(b *testing.B) {
	const n = 1 << 20
	x := make([]float32, n)
	y := make([]float32, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		y[i] = float32(rng.NormFloat64())
		x[i] = y[i] + float32(rng.NormFloat64()*1e-3)
	}
	b.SetBytes(n * 4) // bytes of one run
	acc := ErrorAccumulator{Tol: Tolerance{Atol: 1e-3, Rtol: 1e-3}}
	for b.Loop() {
		acc.Add(x, y)
	}
}

// TestVectorSumsMatchScalar compares the vector kernel (if the CPU has
// one) with the scalar code on the same data, including elements exactly
// at the tolerance threshold.
func TestVectorSumsMatchScalar(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no vector kernel on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{4, 8, 12, 100, 2048} {
		a := make([]float32, n)
		b := make([]float32, n)
		for i := range a {
			b[i] = float32(rng.NormFloat64())
			a[i] = b[i] + float32(rng.NormFloat64()*1e-2)
			if i%5 == 0 {
				a[i] = b[i] + 0.25 // |a-b| = 0.25 = atol exactly when b = 0
				b[i] = 0
			}
		}
		var vs, ss chunkSums
		done := vectorSums(a, b, 0.25, 1e-3, &vs)
		scalarSums(a[done:], b[done:], 0.25, 1e-3, &vs)
		scalarSums(a, b, 0.25, 1e-3, &ss)
		if done != n&^3 {
			t.Fatalf("n=%d: vector kernel did %d", n, done)
		}
		if vs.out != ss.out || vs.mx != ss.mx {
			t.Errorf("n=%d: outside %d max %v, scalar %d %v", n, vs.out, vs.mx, ss.out, ss.mx)
		}
		for _, c := range [][2]float64{{vs.abs, ss.abs}, {vs.sq, ss.sq}, {vs.a2, ss.a2}, {vs.b2, ss.b2}, {vs.ab, ss.ab}} {
			if !closeTo(Float(c[0]), Float(c[1])) {
				t.Errorf("n=%d: sums %v vs scalar %v", n, c[0], c[1])
			}
		}
	}
}
