package plot

import (
	"image/color"
	"math"
	"strconv"

	xfont "golang.org/x/image/font"
	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var (
	white = color.White
	black = color.Black
	grey  = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff}
	light = color.RGBA{R: 0xe4, G: 0xe4, B: 0xe4, A: 0xff}
	red   = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	amber = color.RGBA{R: 0xff, G: 0x9f, B: 0x1c, A: 0xff}
	blue  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
)

// seriesColors is a qualitative palette (Tableau 10) for overlaid series.
var seriesColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
	color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	color.RGBA{R: 0xbc, G: 0xbd, B: 0x22, A: 0xff},
	color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
}

// seriesDashes varies the dash pattern once the colours run out.
var seriesDashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}}

func seriesStyle(i int) draw.LineStyle {
	return draw.LineStyle{
		Color:  seriesColors[i%len(seriesColors)],
		Width:  vg.Points(1.3),
		Dashes: seriesDashes[(i/len(seriesColors))%len(seriesDashes)],
	}
}

func textStyle(size float64, bold bool) text.Style {
	f := font.Font{Typeface: "Liberation", Variant: "Sans"}
	if bold {
		f.Weight = xfont.WeightBold
	}
	return text.Style{
		Color:   black,
		Font:    font.From(f, vg.Length(size)),
		Handler: gplot.DefaultTextHandler,
	}
}

// newPlot returns a plot with the house style: sans-serif text, a light grid.
func newPlot(title, xLabel, yLabel string) *gplot.Plot {
	p := gplot.New()
	setFont := func(s *text.Style, size float64, bold bool) {
		t := textStyle(size, bold)
		s.Font = t.Font
	}
	p.Title.Text = title
	setFont(&p.Title.TextStyle, 11.5, true)
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	for _, a := range []*gplot.Axis{&p.X, &p.Y} {
		setFont(&a.Label.TextStyle, 10, false)
		setFont(&a.Tick.Label, 8.5, false)
		a.Tick.Length = vg.Points(4)
		a.Tick.Marker = niceTicks{}
	}
	p.X.Tick.Marker = niceTicks{Integer: true}
	setFont(&p.Legend.TextStyle, 9.5, false)
	p.Legend.Top = true
	p.Legend.ThumbnailWidth = vg.Points(18)
	return p
}

// scaleKind is the y scale chosen for a set of values.
type scaleKind int

const (
	scaleLinear scaleKind = iota
	scaleLog              // all values > 0, spanning >= 2 decades
	scaleLog1p            // all values >= 0, some 0, the positive ones large or spanning decades
)

func (k scaleKind) suffix() string {
	switch k {
	case scaleLog:
		return ", log"
	case scaleLog1p:
		return ", log(1+y)"
	}
	return ""
}

// chooseScale decides the scale for vals (non-finite values ignored).
func chooseScale(vals []float64) scaleKind {
	minPos, maxV, zeros, n := math.Inf(1), math.Inf(-1), 0, 0
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if v < 0 {
			return scaleLinear
		}
		n++
		// Below 1e-30 is zero for this purpose: a quantile read from the histogram's
		// zero bucket is that bucket's subnormal midpoint (~5e-41), not 0.
		if v < 1e-30 {
			zeros++
			continue
		}
		minPos = math.Min(minPos, v)
		maxV = math.Max(maxV, v)
	}
	if n == 0 || zeros == n {
		return scaleLinear
	}
	if zeros == 0 {
		if maxV/minPos >= 100 {
			return scaleLog
		}
		return scaleLinear
	}
	// Some zeros: worth a log(1+y) scale when the non-zero values reach 100 or span decades
	// above 1 (NaN counts: 0 most batches, thousands in a few).
	if maxV >= 100 && maxV/math.Max(minPos, 1) >= 10 {
		return scaleLog1p
	}
	return scaleLinear
}

// applyScale sets the y axis scale and ticks of p for kind over [lo, hi].
func applyScale(a *gplot.Axis, kind scaleKind) {
	switch kind {
	case scaleLog:
		a.Scale = gplot.LogScale{}
		a.Tick.Marker = logTicks{}
	case scaleLog1p:
		a.Scale = log1pScale{}
		a.Tick.Marker = log1pTicks{}
	}
}

// log1pScale maps y to log(1+y); defined for y > -1.
type log1pScale struct{}

func (log1pScale) Normalize(min, max, x float64) float64 {
	lo, hi := math.Log1p(math.Max(min, 0)), math.Log1p(math.Max(max, 0))
	if hi == lo {
		return 0.5
	}
	return (math.Log1p(math.Max(x, 0)) - lo) / (hi - lo)
}

// log1pTicks marks 0 and the powers of ten.
type log1pTicks struct{}

func (log1pTicks) Ticks(min, max float64) []gplot.Tick {
	ticks := []gplot.Tick{{Value: 0, Label: "0"}}
	for p := 1.0; p <= max*1.0001 && p < 1e300; p *= 10 {
		ticks = append(ticks, gplot.Tick{Value: p, Label: formatTick(p)})
		for i := 2.0; i < 10 && p*i <= max; i++ {
			ticks = append(ticks, gplot.Tick{Value: p * i})
		}
	}
	return ticks
}

// logTicks marks powers of ten (labelled) and their multiples (minor); it never
// panics on a degenerate range.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []gplot.Tick {
	if !(min > 0) || !(max > 0) || math.IsInf(max, 0) {
		return nil
	}
	var ticks []gplot.Tick
	lo, hi := math.Floor(math.Log10(min)), math.Ceil(math.Log10(max))
	every := math.Max(1, math.Ceil((hi-lo)/8)) // at most ~8 labelled decades
	for e := lo; e <= hi; e++ {
		p := math.Pow(10, e)
		if p >= min*0.9999 && p <= max*1.0001 {
			if math.Mod(e, every) == 0 {
				ticks = append(ticks, gplot.Tick{Value: p, Label: formatTick(p)})
			} else {
				ticks = append(ticks, gplot.Tick{Value: p})
			}
		}
		if every > 1 {
			continue
		}
		for i := 2.0; i < 10; i++ {
			if v := p * i; v >= min && v <= max {
				ticks = append(ticks, gplot.Tick{Value: v})
			}
		}
	}
	return ticks
}

func formatTick(v float64) string {
	if v != 0 && (math.Abs(v) >= 1e5 || math.Abs(v) < 1e-3) {
		return strconv.FormatFloat(v, 'e', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// finiteRange returns the min and max of the finite values of vals (restricted to > 0 when
// positive is set); ok is false when there is none.
func finiteRange(vals []float64, positive bool) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) || (positive && v <= 0) {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
		ok = true
	}
	return lo, hi, ok
}

// setRange sets the axis range to [lo, hi] widened a little (multiplicatively on a log
// scale) so that lines do not run along the frame.
func setRange(a *gplot.Axis, lo, hi float64, kind scaleKind) {
	switch kind {
	case scaleLog:
		a.Min, a.Max = lo/1.3, hi*1.3
	case scaleLog1p:
		a.Min, a.Max = 0, hi*1.3
	default:
		if lo == hi {
			d := math.Max(math.Abs(lo)*0.1, 1e-6)
			lo, hi = lo-d, hi+d
		}
		pad := (hi - lo) * 0.05
		a.Min, a.Max = lo-pad, hi+pad
	}
}

// newGrid returns light major grid lines.
func newGrid() *plotter.Grid {
	g := plotter.NewGrid()
	g.Vertical.Color = light
	g.Horizontal.Color = light
	g.Vertical.Width = vg.Points(0.5)
	g.Horizontal.Width = vg.Points(0.5)
	return g
}

// niceTicks labels about six round values (1, 2, 2.5 or 5 times a power of ten) with the
// digits their spacing needs, and puts a minor tick between them. Integer restricts the
// spacing to whole numbers (batch indices).
type niceTicks struct{ Integer bool }

func (t niceTicks) Ticks(min, max float64) []gplot.Tick {
	if !(max > min) || math.IsInf(max-min, 0) {
		return []gplot.Tick{{Value: min, Label: formatTick(min)}}
	}
	raw := (max - min) / 6
	e := math.Floor(math.Log10(raw))
	p := math.Pow(10, e)
	step := 10 * p
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	if t.Integer && step < 1 {
		step = 1
	}
	dec := 0
	if step < 1 {
		dec = int(math.Ceil(-math.Log10(step) - 1e-9))
		if math.Abs(step/math.Pow(10, -float64(dec))-2.5) < 1e-6 || math.Abs(step*math.Pow(10, float64(dec))-25) < 1e-6 {
			dec++
		}
	}
	var ticks []gplot.Tick
	first := math.Ceil(min/step) * step
	for i := 0; i < 100; i++ {
		v := first + float64(i)*step
		if v > max+step*1e-9 {
			break
		}
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		label := strconv.FormatFloat(v, 'f', dec, 64)
		if math.Abs(v) >= 1e6 || (v != 0 && step < 1e-4) {
			label = strconv.FormatFloat(v, 'g', 4, 64)
		}
		ticks = append(ticks, gplot.Tick{Value: v, Label: label})
		if mv := v + step/2; mv <= max && (!t.Integer || step >= 2) {
			ticks = append(ticks, gplot.Tick{Value: mv})
		}
	}
	if mv := first - step/2; mv >= min && (!t.Integer || step >= 2) {
		ticks = append(ticks, gplot.Tick{Value: mv})
	}
	return ticks
}
