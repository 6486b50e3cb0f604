package query

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/actrec/actrec/store"
)

// fixLayer describes a layer of a synthetic run.
type fixLayer struct {
	path, op string
	shape    []int
	tensors  bool // record tensors (every batch)
	stats    bool // record stats (every batch)
}

// fixRun describes a synthetic run: samples 0..samples-1 (dataset index =
// sample number), batch size bs, values from val.
type fixRun struct {
	name      string
	layers    []fixLayer
	samples   int
	bs        int
	val       func(layer string, ds, elem int) float32
	noDataset bool // record dataset index -1
	// order maps a position in the recording to a dataset index (default
	// identity), e.g. a shuffled data loader.
	order func(pos int) int
	// tensorSamples records tensors of only the first tensorSamples
	// samples of each batch (0: all), stats of all.
	tensorSamples int
}

// baseLayers are the layers of the standard synthetic model.
func baseLayers() []fixLayer {
	return []fixLayer{
		{"conv1", "Conv2d", []int{2, 3}, true, true},
		{"relu1", "ReLU", []int{2, 3}, true, true},
		{"fc", "Linear", []int{4}, false, true},
	}
}

// baseVal is a deterministic value with a sign change, distinct per layer.
func baseVal(layer string, ds, elem int) float32 {
	off := float32(len(layer))
	v := float32(ds)*0.25 + float32(elem)*0.5 - 1 + off*0.125
	if layer == "relu1" && v < 0 {
		return 0
	}
	return v
}

// statsOf computes a stats row the way the contract defines it.
func statsOf(batch int64, rows [][]float32) store.StatsRow {
	var n, nan, inf, zeros int64
	var sum, sumsq float64
	mn, mx := math.Inf(1), math.Inf(-1)
	counts := map[uint16]uint64{}
	var all []float64
	for _, r := range rows {
		for _, v := range r {
			n++
			x := float64(v)
			if math.IsNaN(x) {
				nan++
				continue
			}
			if math.IsInf(x, 0) {
				inf++
				continue
			}
			sum += x
			sumsq += x * x
			mn, mx = min(mn, x), max(mx, x)
			if x == 0 {
				zeros++
			}
			k, _ := store.HistogramKey(v)
			counts[k]++
			all = append(all, x)
		}
	}
	fin := float64(n - nan - inf)
	mean := sum / fin
	sr := store.StatsRow{Batch: batch, Count: n, Mean: mean, Std: math.Sqrt(max(0, sumsq/fin-mean*mean)),
		Min: mn, Max: mx, L2: math.Sqrt(sumsq), ZeroFrac: float64(zeros) / fin, NaN: nan, Inf: inf,
		Hist: store.HistogramFromCounts(counts)}
	for i, q := range store.Quantiles {
		sr.Percentiles[i] = sr.Hist.Quantile(q)
	}
	return sr
}

var fixCreated = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// record writes the runs into a new store under dir with the real
// store.Writer.
func record(t testing.TB, dir string, runs ...fixRun) {
	t.Helper()
	opts := store.DefaultOptions()
	opts.NoSync = true
	opts.FlushInterval = -1
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, fr := range runs {
		var infos []store.LayerInfo
		for i, l := range fr.layers {
			infos = append(infos, store.LayerInfo{Path: l.path, Op: l.op, Shape: l.shape, Order: i})
		}
		w, err := s.CreateRun(store.RunInfo{Name: fr.name, Created: fixCreated, Model: "synthetic", ModelVersion: "1",
			Input: "synthetic", Host: "test", State: store.StateRecording}, infos)
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b*fr.bs < fr.samples; b++ {
			for _, l := range fr.layers {
				elems := 1
				for _, d := range l.shape {
					elems *= d
				}
				var rows []store.TensorRow
				var data [][]float32
				for sm := 0; sm < fr.bs && b*fr.bs+sm < fr.samples; sm++ {
					ds := b*fr.bs + sm
					if fr.order != nil {
						ds = fr.order(ds)
					}
					v := make([]float32, elems)
					for e := range v {
						v[e] = fr.val(l.path, ds, e)
					}
					dsi := int64(ds)
					if fr.noDataset {
						dsi = -1
					}
					if fr.tensorSamples == 0 || sm < fr.tensorSamples {
						rows = append(rows, store.TensorRow{Batch: int64(b), Sample: int32(sm), DatasetIndex: dsi, Data: v})
					}
					data = append(data, v)
				}
				if l.stats {
					if err := w.AppendStats(l.path, statsOf(int64(b), data)); err != nil {
						t.Fatal(err)
					}
				}
				if l.tensors {
					if err := w.AppendTensors(l.path, rows...); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := w.Close(store.StateComplete); err != nil {
			t.Fatal(err)
		}
	}
}

// testStore records the standard runs and opens the store read-only:
//
//	base       8 samples, batch size 2
//	perturbed  base with relu1 element 0 of every sample + 0.5
//	bs4        base values, batch size 4
//	renamed    base values, layers prefixed "features."
//	reshaped   conv1 of shape [3, 2]
func testStore(t testing.TB) (*store.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	renamed := baseLayers()
	for i := range renamed {
		renamed[i].path = "features." + renamed[i].path
	}
	reshaped := baseLayers()
	reshaped[0].shape = []int{3, 2}
	record(t, dir,
		fixRun{name: "base", layers: baseLayers(), samples: 8, bs: 2, val: baseVal},
		fixRun{name: "perturbed", layers: baseLayers(), samples: 8, bs: 2, val: func(l string, ds, e int) float32 {
			v := baseVal(l, ds, e)
			if l == "relu1" && e == 0 {
				v += 0.5
			}
			return v
		}},
		fixRun{name: "bs4", layers: baseLayers(), samples: 8, bs: 4, val: baseVal},
		fixRun{name: "renamed", layers: renamed, samples: 8, bs: 2, val: func(l string, ds, e int) float32 {
			return baseVal(l[len("features."):], ds, e)
		}},
		fixRun{name: "reshaped", layers: reshaped, samples: 8, bs: 2, val: baseVal},
		fixRun{name: "shuffled", layers: baseLayers(), samples: 8, bs: 3, val: baseVal,
			order: func(pos int) int { return (pos * 5) % 8 }},
		fixRun{name: "noindex", layers: baseLayers(), samples: 8, bs: 2, val: baseVal, noDataset: true},
	)
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}
