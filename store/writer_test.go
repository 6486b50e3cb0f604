package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestSegmentRoll: small segments roll by size and age; every batch stays readable through
// sealed and unsealed segments, and Check is clean.
func TestSegmentRoll(t *testing.T) {
	for _, c := range []struct {
		name string
		opts func(*Options)
	}{
		{"size", func(o *Options) { o.SegmentMaxBytes = 2000 }},
		{"age", func(o *Options) { o.SegmentMaxAge = time.Nanosecond }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions()
			c.opts(&opts)
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.CreateRun(RunInfo{Name: "r"}, testLayers())
			if err != nil {
				t.Fatal(err)
			}
			for b := int64(0); b < 20; b++ {
				appendFixtureBatches(t, w, b, b+1)
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(StateComplete); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "segments", "*", "*.arrow"))
			if len(files) < 10 {
				t.Fatalf("%d segment files, want many", len(files))
			}
			checkFixtureRun(t, s, "r", 20)
			if probs, err := s.Check("r"); err != nil || len(probs) != 0 {
				t.Fatalf("check: %v %v", probs, err)
			}
		})
	}
}

// TestBatchRange: look-ups of sub-ranges, negative batches, parts of one batch appended in
// several calls and flushes.
func TestBatchRange(t *testing.T) {
	s, _ := Open(t.TempDir(), testOptions())
	w, err := s.CreateRun(RunInfo{Name: "r"}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []int64{-5, -1, 0, 3, 7, 1 << 40} {
		for i := int32(0); i < 3; i++ { // two parts per batch (rows 0-1, then 2): a flush in between
			if err := w.AppendTensors("fc", tensorRow(b, i, 4)); err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				w.Flush()
			}
		}
		if err := w.AppendStats("fc", statsRow(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(StateComplete); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		r    BatchRange
		want []int64
	}{
		{BatchRange{}, []int64{-5, -1, 0, 3, 7, 1 << 40}},
		{BatchRange{From: -3, To: 4}, []int64{-1, 0, 3}},
		{BatchRange{From: 3}, []int64{3, 7, 1 << 40}},
		{BatchRange{From: 4, To: 7}, nil},
		{BatchRange{From: -10, To: -4}, []int64{-5}},
	}
	for _, c := range cases {
		st, err := s.Stats("r", "fc", c.r)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, r := range st {
			got = append(got, r.Batch)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("stats %+v: batches %v, want %v", c.r, got, c.want)
		}
		got = nil
		err = s.Tensors("r", "fc", c.r, func(r TensorRow) error {
			if int(r.Sample) != len(got)%3 {
				t.Errorf("tensors %+v: sample %d at position %d", c.r, r.Sample, len(got))
			}
			got = append(got, r.Batch)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		for _, b := range c.want {
			want = append(want, b, b, b)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("tensors %+v: %v, want %v", c.r, got, want)
		}
	}
	ls, _ := s.Layers("r")
	if ls[1].TensorBatches != 6 || ls[1].StatsBatches != 6 || ls[0].TensorBatches != 0 {
		t.Fatalf("layer counters %+v", ls)
	}
	rs, _ := s.Run("r")
	if rs.Batches != 6 || rs.Entries != 6*2+6 {
		t.Fatalf("run counters %+v", rs)
	}
}

// TestDeleteRun_Reclaim: a deleted run is gone from the index and the disk; Reclaim removes
// what a crash between the two steps leaves.
func TestDeleteRun_Reclaim(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, testOptions())
	writeRun(t, s, "a", 3, true)
	writeRun(t, s, "b", 3, true)
	ra, _ := s.Run("a")
	if err := s.DeleteRun("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run("a"); err == nil {
		t.Fatal("deleted run still listed")
	}
	if _, err := os.Stat(filepath.Join(dir, "segments", "0000000000000001")); !os.IsNotExist(err) {
		t.Fatalf("segment dir of deleted run: %v", err)
	}
	if ra.Bytes == 0 {
		t.Fatal("run had no bytes")
	}
	// leftovers: the directory of the deleted run (as if the process died between the commit
	// and the removal), a stray segment of a live run; and a directory of a run id the index
	// never handed out, which is not provably garbage and stays
	deleted := filepath.Join(dir, "segments", "0000000000000001")
	os.MkdirAll(deleted, 0o755)
	os.WriteFile(filepath.Join(deleted, "00000000.arrow"), make([]byte, 100), 0o644)
	unknown := filepath.Join(dir, "segments", "00000000000000ff")
	os.MkdirAll(unknown, 0o755)
	os.WriteFile(filepath.Join(unknown, "00000000.arrow"), make([]byte, 70), 0o644)
	os.WriteFile(filepath.Join(dir, "segments", "0000000000000002", "000000ff.arrow"), make([]byte, 50), 0o644)
	os.WriteFile(filepath.Join(dir, "segments", "not-ours"), []byte("x"), 0o644)
	freed, err := s.Reclaim()
	if err != nil || freed != 150 {
		t.Fatalf("Reclaim freed %d, %v; want 150", freed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "segments", "not-ours")); err != nil {
		t.Fatal("Reclaim removed a file it did not create")
	}
	if _, err := os.Stat(filepath.Join(unknown, "00000000.arrow")); err != nil {
		t.Fatalf("Reclaim removed the directory of a run id the index never handed out: %v", err)
	}
	checkFixtureRun(t, s, "b", 3)
	runs, _ := s.Runs()
	if len(runs) != 1 || runs[0].Name != "b" {
		t.Fatalf("runs %+v", runs)
	}
}

// TestWriter_FlushInterval: the writer's timer commits buffered rows without an explicit
// Flush (waits for the commit hook, no timing assertion).
func TestWriter_FlushInterval(t *testing.T) {
	opts := testOptions()
	opts.FlushInterval = 5 * time.Millisecond
	s, _ := Open(t.TempDir(), opts)
	w, err := s.CreateRun(RunInfo{Name: "r"}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	committed := make(chan struct{}, 1)
	w.fmu.Lock() // hooks are read by flushes, under fmu
	w.hookAfterCommit = func() {
		select {
		case committed <- struct{}{}:
		default:
		}
	}
	w.fmu.Unlock()
	if err := w.AppendStats("fc", statsRow(0)); err != nil {
		t.Fatal(err)
	}
	for { // a commit may have happened before the row was appended: wait for one that has it
		<-committed
		if st, err := s.Stats("r", "fc", BatchRange{}); err != nil || len(st) > 0 {
			break
		}
	}
	st, err := s.Stats("r", "fc", BatchRange{})
	if err != nil || len(st) == 0 || st[0].Batch != 0 {
		t.Fatalf("stats after a timed flush: %v %v", st, err)
	}
	if err := w.Close(StateInterrupted); err != nil {
		t.Fatal(err)
	}
	rs, _ := s.Run("r")
	if rs.State != StateInterrupted || rs.Finished.IsZero() {
		t.Fatalf("%+v", rs.RunInfo)
	}
}

func TestWriter_UpdateRun(t *testing.T) {
	s, _ := Open(t.TempDir(), testOptions())
	w, err := s.CreateRun(RunInfo{Name: "r", Config: json.RawMessage(`{"a":1}`)}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	err = w.UpdateRun(func(ri *RunInfo) {
		ri.Name = "renamed" // ignored
		ri.State = "bogus"  // ignored
		if ri.Meta == nil {
			ri.Meta = map[string]string{}
		}
		ri.Meta["dropped_batches"] = "3"
		ri.WeightsHash = "sha256:abc"
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Run("r")
	if err != nil || rs.Meta["dropped_batches"] != "3" || rs.WeightsHash != "sha256:abc" || rs.State != StateRecording || string(rs.Config) != `{"a":1}` {
		t.Fatalf("%+v %v", rs, err)
	}
	if w.BytesWritten() != 0 {
		t.Fatalf("BytesWritten %d with nothing appended", w.BytesWritten())
	}
	appendFixtureBatches(t, w, 0, 1)
	before := w.BytesWritten()
	w.Flush()
	if before <= 0 || w.BytesWritten() < before {
		t.Fatalf("BytesWritten %d before flush, %d after", before, w.BytesWritten())
	}
	w.Close(StateComplete)
}

// TestWriter_Concurrent appends from several goroutines while flushing (run with -race).
func TestWriter_Concurrent(t *testing.T) {
	opts := testOptions()
	opts.FlushInterval = time.Millisecond
	s, _ := Open(t.TempDir(), opts)
	w, err := s.CreateRun(RunInfo{Name: "r"}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			for b := int64(g * 100); b < int64(g*100+50); b++ {
				if err := w.AppendTensors("fc", tensorRow(b, 0, 4)); err != nil {
					done <- err
					return
				}
				if err := w.AppendStats("fc", statsRow(b)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(StateComplete); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats("r", "fc", BatchRange{})
	if err != nil || len(st) != 200 {
		t.Fatalf("%d rows, %v", len(st), err)
	}
	for i := 1; i < len(st); i++ {
		if st[i].Batch <= st[i-1].Batch {
			t.Fatalf("stats not in batch order at %d", i)
		}
	}
}

// TestCrash_BeforeFirstCommit: a writer that dies after writing and fsyncing its first
// segments but before any commit leaves segment files the index does not know; the next Open
// registers and salvages them from their schema metadata.
func TestCrash_BeforeFirstCommit(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, testOptions())
	w, err := s.CreateRun(RunInfo{Name: "r"}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	appendFixtureBatches(t, w, 0, 3)
	writeNoCommit(t, w)
	abandon(w)
	if st, err := s.Stats("r", "fc", BatchRange{}); err != nil || len(st) != 0 {
		t.Fatalf("before recovery: %d rows, %v", len(st), err)
	}
	s2, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := s2.Run("r")
	if rs.State != StateCrashed || rs.Meta["salvaged_batches"] != "3" {
		t.Fatalf("%+v", rs)
	}
	checkFixtureRun(t, s2, "r", 3)
	if probs, err := s2.Check("r"); err != nil || len(probs) != 0 {
		t.Fatalf("check: %v %v", probs, err)
	}
}

// TestWriter_AppendDuringFlush: appends proceed while a flush is writing and committing
// (double buffering); rows appended meanwhile are committed by the next flush.
func TestWriter_AppendDuringFlush(t *testing.T) {
	s, _ := Open(t.TempDir(), testOptions())
	w, err := s.CreateRun(RunInfo{Name: "r"}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	w.hookBeforeCommit = func() {
		close(entered)
		<-release
	}
	if err := w.AppendStats("fc", statsRow(0)); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error)
	go func() { flushed <- w.Flush() }()
	<-entered // the flush holds the segments and waits before its commit
	if err := w.AppendStats("fc", statsRow(1)); err != nil {
		t.Fatal(err)
	}
	if err := w.AppendTensors("fc", tensorRow(1, 0, 4)); err != nil {
		t.Fatal(err)
	}
	if b := w.BytesWritten(); b <= 0 {
		t.Fatalf("BytesWritten %d during a flush", b)
	}
	close(release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	w.hookBeforeCommit = nil
	if st, _ := s.Stats("r", "fc", BatchRange{}); len(st) != 1 {
		t.Fatalf("after the first flush: %d rows, want 1", len(st))
	}
	if err := w.Close(StateComplete); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats("r", "fc", BatchRange{}); len(st) != 2 {
		t.Fatalf("after close: %d rows, want 2", len(st))
	}
}
