package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/actrec/actrec/store"
)

// TestWhileRecording reads a run whose writer is still open: every command
// sees the committed batches and none fails on the lock.
func TestWhileRecording(t *testing.T) {
	dir := testStore(t)
	opts := store.DefaultOptions()
	opts.NoSync = true
	opts.FlushInterval = -1
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.CreateRun(store.RunInfo{Name: "live", Created: time.Now(), State: store.StateRecording},
		[]store.LayerInfo{{Path: "conv1", Op: "Conv2d", Shape: []int{2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(store.StateInterrupted)
	for b := range 2 {
		var rows []store.TensorRow
		for sm := range 2 {
			v := make([]float32, 6)
			for e := range v {
				v[e] = baseVal("conv1", b*2+sm, e)
			}
			rows = append(rows, store.TensorRow{Batch: int64(b), Sample: int32(sm), DatasetIndex: int64(b*2 + sm), Data: v})
		}
		if err := w.AppendTensors("conv1", rows...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var buf bytes.Buffer
	if err := runRuns(ctx, RunsOptions{StoreDir: dir}, nil, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "recording") {
		t.Errorf("live run not listed as recording:\n%s", buf.String())
	}
	buf.Reset()
	// The first 4 samples of base equal the live run's.
	if err := runDiff(ctx, DiffOptions{StoreDir: dir, Layers: []string{"conv1"}}, []string{"live", "base"}, &buf); err != nil {
		t.Fatalf("diff against a live run: %v\n%s", err, buf.String())
	}
	if !strings.Contains(buf.String(), "4 samples") || !strings.Contains(buf.String(), "samples only in A: 0, only in B: 4") {
		t.Errorf("diff while recording:\n%s", buf.String())
	}
	buf.Reset()
	if err := runExport(ctx, ExportOptions{StoreDir: dir, Format: "npy", Out: filepath.Join(t.TempDir(), "l.npy")}, []string{"live"}, &buf); err != nil {
		t.Fatalf("export of a live run: %v", err)
	}
}

// TestCorruptSegment truncates a segment file: reading commands fail with
// exit status 4 naming the file, and check reports the problems (exit 1).
func TestCorruptSegment(t *testing.T) {
	dir := testStore(t)
	segs, err := filepath.Glob(filepath.Join(dir, "segments", "*", "*.arrow"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments: %v", err)
	}
	for _, p := range segs {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	var buf bytes.Buffer
	err = runShow(ctx, ShowOptions{StoreDir: dir, Layer: "conv1", Batch: 3}, []string{"base"}, &buf)
	if code := exitCode(err); code != exitStore || !strings.Contains(err.Error(), "segments/") {
		t.Errorf("show on a truncated segment: exit %d, %v", code, err)
	}
	err = runDiff(ctx, DiffOptions{StoreDir: dir}, []string{"base", "perturbed"}, &buf)
	if code := exitCode(err); code != exitStore {
		t.Errorf("diff on a truncated segment: exit %d, %v", code, err)
	}
	buf.Reset()
	err = runCheck(ctx, CheckOptions{StoreDir: dir}, nil, &buf)
	if code := exitCode(err); code != exitFound || !strings.Contains(buf.String(), "problem") {
		t.Errorf("check: exit %d, %v\n%s", code, err, buf.String())
	}
}

// damageEntry truncates the segment holding the first entry of the given
// kind of run/layer a few bytes into it, and returns its path relative to
// the store.
func damageEntry(t *testing.T, dir, run, layer string, kind store.EntryKind) string {
	t.Helper()
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := s.Entries(run, layer, store.BatchRange{})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Kind == kind {
			if err := os.Truncate(filepath.Join(dir, e.Segment), e.Offset+16); err != nil {
				t.Fatal(err)
			}
			return e.Segment
		}
	}
	t.Fatalf("no %s entry of %s/%s", kind, run, layer)
	return ""
}

// TestPartlyCorrupt: one damaged entry does not make show or diff useless:
// they print what they can, name the damage and exit with status 4.
func TestPartlyCorrupt(t *testing.T) {
	ctx := context.Background()
	t.Run("show_stats_damaged", func(t *testing.T) {
		dir := testStore(t)
		seg := damageEntry(t, dir, "base", "conv1", store.KindStats)
		var buf bytes.Buffer
		err := runShow(ctx, ShowOptions{StoreDir: dir, Layer: "conv1", Batch: 3, Sample: 1, Values: 16}, []string{"base"}, &buf)
		if code := exitCode(err); code != exitStore || !strings.Contains(err.Error(), seg) {
			t.Errorf("exit %d, %v", code, err)
		}
		for _, want := range []string{"stats unreadable: ", seg, "values[0:6]: "} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, buf.String())
			}
		}
	})
	t.Run("show_tensor_damaged", func(t *testing.T) {
		dir := testStore(t)
		seg := damageEntry(t, dir, "base", "conv1", store.KindTensor)
		var buf bytes.Buffer
		err := runShow(ctx, ShowOptions{StoreDir: dir, Layer: "conv1", Batch: 3, Values: 16, JSON: true}, []string{"base"}, &buf)
		if code := exitCode(err); code != exitStore {
			t.Errorf("exit %d, %v", code, err)
		}
		for _, want := range []string{`"tensor_error": "`, seg, `"stats": {`, `"stats_error": null`} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, buf.String())
			}
		}
	})
	t.Run("diff_layer_damaged", func(t *testing.T) {
		dir := testStore(t)
		seg := damageEntry(t, dir, "base", "relu1", store.KindTensor)
		var buf bytes.Buffer
		err := runDiff(ctx, DiffOptions{StoreDir: dir}, []string{"base", "perturbed"}, &buf)
		if code := exitCode(err); code != exitStore || !strings.Contains(err.Error(), seg) {
			t.Errorf("exit %d, %v", code, err)
		}
		for _, want := range []string{"relu1  ReLU    unreadable", "relu1: unreadable: ", seg, "conv1  Conv2d  equal", "FAIL: unreadable: relu1"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, buf.String())
			}
		}
	})
	// report writes its whole page, the damaged layer showing its error,
	// then exits 4 like diff (it exited 0)
	t.Run("report_layer_damaged", func(t *testing.T) {
		dir := testStore(t)
		seg := damageEntry(t, dir, "base", "relu1", store.KindTensor)
		out := filepath.Join(t.TempDir(), "r.html")
		var buf bytes.Buffer
		err := runReport(ctx, ReportOptions{StoreDir: dir, Out: out}, []string{"base", "perturbed"}, &buf)
		if code := exitCode(err); code != exitStore || !strings.Contains(err.Error(), seg) {
			t.Errorf("exit %d, %v", code, err)
		}
		page, rerr := os.ReadFile(out)
		if rerr != nil || !strings.Contains(string(page), seg) || !strings.Contains(string(page), "</html>") {
			t.Errorf("report page: %v; want the whole page naming %s", rerr, seg)
		}
	})
}
