package plot_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/actrec/actrec/query/plot"
	"github.com/actrec/actrec/store"
)

// Stat draws a statistic of the rows read with store.Store.Stats; Render writes SVG or PNG.
func ExampleStat() {
	rows := []store.StatsRow{{Batch: 0, Mean: 0.5}, {Batch: 1, Mean: 0.7}, {Batch: 2, Mean: 0.6}}
	fig, err := plot.Stat("mean", plot.Series{Run: "fp32", Layer: "conv1", Rows: rows})
	if err != nil {
		fmt.Println(err)
		return
	}
	var svg bytes.Buffer
	if err := fig.Render(&svg, plot.SVG); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Contains(svg.String(), "mean per batch — fp32/conv1"))

	_, err = plot.Stat("average", plot.Series{Run: "fp32", Layer: "conv1", Rows: rows})
	fmt.Println(err)
	// Output:
	// true
	// unknown stat "average"; valid stats: mean, std, min, max, l2, zeros, nan, inf, count, zero_frac, median, p01, p05, p25, p50, p75, p95, p99
}
