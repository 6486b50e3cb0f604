package plot

import (
	"bytes"
	"errors"
	"image/png"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/actrec/actrec/store"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		unit     string
	}{
		{"mean", "mean", unitValue},
		{"MEAN", "mean", unitValue},
		{"zero_frac", "zeros", unitPercent},
		{"median", "p50", unitValue},
		{"p99", "p99", unitValue},
		{"p01", "p01", unitValue},
		{"p90", "p90", unitValue},
		{"p100", "p100", unitValue},
		{"nan", "nan", unitElements},
	} {
		d, err := ParseStat(tc.in)
		if err != nil {
			t.Errorf("ParseStat(%q): %v", tc.in, err)
			continue
		}
		if d.Name != tc.want || d.Unit != tc.unit {
			t.Errorf("ParseStat(%q) = %s (%s), want %s (%s)", tc.in, d.Name, d.Unit, tc.want, tc.unit)
		}
	}
	for _, bad := range []string{"", "avg", "p", "p101", "p-1", "p1000"} {
		_, err := ParseStat(bad)
		if !errors.Is(err, ErrUnknownStat) {
			t.Errorf("ParseStat(%q) = %v, want ErrUnknownStat", bad, err)
			continue
		}
		for _, n := range []string{"mean", "zeros", "p99", "nan"} {
			if !strings.Contains(err.Error(), n) {
				t.Errorf("ParseStat(%q) error %q does not list %q", bad, err, n)
			}
		}
	}
}

func TestPercentileFromStoredOrHistogram(t *testing.T) {
	rows := synthRows(1, 1, 0, false, 0)
	p99, _ := ParseStat("p99")
	if got, want := p99.Value(&rows[0]), rows[0].Percentiles[6]; got != want {
		t.Errorf("p99 = %v, want the stored percentile %v", got, want)
	}
	p90, _ := ParseStat("p90")
	if got, want := p90.Value(&rows[0]), rows[0].Hist.Quantile(0.9); got != want {
		t.Errorf("p90 = %v, want histogram quantile %v", got, want)
	}
}

func TestChooseScale(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		vals []float64
		want scaleKind
	}{
		{"empty", nil, scaleLinear},
		{"narrow positive", []float64{1, 2, 3}, scaleLinear},
		{"decades", []float64{0.01, 1, 10}, scaleLog},
		{"negative", []float64{-1, 100, 1e6}, scaleLinear},
		{"nan counts with zeros", []float64{0, 0, 3, 5000, 0}, scaleLog1p},
		{"small counts with zeros", []float64{0, 1, 2, 0}, scaleLinear},
		{"all zeros", []float64{0, 0}, scaleLinear},
		{"ignores NaN", []float64{nan, 1, 2}, scaleLinear},
		{"ignores Inf", []float64{math.Inf(1), 1, 2}, scaleLinear},
	} {
		if got := chooseScale(tc.vals); got != tc.want {
			t.Errorf("%s: chooseScale(%v) = %v, want %v", tc.name, tc.vals, got, tc.want)
		}
	}
}

func TestDecimateKeepsExtremes(t *testing.T) {
	n := 100000
	xs := make([]float64, n)
	ys := make([]float64, n)
	for i := range xs {
		xs[i] = float64(i)
		ys[i] = math.Sin(float64(i) / 1000)
	}
	ys[54321] = 50  // a spike
	ys[77777] = -50 // a dip
	ys[10] = math.NaN()
	dx, dy := decimate(xs, ys, 2000)
	if len(dx) > 2100 || len(dx) != len(dy) {
		t.Fatalf("decimated to %d/%d points, want <= ~2000", len(dx), len(dy))
	}
	var hasSpike, hasDip, hasGap bool
	for i := range dx {
		hasSpike = hasSpike || (dx[i] == 54321 && dy[i] == 50)
		hasDip = hasDip || (dx[i] == 77777 && dy[i] == -50)
		hasGap = hasGap || math.IsNaN(dy[i])
	}
	if !hasSpike || !hasDip || !hasGap {
		t.Errorf("decimation lost spike=%v dip=%v gap=%v", !hasSpike, !hasDip, !hasGap)
	}
	for i := 1; i < len(dx); i++ {
		if dx[i] < dx[i-1] {
			t.Fatalf("decimated x not ascending at %d: %v < %v", i, dx[i], dx[i-1])
		}
	}
}

func TestRegroupHistConservesCounts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		batches     int
		maxCols     int
		wantColumns int
	}{
		{"one column per batch", 50, 160, 50},
		{"merged columns", 1000, 100, 100},
		{"single batch", 1, 160, 1},
	} {
		rows := synthRows(3, tc.batches, 0.01, true, 0)
		d, err := RegroupHist(rows, HistOptions{ValueBins: 64, MaxColumns: tc.maxCols})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(d.Columns) != tc.wantColumns {
			t.Errorf("%s: %d columns, want %d", tc.name, len(d.Columns), tc.wantColumns)
		}
		var sum float64
		for _, v := range d.Merged {
			sum += v
		}
		if math.Abs(sum-float64(d.Total)) > 1e-6*float64(d.Total) {
			t.Errorf("%s: display bins hold %v elements, histograms %d", tc.name, sum, d.Total)
		}
		if want := uint64(512 * tc.batches); d.Total != want {
			t.Errorf("%s: total %d, want %d", tc.name, d.Total, want)
		}
	}
}

func TestRegroupHistErrors(t *testing.T) {
	if _, err := RegroupHist(nil, HistOptions{}); !errors.Is(err, ErrNoStats) {
		t.Errorf("no rows: %v, want ErrNoStats", err)
	}
	rows := []store.StatsRow{{Batch: 0, Count: 10, NaN: 10}}
	if _, err := RegroupHist(rows, HistOptions{}); !errors.Is(err, ErrNoHistogram) {
		t.Errorf("all NaN: %v, want ErrNoHistogram", err)
	}
}

func TestRegroupHistSingleValue(t *testing.T) {
	// A dead ReLU: every value is 0, a single bucket of zero width.
	h := store.HistogramFromCounts(map[uint16]uint64{0: 100})
	rows := []store.StatsRow{{Batch: 3, Count: 100, Hist: h}, {Batch: 4, Count: 100, Hist: h}}
	d, err := RegroupHist(rows, HistOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !(d.Hi > d.Lo) {
		t.Errorf("degenerate value range [%v, %v]", d.Lo, d.Hi)
	}
	f, err := Hist(Series{Run: "r", Layer: "relu", Rows: rows}, HistOptions{})
	if err != nil {
		t.Fatal(err)
	}
	renderSVG(t, f)
}

func TestStatErrors(t *testing.T) {
	if _, err := Stat("avg", Series{Run: "r", Layer: "l", Rows: synthRows(1, 3, 0, false, 0)}); !errors.Is(err, ErrUnknownStat) {
		t.Errorf("unknown stat: %v", err)
	}
	if _, err := Stat("mean", Series{Run: "r", Layer: "l"}); !errors.Is(err, ErrNoStats) {
		t.Errorf("no rows: %v", err)
	}
	if _, err := Stats([]string{"mean", "nan"}, Series{Run: "r", Layer: "l", Rows: synthRows(1, 3, 0, false, 0)}); err == nil {
		t.Errorf("mixed units accepted")
	}
}

func TestStatSVG(t *testing.T) {
	a := Series{Run: "fp32", Layer: "conv1", Rows: synthRows(1, 40, 0.01, false, 0)}
	b := Series{Run: "int8", Layer: "conv1", Rows: synthRows(2, 40, 0.012, false, 0)}
	c := Series{Run: "fp32", Layer: "relu1", Rows: synthRows(3, 40, 0, true, 0)}
	f, err := Stat("p99", a, b, c)
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(t, renderSVG(t, f))
	for _, want := range []string{"99th percentile per batch — 3 series", "batch [index]",
		"99th percentile [activation value]", "fp32/conv1", "int8/conv1", "fp32/relu1"} {
		if !hasText(s, want) {
			t.Errorf("no text %q in %q", want, s.Texts)
		}
	}
	if n := seriesStrokes(s); n != 3 {
		t.Errorf("%d series colours stroked, want 3", n)
	}
	golden(t, "stat_p99_3series", s.String())
}

func TestStatNaNLogScale(t *testing.T) {
	f, err := Stat("nan", Series{Run: "r", Layer: "relu1", Rows: synthRows(3, 200, 0, true, 7)})
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(t, renderSVG(t, f))
	if !hasText(s, "NaN count [elements, log(1+y)]") {
		t.Errorf("NaN counts spanning decades are not on a log(1+y) axis: %q", s.Texts)
	}
	if seriesStrokes(s) != 1 {
		t.Errorf("want one series, strokes %v", s.Strokes)
	}
	golden(t, "stat_nan_log1p", s.String())
}

func TestHistSVG(t *testing.T) {
	f, err := Hist(Series{Run: "fp32", Layer: "relu1", Rows: synthRows(3, 300, 0.005, true, 50)}, HistOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svg := renderSVG(t, f)
	s := summarize(t, svg)
	if s.Images != 2 {
		t.Errorf("%d images, want 2 (heat map and colour bar)", s.Images)
	}
	for _, want := range []string{"activation histogram per batch — fp32/relu1", "whole-run histogram — fp32/relu1",
		"activation value [value]", "NaN and 0 Inf not shown", "p99"} {
		if !hasText(s, want) {
			t.Errorf("no text %q in %q", want, s.Texts)
		}
	}
	if !bytes.Contains(svg, []byte(`xlink:href="data:image/png;base64,`)) {
		t.Errorf("heat map is not an inline PNG data URI")
	}
	golden(t, "hist_relu", s.String())
}

func testDiff() DiffData {
	d := DiffData{RunA: "fp32", RunB: "int8", Metric: SQNR, FirstDiverging: "fc1",
		Thresholds: []Threshold{{30, "min SQNR 30 dB"}}}
	for i, n := range []string{"conv1", "relu1", "pool1", "flatten", "fc1", "relu2", "fc2"} {
		v := 45 - 2*float64(i)
		switch n {
		case "fc1":
			v = 22
		case "flatten":
			v = math.Inf(1)
		case "relu2":
			v = math.NaN()
		}
		l := DiffLayer{Layer: n, Value: v}
		if n == "relu2" {
			l.Note = "only in A"
		}
		d.Layers = append(d.Layers, l)
	}
	return d
}

func TestDiffSVG(t *testing.T) {
	f, err := Diff(testDiff())
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(t, renderSVG(t, f))
	for _, want := range []string{"SQNR per layer — fp32 vs int8; first diverging: fc1", "SQNR [dB]",
		"layer [execution order]", "first divergence: fc1", "min SQNR 30 dB", "only in A", "identical", "conv1", "fc2"} {
		if !hasText(s, want) {
			t.Errorf("no text %q in %q", want, s.Texts)
		}
	}
	golden(t, "diff_sqnr", s.String())
}

func TestDiffRelL2LogScale(t *testing.T) {
	d := testDiff()
	d.Metric = RelL2
	d.Thresholds = []Threshold{{0.01, "max 1%"}}
	for i := range d.Layers {
		d.Layers[i].Value = math.Pow(10, -float64(5-i))
	}
	d.Layers[0].Value = 0
	f, err := Diff(d)
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(t, renderSVG(t, f))
	if !hasText(s, "relative L2 error [ratio], log") {
		t.Errorf("relative L2 spanning decades not on a log axis: %q", s.Texts)
	}
}

func TestRenderPNG(t *testing.T) {
	f, err := Stat("mean", Series{Run: "r", Layer: "l", Rows: synthRows(1, 10, 0, false, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := f.Render(&buf, PNG); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 300 {
		t.Errorf("PNG is %v, want at least 600x300", b)
	}
}

func TestFormatFromPath(t *testing.T) {
	for in, want := range map[string]Format{"a.png": PNG, "b.SVG": SVG, "/x/y.svg": SVG} {
		if got, err := FormatFromPath(in); err != nil || got != want {
			t.Errorf("FormatFromPath(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"a.pdf", "noext", "a.png.txt"} {
		if _, err := FormatFromPath(bad); err == nil {
			t.Errorf("FormatFromPath(%q) accepted", bad)
		}
	}
}

// TestRegroupHistUniform checks that splitting bfloat16 buckets over display bins leaves
// no comb: a uniform distribution gives flat display bins.
func TestRegroupHistUniform(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := map[uint16]uint64{}
	const n = 1 << 20
	for range n {
		k, _ := store.HistogramKey(float32(0.5 + rng.Float64()*3))
		c[k]++
	}
	d, err := RegroupHist([]store.StatsRow{{Hist: store.HistogramFromCounts(c)}}, HistOptions{ValueBins: 64})
	if err != nil {
		t.Fatal(err)
	}
	want := float64(n) / 64
	for i, v := range d.Merged[1:63] { // edge bins hold the partial buckets at the ends
		if math.Abs(v-want) > 0.04*want {
			t.Errorf("bin %d holds %.0f, want %.0f ± 4%%", i+1, v, want)
		}
	}
}

func TestDenseHistogramMatchesMerge(t *testing.T) {
	rows := synthRows(5, 30, 0.02, false, 0)
	rows[3].Hist.Merge(store.HistogramFromCounts(map[uint16]uint64{0x8000: 3, 0x0000: 2, 0xff7f: 1, 0x7f7f: 1}))
	var want store.Histogram
	for _, r := range rows {
		want.Merge(r.Hist)
	}
	d, err := RegroupHist(rows, HistOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Hist.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(d.Hist.Keys) != len(want.Keys) {
		t.Fatalf("%d keys, want %d", len(d.Hist.Keys), len(want.Keys))
	}
	for i := range want.Keys {
		if d.Hist.Keys[i] != want.Keys[i] || d.Hist.Counts[i] != want.Counts[i] {
			t.Fatalf("bucket %d: %#04x:%d, want %#04x:%d", i, d.Hist.Keys[i], d.Hist.Counts[i], want.Keys[i], want.Counts[i])
		}
	}
}
