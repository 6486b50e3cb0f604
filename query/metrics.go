package query

import (
	"math"
)

// Tolerance is the elementwise closeness test used by [ErrorAccumulator]:
// a pair (a, b) is outside tolerance when |a-b| > Atol + Rtol*|b| (the
// numpy.isclose rule, b being the reference).
type Tolerance struct {
	Atol float64 // absolute tolerance; default 0
	Rtol float64 // relative tolerance, relative to |b|; default 0
}

// ErrorAccumulator accumulates the error between a tensor a (the candidate)
// and a reference b over any number of float32 pairs, in one streaming pass,
// in float64. Partial accumulators (one per batch, per goroutine, ...) merge
// exactly with [ErrorAccumulator.Merge].
//
// Non-finite values: a pair where both values are NaN, or both are the same
// infinity, counts as equal (numpy's equal_nan=True). Any other pair with a
// non-finite value (NaN or Inf against a finite value, NaN against Inf,
// +Inf against -Inf) is a non-finite mismatch: it counts in NonFinite, is
// outside tolerance, and is left out of the float sums so that the sum-based
// metrics stay finite and meaningful for the rest of the tensor. The
// metrics flag it: [ErrorMetrics].MaxAbsErr is NaN when NonFinite > 0
// (MaxAbsErrFinite keeps the maximum over the finite pairs), and Diff fails
// such a layer whatever the thresholds.
//
// The zero value accumulates with Atol = Rtol = 0. An ErrorAccumulator is
// not safe for concurrent use; give each goroutine its own and merge.
type ErrorAccumulator struct {
	Tol Tolerance

	N         int64   // pairs seen, including non-finite ones
	NonFinite int64   // pairs with differing non-finite values
	Outside   int64   // pairs outside tolerance (includes NonFinite)
	MaxAbs    float64 // max |a-b| over finite pairs
	SumAbs    float64 // sum |a-b|
	SumSqDiff float64 // sum (a-b)^2
	SumA2     float64 // sum a^2
	SumB2     float64 // sum b^2
	SumAB     float64 // sum a*b
}

// chunk is the number of pairs processed by the unchecked fast path before
// the sums are checked for non-finite values.
const chunk = 2048

// Add accumulates the pairs (a[i], b[i]). It panics if len(a) != len(b):
// callers check shapes before (a programming error, not a data error).
func (e *ErrorAccumulator) Add(a, b []float32) {
	if len(a) != len(b) {
		panic("query: ErrorAccumulator.Add: length mismatch")
	}
	for len(a) > 0 {
		n := min(len(a), chunk)
		e.addChunk(a[:n], b[:n])
		a, b = a[n:], b[n:]
	}
}

// chunkSums are the sums of one chunk before they are checked for
// non-finite values and added to the accumulator.
type chunkSums struct {
	abs, sq, a2, b2, ab, mx float64
	out                     int64
}

// addChunk runs the fast path over at most chunk pairs (the vector kernel
// where the CPU has one, then scalar code); if any non-finite value was
// involved it redoes the chunk with the careful path.
func (e *ErrorAccumulator) addChunk(a, b []float32) {
	var s chunkSums
	atol, rtol := e.Tol.Atol, e.Tol.Rtol
	done := vectorSums(a, b, atol, rtol, &s)
	scalarSums(a[done:], b[done:len(a)], atol, rtol, &s)
	// Squares of finite float32 values cannot overflow float64, so a
	// non-finite sum means a non-finite input.
	check := s.a2 + s.b2
	if math.IsNaN(check) || math.IsInf(check, 0) {
		e.addCareful(a, b)
		return
	}
	e.N += int64(len(a))
	e.Outside += s.out
	e.SumAbs += s.abs
	e.SumSqDiff += s.sq
	e.SumA2 += s.a2
	e.SumB2 += s.b2
	e.SumAB += s.ab
	e.MaxAbs = max(e.MaxAbs, s.mx)
}

// scalarSums accumulates (a, b) into s without non-finite checks, two
// independent chains for instruction-level parallelism.
func scalarSums(a, b []float32, atol, rtol float64, s *chunkSums) {
	var (
		sAbs0, sAbs1 float64
		sSq0, sSq1   float64
		sA0, sA1     float64
		sB0, sB1     float64
		sAB0, sAB1   float64
		mx0, mx1     float64
		out          int64
	)
	b = b[:len(a)]
	i := 0
	for ; i+1 < len(a); i += 2 {
		x0, y0 := float64(a[i]), float64(b[i])
		x1, y1 := float64(a[i+1]), float64(b[i+1])
		d0, d1 := math.Abs(x0-y0), math.Abs(x1-y1)
		sAbs0 += d0
		sAbs1 += d1
		sSq0 += d0 * d0
		sSq1 += d1 * d1
		sA0 += x0 * x0
		sA1 += x1 * x1
		sB0 += y0 * y0
		sB1 += y1 * y1
		sAB0 += x0 * y0
		sAB1 += x1 * y1
		if d0 > mx0 {
			mx0 = d0
		}
		if d1 > mx1 {
			mx1 = d1
		}
		if d0 > atol+rtol*math.Abs(y0) {
			out++
		}
		if d1 > atol+rtol*math.Abs(y1) {
			out++
		}
	}
	if i < len(a) {
		x0, y0 := float64(a[i]), float64(b[i])
		d0 := math.Abs(x0 - y0)
		sAbs0 += d0
		sSq0 += d0 * d0
		sA0 += x0 * x0
		sB0 += y0 * y0
		sAB0 += x0 * y0
		if d0 > mx0 {
			mx0 = d0
		}
		if d0 > atol+rtol*math.Abs(y0) {
			out++
		}
	}
	s.abs += sAbs0 + sAbs1
	s.sq += sSq0 + sSq1
	s.a2 += sA0 + sA1
	s.b2 += sB0 + sB1
	s.ab += sAB0 + sAB1
	s.mx = max(s.mx, mx0, mx1)
	s.out += out
}

// addCareful is the per-element path with non-finite handling.
func (e *ErrorAccumulator) addCareful(a, b []float32) {
	atol, rtol := e.Tol.Atol, e.Tol.Rtol
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		e.N++
		finX := !math.IsNaN(x) && !math.IsInf(x, 0)
		finY := !math.IsNaN(y) && !math.IsInf(y, 0)
		if !finX || !finY {
			if (math.IsNaN(x) && math.IsNaN(y)) || (x == y) {
				continue // equal non-finite values
			}
			e.NonFinite++
			e.Outside++
			continue
		}
		d := math.Abs(x - y)
		e.SumAbs += d
		e.SumSqDiff += d * d
		e.SumA2 += x * x
		e.SumB2 += y * y
		e.SumAB += x * y
		if d > e.MaxAbs {
			e.MaxAbs = d
		}
		if d > atol+rtol*math.Abs(y) {
			e.Outside++
		}
	}
}

// Merge adds the pairs accumulated in o. Both should use the same Tol;
// e's is kept.
func (e *ErrorAccumulator) Merge(o *ErrorAccumulator) {
	e.N += o.N
	e.NonFinite += o.NonFinite
	e.Outside += o.Outside
	e.MaxAbs = max(e.MaxAbs, o.MaxAbs)
	e.SumAbs += o.SumAbs
	e.SumSqDiff += o.SumSqDiff
	e.SumA2 += o.SumA2
	e.SumB2 += o.SumB2
	e.SumAB += o.SumAB
}

// ErrorMetrics are the error metrics of a candidate a against a reference b.
// Means divide by N; non-finite mismatches count in N and add no error to
// the sums (they are reported in NonFinite, OutsideCount and a NaN
// MaxAbsErr instead).
type ErrorMetrics struct {
	N         int64 `json:"n"`           // pairs compared
	NonFinite int64 `json:"non_finite"`  // pairs with differing NaN/Inf (non-finite mismatches)
	MaxAbsErr Float `json:"max_abs_err"` // max |a-b|; NaN when NonFinite > 0
	// MaxAbsErrFinite is max |a-b| over the pairs of finite values (equal to
	// MaxAbsErr when NonFinite is 0).
	MaxAbsErrFinite Float `json:"max_abs_err_finite"`
	MeanAbsErr      Float `json:"mean_abs_err"`  // sum |a-b| / N
	RMSE            Float `json:"rmse"`          // sqrt(sum (a-b)^2 / N)
	RelL2           Float `json:"rel_l2"`        // ||a-b|| / ||b||; 0 if both 0, +Inf if only ||b|| is 0
	Cosine          Float `json:"cosine"`        // a.b / (||a|| ||b||); 1 if both are zero vectors, 0 if one is
	SQNRdB          Float `json:"sqnr_db"`       // 10 log10(sum b^2 / sum (a-b)^2); +Inf when a == b
	OutsideFrac     Float `json:"outside_frac"`  // fraction of pairs with |a-b| > atol + rtol*|b|
	OutsideCount    int64 `json:"outside_count"` // number of such pairs
}

// Metrics computes the metrics from the accumulated sums. With N == 0 all
// metrics are those of two equal (empty) tensors.
func (e *ErrorAccumulator) Metrics() ErrorMetrics {
	m := ErrorMetrics{N: e.N, NonFinite: e.NonFinite, MaxAbsErr: Float(e.MaxAbs), MaxAbsErrFinite: Float(e.MaxAbs),
		OutsideCount: e.Outside}
	if e.NonFinite > 0 {
		m.MaxAbsErr = Float(math.NaN())
	}
	if e.N > 0 {
		n := float64(e.N)
		m.MeanAbsErr = Float(e.SumAbs / n)
		m.RMSE = Float(math.Sqrt(e.SumSqDiff / n))
		m.OutsideFrac = Float(float64(e.Outside) / n)
	}
	switch {
	case e.SumSqDiff == 0:
		m.RelL2 = 0
	case e.SumB2 == 0:
		m.RelL2 = Float(math.Inf(1))
	default:
		m.RelL2 = Float(math.Sqrt(e.SumSqDiff) / math.Sqrt(e.SumB2))
	}
	switch {
	case e.SumA2 == 0 && e.SumB2 == 0:
		m.Cosine = 1
	case e.SumA2 == 0 || e.SumB2 == 0:
		m.Cosine = 0
	default:
		c := e.SumAB / (math.Sqrt(e.SumA2) * math.Sqrt(e.SumB2))
		m.Cosine = Float(max(-1, min(1, c)))
	}
	switch {
	case e.SumSqDiff == 0:
		m.SQNRdB = Float(math.Inf(1))
	case e.SumB2 == 0:
		m.SQNRdB = Float(math.Inf(-1))
	default:
		m.SQNRdB = Float(10 * math.Log10(e.SumB2/e.SumSqDiff))
	}
	return m
}
