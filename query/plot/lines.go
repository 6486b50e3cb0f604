package plot

import (
	"image/color"
	"math"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// maxLinePoints is the number of points above which a series is decimated for drawing.
const maxLinePoints = 2000

// line is a polyline over (x, y) that breaks at NaN/Inf y values (and at y <= 0 on a log
// axis) instead of drawing them. It draws glyphs at the points when there are few.
type line struct {
	xs, ys []float64
	style  draw.LineStyle
	glyphs bool
}

func newLine(xs, ys []float64, style draw.LineStyle) *line {
	xs, ys = decimate(xs, ys, maxLinePoints)
	return &line{xs: xs, ys: ys, style: style, glyphs: len(xs) <= 60}
}

// drawable reports whether y can be placed on axis a.
func drawable(a *gplot.Axis, y float64) bool {
	if math.IsNaN(y) || math.IsInf(y, 0) {
		return false
	}
	if _, ok := a.Scale.(gplot.LogScale); ok && y <= 0 {
		return false
	}
	return true
}

// Plot implements gplot.Plotter.
func (l *line) Plot(c draw.Canvas, p *gplot.Plot) {
	trX, trY := p.Transforms(&c)
	var segs [][]vg.Point
	var cur []vg.Point
	for i, x := range l.xs {
		y := l.ys[i]
		if !drawable(&p.Y, y) || math.IsNaN(x) || math.IsInf(x, 0) {
			if len(cur) > 0 {
				segs = append(segs, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, vg.Point{X: trX(x), Y: trY(y)})
	}
	if len(cur) > 0 {
		segs = append(segs, cur)
	}
	for _, s := range segs {
		if len(s) > 1 {
			c.StrokeLines(l.style, c.ClipLinesXY(s)...)
		}
		if l.glyphs || len(s) == 1 {
			g := draw.GlyphStyle{Color: l.style.Color, Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
			for _, pt := range s {
				if c.Contains(pt) {
					c.DrawGlyph(g, pt)
				}
			}
		}
	}
}

// Thumbnail implements gplot.Thumbnailer for the legend.
func (l *line) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(l.style, c.Min.X, y, c.Max.X, y)
}

// decimate reduces a series to at most about max points by keeping, for every group of
// consecutive points, the first and the extreme ones in order. NaN points are kept as gaps.
func decimate(xs, ys []float64, limit int) ([]float64, []float64) {
	if len(xs) <= limit || limit < 4 {
		return xs, ys
	}
	groups := limit / 2
	step := (len(xs) + groups - 1) / groups
	ox := make([]float64, 0, 2*groups+2)
	oy := make([]float64, 0, 2*groups+2)
	for g := 0; g < len(xs); g += step {
		end := min(g+step, len(xs))
		lo, hi := -1, -1
		gap := false
		for i := g; i < end; i++ {
			y := ys[i]
			if math.IsNaN(y) || math.IsInf(y, 0) {
				gap = true
				continue
			}
			if lo < 0 || y < ys[lo] {
				lo = i
			}
			if hi < 0 || y > ys[hi] {
				hi = i
			}
		}
		if lo < 0 {
			ox, oy = append(ox, xs[g]), append(oy, math.NaN())
			continue
		}
		a, b := min(lo, hi), max(lo, hi)
		ox, oy = append(ox, xs[a]), append(oy, ys[a])
		if b != a {
			ox, oy = append(ox, xs[b]), append(oy, ys[b])
		}
		if gap {
			ox, oy = append(ox, xs[end-1]), append(oy, math.NaN())
		}
	}
	return ox, oy
}

// hline is a horizontal reference line across the plot with a label at its right end.
type hline struct {
	y     float64
	label string
	style draw.LineStyle
}

func (h *hline) Plot(c draw.Canvas, p *gplot.Plot) {
	if !drawable(&p.Y, h.y) {
		return
	}
	_, trY := p.Transforms(&c)
	y := trY(h.y)
	if !c.ContainsY(y) {
		return
	}
	c.StrokeLine2(h.style, c.Min.X, y, c.Max.X, y)
	if h.label != "" {
		sty := textStyle(8, false)
		sty.Color = h.style.Color
		sty.XAlign = draw.XRight
		sty.YAlign = draw.YBottom
		pt := vg.Point{X: c.Max.X - 3, Y: y + 2}
		r := sty.Rectangle(h.label).Add(pt)
		fillRect(c, r.Min.X-2, r.Min.Y-1, r.Max.X+2, r.Max.Y+1, color.NRGBA{0xff, 0xff, 0xff, 0xdd})
		c.FillText(sty, pt, h.label)
	}
}

func (h *hline) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(h.style, c.Min.X, y, c.Max.X, y)
}
