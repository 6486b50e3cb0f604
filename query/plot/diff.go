package plot

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"strings"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Metric is a per-layer comparison metric of two runs.
type Metric string

const (
	// SQNR is the signal-to-quantization-noise ratio in dB (higher is closer; +Inf = identical).
	SQNR Metric = "sqnr"
	// Cosine is the cosine similarity (1 = same direction).
	Cosine Metric = "cosine"
	// RelL2 is the relative L2 error ||a-b|| / ||b|| (0 = identical).
	RelL2 Metric = "rel_l2"
	// HistW1 is the Wasserstein-1 distance between the two runs' merged histograms of a
	// layer, in activation units (0 = same distribution); available for stats-only layers.
	HistW1 Metric = "w1"
)

// Metrics lists the valid metrics.
func Metrics() []Metric { return []Metric{SQNR, Cosine, RelL2, HistW1} }

// ParseMetric parses "sqnr", "cosine", "rel_l2" or "w1" (also "rel-l2", "rell2", "cos",
// "hist_w1").
func ParseMetric(s string) (Metric, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "sqnr", "":
		return SQNR, nil
	case "cosine", "cos":
		return Cosine, nil
	case "rel_l2", "rel-l2", "rell2", "relative_l2":
		return RelL2, nil
	case "w1", "hist_w1", "wasserstein":
		return HistW1, nil
	}
	return "", fmt.Errorf("unknown metric %q; valid metrics: sqnr, cosine, rel_l2, w1", s)
}

// Label is the axis label of the metric, with its unit.
func (m Metric) Label() string {
	switch m {
	case SQNR:
		return "SQNR [dB]"
	case Cosine:
		return "cosine similarity [-1..1]"
	case RelL2:
		return "relative L2 error [ratio]"
	case HistW1:
		return "histogram W1 distance [activation value]"
	}
	return string(m)
}

// HigherIsBetter reports whether larger values mean closer runs.
func (m Metric) HigherIsBetter() bool { return m == SQNR || m == Cosine }

// DiffLayer is one compared layer.
type DiffLayer struct {
	Layer string
	// Value of the metric; NaN when the layer could not be compared (see Note).
	Value float64
	// Note says why there is no value ("only in A", "shape mismatch", "stats only"); shown
	// under the layer's slot.
	Note string
	// Failed marks a layer the comparison failed (e.g. beyond --atol/--rtol); it is drawn
	// like a layer beyond a threshold.
	Failed bool
}

// Threshold is a horizontal reference line (e.g. the --min-sqnr gate).
type Threshold struct {
	Value float64
	Label string
}

// DiffData is what Diff draws: one metric per layer in execution order.
type DiffData struct {
	RunA, RunB string
	Metric     Metric
	Layers     []DiffLayer
	// FirstDiverging is the layer to mark as the first diverging one ("" = none).
	FirstDiverging string
	Thresholds     []Threshold
}

// beyond reports whether v is worse than threshold t for metric m.
func (m Metric) beyond(v, t float64) bool {
	if m.HigherIsBetter() {
		return v < t
	}
	return v > t
}

// Diff draws the per-layer metric of d as bars in execution order. The first diverging
// layer is red and labelled; other failed layers (Failed, or beyond a threshold) are amber; thresholds are
// dashed lines. Identical layers (SQNR +Inf, relative L2 0, cosine 1) are drawn as a
// full-height light grey bar labelled "identical"; layers without a value show their Note.
func Diff(d DiffData) (*Figure, error) {
	if len(d.Layers) == 0 {
		return nil, errors.New("plot: diff has no layers")
	}
	var vals []float64
	for _, l := range d.Layers {
		// Identical layers (relative L2 = 0) are drawn apart and do not pick the scale.
		if !math.IsNaN(l.Value) && !math.IsInf(l.Value, 0) && !(!d.Metric.HigherIsBetter() && l.Value == 0) {
			vals = append(vals, l.Value)
		}
	}
	for _, t := range d.Thresholds {
		vals = append(vals, t.Value)
	}
	kind := scaleLinear
	if !d.Metric.HigherIsBetter() {
		if k := chooseScale(vals); k == scaleLog || k == scaleLog1p {
			kind = scaleLog
		}
	}
	lo, hi, ok := finiteRange(vals, kind == scaleLog)
	if !ok {
		lo, hi = 0, 1
		if d.Metric == SQNR {
			hi = 100
		}
	}
	switch d.Metric {
	case SQNR:
		lo = math.Min(lo, 0)
	case Cosine:
		hi = 1
	case RelL2, HistW1:
		if kind == scaleLinear {
			lo = 0
		}
	}
	title := fmt.Sprintf("%s per layer — %s vs %s", strings.SplitN(d.Metric.Label(), " [", 2)[0], d.RunA, d.RunB)
	if d.FirstDiverging != "" {
		title += "; first diverging: " + d.FirstDiverging
	} else {
		title += "; no layer diverges"
	}
	p := newPlot(title, "layer [execution order]", d.Metric.Label()+kind.suffix())
	applyScale(&p.Y, kind)
	setRange(&p.Y, lo, hi, kind)
	if d.Metric == SQNR && lo >= 0 {
		p.Y.Min = 0
	}
	if kind == scaleLinear && !d.Metric.HigherIsBetter() {
		p.Y.Min = 0
	}
	// Headroom for the labels above the bars.
	if kind == scaleLinear {
		p.Y.Max += (p.Y.Max - p.Y.Min) * 0.08
	} else {
		p.Y.Max *= 3
	}

	names := make([]string, len(d.Layers))
	for i, l := range d.Layers {
		names[i] = l.Layer
	}
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 3
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.X.Min, p.X.Max = -0.7, float64(len(d.Layers))-0.3
	p.Add(newGrid())
	b := &bars{d: d}
	p.Add(b)
	for _, t := range d.Thresholds {
		p.Add(&hline{y: t.Value, label: t.Label, style: draw.LineStyle{
			Color: red, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}})
	}
	anyFailed := len(d.Thresholds) > 0
	for _, l := range d.Layers {
		anyFailed = anyFailed || l.Failed
	}
	p.Legend.Add("passed", swatch(blue))
	if anyFailed {
		p.Legend.Add("failed", swatch(amber))
	}
	if d.FirstDiverging != "" {
		p.Legend.Add("first diverging layer", swatch(red))
	}

	width := 8 * vg.Inch
	if n := len(d.Layers); n > 30 {
		width = vg.Length(n) * 0.25 * vg.Inch
	}
	maxName := 0
	for _, n := range names {
		maxName = max(maxName, len(n))
	}
	legendW := 1.7 * vg.Inch
	f := &Figure{Width: width + legendW, Height: 4.5*vg.Inch + vg.Length(min(maxName, 60))*vg.Points(4.5)}
	f.addWithLegend(p, legendW)
	return f, nil
}

func swatch(c color.Color) swatchThumb { return swatchThumb{c} }

// swatchThumb draws a filled square in the legend.
type swatchThumb struct{ c color.Color }

func (s swatchThumb) Thumbnail(c *draw.Canvas) {
	c.SetColor(s.c)
	c.Fill(c.Rectangle.Path())
}

// bars draws one bar per layer from the axis base (0 on linear axes, the axis minimum on
// a log axis) to its value.
type bars struct {
	d DiffData
}

func (b *bars) barColor(l DiffLayer) color.Color {
	if l.Layer == b.d.FirstDiverging {
		return red
	}
	if l.Failed {
		return amber
	}
	for _, t := range b.d.Thresholds {
		if b.d.Metric.beyond(l.Value, t.Value) {
			return amber
		}
	}
	return blue
}

func (b *bars) Plot(c draw.Canvas, p *gplot.Plot) {
	trX, trY := p.Transforms(&c)
	base := 0.0
	if _, log := p.Y.Scale.(gplot.LogScale); log || p.Y.Min > 0 {
		base = p.Y.Min
	}
	if p.Y.Max < 0 {
		base = p.Y.Max
	}
	halfW := (trX(1) - trX(0)) * 0.38
	note := textStyle(7.5, false)
	note.Color = grey
	note.XAlign = draw.XCenter
	note.YAlign = draw.YBottom
	for i, l := range b.d.Layers {
		x := trX(float64(i))
		v := l.Value
		identical := (b.d.Metric == SQNR && math.IsInf(v, 1)) || (!b.d.Metric.HigherIsBetter() && v == 0) ||
			(b.d.Metric == Cosine && v == 1)
		switch {
		case identical:
			top := c.Max.Y
			if b.d.Metric == Cosine {
				top = trY(1)
			}
			fillRect(c, x-halfW, trY(base), x+halfW, top, light)
			rot := note
			rot.Rotation = math.Pi / 2
			rot.XAlign = draw.XLeft
			rot.YAlign = draw.YCenter
			c.FillText(rot, vg.Point{X: x, Y: trY(base) + 4}, "identical")
			continue
		case math.IsNaN(v) || math.IsInf(v, 0):
			txt := l.Note
			if txt == "" {
				txt = "n/a"
			}
			rot := note
			rot.Rotation = math.Pi / 2
			rot.XAlign = draw.XLeft
			rot.YAlign = draw.YCenter
			c.FillText(rot, vg.Point{X: x, Y: trY(base) + 4}, txt)
			continue
		}
		y0, y1 := trY(base), trY(v)
		if !drawable(&p.Y, v) {
			continue
		}
		fillRect(c, x-halfW, y0, x+halfW, y1, b.barColor(l))
		if l.Layer == b.d.FirstDiverging {
			b.label(c, x, y0, y1, "first divergence: "+l.Layer)
		}
	}
}

// label writes txt vertically along the bar at x from y0 (base) to y1 (value): inside the
// bar in white when it is long enough, else beyond its end in red.
func (b *bars) label(c draw.Canvas, x, y0, y1 vg.Length, txt string) {
	lab := textStyle(8.5, true)
	lab.Rotation = math.Pi / 2
	lab.YAlign = draw.YCenter
	w := lab.Width(txt)
	lo, hi := min(y0, y1), max(y0, y1)
	lo, hi = max(lo, c.Min.Y), min(hi, c.Max.Y)
	switch {
	case hi-lo >= w+8:
		lab.Color = white
		if y1 >= y0 { // bar grows upwards: text from its top down
			lab.XAlign = draw.XRight
			c.FillText(lab, vg.Point{X: x, Y: hi - 4}, txt)
		} else {
			lab.XAlign = draw.XLeft
			c.FillText(lab, vg.Point{X: x, Y: lo + 4}, txt)
		}
	case y1 >= y0:
		lab.Color = red
		lab.XAlign = draw.XLeft
		c.FillText(lab, vg.Point{X: x, Y: hi + 3}, txt)
	default:
		lab.Color = red
		lab.XAlign = draw.XRight
		c.FillText(lab, vg.Point{X: x, Y: lo - 3}, txt)
	}
}

func fillRect(c draw.Canvas, x0, y0, x1, y1 vg.Length, col color.Color) {
	if y0 > y1 {
		y0, y1 = y1, y0
	}
	y0 = max(y0, c.Min.Y)
	y1 = min(y1, c.Max.Y)
	if y1 <= y0 {
		y1 = y0 + 0.5
	}
	var pa vg.Path
	pa.Move(vg.Point{X: x0, Y: y0})
	pa.Line(vg.Point{X: x1, Y: y0})
	pa.Line(vg.Point{X: x1, Y: y1})
	pa.Line(vg.Point{X: x0, Y: y1})
	pa.Close()
	c.SetColor(col)
	c.Fill(pa)
}
