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
