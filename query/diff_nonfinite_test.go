package query

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/actrec/actrec/store"
)

// nonFiniteStore records "ref" (finite) and runs that differ from it only
// by non-finite values in element 0 of dataset index 3 of conv1 and relu1.
func nonFiniteStore(t *testing.T) *store.Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	with := func(name string, a float32, stats bool) fixRun {
		return fixRun{name: name, layers: baseLayers(), samples: 8, bs: 2, val: func(l string, ds, e int) float32 {
			if ds == 3 && e == 0 && (l == "fc") == stats {
				return a
			}
			return baseVal(l, ds, e)
		}}
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	record(t, dir,
		fixRun{name: "ref", layers: baseLayers(), samples: 8, bs: 2, val: baseVal},
		fixRun{name: "ref1", layers: baseLayers(), samples: 8, bs: 2, val: baseVal, tensorSamples: 1},
		with("nan", nan, false),
		with("inf", inf, false),
		with("nan2", nan, false),
		with("fcnan", nan, true), // in the stats-only layer fc
		// tensors of sample 0 of each batch only: the NaN (dataset index 3 =
		// sample 1 of batch 1) is in the stats alone.
		func() fixRun { r := with("hidden", nan, false); r.tensorSamples = 1; return r }(),
	)
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestDiff_NonFiniteMismatch: NaN or Inf in one run where the other has a
// finite value fails the layer under every gate, and shows in the metrics.
func TestDiff_NonFiniteMismatch(t *testing.T) {
	s := nonFiniteStore(t)
	sqnr, cos := 20.0, 0.9
	gates := []struct {
		name string
		opts DiffOptions
	}{
		{"exact", DiffOptions{}},
		{"atol_rtol", DiffOptions{Tol: Tolerance{Atol: 1e6, Rtol: 1}}},
		{"min_sqnr", DiffOptions{MinSQNR: &sqnr, MetricsOnly: true}},
		{"min_cosine", DiffOptions{MinCosine: &cos, MetricsOnly: true}},
		{"min_sqnr_atol", DiffOptions{MinSQNR: &sqnr, Tol: Tolerance{Atol: 1e6}}},
	}
	for _, pair := range [][2]string{{"nan", "ref"}, {"ref", "nan"}, {"inf", "ref"}, {"ref", "inf"}, {"nan", "inf"}} {
		for _, g := range gates {
			t.Run(pair[0]+"_vs_"+pair[1]+"/"+g.name, func(t *testing.T) {
				rep, err := Diff(t.Context(), s, pair[0], pair[1], g.opts)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Pass || rep.FirstDiverging == nil || *rep.FirstDiverging != "conv1" {
					t.Errorf("pass %v first %v, want fail at conv1", rep.Pass, rep.FirstDiverging)
				}
				for _, name := range []string{"conv1", "relu1"} {
					l := layerByName(t, rep, name)
					if l.Status != StatusFailed || l.Tensor == nil {
						t.Fatalf("%s: status %s, want failed", name, l.Status)
					}
					if l.Tensor.NonFinite != 1 || !math.IsNaN(float64(l.Tensor.MaxAbsErr)) {
						t.Errorf("%s: non_finite %d max_abs_err %v, want 1 and NaN", name, l.Tensor.NonFinite, l.Tensor.MaxAbsErr)
					}
					if !strings.Contains(strings.Join(l.Reasons, "; "), "non-finite") {
						t.Errorf("%s: reasons %q do not mention the non-finite mismatch", name, l.Reasons)
					}
				}
				if l := layerByName(t, rep, "fc"); l.Status != StatusEqual {
					t.Errorf("fc (finite in both): %s %v", l.Status, l.Reasons)
				}
			})
		}
	}
	// Identical non-finite values in both runs count as equal.
	for _, run := range []string{"nan", "inf"} {
		rep, err := Diff(t.Context(), s, run, run, DiffOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Pass {
			t.Errorf("%s vs itself: failed %v", run, rep.Failed)
		}
		if l := layerByName(t, rep, "conv1"); l.Status != StatusEqual || l.Tensor.NonFinite != 0 || l.Tensor.MaxAbsErr != 0 {
			t.Errorf("%s vs itself: conv1 %s %+v", run, l.Status, l.Tensor.ErrorMetrics)
		}
	}
	rep, err := Diff(t.Context(), s, "nan", "nan2", DiffOptions{})
	if err != nil || !rep.Pass {
		t.Errorf("NaN at the same place in both runs: err %v pass %v", err, rep != nil && rep.Pass)
	}
	// The NaN is in a sample whose tensor was not recorded: the stats'
	// NaN counts differ, under every gate.
	for _, g := range gates {
		rep, err := Diff(t.Context(), s, "hidden", "ref1", g.opts)
		if err != nil {
			t.Fatal(err)
		}
		l := layerByName(t, rep, "conv1")
		if l.Status != StatusFailed || rep.Pass || l.Tensor == nil || l.Tensor.Samples != 4 ||
			!strings.Contains(strings.Join(l.Reasons, "; "), "nan 1 vs 0") {
			t.Errorf("%s: NaN only in the stats: conv1 %s %q, pass %v", g.name, l.Status, l.Reasons, rep.Pass)
		}
	}
	// A stats-only layer: the NaN counts differ, under every gate.
	for _, g := range gates {
		rep, err := Diff(t.Context(), s, "fcnan", "ref", g.opts)
		if err != nil {
			t.Fatal(err)
		}
		if l := layerByName(t, rep, "fc"); l.Status != StatusFailed || rep.Pass {
			t.Errorf("%s: stats-only NaN mismatch: fc %s, pass %v", g.name, l.Status, rep.Pass)
		}
	}
}
