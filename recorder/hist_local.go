package recorder

import "math"

// This file holds local stand-ins for store.Histogram and store.StatsRow
// until the store package provides them; the recorder switches to the store
// types as soon as they exist.

// quantiles are the levels of the Percentiles column (store.Quantiles).
var quantiles = [7]float64{0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99}

// histogram is a sparse bfloat16-bucket histogram: Keys in value order.
type histogram struct {
	Keys   []uint16
	Counts []uint64
}

type statsRow struct {
	Batch                         int64
	Count                         int64
	Mean, Std, Min, Max, L2, Zero float64
	NaN, Inf                      int64
	Percentiles                   [7]float64
	Hist                          histogram
	ChannelMean, ChannelMax       []float32
}

// keyLess reports whether bucket a lies before bucket b in value order.
func keyLess(a, b uint16) bool { return keyOrd(a) < keyOrd(b) }

// keyOrd maps a key to a number that sorts in value order.
func keyOrd(k uint16) uint16 {
	if k&0x8000 != 0 {
		return ^k // negative: larger magnitude first
	}
	return k | 0x8000
}

func (h histogram) Total() uint64 {
	var t uint64
	for _, c := range h.Counts {
		t += c
	}
	return t
}

// Merge returns the sum of h and o.
func (h histogram) Merge(o histogram) histogram {
	var r histogram
	i, j := 0, 0
	for i < len(h.Keys) || j < len(o.Keys) {
		switch {
		case j == len(o.Keys) || (i < len(h.Keys) && keyLess(h.Keys[i], o.Keys[j])):
			r.Keys = append(r.Keys, h.Keys[i])
			r.Counts = append(r.Counts, h.Counts[i])
			i++
		case i == len(h.Keys) || keyLess(o.Keys[j], h.Keys[i]):
			r.Keys = append(r.Keys, o.Keys[j])
			r.Counts = append(r.Counts, o.Counts[j])
			j++
		default:
			r.Keys = append(r.Keys, h.Keys[i])
			r.Counts = append(r.Counts, h.Counts[i]+o.Counts[j])
			i++
			j++
		}
	}
	return r
}

// keyRange returns the closed-open value interval of a finite bucket;
// for negative keys the interval is (lo, hi] mirrored.
func keyRange(k uint16) (lo, hi float64) {
	e := int(k>>7) & 0xff
	m := float64(k & 0x7f)
	var a, b float64
	if e == 0 {
		a = math.Ldexp(m, -133)
		b = math.Ldexp(m+1, -133)
	} else {
		a = math.Ldexp(128+m, e-127-7)
		b = math.Ldexp(128+m+1, e-127-7)
	}
	if k&0x8000 != 0 {
		return -b, -a
	}
	return a, b
}

// Quantile returns the q-quantile with linear interpolation between the
// closest ranks (numpy's default), each rank read as its bucket's midpoint
// (same definition as store.Histogram.Quantile).
func (h histogram) Quantile(q float64) float64 {
	n := h.Total()
	if n == 0 || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	pos := q * float64(n-1)
	lo := uint64(math.Floor(pos))
	frac := pos - float64(lo)
	a := h.rankMid(lo)
	if frac == 0 || lo+1 >= n {
		return a
	}
	b := h.rankMid(lo + 1)
	return a + (b-a)*frac
}

func (h histogram) rankMid(r uint64) float64 {
	var cum uint64
	for i, c := range h.Counts {
		cum += c
		if r < cum {
			lo, hi := keyRange(h.Keys[i])
			return lo + (hi-lo)/2
		}
	}
	return math.NaN()
}
