package store

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	bolt "go.etcd.io/bbolt"
)

// writeRun records batches 0..n-1 of stats and tensors of testLayers into run name. With
// seal false the writer is abandoned after a Flush (as if its process died), leaving
// committed but unsealed segments.
func writeRun(t testing.TB, s *Store, name string, n int64, seal bool) {
	t.Helper()
	w, err := s.CreateRun(RunInfo{Name: name, Model: "m"}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	for b := int64(0); b < n; b++ {
		for _, l := range testLayers() {
			sz, _ := shapeSize(l.Shape)
			if err := w.AppendStats(l.Path, statsRow(b)); err != nil {
				t.Fatal(err)
			}
			if err := w.AppendTensors(l.Path, tensorRow(b, 0, sz), tensorRow(b, 1, sz)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if seal {
		if err := w.Close(StateComplete); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	abandon(w)
}

// abandon drops a writer without closing it, like a killed process: its lock is released,
// its segments stay unsealed, its run stays "recording".
func abandon(w *Writer) {
	if w.stop != nil {
		close(w.stop)
		<-w.done
	}
	w.fmu.Lock()
	defer w.fmu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for _, sw := range w.openSegments() {
		sw.close()
	}
	w.lock.release()
	w.s.wmu.Lock()
	delete(w.s.writers, w)
	w.s.wmu.Unlock()
}

// writeNoCommit writes and fsyncs the buffered rows like a flush, but does not commit them,
// as if the process died just before its commit.
func writeNoCommit(t testing.TB, w *Writer) {
	t.Helper()
	w.fmu.Lock()
	defer w.fmu.Unlock()
	sb, tb, err := w.swap(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.writeBuffers(&sb, tb, false); err != nil {
		t.Fatal(err)
	}
}

func firstEntry(t *testing.T, s *Store, run, layer string, kind byte) (entry, string) {
	t.Helper()
	lu, err := s.find(run, layer, kind, BatchRange{})
	if err != nil || len(lu.ents) == 0 {
		t.Fatalf("find: %v (%d entries)", err, len(lu.ents))
	}
	return lu.ents[0], segRel(lu.run.ID, lu.ents[0].seq)
}

// TestCorruption is the corruption matrix: each case damages one file of a store and expects
// an exact error from a reader and a Problem from Check; nothing panics.
func TestCorruption(t *testing.T) {
	type damage func(t *testing.T, dir string, e entry, rel string) (wantFile string, wantOff int64, wantIs error)
	cases := []struct {
		name   string
		damage damage
	}{
		{"truncated", func(t *testing.T, dir string, e entry, rel string) (string, int64, error) {
			cut := int64(e.offset) + int64(e.length) - 40
			if err := os.Truncate(filepath.Join(dir, rel), cut); err != nil {
				t.Fatal(err)
			}
			return rel, int64(e.offset), io.ErrUnexpectedEOF // the entry cut short
		}},
		{"bit_flipped_body", func(t *testing.T, dir string, e entry, rel string) (string, int64, error) {
			flipBit(t, filepath.Join(dir, rel), int64(e.offset+e.length)-9)
			return rel, int64(e.offset), nil
		}},
		{"bit_flipped_prefix", func(t *testing.T, dir string, e entry, rel string) (string, int64, error) {
			flipBit(t, filepath.Join(dir, rel), int64(e.offset)+1)
			return rel, int64(e.offset), nil
		}},
		{"wrong_magic", func(t *testing.T, dir string, e entry, rel string) (string, int64, error) {
			overwrite(t, filepath.Join(dir, rel), 0, []byte("PAR1\x00\x00\x00\x00"))
			return rel, 0, nil
		}},
		{"wrong_segment_version", func(t *testing.T, dir string, e entry, rel string) (string, int64, error) {
			writeSegmentWithVersion(t, filepath.Join(dir, rel), "2")
			return rel, 8, ErrVersion
		}},
		{"missing_segment", func(t *testing.T, dir string, e entry, rel string) (string, int64, error) {
			if err := os.Remove(filepath.Join(dir, rel)); err != nil {
				t.Fatal(err)
			}
			return rel, -1, os.ErrNotExist
		}},
		{"bad_index_entry", func(t *testing.T, dir string, e entry, rel string) (string, int64, error) {
			db, err := bolt.Open(filepath.Join(dir, indexFile), 0o644, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.Update(func(tx *bolt.Tx) error {
				var k []byte
				want := e.encode()
				tx.Bucket(bucketEntries).ForEach(func(kk, v []byte) error {
					if string(v) == string(want) {
						k = append([]byte{}, kk...)
					}
					return nil
				})
				bad := append([]byte{}, want...)
				binary.BigEndian.PutUint64(bad[8:], 12) // offset not 8-aligned
				return tx.Bucket(bucketEntries).Put(k, bad)
			})
			if err != nil {
				t.Fatal(err)
			}
			return indexFile, -1, nil
		}},
	}
	for _, seal := range []bool{true, false} {
		for _, c := range cases {
			name := c.name + map[bool]string{true: "/sealed", false: "/unsealed"}[seal]
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				s, err := Open(dir, testOptions())
				if err != nil {
					t.Fatal(err)
				}
				writeRun(t, s, "r", 3, seal)
				// the stats segment holds both layers; damage it, read through layer fc
				e, rel := firstEntry(t, s, "r", "fc", kindStats)
				wantFile, wantOff, wantIs := c.damage(t, dir, e, rel)
				ro, err := OpenReadOnly(dir)
				if err != nil {
					t.Fatal(err)
				}
				_, err = ro.Stats("r", "fc", BatchRange{})
				var ce *CorruptionError
				if !errors.As(err, &ce) {
					t.Fatalf("Stats: %v, want *CorruptionError", err)
				}
				if ce.File != wantFile || ce.Offset != wantOff {
					t.Fatalf("Stats: %v: file %q offset %d, want %q %d", err, ce.File, ce.Offset, wantFile, wantOff)
				}
				if wantIs != nil && !errors.Is(err, wantIs) {
					t.Fatalf("Stats: %v, want errors.Is %v", err, wantIs)
				}
				probs, err := ro.Check("r")
				if err != nil {
					t.Fatal(err)
				}
				if len(probs) == 0 {
					t.Fatal("Check found no problem")
				}
				var pce *CorruptionError
				if !errors.As(probs[0].Err, &pce) || pce.File != wantFile {
					t.Fatalf("Check: first problem %v, want corruption of %s", probs[0], wantFile)
				}
				// tensors of the undamaged segment are still readable
				if err := ro.Tensors("r", "conv1", BatchRange{}, func(TensorRow) error { return nil }); err != nil && c.name != "bad_index_entry" {
					t.Fatalf("undamaged tensors: %v", err)
				}
			})
		}
	}
}

func flipBit(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x10
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func overwrite(t *testing.T, path string, off int64, p []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}

// writeSegmentWithVersion replaces a stats segment by one of the same rows whose schema says
// format version v.
func writeSegmentWithVersion(t *testing.T, path, v string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md := segMetadata("stats", "r", "")
	keys, vals := md.Keys(), md.Values()
	vals[0] = v
	md2 := metadataOf(keys, vals)
	sch := arrow.NewSchema(statsFields, &md2)
	var buf statsBuffer
	buf.add(0, statsRow(0))
	rec := buf.record(memory.DefaultAllocator, sch, []string{"fc"}, 0, 1)
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fw, err := ipc.NewFileWriter(f, ipc.WithSchema(sch))
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	// keep the file at least as long as the index says
	if fi, _ := f.Stat(); fi.Size() < int64(len(data)) {
		f.Write(make([]byte, int64(len(data))-fi.Size()))
	}
}

func setIndexMeta(t *testing.T, dir string, key, val []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, indexFile), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(key, val) }); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_ErrVersion(t *testing.T) {
	cases := []struct {
		name     string
		key, val []byte
	}{
		{"version_2", keyVersion, []byte{0, 0, 0, 2}},
		{"version_0", keyVersion, []byte{0, 0, 0, 0}},
		{"version_short", keyVersion, []byte{1}},
		{"other_format", keyFormat, []byte("other-store")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			setIndexMeta(t, dir, c.key, c.val)
			if _, err := Open(dir, testOptions()); !errors.Is(err, ErrVersion) {
				t.Fatalf("Open: %v, want ErrVersion", err)
			}
			if _, err := OpenReadOnly(dir); !errors.Is(err, ErrVersion) {
				t.Fatalf("OpenReadOnly: %v, want ErrVersion", err)
			}
		})
	}
}

func TestOpen_CorruptIndex(t *testing.T) {
	dir := t.TempDir()
	garbage := make([]byte, 16384)
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, indexFile), garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, testOptions())
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.File != indexFile || ce.Offset != 0 {
		t.Fatalf("Open of garbage index: %v, want CorruptionError of %s at 0", err, indexFile)
	}
}

func TestOpen_ErrLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// another process (here: another open file) holds index.db read-write
	db, err := bolt.Open(filepath.Join(dir, indexFile), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	opts := testOptions()
	opts.LockTimeout = 30 * time.Millisecond
	if _, err := Open(dir, opts); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open: %v, want ErrLocked", err)
	}
}

func TestOpenReadOnly_ErrNotFound(t *testing.T) {
	if _, err := OpenReadOnly(filepath.Join(t.TempDir(), "nothing")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("%v, want ErrNotFound", err)
	}
}

func TestOpenReadOnly_ErrReadOnly(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, testOptions())
	s.Close()
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.CreateRun(RunInfo{Name: "x"}, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("CreateRun: %v", err)
	}
	if err := ro.DeleteRun("x"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("DeleteRun: %v", err)
	}
}

func TestCreateRun_ErrInvalidName(t *testing.T) {
	s, err := Open(t.TempDir(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"empty":      "",
		"nul":        "a\x00b",
		"newline":    "a\nb",
		"too_long":   strings.Repeat("x", 256),
		"not_utf8":   "\xff\xfe",
		"c1_control": "a\u0085b",
	}
	for name, n := range bad {
		t.Run("run/"+name, func(t *testing.T) {
			if _, err := s.CreateRun(RunInfo{Name: n}, nil); !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%v, want ErrInvalidName", err)
			}
		})
		t.Run("layer/"+name, func(t *testing.T) {
			if _, err := s.CreateRun(RunInfo{Name: "ok-" + name}, []LayerInfo{{Path: n, Shape: []int{1}}}); !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%v, want ErrInvalidName", err)
			}
		})
	}
	if _, err := s.CreateRun(RunInfo{Name: "dup"}, []LayerInfo{{Path: "a"}, {Path: "a"}}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("duplicate layer: %v", err)
	}
	if _, err := s.CreateRun(RunInfo{Name: "tag", Tags: map[string]string{"": "v"}}, nil); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("empty tag key: %v", err)
	}
}

// TestNames_CannotEscape: hostile but valid names are stored and read back, and every file
// the store creates lies under its directory with a name built from numbers only.
func TestNames_CannotEscape(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"../../escape", "/etc/passwd", "a/b\\c", "..", ".", "日本語 ✓", strings.Repeat("é", 127), "LOCK", "index.db"}
	for i, n := range names {
		w, err := s.CreateRun(RunInfo{Name: n}, []LayerInfo{{Path: n, Shape: []int{2}}})
		if err != nil {
			t.Fatalf("%q: %v", n, err)
		}
		if err := w.AppendTensors(n, TensorRow{Batch: int64(i), Data: []float32{1, 2}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(StateComplete); err != nil {
			t.Fatal(err)
		}
		var got int
		if err := s.Tensors(n, n, BatchRange{}, func(r TensorRow) error { got++; return nil }); err != nil || got != 1 {
			t.Fatalf("%q: %d rows, %v", n, got, err)
		}
	}
	ok := regexp.MustCompile(`^(index\.db|segments|segments/[0-9a-f]{16}|segments/[0-9a-f]{16}/(LOCK|[0-9a-f]{8}\.arrow))$`)
	err = filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if p == parent || rel == "." {
			return nil
		}
		if !ok.MatchString(filepath.ToSlash(rel)) {
			t.Errorf("unexpected path %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAppendTensors_ErrShape(t *testing.T) {
	s, _ := Open(t.TempDir(), testOptions())
	w, err := s.CreateRun(RunInfo{Name: "r"}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(StateComplete)
	if err := w.AppendTensors("fc", TensorRow{Data: make([]float32, 5)}); !errors.Is(err, ErrShape) {
		t.Fatalf("%v, want ErrShape", err)
	}
	if err := w.AppendTensors("nope", TensorRow{Data: make([]float32, 4)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("%v, want ErrNotFound", err)
	}
	for i, bad := range []StatsRow{
		{Hist: Histogram{Keys: []uint16{1}}},
		{Hist: Histogram{Keys: []uint16{0x3f80, 0x3f00}, Counts: []uint64{1, 1}}},
		{Count: -1},
	} {
		if err := w.AppendStats("fc", bad); !errors.Is(err, ErrShape) {
			t.Fatalf("bad stats row %d: %v, want ErrShape", i, err)
		}
	}
}

func TestWriter_ErrClosed(t *testing.T) {
	s, _ := Open(t.TempDir(), testOptions())
	w, err := s.CreateRun(RunInfo{Name: "r"}, testLayers())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(StateComplete); err != nil {
		t.Fatal(err)
	}
	if err := w.AppendTensors("fc", TensorRow{Data: make([]float32, 4)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := w.Close(StateComplete); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}

func TestCreateRun_ErrRunExists(t *testing.T) {
	s, _ := Open(t.TempDir(), testOptions())
	writeRun(t, s, "r", 1, true)
	if _, err := s.CreateRun(RunInfo{Name: "r"}, testLayers()); !errors.Is(err, ErrRunExists) {
		t.Fatalf("%v, want ErrRunExists", err)
	}
}

func metadataOf(keys, vals []string) arrow.Metadata { return arrow.NewMetadata(keys, vals) }

// A per-sample shape with no elements is refused when the run is created
// (Arrow has no fixed-size list of 0 values; arrow-go panicked at the
// first flush) and when a layer record says so (decodeLayer).
func TestCreateRun_ZeroElementShape(t *testing.T) {
	s, _ := Open(t.TempDir(), testOptions())
	defer s.Close()
	for _, shape := range [][]int{{3, 0}, {0}} {
		_, err := s.CreateRun(RunInfo{Name: "r"}, []LayerInfo{{Path: "empty", Shape: shape}})
		if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), "empty") {
			t.Fatalf("shape %v: %v, want ErrShape naming the layer", shape, err)
		}
	}
	if _, err := decodeLayer([]byte(`{"v":1,"path":"l","op":"Id","shape":[0],"order":0}`)); err == nil {
		t.Fatal("decodeLayer accepted shape [0]")
	}
}

// Only the segment file names the store writes are taken for segments
// (Reclaim deletes unreferenced ones: never a file it did not create).
func TestParseSegFileName(t *testing.T) {
	for name, ok := range map[string]bool{
		"0000000a.arrow": true, "00000000.arrow": true, "ffffffff.arrow": true,
		"0000000A.arrow": false, "0000000a.ARROW": false, "000000a.arrow": false, "0000000g.arrow": false,
	} {
		if _, got := parseSegFileName(name); got != ok {
			t.Errorf("parseSegFileName(%q) ok = %v, want %v", name, got, ok)
		}
	}
}

// A sealed segment cut by a byte (its footer's end) keeps every entry
// readable (FORMAT.md §8: only the footer is lost); Check reports it.
func TestTruncatedFooterKeepsEntries(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	writeRun(t, s, "r", 3, true)
	want, err := s.Stats("r", "fc", BatchRange{})
	if err != nil {
		t.Fatal(err)
	}
	_, rel := firstEntry(t, s, "r", "fc", kindStats)
	s.Close()
	path := filepath.Join(dir, rel)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got, err := ro.Stats("r", "fc", BatchRange{})
	if err != nil || len(got) != len(want) {
		t.Fatalf("Stats after a 1-byte cut: %d rows, %v; want %d rows", len(got), err, len(want))
	}
	probs, err := ro.Check("r")
	if err != nil || len(probs) == 0 {
		t.Fatalf("Check: %v, %v; want the footer reported", probs, err)
	}
	if probs[0].File != rel {
		t.Fatalf("Check: %+v, want a problem in %s", probs[0], rel)
	}
}
