package store

// Tests of pagecheck.go against real bbolt files (from a review of the checker): every
// valid layout is accepted (page sizes, freelist encodings, inline, nested and empty
// buckets, overflow and branch pages, pending ids), and the damage it exists to catch is
// refused.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func pcBuild(t *testing.T, path string, o *bolt.Options, fill func(db *bolt.DB) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o644, o)
	if err != nil {
		t.Fatal(err)
	}
	if fill != nil {
		if err := fill(db); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			return e
		}
		return nil
	}); err != nil {
		t.Fatalf("bbolt check: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func pcFill(db *bolt.DB) error {
	// many top-level buckets, empty, inline, nested (inline inside non-inline), overflow values
	if err := db.Update(func(tx *bolt.Tx) error {
		for i := 0; i < 300; i++ {
			b, err := tx.CreateBucket([]byte(fmt.Sprintf("b%04d", i)))
			if err != nil {
				return err
			}
			switch i % 5 {
			case 0: // empty
			case 1: // inline
				b.Put([]byte("k"), []byte("v"))
			case 2: // nested, inner inline and empty
				n, _ := b.CreateBucket([]byte("n"))
				n.Put([]byte("x"), []byte("y"))
				n.CreateBucket([]byte("empty"))
				d, _ := n.CreateBucket([]byte("deep"))
				d.CreateBucket([]byte("deeper"))
			case 3: // many keys -> branch pages
				for j := 0; j < 5000; j++ {
					b.Put([]byte(fmt.Sprintf("key%08d", j)), make([]byte, 40))
				}
			case 4: // overflow values
				b.Put([]byte("big"), make([]byte, 200000))
				b.Put([]byte("big2"), make([]byte, 9000))
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// a reader open while writes free pages -> pending ids in the freelist
	rtx, err := db.Begin(false)
	if err != nil {
		return err
	}
	defer rtx.Rollback()
	for r := 0; r < 3; r++ {
		if err := db.Update(func(tx *bolt.Tx) error {
			for i := 3; i < 300; i += 5 {
				b := tx.Bucket([]byte(fmt.Sprintf("b%04d", i)))
				for j := r; j < 5000; j += 3 {
					b.Delete([]byte(fmt.Sprintf("key%08d", j)))
				}
			}
			for i := 4; i < 300; i += 10 {
				tx.Bucket([]byte(fmt.Sprintf("b%04d", i))).Delete([]byte("big"))
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func pcMany(db *bolt.DB) error { // > 0xFFFF free ids
	for r := 0; r < 8; r++ {
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("m"))
			if err != nil {
				return err
			}
			for j := 0; j < 10000; j++ {
				b.Put([]byte(fmt.Sprintf("%d-%08d", r, j)), make([]byte, 1100))
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("m")) })
}

func TestPageCheck_PageCheckAccepts(t *testing.T) {
	// (the review that wrote these ran every combination of page sizes 0, 1024, 4096,
	// 16384, 65536, both freelist types and NoFreelistSync: 17 s; CI runs a third of it)
	for _, ps := range []int{0, 1024, 65536} {
		for _, nfs := range []bool{false, true} {
			for _, ft := range []bolt.FreelistType{bolt.FreelistMapType} {
				name := fmt.Sprintf("ps%d-nofreelistsync%v-%s", ps, nfs, ft)
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					o := &bolt.Options{PageSize: ps, NoFreelistSync: nfs, FreelistType: ft, InitialMmapSize: 1 << 30}
					for _, c := range []struct {
						n string
						f func(*bolt.DB) error
					}{{"empty", nil}, {"fill", pcFill}, {"many", pcMany}} {
						if c.n == "many" && ps > 4096 {
							continue
						}
						p := filepath.Join(dir, c.n+".db")
						pcBuild(t, p, o, c.f)
						if _, err := checkIndexPages(p); err != nil {
							t.Errorf("%s: %v", c.n, err)
						}
						// reopen with default options (as the Store does) and check again
						pcBuild(t, p, nil, nil)
						if _, err := checkIndexPages(p); err != nil {
							t.Errorf("%s reopened: %v", c.n, err)
						}
					}
				})
			}
		}
	}
}

// bbolt opens a file whose meta page 0 is torn (zeroed) using meta 1, scanning for it.
func TestPageCheck_TornMeta0(t *testing.T) {
	for _, ps := range []int{4096, 16384, 65536} {
		p := filepath.Join(t.TempDir(), "x.db")
		pcBuild(t, p, &bolt.Options{PageSize: ps, InitialMmapSize: 1 << 30}, pcFill)
		b, _ := os.ReadFile(p)
		clear(b[:64])
		os.WriteFile(p, b, 0o644)
		db, err := bolt.Open(p, 0o644, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Logf("ps %d: bbolt refuses: %v", ps, err)
			continue
		}
		db.Close()
		_, err = checkIndexPages(p)
		t.Logf("ps %d: bbolt opens; checkIndexPages: %v", ps, err)
		if err != nil {
			t.Errorf("ps %d: false positive: %v", ps, err)
		}
	}
}

// An inline bucket's page id is 0 in every file bbolt writes; bbolt's node.read copies it
// into node.pgid, and node.spill frees tx.page(pgid) once the bucket outgrows inline, so a
// damaged one (far outside the file, or a live page) must be refused.
func TestPageCheck_InlinePageID(t *testing.T) {
	for _, bad := range []uint64{1 << 30, 0} {
		p := filepath.Join(t.TempDir(), "x.db")
		pcBuild(t, p, nil, func(db *bolt.DB) error {
			return db.Update(func(tx *bolt.Tx) error {
				a, _ := tx.CreateBucket([]byte("a"))
				for j := 0; j < 200; j++ {
					a.Put([]byte(fmt.Sprintf("k%05d", j)), make([]byte, 30))
				}
				in, _ := a.CreateBucket([]byte("in"))
				return in.Put([]byte("INLINEKEY"), []byte("v"))
			})
		})
		if _, err := checkIndexPages(p); err != nil {
			t.Fatalf("undamaged: %v", err)
		}
		b, _ := os.ReadFile(p)
		k := -1
		for i := range b {
			if string(b[i:min(i+9, len(b))]) == "INLINEKEY" {
				k = i
				break
			}
		}
		if k < 0 || binary.LittleEndian.Uint16(b[k-24:]) != leafPageFlag {
			t.Fatal("inline page not found")
		}
		if bad == 0 { // a live page: the page holding the inline bucket itself
			bad = uint64(k) / uint64(os.Getpagesize())
		}
		binary.LittleEndian.PutUint64(b[k-32:], bad) // inline page id
		os.WriteFile(p, b, 0o644)
		var ce *CorruptionError
		if _, err := checkIndexPages(p); !errors.As(err, &ce) {
			t.Errorf("inline page id %d: %v, want a *CorruptionError", bad, err)
		}
	}
}

// bbolt reads the freelist page as it opens for writing: a damaged count (2^43 ids, which
// bbolt would allocate) must be refused by the check under a read-only open first.
func TestPageCheck_FreelistBeforeWriteOpen(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, fixtureV1, dir)
	p := filepath.Join(dir, indexFile)
	b, _ := os.ReadFile(p)
	m, err := readIndexMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.freelist == noFreelist {
		t.Skip("fixture has no freelist page")
	}
	off := m.freelist * m.pageSize
	binary.LittleEndian.PutUint16(b[off+10:], 0xffff)
	binary.LittleEndian.PutUint64(b[off+16:], 1<<43)
	os.WriteFile(p, b, 0o644)
	var ce *CorruptionError
	if _, err := checkIndexPages(p); !errors.As(err, &ce) {
		t.Fatalf("checkIndexPages: %v, want a *CorruptionError", err)
	}
	s, err := Open(dir, testOptions())
	if err == nil {
		s.Close()
	}
	if !errors.As(err, &ce) {
		t.Fatalf("Open: %v, want a *CorruptionError", err)
	}
}

// A freelist of more than 0xffff ids (count 0xffff, the real count in the first id slot)
// spread over overflow pages is accepted.
func TestPageCheck_BigFreelist(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.db")
	pcBuild(t, p, &bolt.Options{PageSize: 1024, InitialMmapSize: 1 << 30}, pcMany)
	b, _ := os.ReadFile(p)
	m, _ := readIndexMeta(b)
	if off := m.freelist * m.pageSize; binary.LittleEndian.Uint16(b[off+10:]) != 0xffff {
		t.Fatal("the freelist does not use the 0xffff count")
	}
	if _, err := checkIndexPages(p); err != nil {
		t.Fatal(err)
	}
}
