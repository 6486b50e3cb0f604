package npy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestHeaderAlignment(t *testing.T) {
	for _, shape := range [][]int{{}, {0}, {1}, {7}, {2, 3}, {0, 4}, {1 << 40}, {3, 1, 28, 28}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}} {
		for _, dt := range []DType{Float32, Int64} {
			h, err := Header(dt, shape)
			if err != nil {
				t.Fatalf("%v %s: %v", shape, dt, err)
			}
			if len(h)%Align != 0 {
				t.Errorf("%v %s: header length %d not a multiple of %d", shape, dt, len(h), Align)
			}
			if h[len(h)-1] != '\n' {
				t.Errorf("%v %s: header does not end in newline", shape, dt)
			}
			a, err := parseHeader(string(h[10:]))
			if err != nil {
				t.Fatalf("%v: parse back: %v", shape, err)
			}
			if a.DType != dt || !reflect.DeepEqual(a.Shape, append([]int{}, shape...)) {
				t.Errorf("parse back: got %s %v, want %s %v", a.DType, a.Shape, dt, shape)
			}
		}
	}
	h, _ := Header(Float32, []int{7})
	if !bytes.Contains(h, []byte("'shape': (7,), }")) {
		t.Errorf("1-d shape must be a Python 1-tuple: %q", h)
	}
}

// TestMatchesNumpy compares with files written by numpy.save (testdata/gen.py):
// same parsed header, identical data bytes.
func TestMatchesNumpy(t *testing.T) {
	for _, tc := range []struct {
		file  string
		dtype DType
		shape []int
		f32   []float32
		i64   []int64
	}{
		{"f32_2x3.npy", Float32, []int{2, 3}, []float32{-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}, nil},
		{"i64_5.npy", Int64, []int{5}, nil, []int64{0, 1, -1, 1 << 40, -(1 << 62)}},
		{"f32_0x4.npy", Float32, []int{0, 4}, []float32{}, nil},
		{"f32_scalar.npy", Float32, []int{}, []float32{1.5}, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			w, err := NewWriter(&buf, tc.dtype, tc.shape)
			if err != nil {
				t.Fatal(err)
			}
			if tc.dtype == Float32 {
				err = w.WriteFloat32(tc.f32)
			} else {
				err = w.WriteInt64(tc.i64)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			hl, _ := Header(tc.dtype, tc.shape)
			nd := len(want) - dataStart(t, want)
			if !bytes.Equal(got[len(hl):], want[len(want)-nd:]) {
				t.Errorf("data bytes differ from numpy's")
			}
			ours, err := Read(bytes.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := Read(bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ours, theirs) {
				t.Errorf("read back: ours %+v, numpy's %+v", ours, theirs)
			}
		})
	}
}

func dataStart(t *testing.T, b []byte) int {
	t.Helper()
	i := bytes.IndexByte(b, '\n')
	if i < 0 || (i+1)%Align != 0 {
		t.Fatalf("numpy fixture data start %d not aligned", i+1)
	}
	return i + 1
}

func TestNPZRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	z := NewNPZWriter(&buf)
	w, err := z.Create("conv1", Float32, []int{2, 2})
	if err != nil {
		t.Fatal(err)
	}
	// Streamed in pieces.
	if err := w.WriteFloat32([]float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32([]float32{3, 4}); err != nil {
		t.Fatal(err)
	}
	w, err = z.Create("conv1.batch", Int64, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInt64([]int64{7, 8}); err != nil {
		t.Fatal(err)
	}
	if _, err := z.Create("conv1", Float32, []int{1}); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	arrs, err := ReadNPZ(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if got := arrs["conv1"]; got == nil || !reflect.DeepEqual(got.Float32, []float32{1, 2, 3, 4}) || !reflect.DeepEqual(got.Shape, []int{2, 2}) {
		t.Errorf("conv1 = %+v", got)
	}
	if got := arrs["conv1.batch"]; got == nil || !reflect.DeepEqual(got.Int64, []int64{7, 8}) {
		t.Errorf("conv1.batch = %+v", got)
	}
	// numpy's own npz reads too.
	f, err := os.ReadFile("testdata/pair.npz")
	if err != nil {
		t.Fatal(err)
	}
	arrs, err = ReadNPZ(bytes.NewReader(f), int64(len(f)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(arrs["x"].Float32, []float32{0, 1, 2, 3}) || !reflect.DeepEqual(arrs["idx"].Int64, []int64{0, 1, 2, 3}) {
		t.Errorf("pair.npz = %+v %+v", arrs["x"], arrs["idx"])
	}
}

func TestWriter_ErrCount(t *testing.T) {
	w, err := NewWriter(io.Discard, Float32, []int{3})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32([]float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, ErrCount) {
		t.Errorf("short array: Close = %v, want ErrCount", err)
	}
	if err := w.WriteFloat32([]float32{1, 2}); !errors.Is(err, ErrCount) {
		t.Errorf("long array: Write = %v, want ErrCount", err)
	}
	if err := w.WriteInt64([]int64{1}); err == nil {
		t.Error("WriteInt64 on a float32 array accepted")
	}
	if _, err := NewWriter(io.Discard, Float32, []int{-1}); err == nil {
		t.Error("negative dimension accepted")
	}
	if _, err := NewWriter(io.Discard, "<f8", []int{1}); err == nil {
		t.Error("unsupported dtype accepted")
	}
}

func TestRead_ErrFormat(t *testing.T) {
	good, _ := os.ReadFile("testdata/f32_2x3.npy")
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad_magic", append([]byte("\x93NUMPX"), good[6:]...)},
		{"version3", append(append([]byte{}, good[:6]...), append([]byte{3, 0}, good[8:]...)...)},
		{"truncated_header", good[:40]},
		{"truncated_data", good[:len(good)-1]},
		{"extra_data", append(append([]byte{}, good...), 0)},
		{"fortran", []byte(strings.Replace(string(good), "False", "True ", 1))},
		{"f8", []byte(strings.Replace(string(good), "<f4", "<f8", 1))},
		{"huge_shape", []byte(strings.Replace(string(good), "(2, 3)", "(9999999999999, 3)", 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Read(bytes.NewReader(tc.b)); !errors.Is(err, ErrFormat) {
				t.Errorf("Read = %v, want ErrFormat", err)
			}
		})
	}
}

// seedFiles adds the files matching pattern to f's corpus.
func seedFiles(f *testing.F, pattern string) {
	files, _ := filepath.Glob(pattern)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzRead(f *testing.F) {
	seedFiles(f, "testdata/*.npy")
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		n := 1
		for _, d := range a.Shape {
			n *= d
		}
		if len(a.Float32)+len(a.Int64) != n {
			t.Fatalf("shape %v but %d elements", a.Shape, len(a.Float32)+len(a.Int64))
		}
	})
}

// FuzzReadNPZ feeds arbitrary bytes (seeded with the committed .npz) to
// the zip layer and the arrays in it: an error or arrays whose element
// counts match their shapes, never a panic.
func FuzzReadNPZ(f *testing.F) {
	seedFiles(f, "testdata/*.npz")
	f.Fuzz(func(t *testing.T, b []byte) {
		arrays, err := ReadNPZ(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for name, a := range arrays {
			n := 1
			for _, d := range a.Shape {
				n *= d
			}
			if len(a.Float32)+len(a.Int64) != n {
				t.Fatalf("%s: shape %v but %d elements", name, a.Shape, len(a.Float32)+len(a.Int64))
			}
		}
	})
}

func BenchmarkWriteFloat32(b *testing.B) {
	dir := b.TempDir()
	data := make([]float32, 1<<20) // 4 MiB per write
	for i := range data {
		data[i] = float32(i)
	}
	const writes = 64 // 256 MiB per op
	b.SetBytes(int64(len(data)) * 4 * writes)
	for b.Loop() {
		f, err := os.Create(filepath.Join(dir, "x.npy"))
		if err != nil {
			b.Fatal(err)
		}
		w, err := NewWriter(f, Float32, []int{writes, len(data)})
		if err != nil {
			b.Fatal(err)
		}
		for range writes {
			if err := w.WriteFloat32(data); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
