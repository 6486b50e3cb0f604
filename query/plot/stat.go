package plot

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/actrec/actrec/store"
	"gonum.org/v1/plot/vg"
)

// Series is one layer of one run: its stats rows in batch order (as store.Store.Stats
// returns them).
type Series struct {
	Run, Layer string
	Rows       []store.StatsRow
}

// Label is the legend entry of the series: "run/layer".
func (s Series) Label() string { return s.Run + "/" + s.Layer }

// StatDef describes a statistic that Stat can draw.
type StatDef struct {
	Name  string // as accepted by ParseStat
	Title string // for titles: "mean", "99th percentile", ...
	Unit  string // for axis labels
	value func(r *store.StatsRow) float64
}

// Value returns the statistic of one stats row (NaN when the row does not define it).
func (d StatDef) Value(r *store.StatsRow) float64 { return d.value(r) }

const (
	unitValue    = "activation value"
	unitElements = "elements"
	unitPercent  = "% of finite elements"
)

var statDefs = []StatDef{
	{"mean", "mean", unitValue, func(r *store.StatsRow) float64 { return r.Mean }},
	{"std", "standard deviation", unitValue, func(r *store.StatsRow) float64 { return r.Std }},
	{"min", "minimum", unitValue, func(r *store.StatsRow) float64 { return r.Min }},
	{"max", "maximum", unitValue, func(r *store.StatsRow) float64 { return r.Max }},
	{"l2", "L2 norm", unitValue, func(r *store.StatsRow) float64 { return r.L2 }},
	{"zeros", "zero fraction", unitPercent, func(r *store.StatsRow) float64 { return 100 * r.ZeroFrac }},
	{"nan", "NaN count", unitElements, func(r *store.StatsRow) float64 { return float64(r.NaN) }},
	{"inf", "Inf count", unitElements, func(r *store.StatsRow) float64 { return float64(r.Inf) }},
	{"count", "element count", unitElements, func(r *store.StatsRow) float64 { return float64(r.Count) }},
}

// statAliases maps accepted alternative names to canonical ones.
var statAliases = map[string]string{"zero_frac": "zeros", "zerofrac": "zeros", "median": "p50", "mu": "mean", "sigma": "std"}

// StatNames lists the names ParseStat accepts, canonical names first
// ("p01".."p99" stands for any two-digit percentile pNN).
func StatNames() []string {
	var names []string
	for _, d := range statDefs {
		names = append(names, d.Name)
	}
	names = append(names, "zero_frac", "median")
	for _, q := range store.Quantiles {
		names = append(names, fmt.Sprintf("p%02.0f", q*100))
	}
	return names
}

// ErrUnknownStat is returned (wrapped) by ParseStat for a name it does not know.
var ErrUnknownStat = errors.New("unknown stat")

// ErrMixedUnits is returned (wrapped) by Stats for statistics of different
// units (a count and a value, say), which one axis cannot show.
var ErrMixedUnits = errors.New("different units")

// ParseStat returns the definition of the statistic called name: one of StatNames, or
// pNN for any percentile 00 <= NN <= 100 (the seven of store.Quantiles are read from
// the rows, others are computed from the rows' histograms).
func ParseStat(name string) (StatDef, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := statAliases[n]; ok {
		n = a
	}
	for _, d := range statDefs {
		if d.Name == n {
			return d, nil
		}
	}
	if strings.HasPrefix(n, "p") && len(n) >= 2 && len(n) <= 4 {
		if v, err := strconv.Atoi(n[1:]); err == nil && v >= 0 && v <= 100 {
			return percentileDef(v), nil
		}
	}
	return StatDef{}, fmt.Errorf("%w %q; valid stats: %s", ErrUnknownStat, name, strings.Join(StatNames(), ", "))
}

func percentileDef(pct int) StatDef {
	q := float64(pct) / 100
	d := StatDef{Name: fmt.Sprintf("p%02d", pct), Title: ordinal(pct) + " percentile", Unit: unitValue}
	for i, sq := range store.Quantiles {
		if math.Abs(sq-q) < 1e-9 {
			d.value = func(r *store.StatsRow) float64 { return r.Percentiles[i] }
			return d
		}
	}
	d.value = func(r *store.StatsRow) float64 { return r.Hist.Quantile(q) }
	return d
}

func ordinal(n int) string {
	suf := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suf = "st"
	case n%10 == 2:
		suf = "nd"
	case n%10 == 3:
		suf = "rd"
	}
	return strconv.Itoa(n) + suf
}

// ErrNoStats is returned (wrapped) when a series has no stats rows.
var ErrNoStats = errors.New("no stats recorded")

// Stat draws the statistic named stat over batches, one line per series, overlaid.
func Stat(stat string, series ...Series) (*Figure, error) {
	return Stats([]string{stat}, series...)
}

// Stats draws several statistics of the same unit (e.g. p01, p50, p99, mean) over batches,
// one line per series and statistic; legend entries are "run/layer" (followed by the
// statistic when there are several).
func Stats(stats []string, series ...Series) (*Figure, error) {
	if len(stats) == 0 {
		return nil, errors.New("plot: no stat given")
	}
	if len(series) == 0 {
		return nil, errors.New("plot: no series given")
	}
	defs := make([]StatDef, len(stats))
	for i, s := range stats {
		d, err := ParseStat(s)
		if err != nil {
			return nil, err
		}
		if i > 0 && d.Unit != defs[0].Unit {
			return nil, fmt.Errorf("plot: %w: stats %s (%s) and %s (%s); draw them separately",
				ErrMixedUnits, defs[0].Name, defs[0].Unit, d.Name, d.Unit)
		}
		defs[i] = d
	}
	for _, s := range series {
		if len(s.Rows) == 0 {
			return nil, fmt.Errorf("plot: run %q layer %q: %w", s.Run, s.Layer, ErrNoStats)
		}
	}

	type data struct {
		label  string
		xs, ys []float64
	}
	var all []data
	var allY, allX []float64
	for _, s := range series {
		rows := s.Rows
		if !sort.SliceIsSorted(rows, func(i, j int) bool { return rows[i].Batch < rows[j].Batch }) {
			rows = append([]store.StatsRow(nil), rows...)
			sort.SliceStable(rows, func(i, j int) bool { return rows[i].Batch < rows[j].Batch })
		}
		for _, d := range defs {
			xs := make([]float64, len(rows))
			ys := make([]float64, len(rows))
			for i := range rows {
				xs[i] = float64(rows[i].Batch)
				ys[i] = d.value(&rows[i])
			}
			label := s.Label()
			if len(defs) > 1 {
				label += " " + d.Name
			}
			all = append(all, data{label, xs, ys})
			allY = append(allY, ys...)
			allX = append(allX, xs...)
		}
	}

	var names []string
	for _, d := range defs {
		names = append(names, d.Title)
	}
	what := strings.Join(names, ", ")
	title := what + " per batch"
	if len(series) == 1 {
		title += " — " + series[0].Label()
	} else {
		title += fmt.Sprintf(" — %d series", len(series))
	}
	kind := chooseScale(allY)
	yLabel := what
	if len(defs) > 1 {
		yLabel = "value"
	}
	yLabel += " [" + defs[0].Unit + kind.suffix() + "]"
	p := newPlot(title, "batch [index]", yLabel)
	applyScale(&p.Y, kind)
	ylo, yhi, ok := finiteRange(allY, kind == scaleLog)
	if !ok {
		return nil, fmt.Errorf("plot: %s: no finite value in any batch", what)
	}
	setRange(&p.Y, ylo, yhi, kind)
	xlo, xhi, _ := finiteRange(allX, false)
	if xlo == xhi {
		xlo, xhi = xlo-1, xhi+1
	}
	p.X.Min, p.X.Max = xlo, xhi
	p.Add(newGrid())
	for i, d := range all {
		l := newLine(d.xs, d.ys, seriesStyle(i))
		p.Add(l)
		if len(all) > 1 {
			p.Legend.Add(d.label, l)
		}
	}
	f := &Figure{Width: 8 * vg.Inch, Height: 4.5 * vg.Inch}
	if len(all) == 1 {
		f.add(p, 0, 0, 1, 1)
		return f, nil
	}
	longest := 0
	for _, d := range all {
		longest = max(longest, len(d.label))
	}
	legendW := vg.Points(30) + vg.Length(min(longest, 60))*vg.Points(5)
	f.Width += legendW
	if len(all) > 20 {
		f.Height += vg.Length(len(all)-20) * vg.Points(12)
	}
	f.addWithLegend(p, legendW)
	return f, nil
}
