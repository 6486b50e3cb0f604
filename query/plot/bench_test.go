package plot

import (
	"io"
	"testing"
)

// BenchmarkStatSVG draws p99 over 100000 batches (decimated) of two series as SVG.
func BenchmarkStatSVG(b *testing.B) {
	rows := synthRows(1, 100000, 0.0001, false, 0)
	a := Series{Run: "a", Layer: "conv1", Rows: rows}
	c := Series{Run: "b", Layer: "conv1", Rows: rows}
	b.ResetTimer()
	for b.Loop() {
		f, err := Stat("p99", a, c)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Render(io.Discard, SVG); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHistPNG regroups 10000 batch histograms into the heat map and renders a PNG.
func BenchmarkHistPNG(b *testing.B) {
	s := Series{Run: "a", Layer: "relu1", Rows: synthRows(1, 10000, 0.0005, true, 0)}
	b.ResetTimer()
	for b.Loop() {
		f, err := Hist(s, HistOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Render(io.Discard, PNG); err != nil {
			b.Fatal(err)
		}
	}
}
