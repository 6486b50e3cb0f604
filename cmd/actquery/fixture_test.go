package main

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/actrec/actrec/store"
)

type fixLayer struct {
	path, op string
	shape    []int
	tensors  bool
}

type fixRun struct {
	name    string
	layers  []fixLayer
	samples int
	bs      int
	val     func(layer string, ds, elem int) float32
}

func baseLayers(prefix string) []fixLayer {
	return []fixLayer{
		{prefix + "conv1", "Conv2d", []int{2, 3}, true},
		{prefix + "relu1", "ReLU", []int{2, 3}, true},
		{prefix + "fc", "Linear", []int{4}, false},
	}
}

func baseVal(layer string, ds, elem int) float32 {
	v := float32(ds)*0.25 + float32(elem)*0.5 - 1 + float32(len(layer))*0.125
	if layer == "relu1" && v < 0 {
		return 0
	}
	return v
}

func statsOf(batch int64, rows [][]float32) store.StatsRow {
	var n, zeros int64
	var sum, sumsq float64
	mn, mx := math.Inf(1), math.Inf(-1)
	counts := map[uint16]uint64{}
	for _, r := range rows {
		for _, v := range r {
			n++
			x := float64(v)
			sum, sumsq = sum+x, sumsq+x*x
			mn, mx = min(mn, x), max(mx, x)
			if x == 0 {
				zeros++
			}
			k, _ := store.HistogramKey(v)
			counts[k]++
		}
	}
	mean := sum / float64(n)
	sr := store.StatsRow{Batch: batch, Count: n, Mean: mean, Std: math.Sqrt(max(0, sumsq/float64(n)-mean*mean)),
		Min: mn, Max: mx, L2: math.Sqrt(sumsq), ZeroFrac: float64(zeros) / float64(n), Hist: store.HistogramFromCounts(counts)}
	for i, q := range store.Quantiles {
		sr.Percentiles[i] = sr.Hist.Quantile(q)
	}
	return sr
}

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
	created := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, fr := range runs {
		var infos []store.LayerInfo
		for i, l := range fr.layers {
			infos = append(infos, store.LayerInfo{Path: l.path, Op: l.op, Shape: l.shape, Order: i})
		}
		w, err := s.CreateRun(store.RunInfo{Name: fr.name, Created: created, Model: "synthetic", ModelVersion: "1",
			State: store.StateRecording}, infos)
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
					v := make([]float32, elems)
					for e := range v {
						v[e] = fr.val(l.path, ds, e)
					}
					rows = append(rows, store.TensorRow{Batch: int64(b), Sample: int32(sm), DatasetIndex: int64(ds), Data: v})
					data = append(data, v)
				}
				if err := w.AppendStats(l.path, statsOf(int64(b), data)); err != nil {
					t.Fatal(err)
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

// testStore records base, perturbed (relu1 element 0 + 0.5), bs4 (batch
// size 4) and renamed (layers prefixed "features.") and returns the store
// directory.
func testStore(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	record(t, dir,
		fixRun{name: "base", layers: baseLayers(""), samples: 8, bs: 2, val: baseVal},
		fixRun{name: "perturbed", layers: baseLayers(""), samples: 8, bs: 2, val: func(l string, ds, e int) float32 {
			v := baseVal(l, ds, e)
			if l == "relu1" && e == 0 {
				v += 0.5
			}
			return v
		}},
		fixRun{name: "bs4", layers: baseLayers(""), samples: 8, bs: 4, val: baseVal},
		fixRun{name: "renamed", layers: baseLayers("features."), samples: 8, bs: 2, val: func(l string, ds, e int) float32 {
			return baseVal(l[len("features."):], ds, e)
		}},
	)
	return dir
}
