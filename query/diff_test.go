package query

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/actrec/actrec/store"
)

func layerByName(t *testing.T, rep *DiffReport, name string) LayerDiff {
	t.Helper()
	for _, l := range rep.Layers {
		if l.Layer == name || (l.Layer == "" && l.LayerB == name) {
			return l
		}
	}
	t.Fatalf("layer %q not in report", name)
	return LayerDiff{}
}

func TestDiff_Self(t *testing.T) {
	s, _ := testStore(t)
	rep, err := Diff(t.Context(), s, "base", "base", DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || rep.FirstDiverging != nil || len(rep.Failed) != 0 {
		t.Errorf("self diff: pass=%v first=%v failed=%v", rep.Pass, rep.FirstDiverging, rep.Failed)
	}
	for _, l := range rep.Layers {
		if l.Status != StatusEqual {
			t.Errorf("%s: status %s, want equal (%v)", l.Layer, l.Status, l.Reasons)
		}
		if l.Tensor != nil {
			if !math.IsInf(float64(l.Tensor.SQNRdB), 1) || l.Tensor.Cosine != 1 || l.Tensor.Samples != 8 {
				t.Errorf("%s: sqnr %v cosine %v samples %d", l.Layer, l.Tensor.SQNRdB, l.Tensor.Cosine, l.Tensor.Samples)
			}
		}
	}
	if got := layerByName(t, rep, "fc"); got.Tensor != nil || got.Stats == nil || got.Stats.HistW1 != 0 {
		t.Errorf("fc: stats-only layer compared as %+v", got)
	}
}

func TestDiff_Perturbed(t *testing.T) {
	s, _ := testStore(t)
	minSQNR := 100.0
	rep, err := Diff(t.Context(), s, "perturbed", "base", DiffOptions{MinSQNR: &minSQNR})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || rep.FirstDiverging == nil || *rep.FirstDiverging != "relu1" {
		t.Fatalf("first diverging = %v, pass %v; want relu1", rep.FirstDiverging, rep.Pass)
	}
	if !slices.Equal(rep.Failed, []string{"relu1"}) {
		t.Errorf("failed = %v", rep.Failed)
	}
	if st := layerByName(t, rep, "conv1").Status; st != StatusEqual {
		t.Errorf("conv1 status %s", st)
	}
	l := layerByName(t, rep, "relu1")
	// Expected: 8 samples x 6 elements; element 0 of each sample is off by 0.5.
	var sb2 float64
	for ds := range 8 {
		for e := range 6 {
			v := float64(baseVal("relu1", ds, e))
			sb2 += v * v
		}
	}
	m := l.Tensor.ErrorMetrics
	want := ErrorMetrics{N: 48, MaxAbsErr: 0.5, MaxAbsErrFinite: 0.5, MeanAbsErr: Float(8 * 0.5 / 48.0), RMSE: Float(math.Sqrt(8 * 0.25 / 48)),
		RelL2: Float(math.Sqrt(8*0.25) / math.Sqrt(sb2)), SQNRdB: Float(10 * math.Log10(sb2/(8*0.25))),
		OutsideCount: 8, OutsideFrac: Float(8.0 / 48)}
	for _, c := range []struct {
		name      string
		got, want Float
	}{
		{"max", m.MaxAbsErr, want.MaxAbsErr}, {"mean", m.MeanAbsErr, want.MeanAbsErr}, {"rmse", m.RMSE, want.RMSE},
		{"rel_l2", m.RelL2, want.RelL2}, {"sqnr", m.SQNRdB, want.SQNRdB}, {"outside_frac", m.OutsideFrac, want.OutsideFrac},
	} {
		if !closeTo(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if m.N != 48 || m.OutsideCount != 8 {
		t.Errorf("n %d outside %d", m.N, m.OutsideCount)
	}
	if b := l.Tensor.FirstOutsideBatch; b == nil || *b != 0 {
		t.Errorf("first outside batch %v, want 0", b)
	}
	if b := l.Stats.FirstDivergingBatch; b == nil || *b != 0 {
		t.Errorf("first diverging stats batch %v, want 0", b)
	}
	if len(l.Reasons) != 2 || !strings.Contains(l.Reasons[1], "sqnr") {
		t.Errorf("reasons = %q", l.Reasons)
	}
	// Within a tolerance of 0.5 everything passes except the SQNR gate.
	rep, err = Diff(t.Context(), s, "perturbed", "base", DiffOptions{Tol: Tolerance{Atol: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || layerByName(t, rep, "relu1").Status != StatusOK {
		t.Errorf("atol 0.5: pass %v status %s", rep.Pass, layerByName(t, rep, "relu1").Status)
	}
	// MetricsOnly: a low SQNR gate alone passes although elements differ; a high one fails
	// relu1 for its SQNR only, never for the (exact) element tolerance.
	for _, tc := range []struct {
		sqnr float64
		pass bool
	}{{-100, true}, {1e6, false}} {
		rep, err = Diff(t.Context(), s, "perturbed", "base", DiffOptions{MinSQNR: &tc.sqnr, MetricsOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		r := layerByName(t, rep, "relu1")
		if rep.Pass != tc.pass {
			t.Errorf("metrics only, min sqnr %g: pass %v, want %v (%q)", tc.sqnr, rep.Pass, tc.pass, r.Reasons)
		}
		for _, why := range r.Reasons {
			if strings.Contains(why, "outside atol") {
				t.Errorf("metrics only, min sqnr %g: failed on the element tolerance: %q", tc.sqnr, why)
			}
		}
	}
}

func TestDiff_BatchSizesAlignedByDatasetIndex(t *testing.T) {
	s, _ := testStore(t)
	// A small memory budget forces several windows.
	rep, err := Diff(t.Context(), s, "bs4", "base", DiffOptions{MemoryBudget: 48})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass {
		t.Fatalf("bs4 vs base fails: %v", rep.Failed)
	}
	c := layerByName(t, rep, "conv1")
	if c.Tensor.MatchedBy != "dataset_index" || c.Tensor.Samples != 8 || c.Tensor.MaxAbsErr != 0 {
		t.Errorf("conv1 tensor diff %+v", c.Tensor)
	}
	if !c.Stats.AllBatches || c.Stats.BatchesA != 2 || c.Stats.BatchesB != 4 {
		t.Errorf("conv1 stats diff %+v", c.Stats)
	}
	// Batches 2 and 3 exist only in base.
	if !slices.Equal(rep.BatchesOnlyB, []int64{2, 3}) || len(rep.BatchesOnlyA) != 0 {
		t.Errorf("batches only: a %v b %v", rep.BatchesOnlyA, rep.BatchesOnlyB)
	}
}

func TestDiff_RenamedLayers(t *testing.T) {
	s, _ := testStore(t)
	rep, err := Diff(t.Context(), s, "base", "renamed", DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing in common: reported, and not a pass.
	if len(rep.LayersOnlyA) != 3 || len(rep.LayersOnlyB) != 3 || rep.Pass || rep.ComparedLayers != 0 {
		t.Errorf("unmapped: only a %v only b %v pass %v", rep.LayersOnlyA, rep.LayersOnlyB, rep.Pass)
	}
	m, err := ReadMapFile(strings.NewReader("# renamed in v2\nconv1=features.conv1\nrelu1 features.relu1\n\nfc=features.fc\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err = Diff(t.Context(), s, "base", "renamed", DiffOptions{Map: m})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.LayersOnlyA)+len(rep.LayersOnlyB) != 0 || !rep.Pass {
		t.Errorf("mapped: only a %v only b %v pass %v", rep.LayersOnlyA, rep.LayersOnlyB, rep.Pass)
	}
	for _, l := range rep.Layers {
		if l.Status != StatusEqual || l.LayerB != "features."+l.Layer {
			t.Errorf("%s -> %s: %s", l.Layer, l.LayerB, l.Status)
		}
	}
	_, err = Diff(t.Context(), s, "base", "renamed", DiffOptions{Map: map[string]string{"conv1": "features.conv"}})
	var nf *NotFoundError
	if !errors.As(err, &nf) || nf.Closest[0] != "features.conv1" {
		t.Errorf("bad mapping target: %v", err)
	}
}

func TestDiff_ShapeMismatch(t *testing.T) {
	s, _ := testStore(t)
	rep, err := Diff(t.Context(), s, "reshaped", "base", DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := layerByName(t, rep, "conv1")
	if c.Status != StatusShapeMismatch || c.Tensor != nil || rep.Pass || *rep.FirstDiverging != "conv1" {
		t.Errorf("conv1: %+v", c)
	}
	if st := layerByName(t, rep, "relu1").Status; st != StatusEqual {
		t.Errorf("relu1 after a shape mismatch: %s", st)
	}
}

func TestDiff_NotFound(t *testing.T) {
	s, _ := testStore(t)
	_, err := Diff(t.Context(), s, "bse", "base", DiffOptions{})
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, store.ErrNotFound) || nf.Closest[0] != "base" {
		t.Fatalf("err = %v", err)
	}
	if want := `run "bse" not found; closest: "base"`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want prefix %q", err, want)
	}
}

func TestWasserstein1(t *testing.T) {
	h := func(vals ...float32) store.Histogram {
		c := map[uint16]uint64{}
		for _, v := range vals {
			k, _ := store.HistogramKey(v)
			c[k]++
		}
		return store.HistogramFromCounts(c)
	}
	mid := func(v float32) float64 { k, _ := store.HistogramKey(v); return store.KeyMid(k) }
	for _, tc := range []struct {
		name string
		a, b store.Histogram
		want float64
	}{
		{"equal", h(1, 2, 3), h(1, 2, 3), 0},
		{"shift", h(1), h(2), mid(2) - mid(1)},
		{"half", h(1, 1), h(1, 4), (mid(4) - mid(1)) / 2},
		{"empty", h(), h(), 0},
	} {
		if got := Wasserstein1(tc.a, tc.b); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := Wasserstein1(h(), h(1)); !math.IsNaN(got) {
		t.Errorf("one empty: %v, want NaN", got)
	}
}

func FuzzReadMapFile(f *testing.F) {
	f.Add("# comment\nconv1=features.conv1\nrelu1 features.relu1\n")
	f.Add("a=b\na=c\n")
	f.Add("=\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ReadMapFile(strings.NewReader(s))
		if err != nil {
			return
		}
		for k, v := range m {
			if k == "" || v == "" {
				t.Fatalf("empty name in mapping %q=%q", k, v)
			}
		}
	})
}

func TestDiff_ShuffledOrder(t *testing.T) {
	s, _ := testStore(t)
	// Batch size 3 and a permuted order: every A batch needs rows of
	// several B batches; a budget of one row forces a window per A batch.
	for _, budget := range []int64{1, 1 << 20} {
		rep, err := Diff(t.Context(), s, "shuffled", "base", DiffOptions{MemoryBudget: budget})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"conv1", "relu1"} {
			l := layerByName(t, rep, name)
			if l.Status != StatusEqual || l.Tensor.Samples != 8 || l.Tensor.MatchedBy != "dataset_index" {
				t.Errorf("budget %d %s: %s %+v", budget, name, l.Status, l.Tensor)
			}
		}
		// Stats are per batch: same values, other groupings.
		if l := layerByName(t, rep, "fc"); !l.Stats.AllBatches || l.Status != StatusEqual {
			t.Errorf("fc: %s %+v", l.Status, l.Stats)
		}
	}
}

func TestDiff_NoDatasetIndex(t *testing.T) {
	s, _ := testStore(t)
	rep, err := Diff(t.Context(), s, "noindex", "base", DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := layerByName(t, rep, "conv1")
	if l.Tensor.MatchedBy != "batch_sample" || l.Status != StatusEqual || l.Tensor.Samples != 8 {
		t.Errorf("conv1: %s %+v", l.Status, l.Tensor)
	}
}

// TestDiffLockstep checks the one-pass path against the general one.
func TestDiffLockstep(t *testing.T) {
	s, _ := testStore(t)
	la, _ := s.Layers("perturbed")
	lb, _ := s.Layers("base")
	for _, budget := range []int64{1, 48, 1 << 20} {
		opts := DiffOptions{MemoryBudget: budget, Tol: Tolerance{Atol: 0.1}}
		fast, err := diffLockstep(t.Context(), s, "perturbed", "base", la[1], lb[1], opts, map[int64]bool{}, map[int64]bool{})
		if err != nil {
			t.Fatalf("budget %d: lockstep on alike runs: %v", budget, err)
		}
		opts.Batches = store.BatchRange{From: 0, To: 100} // forces the general path
		slow, err := diffTensors(t.Context(), s, "perturbed", "base", la[1], lb[1], opts, map[int64]bool{}, map[int64]bool{})
		if err != nil {
			t.Fatal(err)
		}
		if fast.ErrorMetrics != slow.ErrorMetrics || fast.Samples != slow.Samples || *fast.FirstOutsideBatch != *slow.FirstOutsideBatch {
			t.Errorf("budget %d: lockstep %+v, general %+v", budget, fast, slow)
		}
	}
	l4, _ := s.Layers("bs4")
	if _, err := diffLockstep(t.Context(), s, "bs4", "base", l4[0], lb[0], DiffOptions{MemoryBudget: 1 << 20}, map[int64]bool{}, map[int64]bool{}); !errors.Is(err, errLayout) {
		t.Errorf("different batch sizes: %v, want errLayout", err)
	}
}
