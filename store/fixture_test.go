package store

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the committed store fixtures in testdata/")

const fixtureV1 = "testdata/v1"

var fixtureTime = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// writeFixtureV1 writes the format-1 fixture: run "complete" (sealed segments, none
// compression), run "lz4" (LZ4-compressed), and run "crashed" (committed batches 0..1 in
// unsealed segments, batch 2 written but not committed, then a torn tail).
func writeFixtureV1(t *testing.T, dir string) {
	for _, r := range []struct {
		name string
		c    Compression
	}{{"complete", None}, {"lz4", LZ4}} {
		opts := testOptions()
		opts.Compression = r.c
		s, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		w, err := s.CreateRun(RunInfo{Name: r.name, Created: fixtureTime, Host: "fixture", GoVersion: "go", Model: "recipe-cnn", Tags: map[string]string{"k": "v"}}, testLayers())
		if err != nil {
			t.Fatal(err)
		}
		appendFixtureBatches(t, w, 0, 3)
		if err := w.Close(StateComplete); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.CreateRun(RunInfo{Name: "crashed", Created: fixtureTime, Host: "fixture", GoVersion: "go"}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	appendFixtureBatches(t, w, 0, 2)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	appendFixtureBatches(t, w, 2, 3)
	writeNoCommit(t, w) // written, fsynced, never committed
	// a torn message: the start of a record batch that never finished
	sw := w.tensors[1]
	if _, err := sw.f.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x40, 0x01, 0, 0, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	abandon(w)
	// the stored run keeps the fixed time; fixture files must not change between regenerations
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Chtimes(p, fixtureTime, fixtureTime)
		}
		return nil
	})
}

func appendFixtureBatches(t testing.TB, w *Writer, from, to int64) {
	t.Helper()
	for b := from; b < to; b++ {
		for _, l := range testLayers() {
			n, _ := shapeSize(l.Shape)
			if err := w.AppendStats(l.Path, statsRow(b)); err != nil {
				t.Fatal(err)
			}
			if err := w.AppendTensors(l.Path, tensorRow(b, 0, n), tensorRow(b, 1, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFixtureV1 reads the committed format-1 store: every format version ever shipped stays
// readable. Regenerate with: go test ./store -run TestFixtureV1 -update
func TestFixtureV1(t *testing.T) {
	if *update {
		os.RemoveAll(fixtureV1)
		writeFixtureV1(t, fixtureV1)
	}
	// read-only straight from testdata: nothing is written
	ro, err := OpenReadOnly(fixtureV1)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := ro.Runs()
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]RunState{}
	for _, r := range runs {
		states[r.Name] = r.State
	}
	if !reflect.DeepEqual(states, map[string]RunState{"complete": StateComplete, "lz4": StateComplete, "crashed": StateCrashed}) {
		t.Fatalf("runs: %v", states)
	}
	checkFixtureRun(t, ro, "complete", 3)
	checkFixtureRun(t, ro, "lz4", 3)
	checkFixtureRun(t, ro, "crashed", 2)
	// read-write on a copy: the crashed run is salvaged up to the torn message
	dir := t.TempDir()
	copyDir(t, fixtureV1, dir)
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	checkFixtureRun(t, s, "crashed", 3)
	rs, _ := s.Run("crashed")
	if rs.Meta["salvaged_batches"] != "1" {
		t.Fatalf("salvaged_batches = %q, want 1", rs.Meta["salvaged_batches"])
	}
	if probs, err := s.Check(""); err != nil || len(probs) != 0 {
		t.Fatalf("check: %v %v", probs, err)
	}
}

func checkFixtureRun(t *testing.T, s *Store, run string, batches int64) {
	t.Helper()
	ls, err := s.Layers(run)
	if err != nil || len(ls) != 2 || ls[0].Path != "conv1" || !reflect.DeepEqual(ls[0].Shape, []int{2, 3, 3}) {
		t.Fatalf("%s layers: %+v %v", run, ls, err)
	}
	for _, l := range testLayers() {
		st, err := s.Stats(run, l.Path, BatchRange{})
		if err != nil || int64(len(st)) != batches {
			t.Fatalf("%s/%s: %d stats rows, %v; want %d", run, l.Path, len(st), err, batches)
		}
		for i, r := range st {
			if !reflect.DeepEqual(r, statsRow(int64(i))) {
				t.Fatalf("%s/%s stats row %d: %+v", run, l.Path, i, r)
			}
		}
		n, _ := shapeSize(l.Shape)
		var rows int64
		err = s.Tensors(run, l.Path, BatchRange{}, func(r TensorRow) error {
			if want := tensorRow(rows/2, int32(rows%2), n); !reflect.DeepEqual(r, want) {
				t.Fatalf("%s/%s tensor row %d: %+v", run, l.Path, rows, r)
			}
			rows++
			return nil
		})
		if err != nil || rows != 2*batches {
			t.Fatalf("%s/%s: %d tensor rows, %v", run, l.Path, rows, err)
		}
	}
}
