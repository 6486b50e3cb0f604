package report

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/actrec/actrec/store"
)

// statsOf computes the stats row of one batch the way the recorder defines them.
func statsOf(batch int64, vals []float32) store.StatsRow {
	r := store.StatsRow{Batch: batch, Count: int64(len(vals)), Min: math.Inf(1), Max: math.Inf(-1)}
	counts := map[uint16]uint64{}
	var sum, sq float64
	var n, zeros int
	for _, v := range vals {
		f := float64(v)
		switch {
		case math.IsNaN(f):
			r.NaN++
			continue
		case math.IsInf(f, 0):
			r.Inf++
			continue
		}
		k, _ := store.HistogramKey(v)
		counts[k]++
		n++
		sum += f
		sq += f * f
		r.Min, r.Max = math.Min(r.Min, f), math.Max(r.Max, f)
		if f == 0 {
			zeros++
		}
	}
	if n > 0 {
		r.Mean = sum / float64(n)
		r.Std = math.Sqrt(math.Max(0, sq/float64(n)-r.Mean*r.Mean))
		r.ZeroFrac = float64(zeros) / float64(n)
	} else {
		r.Min, r.Max, r.Mean, r.Std = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	}
	r.L2 = math.Sqrt(sq)
	r.Hist = store.HistogramFromCounts(counts)
	for i, q := range store.Quantiles {
		r.Percentiles[i] = r.Hist.Quantile(q)
	}
	return r
}

// testRun describes a synthetic run: layers conv1 (stats + tensors), relu1 (stats, NaNs
// in some batches), fc1 (stats + tensors) and, when extra is set, a layer only this run has.
type testRun struct {
	name      string
	noise     float64 // added to every activation of fc1 (the "quantization error")
	extra     bool
	batches   int
	noTensors bool // stats only
}

const testBatch = 4 // samples per batch

func buildStore(t testing.TB, runs ...testRun) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	opts := store.DefaultOptions()
	opts.NoSync = true
	opts.FlushInterval = -1
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for ri, tr := range runs {
		layers := []store.LayerInfo{
			{Path: "conv1", Op: "Conv2d", Shape: []int{4, 8, 8}, Order: 0},
			{Path: "relu1", Op: "ReLU", Shape: []int{4, 8, 8}, Order: 1},
			{Path: "fc1", Op: "Linear", Shape: []int{10}, Order: 2},
		}
		if tr.extra {
			layers = append(layers, store.LayerInfo{Path: "softmax", Op: "Softmax", Shape: []int{10}, Order: 3})
		}
		cfg, _ := json.Marshal(map[string]any{"layers": []string{"*"}, "stats_every": 1, "tensors_every": 2})
		info := store.RunInfo{
			Name: tr.name, Created: time.Date(2026, 11, 26, 10, 0, ri, 0, time.UTC), Model: "recipe-cnn",
			ModelVersion: "v1", WeightsHash: "sha256:0123abcd", Input: "fashion-mnist t10k[0:64]",
			Config: cfg, Tags: map[string]string{"precision": tr.name, "note": "<b>not bold</b>"},
			Host: "testhost", GoVersion: "go1.26.8", Meta: map[string]string{"dropped_batches": "0"},
		}
		w, err := s.CreateRun(info, layers)
		if err != nil {
			t.Fatal(err)
		}
		noise := rand.New(rand.NewPCG(uint64(ri)+1, 99))
		for b := range tr.batches {
			batch := int64(b)
			for li, l := range layers {
				per := 1
				for _, d := range l.Shape {
					per *= d
				}
				all := make([]float32, 0, per*testBatch)
				var rows []store.TensorRow
				for smp := range testBatch {
					data := make([]float32, per)
					// The signal depends on (batch, sample, layer) only, so that both runs share it;
					// the spread grows with the batch number (a drifting input).
					sig := rand.New(rand.NewPCG(uint64(b*1000+smp), uint64(li)))
					for i := range data {
						x := sig.NormFloat64()*(1+0.02*float64(b)) + 0.3
						switch l.Path {
						case "relu1":
							x = math.Max(0, x)
						case "fc1":
							x = 3*x + tr.noise*noise.NormFloat64()
						}
						data[i] = float32(x)
					}
					if l.Path == "relu1" && b%5 == 3 && smp == 0 {
						data[0] = float32(math.NaN())
					}
					all = append(all, data...)
					rows = append(rows, store.TensorRow{Batch: batch, Sample: int32(smp), DatasetIndex: int64(b*testBatch + smp), Data: data})
				}
				if err := w.AppendStats(l.Path, statsOf(batch, all)); err != nil {
					t.Fatal(err)
				}
				if l.Path != "relu1" && b%2 == 0 && !tr.noTensors {
					if err := w.AppendTensors(l.Path, rows...); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := w.Close(store.StateComplete); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
