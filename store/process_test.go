package store

// Tests with real subprocesses: the test binary re-executes itself (os.Args[0]) with
// ACTREC_STORE_CHILD set to play a writer that is killed with SIGKILL, or that records while
// this process reads.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const childEnv = "ACTREC_STORE_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runChild(mode, os.Getenv("ACTREC_STORE_DIR")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	code := m.Run()
	cleanupBench()
	os.Exit(code)
}

// childLayers: a tensor layer big enough that writes take a while, a small one.
func childLayers() []LayerInfo {
	return []LayerInfo{
		{Path: "features.0", Op: "Conv2d", Shape: []int{8, 16, 16}, Order: 0},
		{Path: "classifier", Op: "Linear", Shape: []int{10}, Order: 1},
	}
}

// childBatch appends batch b: stats of both layers, 4 tensor rows of each.
func childBatch(w *Writer, b int64) error {
	for _, l := range childLayers() {
		n, _ := shapeSize(l.Shape)
		if err := w.AppendStats(l.Path, statsRow(b)); err != nil {
			return err
		}
		rows := make([]TensorRow, 4)
		for i := range rows {
			rows[i] = tensorRow(b, int32(i), n)
		}
		if err := w.AppendTensors(l.Path, rows...); err != nil {
			return err
		}
	}
	return nil
}

// runChild is the subprocess. Mode "crash": record batches forever, printing "flushed N"
// after each successful Flush covering batches < N, until killed. Mode "record": the same,
// with the background flush timer, until stdin closes, then Close(complete) and print "done N".
func runChild(mode, dir string) error {
	opts := DefaultOptions()
	opts.SegmentMaxBytes = 256 << 10 // roll often: sealed and unsealed segments
	switch mode {
	case "crash":
		opts.FlushInterval = 3 * time.Millisecond
	case "record":
		opts.FlushInterval = 10 * time.Millisecond
	case "salvage":
		opts.FlushInterval = -1
	default:
		return fmt.Errorf("mode %q", mode)
	}
	s, err := Open(dir, opts)
	if err != nil {
		return err
	}
	w, err := s.CreateRun(RunInfo{Name: "child", Model: "m"}, childLayers())
	if err != nil {
		return err
	}
	fmt.Println("created")
	if mode == "salvage" {
		return childSalvage(w)
	}
	stdinClosed := make(chan struct{})
	if mode == "record" {
		go func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	}
	for b := int64(0); ; b++ {
		if err := childBatch(w, b); err != nil {
			return err
		}
		if b%3 == 2 {
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Printf("flushed %d\n", b+1)
		}
		select {
		case <-stdinClosed:
			if err := w.Close(StateComplete); err != nil {
				return err
			}
			fmt.Printf("done %d\n", b+1)
			return s.Close()
		default:
		}
		if mode == "record" {
			time.Sleep(time.Millisecond)
			if b >= 150 { // enough: wait for the parent to end the recording
				<-stdinClosed
				if err := w.Close(StateComplete); err != nil {
					return err
				}
				fmt.Printf("done %d\n", b+1)
				return s.Close()
			}
		}
	}
}

// childSalvage commits batches 0..4, then writes and fsyncs 5..9 and stops before their
// commit, to be killed there.
func childSalvage(w *Writer) error {
	for b := int64(0); b < 10; b++ {
		if err := childBatch(w, b); err != nil {
			return err
		}
		if b == 4 {
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Println("flushed 5")
		}
	}
	w.hookBeforeCommit = func() {
		fmt.Println("synced 10")
		for {
			time.Sleep(time.Hour) // killed here (a timer, so the runtime does not report a deadlock)
		}
	}
	return w.Flush()
}

func startChild(t *testing.T, mode, dir string) (*exec.Cmd, *bufio.Scanner, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "ACTREC_STORE_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "created" {
		t.Fatalf("child did not start: %q %v", sc.Text(), sc.Err())
	}
	return cmd, sc, stdin
}

// verifyChildRun checks that every batch < committed is readable and that every row read,
// committed or salvaged, is exactly what the child wrote; it returns the batches found.
func verifyChildRun(t *testing.T, s *Store, committed int64) int64 {
	t.Helper()
	var found int64 = -1
	for _, l := range childLayers() {
		st, err := s.Stats("child", l.Path, BatchRange{})
		if err != nil {
			t.Fatalf("stats %s: %v", l.Path, err)
		}
		if int64(len(st)) < committed {
			t.Fatalf("layer %s: %d stats rows, %d batches were committed", l.Path, len(st), committed)
		}
		for i, r := range st {
			if !reflect.DeepEqual(r, statsRow(int64(i))) {
				t.Fatalf("layer %s stats row %d: %+v", l.Path, i, r)
			}
		}
		n, _ := shapeSize(l.Shape)
		var rows int64
		err = s.Tensors("child", l.Path, BatchRange{}, func(r TensorRow) error {
			want := tensorRow(rows/4, int32(rows%4), n)
			if !reflect.DeepEqual(r, want) {
				return fmt.Errorf("tensor row %d: batch %d sample %d, want batch %d sample %d (or data differs)", rows, r.Batch, r.Sample, want.Batch, want.Sample)
			}
			rows++
			return nil
		})
		if err != nil {
			t.Fatalf("tensors %s: %v", l.Path, err)
		}
		if rows < committed*4 {
			t.Fatalf("layer %s: %d tensor rows, want >= %d", l.Path, rows, committed*4)
		}
		if found < 0 || int64(len(st)) < found {
			found = int64(len(st))
		}
	}
	return found
}

// TestCrash_SIGKILL kills a writer subprocess at several points, reopens the store and checks
// that the run is crashed, every committed batch is readable, and Check finds nothing wrong.
func TestCrash_SIGKILL(t *testing.T) {
	type point struct {
		flushes int           // kill after this many "flushed" lines...
		delay   time.Duration // ...and this much more time (lands mid-write or mid-commit)
	}
	for _, p := range []point{{0, 0}, {1, 0}, {4, 0}, {9, 0}, {2, 2 * time.Millisecond}, {3, 5 * time.Millisecond}, {5, 11 * time.Millisecond}} {
		flushes := p.flushes
		t.Run(fmt.Sprintf("after_%d_flushes_%v", flushes, p.delay), func(t *testing.T) {
			dir := t.TempDir()
			cmd, sc, _ := startChild(t, "crash", dir)
			var committed int64
			for i := 0; i < flushes; i++ {
				if !sc.Scan() {
					t.Fatalf("child stopped: %v", sc.Err())
				}
				f := strings.Fields(sc.Text())
				if len(f) != 2 || f[0] != "flushed" {
					t.Fatalf("child said %q", sc.Text())
				}
				committed, _ = strconv.ParseInt(f[1], 10, 64)
			}
			time.Sleep(p.delay)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()

			ro, err := OpenReadOnly(dir)
			if err != nil {
				t.Fatal(err)
			}
			if rs, err := ro.Run("child"); err != nil || rs.State != StateCrashed {
				t.Fatalf("read-only view of killed run: state %q, err %v", rs.State, err)
			}
			s, err := Open(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rs, err := s.Run("child")
			if err != nil {
				t.Fatal(err)
			}
			if rs.State != StateCrashed {
				t.Fatalf("state %q, want crashed", rs.State)
			}
			found := verifyChildRun(t, s, committed)
			t.Logf("committed %d batches, readable after salvage %d (salvaged_batches=%s)", committed, found, rs.Meta["salvaged_batches"])
			if probs, err := s.Check("child"); err != nil || len(probs) != 0 {
				t.Fatalf("check: %v %v", probs, err)
			}
			// the store stays usable: reopen is idempotent, a new run can be written
			s2, err := Open(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if got := verifyChildRun(t, s2, committed); got != found {
				t.Fatalf("second open: %d batches, first %d", got, found)
			}
			w, err := s2.CreateRun(RunInfo{Name: "after"}, testLayers())
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(StateComplete); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCrash_Salvage kills a writer after it fsynced record batches but before it committed
// them: the next Open indexes them (FORMAT.md §9).
func TestCrash_Salvage(t *testing.T) {
	dir := t.TempDir()
	cmd, sc, _ := startChild(t, "salvage", dir)
	for _, want := range []string{"flushed 5", "synced 10"} {
		if !sc.Scan() || sc.Text() != want {
			t.Fatalf("child said %q, want %q (%v)", sc.Text(), want, sc.Err())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := verifyChildRun(t, ro, 5); got != 5 {
		t.Fatalf("before salvage: %d batches readable, want the 5 committed", got)
	}
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Run("child")
	if err != nil || rs.State != StateCrashed || rs.Batches != 10 || rs.Meta["salvaged_batches"] != "5" {
		t.Fatalf("after salvage: %+v %v", rs, err)
	}
	if got := verifyChildRun(t, s, 10); got != 10 {
		t.Fatalf("after salvage: %d batches readable, want 10", got)
	}
	if probs, err := s.Check(""); err != nil || len(probs) != 0 {
		t.Fatalf("check: %v %v", probs, err)
	}
}

// TestConcurrentReaderProcess: a child process records while this process lists and reads;
// every read succeeds, sees a growing prefix of the run, and finally the complete run.
func TestConcurrentReaderProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, sc, stdin := startChild(t, "record", dir)
	lines := make(chan string, 1000)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	s, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	reads := 0
	for reads < 30 {
		rs, err := s.Run("child")
		if err != nil {
			t.Fatalf("run while recording: %v", err)
		}
		if rs.State != StateRecording {
			t.Fatalf("state %q while the writer lives", rs.State)
		}
		got := verifyChildRun(t, s, last)
		if got < last {
			t.Fatalf("batches went from %d to %d", last, got)
		}
		last = got
		reads++
		if reads == 10 { // a full check of a run being recorded finds nothing wrong
			if probs, err := s.Check("child"); err != nil || len(probs) != 0 {
				t.Fatalf("check while recording: %v %v", probs, err)
			}
		}
		// a second writer of the same live run is refused
		if reads == 1 {
			rw, err := Open(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if err := rw.DeleteRun("child"); !errors.Is(err, ErrLocked) {
				t.Fatalf("DeleteRun of a live run: %v, want ErrLocked", err)
			}
			if _, err := rw.CreateRun(RunInfo{Name: "child"}, childLayers()); !errors.Is(err, ErrRunExists) {
				t.Fatalf("second CreateRun: %v, want ErrRunExists", err)
			}
			rw.Close()
		}
		time.Sleep(5 * time.Millisecond)
	}
	if last == 0 {
		t.Fatal("reader never saw a committed batch")
	}
	stdin.Close()
	var done int64 = -1
	for l := range lines {
		if n, ok := strings.CutPrefix(l, "done "); ok {
			done, _ = strconv.ParseInt(n, 10, 64)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	rs, err := s.Run("child")
	if err != nil || rs.State != StateComplete || int64(rs.Batches) != done {
		t.Fatalf("after close: %+v %v, want complete with %d batches", rs, err, done)
	}
	if got := verifyChildRun(t, s, done); got != done {
		t.Fatalf("read %d batches, child wrote %d", got, done)
	}
	t.Logf("%d reads during recording, last saw %d batches; final %d", reads, last, done)
}
