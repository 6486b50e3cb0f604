package query

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/actrec/actrec/store"
)

// DiffOptions configure Diff. The zero value compares exactly: any
// difference fails a layer.
type DiffOptions struct {
	// Map renames layers: key = layer path in run A, value = its path in
	// run B. Unmapped layers are matched by identical path.
	Map map[string]string
	// Tol: a tensor element fails when |a-b| > Atol + Rtol*|b| (b = run B,
	// the reference); a stats-only layer fails when one of mean, std, min,
	// max differs by more than Atol + Rtol*|value in B|. Default 0, 0.
	Tol Tolerance
	// MinSQNR (dB) and MinCosine, when non-nil, fail a tensor layer whose
	// SQNR or cosine similarity is below them.
	MinSQNR   *float64
	MinCosine *float64
	// MetricsOnly: Tol no longer fails layers (the fraction outside it is
	// still reported); only MinSQNR and MinCosine do. actquery sets it when
	// --min-sqnr or --min-cosine is given without --atol or --rtol, so that
	// "SQNR >= 30 dB" is a gate of its own rather than one on top of an exact
	// comparison.
	MetricsOnly bool
	// Batches restricts the comparison to these batches of both runs.
	Batches store.BatchRange
	// MemoryBudget bounds the bytes of run-B tensor data of one window;
	// two windows are held at once (one loading, one compared). Default
	// 64 MiB. At least one batch's worth is always held.
	MemoryBudget int64
	// Layers restricts the comparison to these layers of run A (default
	// all).
	Layers []string
}

// Layer statuses in a LayerDiff.
const (
	StatusEqual         = "equal"          // no difference at all
	StatusOK            = "ok"             // differences within the thresholds
	StatusFailed        = "failed"         // beyond a threshold
	StatusShapeMismatch = "shape_mismatch" // per-sample shapes differ (counts as failed)
	StatusOnlyA         = "only_a"         // layer recorded in run A only
	StatusOnlyB         = "only_b"         // layer recorded in run B only
	StatusNoCommonData  = "no_common_data" // both have the layer, nothing comparable
	StatusUnreadable    = "unreadable"     // the layer's data could not be read (damaged store); fails the diff
)

// Thresholds echo the options in a DiffReport.
type Thresholds struct {
	Atol      Float  `json:"atol"`
	Rtol      Float  `json:"rtol"`
	MinSQNR   *Float `json:"min_sqnr_db"`
	MinCosine *Float `json:"min_cosine"`
}

// DiffReport is the result of Diff (JSON schema: see doc.go).
type DiffReport struct {
	RunA       string     `json:"run_a"`
	RunB       string     `json:"run_b"`
	Thresholds Thresholds `json:"thresholds"`
	// Pass is false when a layer failed, has a shape mismatch or is
	// unreadable, or when nothing was compared (ComparedLayers is 0; see
	// Reasons).
	Pass bool `json:"pass"`
	// ComparedLayers counts the layers whose data was compared (status
	// equal, ok or failed).
	ComparedLayers int `json:"compared_layers"`
	// Reasons say why the diff failed beyond its failed layers, e.g.
	// "nothing compared: ..."; empty otherwise.
	Reasons []string `json:"reasons"`
	// FirstDiverging is the first layer of run A, in execution order,
	// whose status is failed or shape_mismatch; null if none.
	FirstDiverging *string `json:"first_diverging"`
	// Failed lists the failed and shape-mismatched layers (A's paths).
	Failed []string `json:"failed"`
	// Unreadable lists the layers whose data could not be read (status
	// unreadable; the error is in their reasons and LayerDiff.Err).
	Unreadable []string `json:"unreadable"`
	// LayersOnlyA and LayersOnlyB list layers recorded in one run only.
	LayersOnlyA []string `json:"layers_only_a"`
	LayersOnlyB []string `json:"layers_only_b"`
	// BatchesOnlyA and BatchesOnlyB are batch numbers with data in one run
	// only (over the compared layers; at most 100 each, see the counts).
	BatchesOnlyA      []int64     `json:"batches_only_a"`
	BatchesOnlyB      []int64     `json:"batches_only_b"`
	BatchesOnlyACount int         `json:"batches_only_a_count"`
	BatchesOnlyBCount int         `json:"batches_only_b_count"`
	Layers            []LayerDiff `json:"layers"`
}

// LayerDiff is the comparison of one layer.
type LayerDiff struct {
	Layer  string `json:"layer"`   // path in run A ("" for only_b)
	LayerB string `json:"layer_b"` // path in run B ("" for only_a)
	Op     string `json:"op"`
	Order  int    `json:"order"` // execution order in run A (run B for only_b)
	Status string `json:"status"`
	// Reasons say why a layer failed, e.g. "sqnr 31.2 dB < 40".
	Reasons []string    `json:"reasons"`
	ShapeA  []int       `json:"shape_a"`
	ShapeB  []int       `json:"shape_b"`
	Tensor  *TensorDiff `json:"tensor"` // nil unless both runs recorded tensors
	Stats   *StatsDiff  `json:"stats"`  // nil unless both runs recorded stats
	err     error       // why the layer is unreadable
}

// Err is the read error of an unreadable layer (e.g. a
// *store.CorruptionError naming the file and offset), nil otherwise.
func (l LayerDiff) Err() error { return l.err }

// TensorDiff is the element-wise comparison of the tensors of one layer
// over the samples present in both runs.
type TensorDiff struct {
	ErrorMetrics
	// MatchedBy is "dataset_index" when every row of both runs has a dataset
	// index (the k-th occurrence of an index in A meets the k-th in B), else
	// "batch_sample".
	MatchedBy    string `json:"matched_by"`
	Samples      int64  `json:"samples"` // matched samples
	SamplesOnlyA int64  `json:"samples_only_a"`
	SamplesOnlyB int64  `json:"samples_only_b"`
	// FirstOutsideBatch is the first batch of run A (in batch order) with
	// an element outside atol + rtol*|b|, null if none.
	FirstOutsideBatch *int64 `json:"first_outside_batch"`
}

// StatsDiff compares the per-batch statistics of one layer, aggregated
// over batches (see Aggregate). Deltas are A - B.
type StatsDiff struct {
	// Batches is the number of batches aggregated per run; AllBatches is
	// true when the runs' batches hold different numbers of elements
	// (different batch sizes) so that each run's stats are aggregated over
	// all its batches instead of over the batches both have.
	BatchesA   int   `json:"batches_a"`
	BatchesB   int   `json:"batches_b"`
	AllBatches bool  `json:"all_batches"`
	MeanA      Float `json:"mean_a"`
	MeanB      Float `json:"mean_b"`
	DMean      Float `json:"d_mean"`
	StdA       Float `json:"std_a"`
	StdB       Float `json:"std_b"`
	DStd       Float `json:"d_std"`
	MinA       Float `json:"min_a"`
	MinB       Float `json:"min_b"`
	DMin       Float `json:"d_min"`
	MaxA       Float `json:"max_a"`
	MaxB       Float `json:"max_b"`
	DMax       Float `json:"d_max"`
	NaNA       int64 `json:"nan_a"`
	NaNB       int64 `json:"nan_b"`
	InfA       int64 `json:"inf_a"`
	InfB       int64 `json:"inf_b"`
	// FirstDivergingBatch is the first batch present in both runs whose
	// mean, std, min or max differ beyond atol + rtol*|b|, null if none or
	// if the runs' batch sizes differ (AllBatches).
	FirstDivergingBatch *int64 `json:"first_diverging_batch"`
	// HistW1 is the Wasserstein-1 (earth mover's) distance between the
	// merged histograms, each bucket's mass placed at its midpoint, in the
	// units of the values: sum over consecutive buckets of the union grid of
	// |CDF_A - CDF_B| * gap between midpoints. 0 for equal histograms.
	HistW1 Float `json:"hist_w1"`
}

// ParseMap parses "old=new" layer mappings (as given to --map).
func ParseMap(pairs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, p := range pairs {
		a, b, ok := strings.Cut(p, "=")
		a, b = strings.TrimSpace(a), strings.TrimSpace(b)
		if !ok || a == "" || b == "" {
			return nil, fmt.Errorf("layer mapping %q: want old=new", p)
		}
		if prev, dup := m[a]; dup && prev != b {
			return nil, fmt.Errorf("layer mapping: %q mapped twice (%q, %q)", a, prev, b)
		}
		m[a] = b
	}
	return m, nil
}

// ReadMapFile parses a mapping file: one "old=new" (or "old new") per
// line; blank lines and lines starting with '#' are ignored.
func ReadMapFile(r io.Reader) (map[string]string, error) {
	var pairs []string
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if !strings.Contains(t, "=") {
			f := strings.Fields(t)
			if len(f) != 2 {
				return nil, fmt.Errorf("mapping file line %d: want old=new or \"old new\"", line)
			}
			t = f[0] + "=" + f[1]
		}
		pairs = append(pairs, t)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ParseMap(pairs)
}

// Diff compares run A (the candidate) with run B (the reference) layer by
// layer in A's execution order; layers only in B follow in B's order. It
// streams tensor data batch by batch: memory is bounded by
// opts.MemoryBudget plus a few bytes per recorded sample, however large the
// runs are. Shape mismatches and missing layers are reported in the
// result, not returned as errors. When ctx is done Diff stops within a
// row and returns an error wrapping ctx.Err().
func Diff(ctx context.Context, s *store.Store, runA, runB string, opts DiffOptions) (*DiffReport, error) {
	if !(opts.Tol.Atol >= 0) || !(opts.Tol.Rtol >= 0) {
		return nil, fmt.Errorf("query: diff: tolerances atol %v and rtol %v must be numbers >= 0", opts.Tol.Atol, opts.Tol.Rtol)
	}
	if (opts.MinSQNR != nil && math.IsNaN(*opts.MinSQNR)) || (opts.MinCosine != nil && math.IsNaN(*opts.MinCosine)) {
		return nil, errors.New("query: diff: MinSQNR and MinCosine must not be NaN")
	}
	la, err := layerSummaries(s, runA)
	if err != nil {
		return nil, err
	}
	lb, err := layerSummaries(s, runB)
	if err != nil {
		return nil, err
	}
	if opts.MemoryBudget <= 0 {
		opts.MemoryBudget = 64 << 20
	}
	la, err = findLayers(la, runA, opts.Layers)
	if err != nil {
		return nil, err
	}
	byA := map[string]store.LayerSummary{}
	for _, l := range la {
		byA[l.Path] = l
	}
	byB := map[string]store.LayerSummary{}
	for _, l := range lb {
		byB[l.Path] = l
	}
	allA, _ := layerSummaries(s, runA)
	for a, b := range opts.Map {
		if _, err := findLayers(allA, runA, []string{a}); err != nil {
			return nil, fmt.Errorf("--map %s=%s: %w", a, b, err)
		}
		if _, err := findLayers(lb, runB, []string{b}); err != nil {
			return nil, fmt.Errorf("--map %s=%s: %w", a, b, err)
		}
	}

	rep := &DiffReport{
		RunA: runA, RunB: runB, Pass: true,
		Thresholds:   Thresholds{Atol: Float(opts.Tol.Atol), Rtol: Float(opts.Tol.Rtol)},
		Reasons:      []string{},
		Failed:       []string{},
		Unreadable:   []string{},
		LayersOnlyA:  []string{},
		LayersOnlyB:  []string{},
		BatchesOnlyA: []int64{},
		BatchesOnlyB: []int64{},
		Layers:       []LayerDiff{},
	}
	if opts.MinSQNR != nil {
		v := Float(*opts.MinSQNR)
		rep.Thresholds.MinSQNR = &v
	}
	if opts.MinCosine != nil {
		v := Float(*opts.MinCosine)
		rep.Thresholds.MinCosine = &v
	}
	batchesA, batchesB := map[int64]bool{}, map[int64]bool{}
	matchedB := map[string]bool{}
	for _, a := range la {
		bname := a.Path
		if m, ok := opts.Map[a.Path]; ok {
			bname = m
		}
		b, ok := byB[bname]
		if !ok {
			rep.LayersOnlyA = append(rep.LayersOnlyA, a.Path)
			rep.Layers = append(rep.Layers, LayerDiff{Layer: a.Path, Op: a.Op, Order: a.Order,
				Status: StatusOnlyA, Reasons: []string{}, ShapeA: shapeOf(a)})
			continue
		}
		matchedB[bname] = true
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ld, err := diffLayer(ctx, s, runA, runB, a, b, opts, batchesA, batchesB)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// A damaged layer does not hide the others.
			ld = LayerDiff{Layer: a.Path, LayerB: b.Path, Op: a.Op, Order: a.Order, Status: StatusUnreadable,
				Reasons: []string{"unreadable: " + err.Error()}, ShapeA: shapeOf(a), ShapeB: shapeOf(b), err: err}
			rep.Unreadable = append(rep.Unreadable, a.Path)
			rep.Pass = false
		}
		switch ld.Status {
		case StatusEqual, StatusOK, StatusFailed:
			rep.ComparedLayers++
		}
		if ld.Status == StatusFailed || ld.Status == StatusShapeMismatch {
			rep.Pass = false
			rep.Failed = append(rep.Failed, a.Path)
			if rep.FirstDiverging == nil {
				p := a.Path
				rep.FirstDiverging = &p
			}
		}
		rep.Layers = append(rep.Layers, ld)
	}
	if len(opts.Layers) == 0 {
		for _, b := range lb {
			if matchedB[b.Path] {
				continue
			}
			// A layer of B whose name A uses for another mapping target is
			// still "only in B".
			rep.LayersOnlyB = append(rep.LayersOnlyB, b.Path)
			rep.Layers = append(rep.Layers, LayerDiff{LayerB: b.Path, Op: b.Op, Order: b.Order,
				Status: StatusOnlyB, Reasons: []string{}, ShapeB: shapeOf(b)})
		}
	}
	for b := range batchesA {
		if !batchesB[b] {
			rep.BatchesOnlyA = append(rep.BatchesOnlyA, b)
		}
	}
	for b := range batchesB {
		if !batchesA[b] {
			rep.BatchesOnlyB = append(rep.BatchesOnlyB, b)
		}
	}
	slices.Sort(rep.BatchesOnlyA)
	slices.Sort(rep.BatchesOnlyB)
	rep.BatchesOnlyACount, rep.BatchesOnlyBCount = len(rep.BatchesOnlyA), len(rep.BatchesOnlyB)
	if rep.ComparedLayers == 0 {
		rep.Pass = false
		rep.Reasons = append(rep.Reasons, nothingCompared(rep, len(batchesA), len(batchesB)))
	}
	rep.BatchesOnlyA = rep.BatchesOnlyA[:min(100, len(rep.BatchesOnlyA))]
	rep.BatchesOnlyB = rep.BatchesOnlyB[:min(100, len(rep.BatchesOnlyB))]
	return rep, nil
}

func shapeOf(l store.LayerSummary) []int {
	if l.Shape == nil {
		return []int{}
	}
	return l.Shape
}

// nothingCompared explains a diff in which no layer had comparable data.
func nothingCompared(rep *DiffReport, nA, nB int) string {
	var why string
	switch {
	case len(rep.Layers) == 0:
		why = "no layers selected"
	case len(rep.LayersOnlyA)+len(rep.LayersOnlyB) == len(rep.Layers):
		why = fmt.Sprintf("no layer is in both runs (%d only in %s, %d only in %s; --map renames layers)",
			len(rep.LayersOnlyA), rep.RunA, len(rep.LayersOnlyB), rep.RunB)
	case nA == 0 && nB == 0:
		why = "neither run has batches of the common layers"
	case nA == 0:
		why = fmt.Sprintf("%s has no batches of the common layers (%s has %d)", rep.RunA, rep.RunB, nB)
	case nB == 0:
		why = fmt.Sprintf("%s has no batches of the common layers (%s has %d)", rep.RunB, rep.RunA, nA)
	default:
		why = "no common layer has data of the same kind (tensors or stats) for common batches or samples in both runs"
	}
	return "nothing compared: " + why
}

// layerBatches lists the batches of a layer with stats and with tensors,
// from the index alone.
func layerBatches(s *store.Store, run, layer string, r store.BatchRange) (stats, tensors map[int64]bool, err error) {
	ents, err := s.Entries(run, layer, r)
	if err != nil {
		return nil, nil, fmt.Errorf("entries of %s/%s: %w", run, layer, err)
	}
	stats, tensors = map[int64]bool{}, map[int64]bool{}
	for _, e := range ents {
		if e.Kind == store.KindStats {
			stats[e.Batch] = true
		} else {
			tensors[e.Batch] = true
		}
	}
	return stats, tensors, nil
}

// noCommonData says why a matched layer pair has nothing to compare.
func noCommonData(runA, runB string, statsA, tensA, statsB, tensB map[int64]bool, td *TensorDiff) string {
	kind := func(st, te map[int64]bool) string {
		switch {
		case len(st) > 0 && len(te) > 0:
			return "stats and tensors"
		case len(st) > 0:
			return "stats"
		}
		return "tensors"
	}
	switch {
	case len(statsA)+len(tensA) == 0 && len(statsB)+len(tensB) == 0:
		return "no batches recorded in either run"
	case len(statsA)+len(tensA) == 0:
		return fmt.Sprintf("no batches recorded in %s (%d in %s)", runA, len(union(statsB, tensB)), runB)
	case len(statsB)+len(tensB) == 0:
		return fmt.Sprintf("no batches recorded in %s (%d in %s)", runB, len(union(statsA, tensA)), runA)
	case td != nil:
		return fmt.Sprintf("no common samples: %d only in %s, %d only in %s (matched by %s)",
			td.SamplesOnlyA, runA, td.SamplesOnlyB, runB, td.MatchedBy)
	}
	return fmt.Sprintf("%s only in %s, %s only in %s", kind(statsA, tensA), runA, kind(statsB, tensB), runB)
}

func union(a, b map[int64]bool) map[int64]bool {
	u := make(map[int64]bool, len(a)+len(b))
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

// diffLayer compares one matched pair of layers.
func diffLayer(ctx context.Context, s *store.Store, runA, runB string, a, b store.LayerSummary, opts DiffOptions, batchesA, batchesB map[int64]bool) (LayerDiff, error) {
	ld := LayerDiff{Layer: a.Path, LayerB: b.Path, Op: a.Op, Order: a.Order, Reasons: []string{},
		ShapeA: shapeOf(a), ShapeB: shapeOf(b)}
	sameShape := slices.Equal(a.Shape, b.Shape)
	statsA, tensA, err := layerBatches(s, runA, a.Path, opts.Batches)
	if err != nil {
		return ld, err
	}
	statsB, tensB, err := layerBatches(s, runB, b.Path, opts.Batches)
	if err != nil {
		return ld, err
	}
	for _, m := range []map[int64]bool{statsA, tensA} {
		for k := range m {
			batchesA[k] = true
		}
	}
	for _, m := range []map[int64]bool{statsB, tensB} {
		for k := range m {
			batchesB[k] = true
		}
	}
	if len(statsA) > 0 && len(statsB) > 0 {
		sd, err := diffStats(s, runA, runB, a.Path, b.Path, opts.Batches, opts.Tol, batchesA, batchesB)
		if err != nil {
			return ld, err
		}
		ld.Stats = sd
	}
	if sameShape && len(tensA) > 0 && len(tensB) > 0 {
		td, err := diffTensors(ctx, s, runA, runB, a, b, opts, batchesA, batchesB)
		if err != nil {
			return ld, err
		}
		ld.Tensor = td
	}
	switch {
	case !sameShape:
		ld.Status = StatusShapeMismatch
		ld.Reasons = append(ld.Reasons, fmt.Sprintf("shape %v in %s, %v in %s", a.Shape, runA, b.Shape, runB))
	case ld.Tensor != nil && ld.Tensor.Samples > 0:
		ld.Status, ld.Reasons = judgeTensor(ld.Tensor, opts)
		// The tensors may be a sample of the batches: a NaN or Inf in a
		// sample not recorded as a tensor shows in the stats of the same
		// batches only.
		if st := ld.Stats; st != nil && !st.AllBatches && (st.NaNA != st.NaNB || st.InfA != st.InfB) {
			ld.Status = StatusFailed
			ld.Reasons = append(ld.Reasons, fmt.Sprintf("non-finite counts differ in the stats of the common batches: nan %d vs %d, inf %d vs %d",
				st.NaNA, st.NaNB, st.InfA, st.InfB))
		}
	case ld.Stats != nil && ld.Stats.BatchesA > 0 && ld.Stats.BatchesB > 0:
		ld.Status, ld.Reasons = judgeStats(ld.Stats, opts)
	default:
		ld.Status = StatusNoCommonData
		ld.Reasons = append(ld.Reasons, noCommonData(runA, runB, statsA, tensA, statsB, tensB, ld.Tensor))
	}
	return ld, nil
}

func judgeTensor(t *TensorDiff, opts DiffOptions) (string, []string) {
	reasons := []string{}
	// A non-finite mismatch fails under every gate: SQNR and cosine are
	// computed over the finite pairs and would not see it.
	if t.NonFinite > 0 {
		reasons = append(reasons, fmt.Sprintf("%d of %d elements non-finite in one run only (NaN or Inf where the other run has another value)",
			t.NonFinite, t.N))
	}
	if finite := t.OutsideCount - t.NonFinite; finite > 0 && !opts.MetricsOnly {
		reasons = append(reasons, fmt.Sprintf("%d of %d elements outside atol %g + rtol %g * |b| (max abs err %s)",
			finite, t.N, opts.Tol.Atol, opts.Tol.Rtol, t.MaxAbsErrFinite))
	}
	if opts.MinSQNR != nil && !(float64(t.SQNRdB) >= *opts.MinSQNR) {
		reasons = append(reasons, fmt.Sprintf("sqnr %s dB < %g", t.SQNRdB, *opts.MinSQNR))
	}
	if opts.MinCosine != nil && !(float64(t.Cosine) >= *opts.MinCosine) {
		reasons = append(reasons, fmt.Sprintf("cosine %s < %g", t.Cosine, *opts.MinCosine))
	}
	switch {
	case len(reasons) > 0:
		return StatusFailed, reasons
	case t.MaxAbsErrFinite == 0 && t.NonFinite == 0:
		return StatusEqual, reasons
	}
	return StatusOK, reasons
}

func judgeStats(d *StatsDiff, opts DiffOptions) (string, []string) {
	reasons := []string{}
	equal := true
	for _, c := range []struct {
		name string
		a, b Float
	}{{"mean", d.MeanA, d.MeanB}, {"std", d.StdA, d.StdB}, {"min", d.MinA, d.MinB}, {"max", d.MaxA, d.MaxB}} {
		x, y := float64(c.a), float64(c.b)
		// Aggregating the same values in other batch groupings rounds
		// differently in the last bits; that is not a difference.
		if x == y || (math.IsNaN(x) && math.IsNaN(y)) || math.Abs(x-y) <= 1e-9*max(math.Abs(x), math.Abs(y)) {
			continue
		}
		equal = false
		if !opts.MetricsOnly && !(math.Abs(x-y) <= opts.Tol.Atol+opts.Tol.Rtol*math.Abs(y)) {
			reasons = append(reasons, fmt.Sprintf("%s %s vs %s outside atol %g + rtol %g * |b|", c.name, c.a, c.b, opts.Tol.Atol, opts.Tol.Rtol))
		}
	}
	if d.NaNA != d.NaNB || d.InfA != d.InfB {
		equal = false
		reasons = append(reasons, fmt.Sprintf("non-finite counts differ: nan %d vs %d, inf %d vs %d", d.NaNA, d.NaNB, d.InfA, d.InfB))
	}
	if d.HistW1 != 0 {
		equal = false
		// The histograms merge exactly: any difference means different
		// values, which the exact comparison (zero thresholds) fails.
		if !opts.MetricsOnly && opts.Tol.Atol == 0 && opts.Tol.Rtol == 0 {
			reasons = append(reasons, fmt.Sprintf("histograms differ (HIST_W1 %s) with zero thresholds", d.HistW1))
		}
	}
	switch {
	case len(reasons) > 0:
		return StatusFailed, reasons
	case equal:
		return StatusEqual, reasons
	}
	return StatusOK, reasons
}

// diffStats aggregates both runs' stats rows of a layer and compares them.
// statsClose reports whether a stats value x is within tolerance of the
// reference y; differences in the last bits (aggregation order) and equal
// NaNs count as equal.
func statsClose(x, y float64, tol Tolerance) bool {
	if x == y || (math.IsNaN(x) && math.IsNaN(y)) || math.Abs(x-y) <= 1e-9*max(math.Abs(x), math.Abs(y)) {
		return true
	}
	return math.Abs(x-y) <= tol.Atol+tol.Rtol*math.Abs(y)
}

func diffStats(s *store.Store, runA, runB, layerA, layerB string, r store.BatchRange, tol Tolerance, batchesA, batchesB map[int64]bool) (*StatsDiff, error) {
	ra, err := s.Stats(runA, layerA, r)
	if err != nil {
		return nil, fmt.Errorf("stats of %s/%s: %w", runA, layerA, err)
	}
	rb, err := s.Stats(runB, layerB, r)
	if err != nil {
		return nil, fmt.Errorf("stats of %s/%s: %w", runB, layerB, err)
	}
	countA := map[int64]int64{}
	for _, x := range ra {
		countA[x.Batch] = x.Count
		batchesA[x.Batch] = true
	}
	sameSizes := true
	var commonA, commonB []store.StatsRow
	inB := map[int64]bool{}
	for _, x := range rb {
		batchesB[x.Batch] = true
		inB[x.Batch] = true
		if c, ok := countA[x.Batch]; ok {
			if c != x.Count {
				sameSizes = false
			}
			commonB = append(commonB, x)
		}
	}
	for _, x := range ra {
		if inB[x.Batch] {
			commonA = append(commonA, x)
		}
	}
	d := &StatsDiff{}
	if !sameSizes || len(commonA) == 0 {
		d.AllBatches = true
		commonA, commonB = ra, rb
	}
	d.BatchesA, d.BatchesB = len(commonA), len(commonB)
	if !d.AllBatches {
		byBatch := make(map[int64]store.StatsRow, len(commonB))
		for _, x := range commonB {
			byBatch[x.Batch] = x
		}
		for _, x := range commonA {
			y := byBatch[x.Batch]
			if !statsClose(x.Mean, y.Mean, tol) || !statsClose(x.Std, y.Std, tol) ||
				!statsClose(x.Min, y.Min, tol) || !statsClose(x.Max, y.Max, tol) {
				b := x.Batch
				d.FirstDivergingBatch = &b
				break
			}
		}
	}
	ga, gb := Aggregate(commonA), Aggregate(commonB)
	d.MeanA, d.MeanB, d.DMean = Float(ga.Mean), Float(gb.Mean), Float(ga.Mean-gb.Mean)
	d.StdA, d.StdB, d.DStd = Float(ga.Std), Float(gb.Std), Float(ga.Std-gb.Std)
	d.MinA, d.MinB, d.DMin = Float(ga.Min), Float(gb.Min), Float(ga.Min-gb.Min)
	d.MaxA, d.MaxB, d.DMax = Float(ga.Max), Float(gb.Max), Float(ga.Max-gb.Max)
	d.NaNA, d.NaNB, d.InfA, d.InfB = ga.NaN, gb.NaN, ga.Inf, gb.Inf
	d.HistW1 = Float(Wasserstein1(ga.Hist, gb.Hist))
	return d, nil
}

// Wasserstein1 returns the earth mover's distance between the
// distributions of two histograms on the shared bfloat16 bucket grid, each
// bucket's mass at its midpoint (store.KeyMid). Both are normalized to
// total mass 1. It is 0 for two empty histograms and NaN when only one is
// empty.
func Wasserstein1(a, b store.Histogram) float64 {
	ta, tb := float64(a.Total()), float64(b.Total())
	if ta == 0 && tb == 0 {
		return 0
	}
	if ta == 0 || tb == 0 {
		return math.NaN()
	}
	var w, ca, cb, prev float64
	i, j := 0, 0
	first := true
	for i < len(a.Keys) || j < len(b.Keys) {
		var k uint16
		switch {
		case j == len(b.Keys) || (i < len(a.Keys) && store.KeyLess(a.Keys[i], b.Keys[j])):
			k = a.Keys[i]
		default:
			k = b.Keys[j]
		}
		x := store.KeyMid(k)
		if !first {
			w += math.Abs(ca/ta-cb/tb) * (x - prev)
		}
		first = false
		if i < len(a.Keys) && a.Keys[i] == k {
			ca += float64(a.Counts[i])
			i++
		}
		if j < len(b.Keys) && b.Keys[j] == k {
			cb += float64(b.Counts[j])
			j++
		}
		prev = x
	}
	return w
}

// rowKey identifies a sample for matching across runs.
type rowKey struct{ a, b, occ int64 }

// bLoc locates a row of a run: its batch, its sample and, since a store
// may hold the same (batch, sample) more than once (a batch recorded
// twice), the occurrence of that pair in the rows' order.
type bLoc struct {
	batch  int64
	sample int32
	occ    int32
}

// occurrences numbers the rows of each (batch, sample) pair in the order
// they are read (the same order in every read of the same batches).
type occurrences map[bLoc]int32

func (o occurrences) loc(batch int64, sample int32) bLoc {
	k := bLoc{batch: batch, sample: sample}
	n := o[k]
	o[k] = n + 1
	k.occ = n
	return k
}

// keyRow is a tensor row without data.
type keyRow struct {
	loc bLoc
	ds  int64
}

// tensorKeys lists the rows of a layer (batch, sample, dataset index),
// without keeping data.
func tensorKeys(ctx context.Context, s *store.Store, run, layer string, r store.BatchRange) ([]keyRow, error) {
	var out []keyRow
	occ := occurrences{}
	err := tensors(ctx, s, run, layer, r, func(row store.TensorRow) error {
		out = append(out, keyRow{occ.loc(row.Batch, row.Sample), row.DatasetIndex})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tensors of %s/%s: %w", run, layer, err)
	}
	return out, nil
}

// matchKeys assigns each row its matching key: (dataset index, occurrence)
// when byIndex, else (batch, sample, occurrence).
func matchKeys(rows []keyRow, byIndex bool) []rowKey {
	keys := make([]rowKey, len(rows))
	occ := map[int64]int64{}
	for i, r := range rows {
		if byIndex {
			keys[i] = rowKey{a: r.ds, b: occ[r.ds]}
			occ[r.ds]++
		} else {
			keys[i] = rowKey{r.loc.batch, int64(r.loc.sample), int64(r.loc.occ)}
		}
	}
	return keys
}

// diffTensors compares the tensors of a layer pair of equal shape.
//
// Plan: list the rows (no data) of both runs, concurrently, and match them
// by key; cut run A's batches into windows whose run-B rows fit in
// opts.MemoryBudget. A loader goroutine copies the run-B rows of the next
// window while the current window streams run A's rows from the store (in
// place, never copied) and accumulates the error of each against its B
// row, the larger rows split between two goroutines. Peak memory: two
// windows of B rows plus the row lists.
func diffTensors(ctx context.Context, s *store.Store, runA, runB string, a, b store.LayerSummary, opts DiffOptions, batchesA, batchesB map[int64]bool) (*TensorDiff, error) {
	if opts.Batches == (store.BatchRange{}) {
		td, err := diffLockstep(ctx, s, runA, runB, a, b, opts, batchesA, batchesB)
		if !errors.Is(err, errLayout) {
			return td, err
		}
	}
	var ka, kb []keyRow
	var errA, errB error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		kb, errB = tensorKeys(ctx, s, runB, b.Path, opts.Batches)
	}()
	ka, errA = tensorKeys(ctx, s, runA, a.Path, opts.Batches)
	wg.Wait()
	if errA != nil {
		return nil, errA
	}
	if errB != nil {
		return nil, errB
	}
	byIndex := len(ka) > 0 && len(kb) > 0
	for _, r := range ka {
		batchesA[r.loc.batch] = true
		if r.ds < 0 {
			byIndex = false
		}
	}
	for _, r := range kb {
		batchesB[r.loc.batch] = true
		if r.ds < 0 {
			byIndex = false
		}
	}
	td := &TensorDiff{MatchedBy: "batch_sample"}
	if byIndex {
		td.MatchedBy = "dataset_index"
	}
	keysA, keysB := matchKeys(ka, byIndex), matchKeys(kb, byIndex)
	locB := make(map[rowKey]bLoc, len(kb))
	rowsPerB := map[int64]int64{}
	for i, k := range keysB {
		locB[k] = kb[i].loc
		rowsPerB[kb[i].loc.batch]++
	}
	keyOfA := make(map[bLoc]bLoc, len(ka)) // A row -> B row
	var aBatches []aBatch
	matched := 0
	for i, k := range keysA {
		l, ok := locB[k]
		if !ok {
			td.SamplesOnlyA++
			continue
		}
		matched++
		keyOfA[ka[i].loc] = l
		if len(aBatches) == 0 || aBatches[len(aBatches)-1].batch != ka[i].loc.batch {
			aBatches = append(aBatches, aBatch{batch: ka[i].loc.batch})
		}
		ab := &aBatches[len(aBatches)-1]
		ab.rows = append(ab.rows, l)
		if !slices.Contains(ab.needs, l.batch) {
			ab.needs = append(ab.needs, l.batch)
		}
	}
	td.SamplesOnlyB = int64(len(kb) - matched)
	td.Samples = int64(matched)
	if matched == 0 {
		return td, nil
	}
	elems := 1
	for _, d := range a.Shape {
		elems *= d
	}
	bBatchList := make([]int64, 0, len(rowsPerB))
	for bb := range rowsPerB {
		bBatchList = append(bBatchList, bb)
	}
	slices.Sort(bBatchList)
	windows := planWindows(aBatches, int64(elems)*4, opts.MemoryBudget)

	// The loader fills windows of B rows ahead of the comparison.
	quit := make(chan struct{})
	defer close(quit)
	free := make(chan []float32, 2)
	free <- nil
	free <- nil
	ready := make(chan loadedWindow)
	go func() {
		for _, w := range windows {
			var arena []float32
			select {
			case arena = <-free:
			case <-quit:
				return
			}
			lw := loadWindow(ctx, s, runB, b, elems, w, bBatchList, arena)
			select {
			case ready <- lw:
			case <-quit:
				return
			}
			if lw.err != nil {
				return
			}
		}
	}()

	acc := newSplitAccumulator(opts.Tol, elems)
	defer acc.stop()
	for _, w := range windows {
		lw := <-ready
		if lw.err != nil {
			return nil, lw.err
		}
		inWindow := map[int64]bool{}
		for _, ab := range aBatches[w.from:w.to] {
			inWindow[ab.batch] = true
		}
		ra := store.BatchRange{From: aBatches[w.from].batch, To: aBatches[w.to-1].batch + 1}
		occ := occurrences{}
		err := tensors(ctx, s, runA, a.Path, ra, func(row store.TensorRow) error {
			if !inWindow[row.Batch] {
				return nil
			}
			l, ok := keyOfA[occ.loc(row.Batch, row.Sample)]
			if !ok {
				return nil
			}
			ref, ok := lw.cache[l]
			if !ok {
				return fmt.Errorf("run %q layer %q batch %d sample %d: listed by the index but not read", runB, b.Path, l.batch, l.sample)
			}
			if len(row.Data) != len(ref) {
				return fmt.Errorf("run %q layer %q batch %d sample %d: %d values, shape %v wants %d",
					runA, a.Path, row.Batch, row.Sample, len(row.Data), a.Shape, len(ref))
			}
			before := acc.outside()
			acc.add(row.Data, ref)
			if td.FirstOutsideBatch == nil && acc.outside() > before {
				b := row.Batch
				td.FirstOutsideBatch = &b
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("tensors of %s/%s: %w", runA, a.Path, err)
		}
		free <- lw.arena
	}
	td.ErrorMetrics = acc.result().Metrics()
	return td, nil
}

// aBatch is a batch of run A with the run-B rows its samples match and
// the B batches holding them.
type aBatch struct {
	batch int64
	needs []int64 // B batches
	rows  []bLoc  // B rows, each matched by exactly one A row
}

// window is a run of A batches aBatches[from:to] with the B batches and
// rows they need and those rows' bytes.
type window struct {
	from, to int
	need     map[int64]bool
	rows     map[bLoc]bool
	bytes    int64
}

// planWindows cuts aBatches into windows whose B rows fit in budget (at
// least one A batch per window). Only the matched rows are held, so memory
// stays bounded even when A's samples are spread over many B batches
// (shuffled orders); those B batches are then read once per window.
func planWindows(aBatches []aBatch, rowBytes, budget int64) []window {
	var out []window
	for i := 0; i < len(aBatches); {
		w := window{from: i, need: map[int64]bool{}, rows: map[bLoc]bool{}}
		j := i
		for ; j < len(aBatches); j++ {
			add := int64(len(aBatches[j].rows)) * rowBytes
			if j > i && w.bytes+add > budget {
				break
			}
			for _, nb := range aBatches[j].needs {
				w.need[nb] = true
			}
			for _, r := range aBatches[j].rows {
				w.rows[r] = true
			}
			w.bytes += add
		}
		w.to = j
		out = append(out, w)
		i = j
	}
	return out
}

// loadedWindow holds copies of the run-B rows of a window.
type loadedWindow struct {
	cache map[bLoc][]float32
	arena []float32
	err   error
}

// loadWindow copies the rows of the B batches w needs into arena (grown
// as needed), reading maximal runs of consecutive recorded batches.
func loadWindow(ctx context.Context, s *store.Store, runB string, b store.LayerSummary, elems int, w window, bBatchList []int64, arena []float32) loadedWindow {
	lw := loadedWindow{cache: map[bLoc][]float32{}}
	if int64(cap(arena)) < w.bytes/4 {
		arena = make([]float32, 0, w.bytes/4)
	}
	arena = arena[:0]
	occ := occurrences{}
	for _, rg := range neededRanges(bBatchList, w.need) {
		err := tensors(ctx, s, runB, b.Path, rg, func(row store.TensorRow) error {
			loc := occ.loc(row.Batch, row.Sample)
			if !w.rows[loc] {
				return nil
			}
			if len(row.Data) != elems {
				return fmt.Errorf("run %q layer %q batch %d sample %d: %d values, shape %v wants %d",
					runB, b.Path, row.Batch, row.Sample, len(row.Data), b.Shape, elems)
			}
			if len(arena)+elems > cap(arena) { // more rows than listed (a live writer): stay correct
				lw.cache[loc] = append([]float32{}, row.Data...)
				return nil
			}
			off := len(arena)
			arena = append(arena, row.Data...)
			lw.cache[loc] = arena[off : off+elems : off+elems]
			return nil
		})
		if err != nil {
			lw.err = fmt.Errorf("tensors of %s/%s: %w", runB, b.Path, err)
			break
		}
	}
	lw.arena = arena
	return lw
}

// splitMin is the row length from which splitAccumulator shares a row's
// work with its helper goroutine.
const splitMin = 1 << 14

// splitAccumulator accumulates rows on the calling goroutine and, for
// long rows, half of each row on a helper goroutine (when GOMAXPROCS > 1).
type splitAccumulator struct {
	main, help ErrorAccumulator
	work       chan [2][]float32
	done       chan struct{}
}

func newSplitAccumulator(tol Tolerance, elems int) *splitAccumulator {
	sa := &splitAccumulator{main: ErrorAccumulator{Tol: tol}, help: ErrorAccumulator{Tol: tol}}
	if elems >= splitMin && runtime.GOMAXPROCS(0) > 1 {
		sa.work = make(chan [2][]float32)
		sa.done = make(chan struct{})
		go func() {
			for w := range sa.work {
				sa.help.Add(w[0], w[1])
				sa.done <- struct{}{}
			}
		}()
	}
	return sa
}

func (sa *splitAccumulator) add(a, b []float32) {
	if sa.work == nil || len(a) < splitMin {
		sa.main.Add(a, b)
		return
	}
	h := len(a) / 2
	sa.work <- [2][]float32{a[h:], b[h:]}
	sa.main.Add(a[:h], b[:h])
	<-sa.done
}

// outside is the number of pairs outside tolerance so far (call between
// adds only).
func (sa *splitAccumulator) outside() int64 { return sa.main.Outside + sa.help.Outside }

// stop ends the helper goroutine.
func (sa *splitAccumulator) stop() {
	if sa.work != nil {
		close(sa.work)
		sa.work = nil
	}
}

// result merges the helper's sums into the main accumulator.
func (sa *splitAccumulator) result() *ErrorAccumulator {
	sa.stop()
	sa.main.Merge(&sa.help)
	return &sa.main
}

// neededRanges groups the needed batches into ranges over the sorted list
// of recorded batches, each range covering only needed batches.
func neededRanges(sorted []int64, need map[int64]bool) []store.BatchRange {
	var out []store.BatchRange
	start := -1
	for i, b := range sorted {
		if need[b] {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			out = append(out, store.BatchRange{From: sorted[start], To: sorted[i-1] + 1})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, store.BatchRange{From: sorted[start], To: sorted[len(sorted)-1] + 1})
	}
	return out
}

// errLayout stops diffLockstep: the runs' rows are not laid out alike.
var errLayout = errors.New("row layouts differ")

// lockWindow is a window of run-B rows read by diffLockstep's loader:
// whole batches lo..hi, keyed by (batch, sample).
type lockWindow struct {
	lo, hi  int64
	rows    map[bLoc]lockRow
	batches int
	arena   []float32
	err     error
}

type lockRow struct {
	ds   int64
	data []float32
}

// diffLockstep is the fast path of diffTensors for the common case of two
// runs whose rows are laid out alike (same batches, same samples, same
// dataset indices: same data, same batch size). It reads each run once:
// a loader goroutine copies run B batch by batch into windows of
// opts.MemoryBudget, and run A is streamed over each window's batches and
// matched by (batch, sample). It returns errLayout, having accumulated
// nothing the caller keeps, as soon as the layouts turn out to differ; the
// caller then plans the general match by dataset index.
func diffLockstep(ctx context.Context, s *store.Store, runA, runB string, a, b store.LayerSummary, opts DiffOptions, batchesA, batchesB map[int64]bool) (*TensorDiff, error) {
	elems := 1
	for _, d := range a.Shape {
		elems *= d
	}
	quit := make(chan struct{})
	defer close(quit)
	free := make(chan []float32, 2)
	free <- nil
	free <- nil
	ready := make(chan *lockWindow)
	budget := opts.MemoryBudget / 4 // in float32s
	go func() {
		defer close(ready)
		var w *lockWindow
		send := func() bool {
			select {
			case ready <- w:
				w = nil
				return true
			case <-quit:
				return false
			}
		}
		next := func(batch int64) bool {
			var arena []float32
			select {
			case arena = <-free:
			case <-quit:
				return false
			}
			if int64(cap(arena)) < budget {
				arena = make([]float32, 0, budget+int64(elems)*64)
			}
			w = &lockWindow{lo: batch, hi: batch, rows: map[bLoc]lockRow{}, arena: arena[:0]}
			return true
		}
		err := tensors(ctx, s, runB, b.Path, store.BatchRange{}, func(row store.TensorRow) error {
			if len(row.Data) != elems {
				return fmt.Errorf("run %q layer %q batch %d sample %d: %d values, shape %v wants %d",
					runB, b.Path, row.Batch, row.Sample, len(row.Data), b.Shape, elems)
			}
			if w != nil && row.Batch != w.hi && int64(len(w.arena)+elems) > budget {
				if !send() {
					return errLayout
				}
			}
			if w == nil && !next(row.Batch) {
				return errLayout
			}
			if row.Batch != w.hi || w.batches == 0 {
				w.batches++
			}
			w.hi = row.Batch
			// Growing the arena leaves earlier rows in the old array, still
			// referenced and valid; after the first windows it is big enough.
			off := len(w.arena)
			w.arena = append(w.arena, row.Data...)
			data := w.arena[off : off+elems : off+elems]
			if _, dup := w.rows[bLoc{batch: row.Batch, sample: row.Sample}]; dup {
				return errLayout
			}
			w.rows[bLoc{batch: row.Batch, sample: row.Sample}] = lockRow{row.DatasetIndex, data}
			return nil
		})
		if err != nil {
			w = &lockWindow{err: err}
		}
		if w != nil {
			send()
		}
	}()

	td := &TensorDiff{MatchedBy: "dataset_index"}
	acc := newSplitAccumulator(opts.Tol, elems)
	defer acc.stop()
	batchesSeenA, batchesSeenB := 0, 0
	for w := range ready {
		if w.err != nil {
			if errors.Is(w.err, errLayout) {
				return nil, errLayout
			}
			return nil, fmt.Errorf("tensors of %s/%s: %w", runB, b.Path, w.err)
		}
		batchesSeenB += w.batches
		matched := 0
		lastA := int64(math.MinInt64)
		err := tensors(ctx, s, runA, a.Path, store.BatchRange{From: w.lo, To: w.hi + 1}, func(row store.TensorRow) error {
			ref, ok := w.rows[bLoc{batch: row.Batch, sample: row.Sample}]
			if !ok || ref.ds != row.DatasetIndex || len(row.Data) != len(ref.data) {
				return errLayout
			}
			if row.DatasetIndex < 0 {
				td.MatchedBy = "batch_sample"
			}
			if row.Batch != lastA {
				batchesSeenA++
				lastA = row.Batch
			}
			matched++
			before := acc.outside()
			acc.add(row.Data, ref.data)
			if td.FirstOutsideBatch == nil && acc.outside() > before {
				b := row.Batch
				td.FirstOutsideBatch = &b
			}
			return nil
		})
		if errors.Is(err, errLayout) || (err == nil && matched != len(w.rows)) {
			return nil, errLayout
		}
		if err != nil {
			return nil, fmt.Errorf("tensors of %s/%s: %w", runA, a.Path, err)
		}
		for k := range w.rows {
			batchesA[k.batch] = true
			batchesB[k.batch] = true
		}
		td.Samples += int64(matched)
		free <- w.arena
	}
	// Rows of A outside B's batches, or more batches than were read, mean
	// other layouts (or a live writer appending): let the general path
	// count them.
	if batchesSeenA != a.TensorBatches || batchesSeenB != b.TensorBatches {
		return nil, errLayout
	}
	td.ErrorMetrics = acc.result().Metrics()
	return td, nil
}
