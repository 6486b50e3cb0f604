package report

import (
	"fmt"
	"math"

	"github.com/actrec/actrec/query"
	"github.com/actrec/actrec/query/plot"
)

// DiffChartData turns a query.DiffReport into what plot.Diff draws for metric m: one bar
// per layer in the report's order, the report's first diverging layer, and the report's
// thresholds for that metric (--min-sqnr, --min-cosine). Layers without a value for m get
// a note: "only in A", "only in B", "shape mismatch", "no common data", "stats only"
// (tensor metrics of a layer recorded as stats only) or "no stats" (W1 of a layer without
// stats).
func DiffChartData(r *query.DiffReport, m plot.Metric) plot.DiffData {
	d := plot.DiffData{RunA: r.RunA, RunB: r.RunB, Metric: m}
	if r.FirstDiverging != nil {
		d.FirstDiverging = *r.FirstDiverging
	}
	switch {
	case m == plot.SQNR && r.Thresholds.MinSQNR != nil:
		v := float64(*r.Thresholds.MinSQNR)
		d.Thresholds = append(d.Thresholds, plot.Threshold{Value: v, Label: fmt.Sprintf("min SQNR %g dB", v)})
	case m == plot.Cosine && r.Thresholds.MinCosine != nil:
		v := float64(*r.Thresholds.MinCosine)
		d.Thresholds = append(d.Thresholds, plot.Threshold{Value: v, Label: fmt.Sprintf("min cosine %g", v)})
	}
	for _, l := range r.Layers {
		name := l.Layer
		if name == "" {
			name = l.LayerB
		}
		if l.LayerB != "" && l.Layer != "" && l.LayerB != l.Layer {
			name = l.Layer + "→" + l.LayerB
		}
		dl := plot.DiffLayer{Layer: name, Value: math.NaN(),
			Failed: l.Status == query.StatusFailed || l.Status == query.StatusShapeMismatch}
		if l.Layer == d.FirstDiverging && name != l.Layer {
			d.FirstDiverging = name
		}
		switch l.Status {
		case query.StatusOnlyA:
			dl.Note = "only in A"
		case query.StatusOnlyB:
			dl.Note = "only in B"
		case query.StatusShapeMismatch:
			dl.Note = "shape mismatch"
		case query.StatusNoCommonData:
			dl.Note = "no common data"
		case query.StatusUnreadable:
			dl.Note, dl.Failed = "unreadable", true
		}
		if dl.Note == "" {
			dl.Value, dl.Note = metricValue(l, m)
		}
		d.Layers = append(d.Layers, dl)
	}
	return d
}

// metricValue returns the value of m for a compared layer, or NaN and why not.
func metricValue(l query.LayerDiff, m plot.Metric) (float64, string) {
	if m == plot.HistW1 {
		if l.Stats == nil {
			return math.NaN(), "no stats"
		}
		return float64(l.Stats.HistW1), ""
	}
	if l.Tensor == nil {
		return math.NaN(), "stats only"
	}
	switch m {
	case plot.SQNR:
		return float64(l.Tensor.SQNRdB), ""
	case plot.Cosine:
		return float64(l.Tensor.Cosine), ""
	case plot.RelL2:
		return float64(l.Tensor.RelL2), ""
	}
	return math.NaN(), "n/a"
}

// DefaultMetric picks the chart metric for a diff: SQNR when any layer has tensor metrics,
// else the histogram W1 distance (stats-only recordings).
func DefaultMetric(r *query.DiffReport) plot.Metric {
	for _, l := range r.Layers {
		if l.Tensor != nil {
			return plot.SQNR
		}
	}
	return plot.HistW1
}
