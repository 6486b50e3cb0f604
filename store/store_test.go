package store

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"unsafe"
)

func testOptions() Options {
	o := DefaultOptions()
	o.FlushInterval = -1
	o.NoSync = true
	return o
}

func testLayers() []LayerInfo {
	return []LayerInfo{
		{Path: "conv1", Op: "Conv2d", Shape: []int{2, 3, 3}, Order: 0},
		{Path: "fc", Op: "Linear", Shape: []int{4}, Order: 1},
	}
}

func tensorRow(batch int64, sample int32, n int) TensorRow {
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(batch)*1000 + float32(sample)*10 + float32(i)/8
	}
	return TensorRow{Batch: batch, Sample: sample, DatasetIndex: batch*100 + int64(sample), Data: d}
}

func statsRow(batch int64) StatsRow {
	return StatsRow{
		Batch: batch, Count: 18, Mean: 0.5 + float64(batch), Std: 1.25, Min: -3, Max: 4, L2: 7, ZeroFrac: 0.125,
		NaN: 1, Inf: 2, Percentiles: [7]float64{-2, -1, 0, 0.5, 1, 2, 3},
		Hist:        HistogramFromCounts(map[uint16]uint64{0x3f80: 3, 0xbf80: 2, 0x0000: 9}),
		ChannelMean: []float32{1, 2},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []Compression{None, LZ4, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions()
			opts.Compression = c
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.CreateRun(RunInfo{Name: "r1", Model: "m", Tags: map[string]string{"k": "v"}}, testLayers())
			if err != nil {
				t.Fatal(err)
			}
			for b := int64(0); b < 5; b++ {
				if err := w.AppendStats("conv1", statsRow(b)); err != nil {
					t.Fatal(err)
				}
				if err := w.AppendTensors("conv1", tensorRow(b, 0, 18), tensorRow(b, 1, 18)); err != nil {
					t.Fatal(err)
				}
				if b%2 == 1 {
					if err := w.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := w.Close(StateComplete); err != nil {
				t.Fatal(err)
			}
			rs, err := s.Run("r1")
			if err != nil {
				t.Fatal(err)
			}
			if rs.State != StateComplete || rs.Batches != 5 || rs.Layers != 2 || rs.Tags["k"] != "v" {
				t.Fatalf("run summary %+v", rs)
			}
			st, err := s.Stats("r1", "conv1", BatchRange{From: 1, To: 4})
			if err != nil {
				t.Fatal(err)
			}
			if len(st) != 3 {
				t.Fatalf("%d stats rows", len(st))
			}
			for i, r := range st {
				want := statsRow(int64(i + 1))
				if !reflect.DeepEqual(r, want) {
					t.Fatalf("stats row %d:\n got %+v\nwant %+v", i, r, want)
				}
			}
			var n int
			err = s.Tensors("r1", "conv1", BatchRange{}, func(r TensorRow) error {
				want := tensorRow(int64(n/2), int32(n%2), 18)
				if !reflect.DeepEqual(r, want) {
					t.Fatalf("tensor row %d: got %+v want %+v", n, r, want)
				}
				n++
				return nil
			})
			if err != nil || n != 10 {
				t.Fatalf("tensors: %d rows, err %v", n, err)
			}
			if _, err := s.Stats("r1", "nope", BatchRange{}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown layer: %v", err)
			}
			if _, err := s.Run("nope"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown run: %v", err)
			}
		})
	}
}

func TestHistogramQuantile(t *testing.T) {
	counts := map[uint16]uint64{}
	for i := 1; i <= 1000; i++ {
		k, _ := HistogramKey(float32(i))
		counts[k]++
	}
	h := HistogramFromCounts(counts)
	if h.Total() != 1000 {
		t.Fatal(h.Total())
	}
	got := h.Quantile(0.5)
	if math.Abs(got-500.5)/500.5 > 1.0/128 {
		t.Fatalf("median %v", got)
	}
}

// sameBits compares float slices bit for bit (NaN == NaN, -0 != +0).
func sameBits32(a, b []float32) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func sameStats(a, b StatsRow) bool {
	fa := []float64{a.Mean, a.Std, a.Min, a.Max, a.L2, a.ZeroFrac}
	fb := []float64{b.Mean, b.Std, b.Min, b.Max, b.L2, b.ZeroFrac}
	fa, fb = append(fa, a.Percentiles[:]...), append(fb, b.Percentiles[:]...)
	for i := range fa {
		if math.Float64bits(fa[i]) != math.Float64bits(fb[i]) {
			return false
		}
	}
	return a.Batch == b.Batch && a.Count == b.Count && a.NaN == b.NaN && a.Inf == b.Inf &&
		reflect.DeepEqual(a.Hist.Keys, b.Hist.Keys) && reflect.DeepEqual(a.Hist.Counts, b.Hist.Counts) &&
		sameBits32(a.ChannelMean, b.ChannelMean) && sameBits32(a.ChannelMax, b.ChannelMax)
}

// TestRoundTrip_Values: every column type with edge values (NaN, ±Inf, -0, subnormals,
// extreme integers, empty and nil lists) comes back bit for bit, through each codec.
func TestRoundTrip_Values(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	stats := []StatsRow{
		{Batch: math.MinInt64, Count: math.MaxInt64, Mean: nan, Std: inf, Min: -inf, Max: math.MaxFloat64, L2: math.SmallestNonzeroFloat64, ZeroFrac: math.Copysign(0, -1),
			NaN: math.MaxInt64, Inf: 0, Percentiles: [7]float64{nan, -inf, inf, 0, -0.5, 1e300, -1e-300}},
		{Batch: -1, Hist: HistogramFromCounts(map[uint16]uint64{0x8000: 1, 0x0000: math.MaxUint64, 0x7f7f: 7, 0xff7f: 2}),
			ChannelMean: []float32{}, ChannelMax: []float32{float32(nan), float32(-inf), math.SmallestNonzeroFloat32}},
		{Batch: math.MaxInt64 - 1, ChannelMax: []float32{1}},
	}
	tensors := []TensorRow{
		{Batch: math.MinInt64, Sample: math.MaxInt32, DatasetIndex: -1, Data: []float32{float32(nan), float32(inf), float32(-inf), float32(math.Copysign(0, -1))}},
		{Batch: 0, Sample: 0, DatasetIndex: math.MaxInt64, Data: []float32{math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32, 1}},
		{Batch: math.MaxInt64 - 1, Sample: -1, DatasetIndex: math.MinInt64, Data: []float32{0, 0, 0, 0}},
	}
	for _, c := range []Compression{None, LZ4, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			opts := testOptions()
			opts.Compression = c
			s, _ := Open(t.TempDir(), opts)
			w, err := s.CreateRun(RunInfo{Name: "v"}, testLayers())
			if err != nil {
				t.Fatal(err)
			}
			if err := w.AppendStats("fc", stats...); err != nil {
				t.Fatal(err)
			}
			if err := w.AppendTensors("fc", tensors...); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(StateComplete); err != nil {
				t.Fatal(err)
			}
			got, err := s.Stats("v", "fc", BatchRange{From: math.MinInt64, To: math.MaxInt64})
			if err != nil || len(got) != len(stats) {
				t.Fatalf("%d rows, %v", len(got), err)
			}
			for i := range stats {
				if !sameStats(got[i], stats[i]) {
					t.Errorf("stats %d:\n got %+v\nwant %+v", i, got[i], stats[i])
				}
			}
			i := 0
			err = s.Tensors("v", "fc", BatchRange{From: math.MinInt64, To: math.MaxInt64}, func(r TensorRow) error {
				want := tensors[i]
				if r.Batch != want.Batch || r.Sample != want.Sample || r.DatasetIndex != want.DatasetIndex || !sameBits32(r.Data, want.Data) {
					t.Errorf("tensor %d: got %+v want %+v", i, r, want)
				}
				i++
				return nil
			})
			if err != nil || i != len(tensors) {
				t.Fatalf("%d tensor rows, %v", i, err)
			}
			if probs, err := s.Check("v"); err != nil || len(probs) != 0 {
				t.Fatalf("check: %v %v", probs, err)
			}
		})
	}
}

// TestTensors_ZeroCopy: rows of an uncompressed segment alias the segment's memory map, for
// sealed segments (footer reader) and unsealed ones (message reader) alike.
func TestTensors_ZeroCopy(t *testing.T) {
	for _, seal := range []bool{true, false} {
		s, _ := Open(t.TempDir(), testOptions())
		writeRun(t, s, "r", 2, seal)
		lu, err := s.find("r", "conv1", kindTensor, BatchRange{})
		if err != nil {
			t.Fatal(err)
		}
		c := &segCache{s: s, runID: lu.run.ID, files: map[uint32]*segFile{}}
		e := lu.ents[0]
		rec, f, err := c.record(e, lu.segs[e.seq])
		if err != nil {
			t.Fatal(err)
		}
		if (f.footer != nil) != seal {
			t.Fatalf("sealed %v but footer reader %v", seal, f.footer != nil)
		}
		vals, _, err := tensorValues(rec.Column(tcTensor))
		if err != nil {
			t.Fatal(err)
		}
		p := uintptr(unsafe.Pointer(&vals[0]))
		lo, hi := uintptr(unsafe.Pointer(&f.data[0])), uintptr(unsafe.Pointer(&f.data[len(f.data)-1]))
		if p < lo || p > hi {
			t.Errorf("sealed=%v: tensor data at %#x is outside the mapping [%#x, %#x]", seal, p, lo, hi)
		}
		c.close()
	}
}
