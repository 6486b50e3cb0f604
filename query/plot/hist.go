package plot

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"sort"

	"github.com/actrec/actrec/store"
	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// HistOptions tune Hist. Zero fields take their defaults.
type HistOptions struct {
	// ValueBins is the number of display bins over the layer's value range. Default: 96,
	// fewer (down to 48) for small layers, 2*sqrt(elements per column), so that a column
	// is not mostly empty bins.
	ValueBins int
	// MaxColumns is the maximum number of heat map columns; with more batches, neighbouring
	// batches are merged into one column. Default 160.
	MaxColumns int
}

func (o HistOptions) withDefaults() HistOptions {
	if o.MaxColumns <= 0 {
		o.MaxColumns = 160
	}
	o.ValueBins = min(o.ValueBins, 1024)
	o.MaxColumns = min(o.MaxColumns, 4096)
	return o
}

// defaultValueBins is 2*sqrt(elements per column) clamped to [48, 96].
func defaultValueBins(total uint64, columns int) int {
	per := float64(total) / float64(max(columns, 1))
	return int(math.Max(48, math.Min(96, 2*math.Sqrt(per))))
}

// ErrNoHistogram is returned (wrapped) by Hist when the rows hold no histogram counts.
var ErrNoHistogram = errors.New("no histogram values recorded")

// bins are evenly spaced display bins over [lo, hi].
type bins struct {
	lo, width float64
	n         int
}

func newBins(lo, hi float64, n int) bins {
	if !(hi-lo > 1e-30*math.Max(1, math.Abs(lo))) {
		d := math.Max(math.Abs(lo)*0.05, 0.5)
		lo, hi = lo-d, hi+d
	}
	return bins{lo: lo, width: (hi - lo) / float64(n), n: n}
}

func (b bins) edge(i int) float64 { return b.lo + float64(i)*b.width }

func (b bins) index(v float64) int {
	i := int(math.Floor((v - b.lo) / b.width))
	return max(0, min(b.n-1, i))
}

// add spreads the counts of h over the display bins of out (len b.n), each bucket's count
// split in proportion to the overlap of the bucket with the bins.
func (b bins) add(out []float64, h store.Histogram) {
	for k, key := range h.Keys {
		c := float64(h.Counts[k])
		blo, bhi := store.KeyRange(key)
		i0, i1 := b.index(blo), b.index(bhi)
		if i0 == i1 || !(bhi > blo) {
			out[i0] += c
			continue
		}
		for i := i0; i <= i1; i++ {
			lo := math.Max(blo, b.edge(i))
			hi := math.Min(bhi, b.edge(i+1))
			if i == i0 {
				lo = blo
			}
			if i == i1 {
				hi = bhi
			}
			if hi > lo {
				out[i] += c * (hi - lo) / (bhi - blo)
			}
		}
	}
}

// HistData is the regrouped histogram Hist draws, exposed for tests and other renderers.
type HistData struct {
	Bins       int         // value bins
	Lo, Hi     float64     // value range
	BatchLo    int64       // first batch of column 0
	BatchWidth float64     // batches per column
	Columns    [][]float64 // per column: count per value bin (nil for a column without rows)
	Merged     []float64   // whole-run count per value bin
	Total      uint64      // finite elements in all histograms
	NaN, Inf   int64
	Batches    int // stats rows
	Hist       store.Histogram
}

// RegroupHist merges the histograms of rows into display bins; see HistOptions.
func RegroupHist(rows []store.StatsRow, opts HistOptions) (*HistData, error) {
	opts = opts.withDefaults()
	if len(rows) == 0 {
		return nil, ErrNoStats
	}
	rows = append([]store.StatsRow(nil), rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Batch < rows[j].Batch })
	d := &HistData{Batches: len(rows)}
	// Merge into a dense array indexed by key: O(keys of a row) per row, whatever the
	// number of rows (Histogram.Merge would cost O(keys of the merged histogram) per row).
	dense := make([]uint64, 1<<16)
	for i := range rows {
		h := rows[i].Hist
		if len(h.Keys) != len(h.Counts) {
			return nil, fmt.Errorf("batch %d: histogram has %d keys but %d counts", rows[i].Batch, len(h.Keys), len(h.Counts))
		}
		for k, key := range h.Keys {
			dense[key] += h.Counts[k]
		}
		d.NaN += rows[i].NaN
		d.Inf += rows[i].Inf
	}
	d.Hist = denseHistogram(dense)
	d.Total = d.Hist.Total()
	if d.Total == 0 {
		var count int64
		for i := range rows {
			count += rows[i].Count
		}
		if count > 0 && d.NaN+d.Inf >= count {
			return nil, fmt.Errorf("%w: all %d elements of %d batches are NaN (%d) or Inf (%d)", ErrNoHistogram, count, len(rows), d.NaN, d.Inf)
		}
		return nil, fmt.Errorf("%w in %d batches (was the recorder's histogram option off?)", ErrNoHistogram, len(rows))
	}
	first, last := rows[0].Batch, rows[len(rows)-1].Batch
	span := float64(last-first) + 1
	ncols := int(math.Min(span, float64(opts.MaxColumns)))
	if opts.ValueBins <= 0 {
		opts.ValueBins = defaultValueBins(d.Total, min(ncols, len(rows)))
	}
	d.Bins = opts.ValueBins
	lo, _ := store.KeyRange(d.Hist.Keys[0])
	_, hi := store.KeyRange(d.Hist.Keys[len(d.Hist.Keys)-1])
	b := newBins(lo, hi, opts.ValueBins)
	d.Lo, d.Hi = b.lo, b.edge(b.n)

	d.BatchLo = first
	d.BatchWidth = span / float64(ncols)
	d.Columns = make([][]float64, ncols)
	d.Merged = make([]float64, b.n)
	for i := range rows {
		c := int(float64(rows[i].Batch-first) / d.BatchWidth)
		c = max(0, min(ncols-1, c))
		if d.Columns[c] == nil {
			d.Columns[c] = make([]float64, b.n)
		}
		b.add(d.Columns[c], rows[i].Hist)
	}
	for _, col := range d.Columns {
		for i, v := range col {
			d.Merged[i] += v
		}
	}
	return d, nil
}

// denseHistogram builds the sparse Histogram of counts indexed by key, in value order:
// negative buckets from the most negative (key 0xff7f) to -0 (0x8000), then +0 (0x0000)
// to the largest (0x7f7f). NaN/Inf keys are dropped.
func denseHistogram(dense []uint64) store.Histogram {
	var h store.Histogram
	add := func(k uint16) {
		if c := dense[k]; c != 0 && k&0x7f80 != 0x7f80 {
			h.Keys = append(h.Keys, k)
			h.Counts = append(h.Counts, c)
		}
	}
	for k := 0xffff; k >= 0x8000; k-- {
		add(uint16(k))
	}
	for k := 0; k < 0x8000; k++ {
		add(uint16(k))
	}
	return h
}

// heatGrid is the plotter.GridXYZ of the heat map: log10 of the fraction of a column's
// elements in each value bin; NaN where the count is zero or the column empty.
type heatGrid struct {
	z          [][]float64
	x0, dx     float64
	y0, dy     float64
	zmin, zmax float64
}

func (g *heatGrid) Dims() (c, r int)   { return len(g.z), len(g.z[0]) }
func (g *heatGrid) Z(c, r int) float64 { return g.z[c][r] }
func (g *heatGrid) X(c int) float64    { return g.x0 + (float64(c)+0.5)*g.dx }
func (g *heatGrid) Y(r int) float64    { return g.y0 + (float64(r)+0.5)*g.dy }
func (g *heatGrid) Min() float64       { return g.zmin }
func (g *heatGrid) Max() float64       { return g.zmax }

func newHeatGrid(d *HistData) *heatGrid {
	g := &heatGrid{
		x0: float64(d.BatchLo) - 0.5, dx: d.BatchWidth,
		y0: d.Lo, dy: (d.Hi - d.Lo) / float64(d.Bins),
		zmin: math.Inf(1), zmax: math.Inf(-1),
	}
	g.z = make([][]float64, len(d.Columns))
	for c, col := range d.Columns {
		z := make([]float64, d.Bins)
		var tot float64
		for _, v := range col {
			tot += v
		}
		for r := range z {
			z[r] = math.NaN()
			if col == nil || tot <= 0 || col[r] <= 0 {
				continue
			}
			// Counts below half an element are the thin tails of a split bucket.
			if col[r] < 0.5 {
				continue
			}
			z[r] = math.Log10(col[r] / tot)
			g.zmin = math.Min(g.zmin, z[r])
			g.zmax = math.Max(g.zmax, z[r])
		}
		g.z[c] = z
	}
	if math.IsInf(g.zmin, 0) {
		g.zmin, g.zmax = -1, 0
	}
	if g.zmin == g.zmax {
		g.zmin--
	}
	return g
}

// viridis returns a perceptually uniform colour map (dark purple = rare, yellow = common).
func viridis() palette.ColorMap {
	cm, err := moreland.NewLuminance([]color.Color{
		color.NRGBA{0x44, 0x01, 0x54, 0xff},
		color.NRGBA{0x3b, 0x52, 0x8b, 0xff},
		color.NRGBA{0x21, 0x91, 0x8c, 0xff},
		color.NRGBA{0x5e, 0xc9, 0x62, 0xff},
		color.NRGBA{0xfd, 0xe7, 0x25, 0xff},
	})
	if err != nil {
		return moreland.Kindlmann()
	}
	return cm
}

// Hist draws the activation histogram of one layer over batches as a heat map, and below
// it the whole-run merged histogram, in one figure.
func Hist(s Series, opts HistOptions) (*Figure, error) {
	d, err := RegroupHist(s.Rows, opts)
	if err != nil {
		return nil, fmt.Errorf("plot: run %q layer %q: %w", s.Run, s.Layer, err)
	}
	heat, bar := histHeat(s, d)
	merged := histMerged(s, d)
	f := &Figure{Width: 8 * vg.Inch, Height: 8.5 * vg.Inch}
	f.add(heat, 0, 0.44, 0.88, 1)
	f.add(bar, 0.88, 0.44, 1, 1)
	f.add(merged, 0, 0, 0.88, 0.44)
	return f, nil
}

func histHeat(s Series, d *HistData) (heat, bar *gplot.Plot) {
	g := newHeatGrid(d)
	cm := viridis()
	cm.SetMin(g.zmin)
	cm.SetMax(g.zmax)
	hm := plotter.NewHeatMap(g, cm.Palette(256))
	hm.Rasterized = true
	hm.NaN = color.Transparent

	xLabel := "batch [index]"
	if d.BatchWidth > 1.0001 {
		xLabel = fmt.Sprintf("batch [index; %.3g batches per column, histograms merged]", d.BatchWidth)
	}
	heat = newPlot("activation histogram per batch — "+s.Label(), xLabel, "activation value [value]")
	heat.Add(hm)
	heat.X.Min = g.x0
	heat.X.Max = g.x0 + float64(len(g.z))*g.dx
	heat.Y.Min, heat.Y.Max = d.Lo, d.Hi

	bar = newPlot(" ", " ", "log10(fraction of the batch's elements)")
	bar.Add(&plotter.ColorBar{ColorMap: cm, Vertical: true})
	bar.X.Tick.Marker = gplot.ConstantTicks{{Value: 0.5, Label: " "}}
	bar.X.LineStyle.Width = 0
	bar.X.Tick.LineStyle.Width = 0
	bar.X.Min, bar.X.Max = 0, 1
	bar.Y.Min, bar.Y.Max = g.zmin, g.zmax
	bar.BackgroundColor = color.Transparent
	return heat, bar
}

func histMerged(s Series, d *HistData) *gplot.Plot {
	kind := chooseScale(d.Merged)
	if kind == scaleLog {
		kind = scaleLog1p // empty bins must stay drawable
	}
	title := fmt.Sprintf("whole-run histogram — %s\n%d finite elements in %d batches", s.Label(), d.Total, d.Batches)
	if d.NaN > 0 || d.Inf > 0 {
		title += fmt.Sprintf("; %d NaN and %d Inf not shown", d.NaN, d.Inf)
	}
	p := newPlot(title, "activation value [value]", "elements per bin [count"+kind.suffix()+"]")
	applyScale(&p.Y, kind)
	xs := make([]float64, 0, 2*d.Bins)
	ys := make([]float64, 0, 2*d.Bins)
	w := (d.Hi - d.Lo) / float64(d.Bins)
	for i, v := range d.Merged {
		xs = append(xs, d.Lo+float64(i)*w, d.Lo+float64(i+1)*w)
		ys = append(ys, v, v)
	}
	_, hi, _ := finiteRange(ys, false)
	p.Add(newGrid())
	p.Add(&fill{xs: xs, ys: ys, color: color.NRGBA{0x1f, 0x77, 0xb4, 0x40}})
	l := &line{xs: xs, ys: ys, style: draw.LineStyle{Color: blue, Width: vg.Points(1.2)}}
	p.Add(l)
	p.X.Min, p.X.Max = d.Lo, d.Hi
	setRange(&p.Y, 0, hi, kind)
	if kind == scaleLinear {
		p.Y.Min = 0
	}
	for i, q := range []float64{0.01, 0.5, 0.99} {
		v := d.Hist.Quantile(q)
		p.Add(&vline{x: v, row: i, label: []string{"p01", "p50", "p99"}[i], style: draw.LineStyle{
			Color: red, Width: vg.Points(0.8), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}})
	}
	return p
}

// fill shades the area under a step line down to the axis minimum.
type fill struct {
	xs, ys []float64
	color  color.Color
}

func (f *fill) Plot(c draw.Canvas, p *gplot.Plot) {
	trX, trY := p.Transforms(&c)
	if len(f.xs) == 0 {
		return
	}
	base := trY(p.Y.Min)
	pts := []vg.Point{{X: trX(f.xs[0]), Y: base}}
	for i, x := range f.xs {
		pts = append(pts, vg.Point{X: trX(x), Y: trY(math.Max(f.ys[i], p.Y.Min))})
	}
	pts = append(pts, vg.Point{X: trX(f.xs[len(f.xs)-1]), Y: base})
	c.FillPolygon(f.color, c.ClipPolygonXY(pts))
}

// vline is a vertical marker with a label at its top.
type vline struct {
	x     float64
	row   int // label row from the top, so that close markers do not overprint
	label string
	style draw.LineStyle
}

func (v *vline) Plot(c draw.Canvas, p *gplot.Plot) {
	if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
		return
	}
	trX, _ := p.Transforms(&c)
	x := trX(v.x)
	if !c.ContainsX(x) {
		return
	}
	c.StrokeLine2(v.style, x, c.Min.Y, x, c.Max.Y)
	sty := textStyle(8, false)
	sty.Color = v.style.Color
	sty.XAlign = draw.XLeft
	sty.YAlign = draw.YTop
	c.FillText(sty, vg.Point{X: x + 2, Y: c.Max.Y - 2 - vg.Length(v.row)*vg.Points(10)}, v.label)
}
