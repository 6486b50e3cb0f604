package report

import (
	"io"
	"testing"
)

// BenchmarkReportTwoRuns writes the two-run report (4 layers, 40 batches, diff of the
// tensors) of a store built once.
func BenchmarkReportTwoRuns(b *testing.B) {
	dir := buildStore(b, testRun{name: "fp32", batches: 40}, testRun{name: "int8", noise: 0.05, extra: true, batches: 40})
	s := openStore(b, dir)
	b.ResetTimer()
	for b.Loop() {
		if err := Write(b.Context(), io.Discard, s, "int8", Options{RunB: "fp32", Now: fixedNow}); err != nil {
			b.Fatal(err)
		}
	}
}
