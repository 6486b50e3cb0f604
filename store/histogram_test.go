package store

import (
	"math"
	"math/rand"
	"slices"
	"sort"
	"testing"
)

func histOf(vals []float32) Histogram {
	m := map[uint16]uint64{}
	for _, v := range vals {
		if k, ok := HistogramKey(v); ok {
			m[k]++
		}
	}
	return HistogramFromCounts(m)
}

func TestHistogramKey(t *testing.T) {
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		if _, ok := HistogramKey(v); ok {
			t.Fatalf("%v has a key", v)
		}
	}
	// value order of keys, and every finite value inside its bucket's range
	vals := []float32{-math.MaxFloat32, -1e10, -3, -1, -1e-30, float32(math.Copysign(0, -1)), 0, 1e-40, 1e-30, 1, 1.5, 3, 1e10, math.MaxFloat32}
	for i, v := range vals {
		k, _ := HistogramKey(v)
		lo, hi := KeyRange(k)
		if float64(v) < lo || float64(v) > hi {
			t.Errorf("%v not in [%v, %v] of key %#04x", v, lo, hi, k)
		}
		if i > 0 {
			pk, _ := HistogramKey(vals[i-1])
			if pk != k && !KeyLess(pk, k) {
				t.Errorf("key of %v not before key of %v", vals[i-1], v)
			}
		}
		if math.Abs(float64(v)) > 1e-37 { // normal numbers: relative width <= 2^-7
			if (hi-lo)/math.Abs(lo) > 1.0/128 {
				t.Errorf("bucket of %v too wide: [%v, %v]", v, lo, hi)
			}
		}
	}
}

func TestHistogram_MergeQuantile(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	var all []float32
	var merged Histogram
	for part := 0; part < 5; part++ {
		vals := make([]float32, 2000)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64()*10 + 3)
		}
		vals[0] = float32(math.NaN())
		h := histOf(vals)
		if err := h.Validate(); err != nil {
			t.Fatal(err)
		}
		merged.Merge(h)
		all = append(all, vals[1:]...)
	}
	if err := merged.Validate(); err != nil {
		t.Fatal(err)
	}
	if merged.Total() != uint64(len(all)) {
		t.Fatalf("total %d, want %d", merged.Total(), len(all))
	}
	if want := histOf(all); !slices.Equal(want.Keys, merged.Keys) || !slices.Equal(want.Counts, merged.Counts) {
		t.Fatal("merge of parts differs from the histogram of all values")
	}
	sorted := slices.Clone(all)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for _, q := range append([]float64{0, 1}, Quantiles[:]...) {
		pos := q * float64(len(sorted)-1)
		lo := int(math.Floor(pos))
		exact := float64(sorted[lo])
		if lo+1 < len(sorted) {
			exact += (float64(sorted[lo+1]) - exact) * (pos - float64(lo))
		}
		got := merged.Quantile(q)
		if math.Abs(got-exact) > math.Abs(exact)/256+1e-6 {
			t.Errorf("q=%v: %v, exact %v", q, got, exact)
		}
	}
	if !math.IsNaN((Histogram{}).Quantile(0.5)) || !math.IsNaN(merged.Quantile(1.5)) {
		t.Fatal("Quantile of empty histogram or q>1 is not NaN")
	}
}

func TestHistogram_Validate(t *testing.T) {
	bad := []Histogram{
		{Keys: []uint16{1}, Counts: nil},
		{Keys: []uint16{0x3f80, 0x3f00}, Counts: []uint64{1, 1}}, // out of order
		{Keys: []uint16{0x3f80}, Counts: []uint64{0}},
		{Keys: []uint16{0x7f80}, Counts: []uint64{1}}, // +Inf bucket
	}
	for i, h := range bad {
		if h.Validate() == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

// TestKeyMid_ZeroBuckets: the two zero buckets stand for 0 (a ReLU's 1st percentile printed
// as 4.59e-41 where its minimum is 0); every other bucket for its midpoint, inside it.
func TestKeyMid_ZeroBuckets(t *testing.T) {
	cases := []struct {
		name string
		key  uint16
		want float64 // NaN: the midpoint of KeyRange
	}{
		{"positive_zero", 0x0000, 0},
		{"negative_zero", 0x8000, 0},
		{"smallest_subnormal_bucket", 0x0001, math.NaN()},
		{"one", 0x3f80, math.NaN()},
		{"minus_one", 0xbf80, math.NaN()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := KeyMid(c.key)
			lo, hi := KeyRange(c.key)
			if math.IsNaN(c.want) {
				c.want = lo + (hi-lo)/2
			}
			if got != c.want || got < lo || got > hi {
				t.Fatalf("KeyMid(%#04x) = %g, want %g (bucket [%g, %g])", c.key, got, c.want, lo, hi)
			}
			if c.want == 0 && math.Signbit(got) {
				t.Fatalf("KeyMid(%#04x) = -0, want 0", c.key)
			}
		})
	}
	h := HistogramFromCounts(map[uint16]uint64{0x0000: 50, 0x3f80: 50})
	if q := h.Quantile(0.01); q != 0 {
		t.Fatalf("1st percentile of half zeros: %g, want 0", q)
	}
}
