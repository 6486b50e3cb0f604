package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRead_DamagedFooter: a sealed segment whose footer is damaged stays readable. Entries
// are located by offset from the index and CRC-checked, so readers fall back to the message
// at the offset (FORMAT.md §8); Check reports the footer once per segment, as a
// CorruptionError of that segment.
func TestRead_DamagedFooter(t *testing.T) {
	// each damage gets the segment's bytes and returns nothing; the footer is
	// data[len-10-size : len-10], then int32 size, then "ARROW1"
	footer := func(b []byte) (start, end int) {
		end = len(b) - 10
		return end - int(int32(binary.LittleEndian.Uint32(b[end:]))), end
	}
	cases := []struct {
		name   string
		damage func(b []byte)
	}{
		{"footer_flatbuffer_byte", func(b []byte) { s, e := footer(b); b[(s+e)/2] ^= 0x10 }},
		{"footer_zeroed", func(b []byte) {
			s, e := footer(b)
			clear(b[s:e])
		}},
		{"footer_size", func(b []byte) { b[len(b)-10+1] ^= 0x10 }},
		{"trailing_magic", func(b []byte) { b[len(b)-1] ^= 0x10 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			writeRun(t, s, "r", 3, true)
			wantStats, err := s.Stats("r", "fc", BatchRange{})
			if err != nil {
				t.Fatal(err)
			}
			var wantTens []TensorRow
			readTens := func(s *Store) ([]TensorRow, error) {
				var out []TensorRow
				err := s.Tensors("r", "conv1", BatchRange{}, func(r TensorRow) error {
					r.Data = append([]float32(nil), r.Data...)
					out = append(out, r)
					return nil
				})
				return out, err
			}
			if wantTens, err = readTens(s); err != nil {
				t.Fatal(err)
			}
			_, statsRel := firstEntry(t, s, "r", "fc", kindStats)
			_, tensRel := firstEntry(t, s, "r", "conv1", kindTensor)
			for _, rel := range []string{statsRel, tensRel} {
				path := filepath.Join(dir, rel)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				c.damage(b)
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ro, err := OpenReadOnly(dir)
			if err != nil {
				t.Fatal(err)
			}
			gotStats, err := ro.Stats("r", "fc", BatchRange{})
			if err != nil {
				t.Fatalf("Stats: %v", err)
			}
			if len(gotStats) != len(wantStats) {
				t.Fatalf("Stats: %d rows, want %d", len(gotStats), len(wantStats))
			}
			for i := range gotStats {
				if !sameStats(gotStats[i], wantStats[i]) {
					t.Fatalf("Stats row %d: %+v, want %+v", i, gotStats[i], wantStats[i])
				}
			}
			gotTens, err := readTens(ro)
			if err != nil {
				t.Fatalf("Tensors: %v", err)
			}
			if !reflect.DeepEqual(gotTens, wantTens) {
				t.Fatalf("Tensors: %d rows differ from the %d written", len(gotTens), len(wantTens))
			}
			probs, err := ro.Check("r")
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, p := range probs {
				var ce *CorruptionError
				if !errors.As(p.Err, &ce) || ce.File != p.File {
					t.Errorf("Check: %v, want a CorruptionError of %s", p, p.File)
				}
				seen[p.File]++
			}
			if len(probs) != 2 || seen[statsRel] != 1 || seen[tensRel] != 1 {
				t.Fatalf("Check: %d problems %v, want one for each damaged footer (%s, %s)", len(probs), probs, statsRel, tensRel)
			}
		})
	}
}

// TestCheck_SchemaLayerMismatch: the schema message of a segment has no checksum; Check
// compares a tensor segment's actrec.layer metadata with the index and reports a mismatch
// at the schema (offset 8), the Problem's offset agreeing with its error's.
func TestCheck_SchemaLayerMismatch(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	writeRun(t, s, "r", 2, true)
	e, rel := firstEntry(t, s, "r", "conv1", kindTensor)
	path := filepath.Join(dir, rel)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// the metadata value "conv1" inside the schema message (before the first record batch)
	i := bytes.Index(b[8:e.offset], []byte("conv1"))
	if i < 0 {
		t.Fatal("no actrec.layer value in the schema message")
	}
	b[8+i+4] = 'X'
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	probs, err := s.Check("r")
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) == 0 {
		t.Fatal("Check found no problem")
	}
	for _, p := range probs {
		var ce *CorruptionError
		if p.File != rel || p.Offset != 8 || !errors.As(p.Err, &ce) || ce.Offset != 8 {
			t.Fatalf("Check: %v, want a problem of %s at offset 8", p, rel)
		}
	}
}
