package plot

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Format is an output image format.
type Format int

const (
	// PNG is a raster image (rendered at DPI dots per inch).
	PNG Format = iota
	// SVG is a vector image; heat maps inside it are embedded PNG data URIs.
	SVG
)

func (f Format) String() string {
	switch f {
	case PNG:
		return "png"
	case SVG:
		return "svg"
	}
	return "unknown"
}

// FormatFromPath returns the format named by the extension of path (.png or .svg, any case).
func FormatFromPath(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		return PNG, nil
	case ".svg":
		return SVG, nil
	}
	return 0, fmt.Errorf("plot: output %q: unknown extension %q, want .png or .svg", path, filepath.Ext(path))
}

// DPI is the resolution of PNG output (lowered for figures above 40 megapixels).
const DPI = 110

const maxPNGPixels = 40e6

// panel is a plot placed in a figure at a rectangle given in fractions of the figure
// (0,0 = bottom left).
type panel struct {
	p              *gplot.Plot
	legend         *gplot.Legend // the legend column of addWithLegend
	x0, y0, x1, y1 float64
}

// Figure is one picture: one or more charts laid out on a page of Width x Height.
// Build it with Stat, Hist or Diff; render it with Render. A Figure is not safe for
// concurrent use (rendering lays out its plots in place).
type Figure struct {
	Width, Height vg.Length
	// Title is the figure's main title (the charts carry their own titles too).
	Title       string
	panels      []panel
	legendWidth vg.Length // > 0: the last panel is a legend column of this width
}

func (f *Figure) add(p *gplot.Plot, x0, y0, x1, y1 float64) {
	f.panels = append(f.panels, panel{p: p, x0: x0, y0: y0, x1: x1, y1: y1})
}

// addWithLegend makes p the whole figure except a column of width legendW at the right,
// where its legend is drawn (moved out of the plot so that it never covers data). The
// legend column keeps its width when the figure is resized.
func (f *Figure) addWithLegend(p *gplot.Plot, legendW vg.Length) {
	l := p.Legend
	l.Top, l.Left = true, true
	l.YOffs = -vg.Points(28)
	p.Legend = gplot.NewLegend()
	f.legendWidth = legendW
	f.panels = append(f.panels, panel{p: p, x0: 0, y0: 0, x1: 1, y1: 1},
		panel{legend: &l, x0: 0, y0: 0, x1: 1, y1: 1})
}

// SetSize sets the size of the figure; panels keep their relative places (a legend
// column keeps its width).
func (f *Figure) SetSize(w, h vg.Length) {
	f.Width, f.Height = w, h
}

// Plots returns the charts of the figure in drawing order (for callers that want to
// adjust styles before rendering).
func (f *Figure) Plots() []*gplot.Plot {
	var ps []*gplot.Plot
	for _, p := range f.panels {
		if p.p != nil {
			ps = append(ps, p.p)
		}
	}
	return ps
}

// Render draws the figure in format to w. A panic inside gonum plot is returned as an error.
func (f *Figure) Render(w io.Writer, format Format) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plot: rendering failed: %v", r)
		}
	}()
	switch format {
	case PNG:
		// A very wide figure (a diff of thousands of layers) is rendered at a lower
		// resolution rather than allocating gigabytes: at most maxPNGPixels pixels.
		dpi := DPI
		if px := float64(f.Width/vg.Inch) * float64(f.Height/vg.Inch) * DPI * DPI; px > maxPNGPixels {
			dpi = max(20, int(DPI*math.Sqrt(maxPNGPixels/px)))
		}
		c := vgimg.NewWith(vgimg.UseWH(f.Width, f.Height), vgimg.UseDPI(dpi))
		f.draw(draw.New(c))
		_, err = vgimg.PngCanvas{Canvas: c}.WriteTo(w)
		return err
	case SVG:
		c := vgsvg.New(f.Width, f.Height)
		f.draw(draw.New(c))
		var buf bytes.Buffer
		if _, err := c.WriteTo(&buf); err != nil {
			return err
		}
		_, err = w.Write(fixSVG(buf.Bytes()))
		return err
	}
	return fmt.Errorf("plot: unknown format %d", format)
}

// fixSVG corrects what vgsvg writes for embedded images: it labels PNG data as
// image/jpg and lets browsers smooth heat map cells into a blur.
func fixSVG(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("data:image/jpg;base64,"), []byte("data:image/png;base64,"))
	b = bytes.ReplaceAll(b, []byte("<image "), []byte(`<image style="image-rendering:pixelated" preserveAspectRatio="none" `))
	return b
}

func (f *Figure) draw(dc draw.Canvas) {
	dc.SetColor(white)
	dc.Fill(dc.Rectangle.Path())
	if f.Title != "" {
		sty := textStyle(13, true)
		sty.XAlign = draw.XCenter
		sty.YAlign = draw.YTop
		dc.FillText(sty, vg.Point{X: dc.Center().X, Y: dc.Max.Y - 4}, f.Title)
		dc = draw.Crop(dc, 0, 0, 0, -sty.Height(f.Title)-10)
	}
	if f.legendWidth > 0 && len(f.panels) == 2 {
		split := dc.Max.X - min(f.legendWidth, (dc.Max.X-dc.Min.X)/2)
		main, leg := dc, dc
		main.Max.X = split
		leg.Min.X = split
		drawPlot(f.panels[0].p, draw.Crop(main, 6, -6, 4, -4))
		f.panels[1].legend.Draw(draw.Crop(leg, 6, -6, 4, -4))
		return
	}
	w := dc.Max.X - dc.Min.X
	h := dc.Max.Y - dc.Min.Y
	for _, p := range f.panels {
		c := dc
		c.Rectangle = vg.Rectangle{
			Min: vg.Point{X: dc.Min.X + vg.Length(p.x0)*w, Y: dc.Min.Y + vg.Length(p.y0)*h},
			Max: vg.Point{X: dc.Min.X + vg.Length(p.x1)*w, Y: dc.Min.Y + vg.Length(p.y1)*h},
		}
		c = draw.Crop(c, 6, -6, 4, -4)
		drawPlot(p.p, c)
	}
}

// drawPlot draws p in c, drawing the y axis label itself: gonum centres the label at the
// data midpoint, which on a log axis sits near the top and makes the plot pad its top.
func drawPlot(p *gplot.Plot, c draw.Canvas) {
	label := p.Y.Label.Text
	if label == "" {
		p.Draw(c)
		return
	}
	sty := p.Y.Label.TextStyle
	sty.Rotation = math.Pi / 2
	sty.XAlign = draw.XCenter
	sty.YAlign = draw.YTop
	h := sty.Height(label)
	top := c.Max.Y
	if p.Title.Text != "" {
		top -= p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
	}
	c.FillText(sty, vg.Point{X: c.Min.X, Y: (c.Min.Y + top) / 2}, label)
	p.Y.Label.Text = ""
	defer func() { p.Y.Label.Text = label }()
	p.Draw(draw.Crop(c, h+p.Y.Label.Padding+2, 0, 0, 0))
}

// LegendWidth is the width of the figure's legend column (0 when the legend is inside
// the chart or there is none).
func (f *Figure) LegendWidth() vg.Length { return f.legendWidth }
