package query

import (
	"encoding/csv"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/actrec/actrec/store"
)

// TestEmptySelections: stats, export and show of batches or kinds the run
// does not hold fail with store.ErrNotFound naming the range and what the
// run has, for every format alike, and write nothing.
func TestEmptySelections(t *testing.T) {
	s, _ := testStore(t)
	extra := filepath.Join(t.TempDir(), "store2")
	tensorsOnly := baseLayers()[:2]
	tensorsOnly[0].stats, tensorsOnly[1].stats = false, false
	statsOnly := baseLayers()
	for i := range statsOnly {
		statsOnly[i].tensors = false
	}
	record(t, extra,
		fixRun{name: "tensors", layers: tensorsOnly, samples: 8, bs: 2, val: baseVal},
		fixRun{name: "stats", layers: statsOnly, samples: 8, bs: 2, val: baseVal})
	s2, err := store.OpenReadOnly(extra)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	far := store.BatchRange{From: 100, To: 200}
	check := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want store.ErrNotFound", err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	}
	t.Run("stats_range", func(t *testing.T) {
		_, err := Stats(t.Context(), s, "base", StatsOptions{Batches: far})
		check(t, err, "100:200", "batches 0..3")
	})
	t.Run("stats_of_tensors_only_run", func(t *testing.T) {
		_, err := Stats(t.Context(), s2, "tensors", StatsOptions{})
		check(t, err, "no stats recorded", "batches 0..3")
	})
	for _, f := range Formats {
		t.Run("export_range_"+f, func(t *testing.T) {
			out := t.TempDir()
			opts := ExportOptions{Format: f, Out: filepath.Join(out, "x."+f), Batches: far}
			if f == FormatNPY || f == FormatArrow || f == FormatParquet {
				opts.Layers = []string{"conv1"}
			}
			_, err := Export(t.Context(), s, "base", opts)
			check(t, err, "100:200", "batches 0..3")
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("wrote %v", ents)
			}
		})
	}
	t.Run("export_csv_of_tensors_only_run", func(t *testing.T) {
		_, err := Export(t.Context(), s2, "tensors", ExportOptions{Format: FormatCSV, Out: filepath.Join(t.TempDir(), "x.csv")})
		check(t, err, "no stats recorded")
	})
	t.Run("export_npz_of_stats_only_run", func(t *testing.T) {
		_, err := Export(t.Context(), s2, "stats", ExportOptions{Format: FormatNPZ, Out: filepath.Join(t.TempDir(), "x.npz")})
		check(t, err, "no tensors recorded")
	})
	t.Run("show_batch_99", func(t *testing.T) {
		_, err := Show(s, "base", ShowOptions{Layer: "conv1", Batch: 99})
		check(t, err, "batch 99", "batches 0..3")
	})
}

// TestExport_CSVRoundTrip: every float of the CSV export parses back to
// the exact value of the JSON export (shortest round-trip formatting).
func TestExport_CSVRoundTrip(t *testing.T) {
	s, _ := testStore(t)
	out := filepath.Join(t.TempDir(), "s.csv")
	if _, err := Export(t.Context(), s, "perturbed", ExportOptions{Format: FormatCSV, Out: out}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Stats(t.Context(), s, "perturbed", StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(rows)+1 {
		t.Fatalf("%d csv records for %d rows", len(recs), len(rows))
	}
	for i, r := range rows {
		want := []Float{r.Mean, r.Std, r.Min, r.Max, r.L2, r.ZeroFrac, r.P01, r.P05, r.P25, r.P50, r.P75, r.P95, r.P99}
		cols := append(recs[i+1][4:10:10], recs[i+1][12:19]...)
		names := append(statsColumns[4:10:10], statsColumns[12:19]...)
		for j, c := range cols {
			got, err := strconv.ParseFloat(c, 64)
			if err != nil || (got != float64(want[j]) && !(math.IsNaN(got) && math.IsNaN(float64(want[j])))) {
				t.Errorf("row %d col %s: %q reads as %v, want %v", i, names[j], c, got, want[j])
			}
		}
	}
}
