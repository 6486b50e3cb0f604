package store

import (
	"fmt"
	"math"
	"sort"
)

// Histogram is a sparse histogram over bfloat16 buckets: the key of a finite float32 value v is
// the upper 16 bits of its IEEE-754 bit pattern (v truncated to bfloat16). Keys are sorted by
// the value order of their buckets (most negative first; -0 before +0) and no count is zero.
// Histograms of any batches, layers or runs merge by adding counts. NaN and ±Inf are never in a
// histogram. The relative width of a bucket is at most 2^-7, so a quantile read as a bucket's
// midpoint has a relative error of at most 2^-8.
//
// A Histogram value is not safe for concurrent mutation; concurrent reads are fine.
type Histogram struct {
	Keys   []uint16
	Counts []uint64
}

// HistogramKey returns the bucket key of v, and false for NaN and ±Inf.
func HistogramKey(v float32) (uint16, bool) {
	b := math.Float32bits(v)
	if b&0x7f800000 == 0x7f800000 {
		return 0, false
	}
	return uint16(b >> 16), true
}

// keyOrder maps a key to an integer that sorts in the value order of the buckets.
func keyOrder(k uint16) uint16 {
	if k&0x8000 != 0 {
		return ^k
	}
	return k | 0x8000
}

// KeyLess reports whether bucket a holds smaller values than bucket b.
func KeyLess(a, b uint16) bool { return keyOrder(a) < keyOrder(b) }

// HistogramFromCounts builds a Histogram from key -> count, dropping zero counts.
func HistogramFromCounts(counts map[uint16]uint64) Histogram {
	var h Histogram
	for k, c := range counts {
		if c != 0 {
			h.Keys = append(h.Keys, k)
		}
	}
	sort.Slice(h.Keys, func(i, j int) bool { return KeyLess(h.Keys[i], h.Keys[j]) })
	h.Counts = make([]uint64, len(h.Keys))
	for i, k := range h.Keys {
		h.Counts[i] = counts[k]
	}
	return h
}

// Validate checks the invariants: same lengths, keys strictly ascending in value order, no
// zero counts, no key of a NaN/Inf bucket.
func (h Histogram) Validate() error {
	if len(h.Keys) != len(h.Counts) {
		return fmt.Errorf("histogram: %d keys but %d counts", len(h.Keys), len(h.Counts))
	}
	for i, k := range h.Keys {
		if k&0x7f80 == 0x7f80 {
			return fmt.Errorf("histogram: key %#04x is not a finite bucket", k)
		}
		if h.Counts[i] == 0 {
			return fmt.Errorf("histogram: zero count for key %#04x", k)
		}
		if i > 0 && !KeyLess(h.Keys[i-1], k) {
			return fmt.Errorf("histogram: keys %#04x, %#04x out of order", h.Keys[i-1], k)
		}
	}
	return nil
}

// Total returns the sum of the counts.
func (h Histogram) Total() uint64 {
	var t uint64
	for _, c := range h.Counts {
		t += c
	}
	return t
}

// Merge adds the counts of o to h.
func (h *Histogram) Merge(o Histogram) {
	if len(o.Keys) == 0 {
		return
	}
	keys := make([]uint16, 0, len(h.Keys)+len(o.Keys))
	counts := make([]uint64, 0, len(h.Keys)+len(o.Keys))
	i, j := 0, 0
	for i < len(h.Keys) || j < len(o.Keys) {
		switch {
		case j == len(o.Keys) || (i < len(h.Keys) && KeyLess(h.Keys[i], o.Keys[j])):
			keys, counts = append(keys, h.Keys[i]), append(counts, h.Counts[i])
			i++
		case i == len(h.Keys) || KeyLess(o.Keys[j], h.Keys[i]):
			keys, counts = append(keys, o.Keys[j]), append(counts, o.Counts[j])
			j++
		default:
			keys, counts = append(keys, h.Keys[i]), append(counts, h.Counts[i]+o.Counts[j])
			i++
			j++
		}
	}
	h.Keys, h.Counts = keys, counts
}

// KeyRange returns the smallest and largest float32 value of bucket key (both inclusive).
func KeyRange(key uint16) (lo, hi float64) {
	a := float64(math.Float32frombits(uint32(key) << 16))
	b := float64(math.Float32frombits(uint32(key)<<16 | 0xffff))
	if a > b {
		a, b = b, a
	}
	return a, b
}

// KeyRange returns the bounds of bucket key; see the package function KeyRange.
func (Histogram) KeyRange(key uint16) (lo, hi float64) { return KeyRange(key) }

// KeyMid returns the value that stands for bucket key: its midpoint, except for the two
// zero buckets (0x0000 and 0x8000, zero and the subnormals below 2^-126 * 2^-7 in
// magnitude), whose value is 0: what lands there is almost always an exact zero (ReLU
// outputs), and 0 lies in the bucket, so the error bound of the midpoint still holds.
func KeyMid(key uint16) float64 {
	if key&0x7fff == 0 {
		return 0
	}
	lo, hi := KeyRange(key)
	return lo + (hi-lo)/2
}

// Quantile returns the q-quantile (0 <= q <= 1) with linear interpolation between closest
// ranks (numpy's default), each rank read as its bucket's midpoint. It returns NaN for an
// empty histogram or q outside [0, 1].
func (h Histogram) Quantile(q float64) float64 {
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

// rankMid returns the midpoint of the bucket holding the element of 0-based rank r < Total.
func (h Histogram) rankMid(r uint64) float64 {
	var cum uint64
	for i, c := range h.Counts {
		cum += c
		if r < cum {
			return KeyMid(h.Keys[i])
		}
	}
	return math.NaN()
}
