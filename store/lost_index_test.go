package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// snapshot lists every file of dir with its bytes, to show an operation changed nothing.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel+"/"] = nil
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// TestOpen_CorruptionError_LostIndex: an index.db that is missing, empty or too small next to
// recorded segments is a CorruptionError naming index.db, from Open and OpenReadOnly, and
// nothing on disk changes (a new index would hand out the ids of the old runs again).
func TestOpen_CorruptionError_LostIndex(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(path string) error
		readErr bool   // OpenReadOnly fails too (a missing index.db is ErrNotFound there)
		msg     string // in the error of Open
	}{
		{"missing", os.Remove, false, "segments/ holds 2 entries"},
		{"empty", func(p string) error { return os.Truncate(p, 0) }, true, "empty (0 bytes), but segments/ holds 2 entries"},
		{"4096_bytes", func(p string) error { return os.Truncate(p, 4096) }, true, "file size too small"},
		{"half", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()/2)
		}, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			writeRun(t, s, "a", 2, true)
			writeRun(t, s, "b", 2, true)
			s.Close()
			if err := c.damage(filepath.Join(dir, indexFile)); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			_, err = Open(dir, testOptions())
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.File != indexFile {
				t.Fatalf("Open: %v, want a *CorruptionError naming %s", err, indexFile)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Open: %v, want it to say %q", err, c.msg)
			}
			if c.name == "missing" || c.name == "empty" {
				if !strings.Contains(err.Error(), "nothing was changed") {
					t.Fatalf("Open: %v, want it to say nothing was changed", err)
				}
			}
			_, err = OpenReadOnly(dir)
			if c.readErr && (!errors.As(err, &ce) || ce.File != indexFile) {
				t.Fatalf("OpenReadOnly: %v, want a *CorruptionError naming %s", err, indexFile)
			}
			if !c.readErr && !errors.Is(err, ErrNotFound) {
				t.Fatalf("OpenReadOnly: %v, want ErrNotFound", err)
			}
			if after := snapshot(t, dir); !sameSnapshot(before, after) {
				t.Fatal("a failed Open changed the store directory")
			}
		})
	}
}

// TestOpen_NewStore: a new store is still created where there is nothing to lose: no
// directory, an empty directory, an empty index.db (creation interrupted) with no segments.
func TestOpen_NewStore(t *testing.T) {
	cases := []struct {
		name  string
		setup func(dir string) error
	}{
		{"no_dir", func(dir string) error { return os.Remove(dir) }},
		{"empty_dir", func(string) error { return nil }},
		{"empty_index_no_segments", func(dir string) error {
			os.Mkdir(filepath.Join(dir, segmentsDir), 0o755)
			return os.WriteFile(filepath.Join(dir, indexFile), nil, 0o644)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := c.setup(dir); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			writeRun(t, s, "a", 2, true)
			checkFixtureRun(t, s, "a", 2)
		})
	}
}

// TestStore_CorruptionError_IndexRemovedWhileOpen: once open, no operation creates or
// initialises index.db again.
func TestStore_CorruptionError_IndexRemovedWhileOpen(t *testing.T) {
	for _, name := range []string{"removed", "emptied"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			writeRun(t, s, "a", 1, true)
			path := filepath.Join(dir, indexFile)
			if name == "removed" {
				err = os.Remove(path)
			} else {
				err = os.Truncate(path, 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.CreateRun(RunInfo{Name: "b"}, testLayers())
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.File != indexFile {
				t.Fatalf("CreateRun: %v, want a *CorruptionError naming %s", err, indexFile)
			}
			if _, err := s.Runs(); !errors.As(err, &ce) || ce.File != indexFile {
				t.Fatalf("Runs: %v, want a *CorruptionError naming %s", err, indexFile)
			}
			if fi, err := os.Stat(path); err == nil && fi.Size() != 0 {
				t.Fatalf("index.db re-created (%d bytes)", fi.Size())
			}
		})
	}
}

// setNextRunID sets the run id sequence of an index, as an index.db restored from an older
// backup would have it.
func setNextRunID(t *testing.T, dir string, seq uint64) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, indexFile), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketNames).SetSequence(seq) }); err != nil {
		t.Fatal(err)
	}
}

// TestCreateRun_CorruptionError_RunDirExists: CreateRun never reuses a segment directory.
// One with files of a run the index does not know (index.db older than the segments) is a
// CorruptionError and is left as it is; one with only a LOCK file, left by a CreateRun that
// crashed before its commit, is skipped and later removed by Reclaim.
func TestCreateRun_CorruptionError_RunDirExists(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	writeRun(t, s, "a", 2, true)
	writeRun(t, s, "b", 2, true) // id 2
	// the index forgets that it handed out id 2 (and run b: a restored backup)
	if err := s.DeleteRun("b"); err != nil {
		t.Fatal(err)
	}
	copyDir(t, filepath.Join(dir, "segments", "0000000000000001"), filepath.Join(dir, "segments", "0000000000000002"))
	os.Remove(filepath.Join(dir, "segments", "0000000000000002", "LOCK"))
	setNextRunID(t, dir, 1)
	db, err := bolt.Open(filepath.Join(dir, indexFile), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketDeleted) })
	db.Close()
	before := snapshot(t, filepath.Join(dir, "segments"))

	_, err = s.CreateRun(RunInfo{Name: "c"}, testLayers())
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.File != indexFile || !strings.Contains(err.Error(), "0000000000000002 already exists") {
		t.Fatalf("CreateRun over the directory of a run: %v, want a *CorruptionError naming it", err)
	}
	if _, err := s.Run("c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed CreateRun left a run: %v", err)
	}
	if freed, err := s.Reclaim(); err != nil || freed != 0 {
		t.Fatalf("Reclaim: %d bytes, %v; want nothing removed", freed, err)
	}
	if after := snapshot(t, filepath.Join(dir, "segments")); !sameSnapshot(before, after) {
		t.Fatal("CreateRun or Reclaim changed the directory of an unknown run")
	}

	// a LOCK-only directory at the next id: skipped
	os.RemoveAll(filepath.Join(dir, "segments", "0000000000000002"))
	lockOnly := filepath.Join(dir, "segments", "0000000000000002")
	os.Mkdir(lockOnly, 0o755)
	os.WriteFile(filepath.Join(lockOnly, "LOCK"), nil, 0o644)
	w, err := s.CreateRun(RunInfo{Name: "c"}, testLayers())
	if err != nil {
		t.Fatalf("CreateRun next to a LOCK-only directory: %v", err)
	}
	if w.id != 3 {
		t.Fatalf("run id %d, want 3 (id 2 skipped)", w.id)
	}
	if err := w.Close(StateComplete); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reclaim(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lockOnly); !os.IsNotExist(err) {
		t.Fatalf("Reclaim kept the LOCK-only directory of a handed-out id: %v", err)
	}
	checkFixtureRun(t, s, "a", 2)
}

// TestRemoveRun_Freed: RemoveRun reports the bytes it removed; Reclaim after it has nothing
// left to free (so a caller adds both).
func TestRemoveRun_Freed(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	writeRun(t, s, "a", 3, true)
	want := dirSize(filepath.Join(dir, "segments", "0000000000000001"))
	freed, err := s.RemoveRun("a")
	if err != nil || freed != want || want == 0 {
		t.Fatalf("RemoveRun: %d bytes, %v; want %d", freed, err, want)
	}
	if more, err := s.Reclaim(); err != nil || more != 0 {
		t.Fatalf("Reclaim after RemoveRun: %d, %v", more, err)
	}
	if _, err := s.RemoveRun("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveRun of a removed run: %v, want ErrNotFound", err)
	}
}
