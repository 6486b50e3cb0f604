package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	bolt "go.etcd.io/bbolt"
)

// fixtureSegments returns the segment files of the committed fixtures.
func fixtureSegments(f *testing.F) [][]byte {
	paths, _ := filepath.Glob(filepath.Join(fixtureV1, "segments", "*", "*.arrow"))
	if len(paths) == 0 {
		f.Fatal("no fixture segments in testdata")
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// readSegmentBytes exercises every reader of segment bytes the store has: header and schema,
// the message walk of salvage, record decoding, row extraction, and the footer reader.
func readSegmentBytes(data []byte) {
	sf, err := newSegFile("fuzz.arrow", data)
	if err != nil {
		return
	}
	defer sf.close()
	kind := kindStats
	if checkSchema(sf.schema, kindStats) != nil {
		kind = kindTensor
		if checkSchema(sf.schema, kindTensor) != nil {
			return
		}
	}
	pos := sf.end
	for i := 0; i < 64; i++ {
		msg, next, err := sf.messageAt(pos, -1)
		if err != nil {
			break
		}
		if msg.Type() != ipc.MessageRecordBatch {
			msg.Release()
			break
		}
		rec, err := sf.decode(msg, pos)
		if err != nil {
			break
		}
		readRows(rec, kind)
		rec.Release()
		pos = next
	}
	if err := sf.openFooter(); err == nil {
		for i := 0; i < len(sf.blocks) && i < 64; i++ {
			rec, err := sf.footerRecord(i, sf.blocks[i].offset, sf.blocks[i].length)
			if err == nil {
				readRows(rec, kind)
				rec.Release()
			}
		}
	}
}

func readRows(rec arrow.RecordBatch, kind byte) {
	if kind == kindStats {
		for i := 0; i < int(rec.NumRows()); i++ {
			_, _ = statsRowAt(rec, i)
		}
		return
	}
	vals, n, err := tensorValues(rec.Column(tcTensor))
	if err != nil {
		return
	}
	samples := rec.Column(tcSample).(*array.Int32)
	for i := 0; i < int(rec.NumRows()); i++ {
		_ = samples.Value(i)
		_ = vals[i*n : (i+1)*n]
	}
}

func FuzzSegmentReader(f *testing.F) {
	for _, b := range fixtureSegments(f) {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("ARROW1\x00\x00\xff\xff\xff\xff\x10\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		readSegmentBytes(data)
	})
}

// TestSegmentReader_Mutations runs the fuzz target over every single-byte change and every
// truncation of a fixture segment (a deterministic slice of what fuzzing explores).
func TestSegmentReader_Mutations(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(fixtureV1, "segments", "0000000000000001", "*.arrow"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); i += 3 {
			m := bytes.Clone(data)
			m[i] ^= 0xff
			readSegmentBytes(m)
			readSegmentBytes(data[:i])
		}
	}
}

// fixtureIndexValues returns every value of the fixture's index.db, by bucket.
func fixtureIndexValues(f *testing.F) map[string][][]byte {
	db, err := bolt.Open(filepath.Join(fixtureV1, indexFile), 0o444, &bolt.Options{ReadOnly: true})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	out := map[string][][]byte{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out[string(name)] = append(out[string(name)], bytes.Clone(k), bytes.Clone(v))
				return nil
			})
		})
	})
	if err != nil {
		f.Fatal(err)
	}
	return out
}

// FuzzIndexValue feeds bytes to every decoder of index.db keys and values; a value that
// decodes must re-encode to the same bytes (binary records) and never panic.
func FuzzIndexValue(f *testing.F) {
	for _, vals := range fixtureIndexValues(f) {
		for _, v := range vals {
			f.Add(v)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, err := decodeEntry(data); err == nil && !bytes.Equal(e.encode(), data) {
			t.Fatalf("entry %x re-encodes to %x", data, e.encode())
		}
		if s, err := decodeSegment(data); err == nil && !bytes.Equal(s.encode(), data) {
			t.Fatalf("segment %x re-encodes to %x", data, s.encode())
		}
		if k, err := decodeEntryKey(data); err == nil && !bytes.Equal(k.encode(), data) {
			t.Fatalf("entry key %x re-encodes to %x", data, k.encode())
		}
		if r, err := decodeRun(data); err == nil {
			if validName(r.Info.Name) != nil {
				t.Fatal("decoded run with invalid name")
			}
		}
		if len(data) >= 8 { // a run key and its value
			if r, err := decodeRunAt(data[:8], data[8:]); err == nil && r.ID != binary.BigEndian.Uint64(data) {
				t.Fatal("decoded run record under another id")
			}
		}
		if len(keyHex(data)) > 128 {
			t.Fatalf("keyHex of %d bytes gives %d characters", len(data), len(keyHex(data)))
		}
		if l, err := decodeLayer(data); err == nil {
			if _, err := shapeSize(l.Shape); err != nil {
				t.Fatal("decoded layer with invalid shape")
			}
		}
	})
}

// FuzzIndexPage damages the fixture's index.db (xor of val at off, 4 bytes little-endian,
// as a flipped page header or element field would) and calls every public read method (not
// the read-write Open: bbolt loads a damaged freelist slowly, TestIndex_CorruptionError covers it): none
// may crash or panic; errors are ErrNotFound, ErrVersion or a *CorruptionError.
func FuzzIndexPage(f *testing.F) {
	ps := int64(os.Getpagesize())
	for _, p := range []int64{2, 3, 4, 5, 6, 7} {
		for _, o := range []int64{10, 22, 26} {
			f.Add(uint32(p*ps+o), uint32(0x10))
		}
		f.Add(uint32(p*ps+20), uint32(0x7fffffff))
	}
	index, err := os.ReadFile(filepath.Join(fixtureV1, indexFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, off, val uint32) {
		if int(off) > len(index)-4 {
			return
		}
		dir := t.TempDir()
		copyDir(t, fixtureV1, dir)
		b := bytes.Clone(index)
		binary.LittleEndian.PutUint32(b[off:], binary.LittleEndian.Uint32(b[off:])^val)
		if err := os.WriteFile(filepath.Join(dir, indexFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		for m, err := range readAll(dir, []string{"complete", "lz4", "crashed"}, []string{"conv1", "fc"}, false) {
			var ce *CorruptionError
			if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrVersion) && !errors.As(err, &ce) {
				t.Errorf("%s: %v, want a *CorruptionError", m, err)
			}
		}
	})
}

// FuzzSalvage fuzzes the bytes a crashed writer left after its last commit:
// a run whose three batches were written but never committed (the process
// died before the commit) has one segment file replaced with the input
// (seeded with the real file, cut and whole), then a read-write Open
// salvages the run. Neither Open nor the reads and Check after it may crash
// or panic; errors are ErrNotFound or a *CorruptionError, and salvage adds
// only batches that read back.
func FuzzSalvage(f *testing.F) {
	tmpl := f.TempDir()
	s, err := Open(tmpl, testOptions())
	if err != nil {
		f.Fatal(err)
	}
	w, err := s.CreateRun(RunInfo{Name: "r"}, testLayers())
	if err != nil {
		f.Fatal(err)
	}
	appendFixtureBatches(f, w, 0, 3)
	writeNoCommit(f, w)
	abandon(w)
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(tmpl, segmentsDir, "*", "*.arrow"))
	if len(segs) == 0 {
		f.Fatal("no segment files written")
	}
	for i, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
		f.Add(uint8(i), b[:len(b)*2/3])
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		dir := t.TempDir()
		copyDir(t, tmpl, dir)
		rel, _ := filepath.Rel(tmpl, segs[int(which)%len(segs)])
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, testOptions())
		var ce *CorruptionError
		if err != nil {
			if !errors.As(err, &ce) {
				t.Fatalf("Open: %v, want a *CorruptionError", err)
			}
			return
		}
		defer s.Close()
		rs, err := s.Run("r")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range testLayers() {
			if _, err := s.Stats("r", l.Path, BatchRange{}); err != nil && !errors.As(err, &ce) {
				t.Errorf("Stats %s: %v", l.Path, err)
			}
			err := s.Tensors("r", l.Path, BatchRange{}, func(TensorRow) error { return nil })
			if err != nil && !errors.As(err, &ce) {
				t.Errorf("Tensors %s: %v", l.Path, err)
			}
		}
		if probs, err := s.Check("r"); err != nil || len(probs) > 0 {
			t.Errorf("salvaged run %+v: check %v %v (salvage must add only entries that read back)", rs, probs, err)
		}
	})
}

// A segment whose first message is the end-of-stream marker (found by FuzzSalvage) is
// corrupt, not io.EOF: salvage must skip it rather than fail Open.
func TestSegmentReader_EOSInsteadOfSchema(t *testing.T) {
	_, err := newSegFile("s.arrow", []byte("ARROW1\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00"))
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *CorruptionError", err)
	}
}
