package query

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/actrec/actrec/store"
	bolt "go.etcd.io/bbolt"
)

// A layer path of 255 bytes (valid) exports to an Arrow directory and a
// Parquet dataset: over-long file and partition names are shortened with a
// hash (the exact path stays in the files' metadata).
func TestExportLongLayerName(t *testing.T) {
	_, s := openEdgeStore(t)
	defer s.Close()
	long := "encoder/" + strings.Repeat("x", 247) // 255 bytes: valid (FORMAT.md §4.1)
	w, err := s.CreateRun(store.RunInfo{Name: "r"}, []store.LayerInfo{{Path: long, Op: "Id", Shape: []int{2}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AppendTensors(long, store.TensorRow{Batch: 0, Sample: 0, DatasetIndex: 0, Data: []float32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ format, out string }{
		{FormatArrow, "arrowdir"},
		{FormatParquet, "dataset"},
	} {
		_, err := Export(context.Background(), s, "r", ExportOptions{Format: tc.format, Out: filepath.Join(t.TempDir(), tc.out)})
		if err != nil {
			t.Errorf("export %s of a layer named with %d bytes: %v", tc.format, len(long), err)
		}
	}
}

// A damaged layer record with a zero-element shape is an error, not an
// arrow-go panic while building the tensor type.
func TestExportZeroElementLayerRecord(t *testing.T) {
	dir, s := openEdgeStore(t)
	w, err := s.CreateRun(store.RunInfo{Name: "r"}, []store.LayerInfo{{Path: "l", Op: "Id", Shape: []int{2}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AppendTensors("l", store.TensorRow{Batch: 0, Sample: 0, DatasetIndex: 0, Data: []float32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// damage the layer record: shape [2] -> [0]
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("layers"))
		k, v := b.Cursor().First()
		nv := strings.Replace(string(v), `"shape":[2]`, `"shape":[0]`, 1)
		if nv == string(v) {
			t.Fatalf("layer record %s", v)
		}
		return b.Put(append([]byte{}, k...), []byte(nv))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	ro, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Export panicked on a damaged layer record: %v (want an error)", r)
		}
	}()
	_, err = Export(context.Background(), ro, "r", ExportOptions{Format: FormatArrow, Out: filepath.Join(t.TempDir(), "x.arrow")})
	if err == nil {
		t.Fatal("Export of a layer with shape [0] but 2-value tensors succeeded")
	}
}

// A run holding the same (batch, sample) twice (a batch recorded twice)
// diffs equal against itself: rows are paired by occurrence, not
// overwritten.
func TestDiffSelfRepeatedBatchSample(t *testing.T) {
	dir, s := openEdgeStore(t)
	w, err := s.CreateRun(store.RunInfo{Name: "r"}, []store.LayerInfo{{Path: "l", Op: "Id", Shape: []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	for ds := int64(0); ds < 2; ds++ {
		if err := w.AppendTensors("l", store.TensorRow{Batch: 0, Sample: 0, DatasetIndex: ds, Data: []float32{float32(ds + 1)}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil { // two parts of batch 0
			t.Fatal(err)
		}
	}
	if err := w.Close(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ro, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep, err := Diff(context.Background(), ro, "r", "r", DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Layers[0]
	if !rep.Pass || l.Status != StatusEqual {
		t.Fatalf("self-diff: pass %v status %s reasons %v tensor %+v", rep.Pass, l.Status, l.Reasons, *l.Tensor)
	}
}

func TestFileNameShortening(t *testing.T) {
	long := strings.Repeat("a/", 120)
	x, y := fileName("layer=", long+"x", ""), fileName("layer=", long+"y", "")
	if x == y || len(x) > maxFileName || len(y) > maxFileName {
		t.Fatalf("%q / %q: want distinct names of at most %d bytes", x, y, maxFileName)
	}
	if _, err := HiveUnescape(strings.TrimPrefix(x, "layer=")); err != nil {
		t.Fatalf("%q: cut inside an escape: %v", x, err)
	}
	if got := fileName("", "conv1", ".arrow"); got != "conv1.arrow" {
		t.Fatalf("short name changed: %q", got)
	}
}

// A NaN tolerance would pass every diff (|a-b| > NaN is false): refused.
func TestDiffRefusesNaNTolerance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nan := math.NaN()
	for _, o := range []DiffOptions{{Tol: Tolerance{Atol: nan}}, {Tol: Tolerance{Rtol: nan}}, {Tol: Tolerance{Atol: -1}}, {MinSQNR: &nan}} {
		if _, err := Diff(context.Background(), s, "a", "b", o); err == nil || !strings.Contains(err.Error(), "NaN") && !strings.Contains(err.Error(), ">= 0") {
			t.Errorf("%+v: %v, want a tolerance error", o, err)
		}
	}
}

// openEdgeStore opens a new store (no fsync, no timed flushes) in a
// temporary directory.
func openEdgeStore(t *testing.T) (string, *store.Store) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	opts := store.DefaultOptions()
	opts.NoSync, opts.FlushInterval = true, -1
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return dir, s
}

// Without thresholds the comparison is exact: stats whose histograms
// differ (the values differ) fail, although their mean, std, min and max
// agree; any threshold lets them pass (HIST_W1 is reported, not gated).
func TestDiffExactFailsOnHistogram(t *testing.T) {
	_, s := openEdgeStore(t)
	defer s.Close()
	for _, run := range []string{"a", "b"} {
		w, err := s.CreateRun(store.RunInfo{Name: run}, []store.LayerInfo{{Path: "l", Op: "Id", Shape: []int{4}}})
		if err != nil {
			t.Fatal(err)
		}
		row := statsOf(0, [][]float32{{-1, -0.5, 0.5, 1}})
		if run == "b" { // one value moved to another bin: same moments
			row.Hist = store.Histogram{Keys: []uint16{0xbf80, 0xbf00, 0x3f40, 0x3f80}, Counts: []uint64{1, 1, 1, 1}}
		}
		if err := w.AppendStats("l", row); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(store.StateComplete); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Diff(context.Background(), s, "a", "b", DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := rep.Layers[0]; rep.Pass || l.Status != StatusFailed {
		t.Fatalf("exact diff of different histograms: pass %v, status %s %v", rep.Pass, l.Status, l.Reasons)
	}
	rep, err = Diff(context.Background(), s, "a", "b", DiffOptions{Tol: Tolerance{Atol: 1e-6}})
	if err != nil {
		t.Fatal(err)
	}
	if l := rep.Layers[0]; !rep.Pass || l.Status != StatusOK {
		t.Fatalf("diff with atol: pass %v, status %s %v", rep.Pass, l.Status, l.Reasons)
	}
}

// An output path reaching into the store through a symlink and ".." is
// refused like a direct one (filepath.Abs removed "lnk/.." as text, so
// --out lnk/../index.db --force could overwrite the index).
func TestCheckOutputSymlinkDotDot(t *testing.T) {
	dir, s := openEdgeStore(t)
	s.Close()
	lnk := filepath.Join(t.TempDir(), "lnk")
	if err := os.Symlink(filepath.Join(dir, "segments"), lnk); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{lnk + "/../index.db", lnk + "/../new/x.csv", lnk + "/x.csv", filepath.Join(dir, "x.csv")} {
		if err := CheckOutput(dir, out, true); !errors.Is(err, ErrOutputInStore) {
			t.Errorf("CheckOutput(%q): %v, want ErrOutputInStore", out, err)
		}
	}
	if err := CheckOutput(dir, filepath.Join(t.TempDir(), "x.csv"), true); err != nil {
		t.Errorf("an output outside the store: %v", err)
	}
}

// FuzzParseBatchRange: any text gives an error or a range that formats and
// parses back to itself and selects exactly From <= b < To.
func FuzzParseBatchRange(f *testing.F) {
	for _, s := range []string{"", ":", "2:5", "3:", ":4", "7", "-1", "-2:0", "0:", "9223372036854775807", "-9223372036854775808:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseBatchRange(s)
		if err != nil {
			return
		}
		back, err := ParseBatchRange(strings.TrimSuffix(FormatBatchRange(r), "all"))
		if err != nil || back != r {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, r, FormatBatchRange(r), back, err)
		}
		if r != (store.BatchRange{}) {
			if r.From != math.MinInt64 && (r.Contains(r.From-1) || !r.Contains(r.From)) {
				t.Fatalf("%q -> %+v: wrong lower bound", s, r)
			}
			if r.To != 0 && r.To != math.MaxInt64 && (r.Contains(r.To) || !r.Contains(r.To-1)) {
				t.Fatalf("%q -> %+v: wrong upper bound", s, r)
			}
		}
	})
}
