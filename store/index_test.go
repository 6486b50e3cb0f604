package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// bbolt page layout (go.etcd.io/bbolt/internal/common/page.go): id u64, flags u16, count u16,
// overflow u32, then the elements. A leaf element is flags, pos, ksize, vsize (u32 each); a
// branch element is pos, ksize u32, pgid u64. Byte 10 is the element count, 22 the first
// element's pos (leaf) or ksize (branch), 26 its ksize (leaf) or pgid (branch): a flip there
// sends bbolt outside its memory map.
const (
	bboltBranchPage = 0x01
	bboltLeafPage   = 0x02
)

// indexPages returns the offsets of the branch and leaf pages of an index.db file.
func indexPages(t testing.TB, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(os.Getpagesize())
	var out []int64
	for off := 2 * ps; off+16 <= int64(len(b)); off += ps {
		if binary.LittleEndian.Uint64(b[off:]) != uint64(off/ps) {
			continue // an overflow page of a large value, or free
		}
		if f := binary.LittleEndian.Uint16(b[off+8:]); f == bboltBranchPage || f == bboltLeafPage {
			out = append(out, off)
		}
	}
	return out
}

// readAll calls every public read method of a store on runs and layers and returns their
// errors by method; with open also a read-write Open (whose recovery writes).
func readAll(dir string, runs []string, layers []string, open bool) map[string]error {
	errs := map[string]error{}
	s, err := OpenReadOnly(dir)
	if err != nil {
		errs["OpenReadOnly"] = err
		return errs
	}
	defer s.Close()
	_, errs["Runs"] = s.Runs()
	for _, r := range runs {
		_, errs["Run "+r] = s.Run(r)
		_, errs["Layers "+r] = s.Layers(r)
		for _, l := range layers {
			_, errs["Stats "+r+"/"+l] = s.Stats(r, l, BatchRange{})
			_, errs["Stats range "+r+"/"+l] = s.Stats(r, l, BatchRange{From: 1, To: 3})
			errs["Tensors "+r+"/"+l] = s.Tensors(r, l, BatchRange{}, func(TensorRow) error { return nil })
			_, errs["Entries "+r+"/"+l] = s.Entries(r, l, BatchRange{})
		}
		_, errs["Check "+r] = s.Check(r)
	}
	_, errs["Check"] = s.Check("")
	if open {
		rw, err := Open(dir, testOptions())
		errs["Open"] = err
		if err == nil {
			rw.Close()
		}
	}
	return errs
}

// TestIndex_CorruptionError flips bytes of the page headers and first elements of every
// branch and leaf page of a real index.db. Before bbolt transactions were guarded, such flips
// crashed the process with a fault ("unexpected fault address") or an out-of-range panic
// inside bbolt. Every read method must now return: either a result, or an error that is
// ErrNotFound (a damaged name) or a *CorruptionError.
func TestIndex_CorruptionError(t *testing.T) {
	base := t.TempDir()
	s, err := Open(base, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	runs := []string{"a", "b", "c"}
	for _, r := range runs {
		writeRun(t, s, r, 12, true)
	}
	s.Close()
	pages := indexPages(t, filepath.Join(base, indexFile))
	if len(pages) < 4 {
		t.Fatalf("index.db has %d branch/leaf pages, want several", len(pages))
	}
	t.Logf("%d branch and leaf pages", len(pages))
	layers := []string{"conv1", "fc"}
	cases := []struct {
		name string
		off  int64 // in the page
		mut  func(b []byte)
	}{
		{"count_flip", 10, func(b []byte) { b[0] ^= 0x10 }},
		{"elem_pos_flip", 22, func(b []byte) { b[0] ^= 0x10 }},
		{"elem_size_flip", 26, func(b []byte) { b[0] ^= 0x10 }},
		{"elem_pos_huge", 20, func(b []byte) { copy(b, []byte{0xff, 0xff, 0xff, 0x7f}) }},
	}
	indexErrs := 0
	for _, c := range cases {
		for _, p := range pages {
			t.Run(c.name+"/page"+strconv.FormatInt(p/int64(os.Getpagesize()), 10), func(t *testing.T) {
				dir := t.TempDir()
				copyDir(t, base, dir)
				path := filepath.Join(dir, indexFile)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				c.mut(b[p+c.off:])
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				for m, err := range readAll(dir, runs, layers, true) {
					if err == nil || errors.Is(err, ErrNotFound) {
						continue
					}
					var ce *CorruptionError
					if !errors.As(err, &ce) {
						t.Errorf("%s: %v, want a *CorruptionError", m, err)
						continue
					}
					if ce.File == indexFile {
						indexErrs++
					}
					if strings.Contains(err.Error(), "\x00") || len(err.Error()) > 4096 {
						t.Errorf("%s: error of %d bytes: %.200q", m, len(err.Error()), err.Error())
					}
				}
			})
		}
	}
	if indexErrs == 0 {
		t.Fatal("no read reported a corrupt index.db: the damage missed")
	}
}

// A branch element whose child page id points far outside index.db (the fuzz input
// off=16492 val=756 of FuzzIndexPage, which made bbolt form a pointer into the Go heap and
// the garbage collector stop the process) is refused by the page check before bbolt reads
// the page; every child id, element offset and page of a valid index passes it.
func TestIndex_PageCheck(t *testing.T) {
	if txid, err := checkIndexPages(filepath.Join(fixtureV1, indexFile)); err != nil || txid == 0 {
		t.Fatalf("fixture: txid %d, %v", txid, err)
	}
	index, err := os.ReadFile(filepath.Join(fixtureV1, indexFile))
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	damage := func(t *testing.T, page, field int, val uint32) map[string]error {
		dir := t.TempDir()
		copyDir(t, fixtureV1, dir)
		b := bytes.Clone(index)
		off := page*ps + field
		binary.LittleEndian.PutUint32(b[off:], binary.LittleEndian.Uint32(b[off:])^val)
		if err := os.WriteFile(filepath.Join(dir, indexFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return readAll(dir, []string{"complete"}, []string{"conv1"}, true)
	}
	// (16492 = 4*4096 + 108 on 4 KiB pages: page 4, element 5's child id)
	errs := damage(t, 16492/ps, 16492%ps, 756)
	n := 0
	for m, err := range errs {
		var ce *CorruptionError
		if err == nil {
			continue
		}
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "page check") {
			t.Errorf("%s: %v, want a *CorruptionError from the page check", m, err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("the damaged index read without error")
	}
}
