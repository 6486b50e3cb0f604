// Package report writes a self-contained HTML report of a recorded run, or of two runs
// and their diff: provenance, a table of layers, per-layer charts of statistics over
// batches and activation histograms, and with two runs the per-layer diff table and chart.
//
// The file references nothing outside itself: CSS is inline, charts are inline SVG (heat
// maps inside them are data: URIs), there is no script and no link to a font, stylesheet
// or image; it opens offline in any browser. Text uses the browser's sans-serif fonts.
//
// Write only reads the store; it is safe to run while a run is being recorded (the report
// shows what was committed when it ran).
package report

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/actrec/actrec/query"
	"github.com/actrec/actrec/query/plot"
	"github.com/actrec/actrec/store"
	"gonum.org/v1/plot/vg"
)

// Options configure Write. The zero value reports all layers of one run.
type Options struct {
	// RunB, when set, adds a second run: its provenance next to the first, its stats
	// overlaid on the charts, and the diff of the two runs (run A = candidate, run B =
	// reference, as in query.Diff).
	RunB string
	// Layers restricts the layer sections and the diff to these layers of run A (default:
	// all, in execution order).
	Layers []string
	// Batches restricts the charts to these batches (default all).
	Batches store.BatchRange
	// MaxLayerCharts bounds the number of layers that get charts; the rest are listed in
	// the tables only. Default 48.
	MaxLayerCharts int
	// Diff configures the diff of the two runs (thresholds, layer map); its Layers field
	// is overridden by Layers above.
	Diff query.DiffOptions
	// Metric is the diff chart's metric. Default: SQNR when tensors were compared, else
	// the histogram W1 distance.
	Metric plot.Metric
	// Hist tunes the histogram heat maps.
	Hist plot.HistOptions
	// Now is the report's time stamp. Default time.Now.
	Now func() time.Time
	// Generator names the program in the footer. Default "actquery report".
	Generator string
}

// ErrUnreadableLayers is wrapped by Write's error when it wrote the whole
// page although layers of the diff could not be read.
var ErrUnreadableLayers = errors.New("report written, but layers are unreadable")

// Write writes the HTML report of run (and opts.RunB) read from s to w. It
// stops with an error wrapping ctx.Err() once ctx is done. When a layer of
// the diff is unreadable (a damaged store), the whole page is still written
// (the layer shows its error) and Write then returns an error wrapping that
// layer's (a *store.CorruptionError naming file and offset) and
// ErrUnreadableLayers.
func Write(ctx context.Context, w io.Writer, s *store.Store, run string, opts Options) error {
	if opts.MaxLayerCharts <= 0 {
		opts.MaxLayerCharts = 48
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Generator == "" {
		opts.Generator = "actquery report"
	}
	var damaged error // the first unreadable layer's error, returned after the page is written
	pg := &page{Generated: opts.Now().UTC().Format(time.RFC3339), Generator: opts.Generator, GoVersion: runtime.Version()}

	names := []string{run}
	if opts.RunB != "" {
		names = append(names, opts.RunB)
	}
	var infos []store.RunSummary
	for _, n := range names {
		if _, err := query.GetRun(s, n); err != nil {
			return err
		}
		info, err := s.Run(n)
		if err != nil {
			return err
		}
		infos = append(infos, info)
	}
	pg.Title = "actrec report: " + run
	if opts.RunB != "" {
		pg.Title += " vs " + opts.RunB
	}
	pg.Runs = names
	pg.Provenance = provenance(infos)
	for _, info := range infos {
		if len(info.Config) > 0 {
			pg.Configs = append(pg.Configs, configView{Run: info.Name, JSON: prettyJSON(info.Config)})
		}
	}
	if len(pg.Configs) == 2 && pg.Configs[0].JSON == pg.Configs[1].JSON {
		pg.Configs = []configView{{Run: "both runs (identical)", JSON: pg.Configs[0].JSON}}
	}

	layersA, err := ResolveLayers(s, run, opts.Layers)
	if err != nil {
		return err
	}
	var layersB map[string]store.LayerSummary
	if opts.RunB != "" {
		lb, err := ResolveLayers(s, opts.RunB, nil)
		if err != nil {
			return err
		}
		layersB = make(map[string]store.LayerSummary, len(lb))
		for _, l := range lb {
			layersB[l.Path] = l
		}
	}
	for _, l := range layersA {
		row := layerRow{Order: l.Order, Path: l.Path, Op: l.Op, Shape: shapeString(l.Shape),
			Recorded: recorded(l), StatsBatches: l.StatsBatches, TensorBatches: l.TensorBatches,
			Bytes: humanBytes(l.Bytes), Anchor: anchor(l)}
		if layersB != nil {
			pathB := l.Path
			if m, ok := opts.Diff.Map[l.Path]; ok {
				pathB = m
			}
			if b, ok := layersB[pathB]; ok {
				row.InB = recorded(b)
			} else {
				row.InB = "absent"
			}
		}
		pg.Layers = append(pg.Layers, row)
	}

	if opts.RunB != "" {
		dopts := opts.Diff
		dopts.Layers = opts.Layers
		rep, err := query.Diff(ctx, s, run, opts.RunB, dopts)
		if err != nil {
			return fmt.Errorf("diff %s vs %s: %w", run, opts.RunB, err)
		}
		dv, err := diffSection(rep, opts.Metric)
		if err != nil {
			return err
		}
		for _, l := range rep.Layers {
			if l.Err() != nil && damaged == nil {
				damaged = fmt.Errorf("%w: %s: %w", ErrUnreadableLayers, cmp.Or(l.Layer, l.LayerB), l.Err())
			}
		}
		pg.Diff = dv
	}

	for i, l := range layersA {
		if i >= opts.MaxLayerCharts {
			pg.Notes = append(pg.Notes, fmt.Sprintf("Charts are drawn for the first %d layers only; %d more are in the tables (choose layers with --layer).",
				opts.MaxLayerCharts, len(layersA)-opts.MaxLayerCharts))
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sec, err := layerSection(s, run, opts, l, layersB)
		if err != nil {
			return err
		}
		pg.Sections = append(pg.Sections, sec)
	}
	if err := pageTemplate.Execute(w, pg); err != nil {
		return err
	}
	return damaged
}

type page struct {
	Title, Generated, Generator, GoVersion string
	Runs                                   []string
	Provenance                             []provRow
	Configs                                []configView
	Layers                                 []layerRow
	Diff                                   *diffView
	Sections                               []section
	Notes                                  []string
}

type provRow struct {
	Key    string
	Values []string
	Differ bool
	Class  []string // per value: css class (state colours)
}

type configView struct{ Run, JSON string }

type layerRow struct {
	Order                       int
	Path, Op, Shape, Recorded   string
	StatsBatches, TensorBatches int
	Bytes, Anchor, InB          string
}

type section struct {
	Anchor, Path, Op, Shape string
	Summary                 []summaryRow // per run, statistics aggregated over the batches
	Charts                  []chart      // statistics over batches
	Hists                   []chart      // histogram figures, one per run
	Notes                   []string
}

// Chart sizes in the report: smaller than the plot defaults so that two fit side by side
// with legible text.
const (
	statW, statH = 6.4 * vg.Inch, 3.4 * vg.Inch
	histW, histH = 6.4 * vg.Inch, 7.2 * vg.Inch
)

// summaryRow is one run's statistics of a layer aggregated over its batches (merged
// histograms for the percentiles, as query.Aggregate).
type summaryRow struct {
	Run                                  string
	Batches                              int
	Count, Mean, Std, Min, Max, P01, P50 string
	P99, Zeros, NaN, Inf                 string
	NonFinite                            bool
}

func summarize(sr plot.Series) summaryRow {
	a := query.Aggregate(sr.Rows)
	f := func(v float64) string { return fmtFloat(query.Float(v), 4) }
	// A quantile falling in the histogram's zero bucket reads as that bucket's midpoint
	// (~5e-41); below the smallest normal float32 it is shown as the 0 it stands for.
	q := func(v float64) string {
		if math.Abs(v) < 0x1p-126 {
			v = 0
		}
		return f(v)
	}
	return summaryRow{Run: sr.Run, Batches: len(sr.Rows), Count: strconv.FormatInt(a.Count, 10),
		Mean: f(a.Mean), Std: f(a.Std), Min: f(a.Min), Max: f(a.Max),
		P01: q(a.Percentiles[0]), P50: q(a.Percentiles[3]), P99: q(a.Percentiles[6]),
		Zeros: fmtFloat(query.Float(100*a.ZeroFrac), 3) + "%", NaN: strconv.FormatInt(a.NaN, 10),
		Inf: strconv.FormatInt(a.Inf, 10), NonFinite: a.NaN > 0 || a.Inf > 0}
}

type chart struct {
	Caption string
	SVG     template.HTML
}

type diffView struct {
	Pass           bool
	FirstDiverging string
	Summary        []string
	Chart          *chart
	Rows           []diffRow
}

type diffRow struct {
	Layer, Op, Status, StatusClass       string
	SQNR, Cosine, RelL2, MaxAbs, Outside string
	DMean, DStd, W1                      string
	FirstBatch                           string // first batch beyond the tolerance
	Reasons                              string
	First                                bool
}

// comparable are the provenance rows whose difference between two runs matters when
// comparing them (highlighted in the report).
var comparable = map[string]bool{"model": true, "model version": true, "weights hash": true, "input": true,
	"state": true, "Go version": true, "dropped batches": true, "tags": true}

func provenance(infos []store.RunSummary) []provRow {
	var rows []provRow
	add := func(key string, f func(store.RunSummary) string) {
		r := provRow{Key: key}
		for _, in := range infos {
			v := f(in)
			r.Values = append(r.Values, v)
			cls := ""
			if key == "state" {
				cls = "state-" + v
			}
			r.Class = append(r.Class, cls)
		}
		for _, v := range r.Values[1:] {
			if v != r.Values[0] && comparable[key] {
				r.Differ = true
			}
		}
		allEmpty := true
		for _, v := range r.Values {
			if v != "" {
				allEmpty = false
			}
		}
		if !allEmpty {
			rows = append(rows, r)
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 MST")
	}
	add("run", func(r store.RunSummary) string { return r.Name })
	add("model", func(r store.RunSummary) string { return r.Model })
	add("model version", func(r store.RunSummary) string { return r.ModelVersion })
	add("weights hash", func(r store.RunSummary) string { return r.WeightsHash })
	add("input", func(r store.RunSummary) string { return r.Input })
	add("state", func(r store.RunSummary) string { return string(r.State) })
	add("created", func(r store.RunSummary) string { return ts(r.Created) })
	add("finished", func(r store.RunSummary) string { return ts(r.Finished) })
	add("duration", func(r store.RunSummary) string {
		if r.Finished.IsZero() || r.Created.IsZero() {
			return ""
		}
		return r.Finished.Sub(r.Created).Round(time.Millisecond).String()
	})
	add("host", func(r store.RunSummary) string { return r.Host })
	add("Go version", func(r store.RunSummary) string { return r.GoVersion })
	add("batches", func(r store.RunSummary) string { return strconv.Itoa(r.Batches) })
	add("layers", func(r store.RunSummary) string { return strconv.Itoa(r.Layers) })
	add("stored bytes", func(r store.RunSummary) string { return humanBytes(r.Bytes) })
	add("dropped batches", func(r store.RunSummary) string {
		if v, ok := r.Meta["dropped_batches"]; ok {
			return v
		}
		return "0"
	})
	add("tags", func(r store.RunSummary) string { return joinMap(r.Tags) })
	metaKeys := map[string]bool{}
	for _, in := range infos {
		for k := range in.Meta {
			if k != "dropped_batches" {
				metaKeys[k] = true
			}
		}
	}
	var keys []string
	for k := range metaKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(strings.ReplaceAll(k, "_", " "), func(r store.RunSummary) string { return r.Meta[k] })
	}
	return rows
}

func joinMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

func prettyJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func recorded(l store.LayerSummary) string {
	var parts []string
	if l.StatsBatches > 0 {
		parts = append(parts, "stats")
	}
	if l.TensorBatches > 0 {
		parts = append(parts, "tensors")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return "[" + strings.Join(parts, "×") + "]"
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func anchor(l store.LayerSummary) string { return "layer-" + strconv.Itoa(l.Order) }

func fmtFloat(v query.Float, prec int) string {
	f := float64(v)
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "∞"
	case math.IsInf(f, -1):
		return "−∞"
	}
	return strconv.FormatFloat(f, 'g', prec, 64)
}

func diffSection(rep *query.DiffReport, m plot.Metric) (*diffView, error) {
	dv := &diffView{Pass: rep.Pass}
	if rep.FirstDiverging != nil {
		dv.FirstDiverging = *rep.FirstDiverging
	}
	if m == "" {
		m = DefaultMetric(rep)
	}
	for _, r := range rep.Reasons {
		dv.Summary = append(dv.Summary, strings.ToUpper(r[:1])+r[1:]+".")
	}
	if len(rep.Unreadable) > 0 {
		dv.Summary = append(dv.Summary, fmt.Sprintf("Unreadable layers (damaged store; see their reasons): %s.", strings.Join(rep.Unreadable, ", ")))
	}
	if len(rep.LayersOnlyA) > 0 {
		dv.Summary = append(dv.Summary, fmt.Sprintf("Layers only in %s: %s.", rep.RunA, strings.Join(rep.LayersOnlyA, ", ")))
	}
	if len(rep.LayersOnlyB) > 0 {
		dv.Summary = append(dv.Summary, fmt.Sprintf("Layers only in %s: %s.", rep.RunB, strings.Join(rep.LayersOnlyB, ", ")))
	}
	if rep.BatchesOnlyACount > 0 || rep.BatchesOnlyBCount > 0 {
		dv.Summary = append(dv.Summary, fmt.Sprintf("Batches only in %s: %d; only in %s: %d.",
			rep.RunA, rep.BatchesOnlyACount, rep.RunB, rep.BatchesOnlyBCount))
	}
	for _, l := range rep.Layers {
		name := l.Layer
		if name == "" {
			name = l.LayerB
		} else if l.LayerB != "" && l.LayerB != l.Layer {
			name += " → " + l.LayerB
		}
		r := diffRow{Layer: name, Op: l.Op, Status: strings.ReplaceAll(l.Status, "_", " "), StatusClass: "st-" + l.Status,
			Reasons: strings.Join(l.Reasons, "; "), First: l.Layer != "" && l.Layer == dv.FirstDiverging}
		if t := l.Tensor; t != nil {
			r.SQNR = fmtFloat(t.SQNRdB, 4)
			r.Cosine = fmtFloat(t.Cosine, 6)
			r.RelL2 = fmtFloat(t.RelL2, 3)
			r.MaxAbs = fmtFloat(t.MaxAbsErr, 3)
			r.Outside = fmtFloat(query.Float(100*float64(t.OutsideFrac)), 3) + "%"
		}
		if t := l.Tensor; t != nil && t.FirstOutsideBatch != nil {
			r.FirstBatch = strconv.FormatInt(*t.FirstOutsideBatch, 10)
		} else if st := l.Stats; st != nil && st.FirstDivergingBatch != nil {
			r.FirstBatch = strconv.FormatInt(*st.FirstDivergingBatch, 10) + " (stats)"
		}
		if st := l.Stats; st != nil {
			r.DMean = fmtFloat(st.DMean, 3)
			r.DStd = fmtFloat(st.DStd, 3)
			r.W1 = fmtFloat(st.HistW1, 3)
		}
		dv.Rows = append(dv.Rows, r)
	}
	if len(rep.Layers) > 0 {
		fig, err := plot.Diff(DiffChartData(rep, m))
		if err != nil {
			return nil, err
		}
		// A chart of many layers keeps its natural size and scrolls sideways, so that its
		// layer names stay legible.
		svg, err := inlineSVG(fig, fig.Width > 12*vg.Inch)
		if err != nil {
			return nil, err
		}
		dv.Chart = &chart{Caption: fmt.Sprintf("%s per layer in execution order (run A = %s, reference B = %s).",
			m.Label(), rep.RunA, rep.RunB), SVG: svg}
	}
	return dv, nil
}

// layerSection draws the charts of one layer: value percentiles over batches (both runs
// overlaid), NaN/Inf counts when there are any, and each run's histogram figure.
func layerSection(s *store.Store, run string, opts Options, l store.LayerSummary, layersB map[string]store.LayerSummary) (section, error) {
	sec := section{Anchor: anchor(l), Path: l.Path, Op: l.Op, Shape: shapeString(l.Shape)}
	var series []plot.Series
	a, err := LoadSeries(s, run, l, opts.Batches)
	if err != nil {
		if !errors.Is(err, ErrNoStats) {
			return sec, err
		}
		sec.Notes = append(sec.Notes, err.Error()+".")
	} else {
		series = append(series, a)
	}
	if layersB != nil {
		pathB := l.Path
		if m, ok := opts.Diff.Map[l.Path]; ok {
			pathB = m
		}
		if lb, ok := layersB[pathB]; ok {
			b, err := LoadSeries(s, opts.RunB, lb, opts.Batches)
			if err != nil {
				if !errors.Is(err, ErrNoStats) {
					return sec, err
				}
				sec.Notes = append(sec.Notes, err.Error()+".")
			} else {
				series = append(series, b)
			}
		} else {
			sec.Notes = append(sec.Notes, fmt.Sprintf("Run %q has no layer %q.", opts.RunB, pathB))
		}
	}
	if len(series) == 0 {
		return sec, nil
	}
	for _, sr := range series {
		sec.Summary = append(sec.Summary, summarize(sr))
	}
	stats := []string{"min", "p01", "p50", "p99", "max"}
	if len(series) > 1 {
		stats = []string{"p01", "p50", "p99"}
	}
	add := func(caption string, fig *plot.Figure, err error) error {
		if err != nil {
			sec.Notes = append(sec.Notes, err.Error()+".")
			return nil
		}
		hist := fig.Height > fig.Width
		if hist {
			fig.SetSize(histW, histH)
		} else {
			fig.SetSize(statW+fig.LegendWidth(), statH)
		}
		svg, err := inlineSVG(fig, false)
		if err != nil {
			return err
		}
		if hist {
			sec.Hists = append(sec.Hists, chart{Caption: caption, SVG: svg})
		} else {
			sec.Charts = append(sec.Charts, chart{Caption: caption, SVG: svg})
		}
		return nil
	}
	fig, err := plot.Stats(stats, series...)
	if err := add("Activation percentiles per batch ("+strings.Join(stats, ", ")+").", fig, err); err != nil {
		return sec, err
	}
	fig, err = plot.Stats([]string{"mean", "std"}, series...)
	if err := add("Mean and standard deviation per batch.", fig, err); err != nil {
		return sec, err
	}
	nonFinite := false
	for _, sr := range series {
		for _, r := range sr.Rows {
			if r.NaN > 0 || r.Inf > 0 {
				nonFinite = true
			}
		}
	}
	if nonFinite {
		fig, err = plot.Stats([]string{"nan", "inf"}, series...)
		if err := add("NaN and Inf elements per batch.", fig, err); err != nil {
			return sec, err
		}
	}
	for _, sr := range series {
		fig, err := plot.Hist(sr, opts.Hist)
		if err := add(fmt.Sprintf("Activation histogram of %s per batch (colour: log10 of the fraction of the batch's elements per bin) and merged over the run.", sr.Run), fig, err); err != nil {
			return sec, err
		}
	}
	return sec, nil
}

var (
	svgProlog = regexp.MustCompile(`(?s)^.*?<svg `)
	svgSize   = regexp.MustCompile(`^<svg width="([0-9.]+)pt" height="([0-9.]+)pt"`)
)

// inlineSVG renders fig as an SVG element for embedding in HTML: no XML prolog, scaled to
// the page width (up to its natural size), or at its natural size when natural is set.
func inlineSVG(fig *plot.Figure, natural bool) (template.HTML, error) {
	var buf bytes.Buffer
	if err := fig.Render(&buf, plot.SVG); err != nil {
		return "", err
	}
	out := svgProlog.ReplaceAllString(buf.String(), "<svg ")
	if natural {
		out = svgSize.ReplaceAllString(out, `<svg class="chart" style="width:${1}pt;max-width:none" role="img"`)
	} else {
		out = svgSize.ReplaceAllString(out, `<svg class="chart" style="max-width:${1}pt" role="img"`)
	}
	// The content is gonum's SVG output; every text in it is HTML-escaped by vgsvg.
	return template.HTML(out), nil
}
