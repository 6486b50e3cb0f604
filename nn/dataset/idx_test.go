package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testdata = "../../testdata/fashion-mnist"

func idx(typ byte, dims []uint32, data []byte) []byte {
	b := []byte{0, 0, typ, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestReadImages(t *testing.T) {
	px := []byte{0, 255, 128, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	raw := idx(8, []uint32{2, 2, 3}, px)
	for name, file := range map[string][]byte{"plain": raw, "gzip": gz(raw)} {
		im, err := ReadImages(bytes.NewReader(file))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if im.N != 2 || im.Rows != 2 || im.Cols != 3 || !bytes.Equal(im.Pixels, px) {
			t.Errorf("%s: got %+v", name, im)
		}
		if !bytes.Equal(im.Image(1), px[6:]) {
			t.Errorf("%s: Image(1) = %v", name, im.Image(1))
		}
		x, err := im.Tensor(0, 1, 0.5, 0.25)
		if err != nil {
			t.Fatal(err)
		}
		if got := x.Data[1]; got != (float32(1)-0.5)/0.25 {
			t.Errorf("normalised pixel = %g, want 2", got)
		}
		if _, err := im.Tensor(1, 3, 0, 1); err == nil {
			t.Error("Tensor out of range: no error")
		}
	}
	labels, err := ReadLabels(bytes.NewReader(gz(idx(8, []uint32{3}, []byte{7, 0, 9}))))
	if err != nil || !bytes.Equal(labels, []byte{7, 0, 9}) {
		t.Errorf("labels %v, err %v", labels, err)
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name   string
		file   []byte
		labels bool
		offset int64
		msg    string
	}{
		{"empty", nil, false, 0, "truncated magic"},
		{"magic", []byte{1, 2, 8, 3}, false, 0, "not an IDX file"},
		{"type", idx(0x0d, []uint32{1, 1, 1}, []byte{0, 0, 0, 0}), false, 2, "data type"},
		{"dims", idx(8, []uint32{1, 1}, []byte{0}), false, 3, "2 dimensions, want 3"},
		{"truncated dims", []byte{0, 0, 8, 3, 0, 0, 0, 1, 0}, false, 8, "truncated dimensions"},
		{"huge", idx(8, []uint32{1 << 20, 1 << 20, 2}, nil), false, 8, "larger than"},
		{"huge labels", idx(8, []uint32{0xffffffff}, nil), true, 4, "larger than"},
		{"short data", idx(8, []uint32{10000, 28, 28}, []byte{1, 2, 3}), false, 19, "header promises 7840000 data bytes, file has 3"},
		{"trailing", idx(8, []uint32{2}, []byte{1, 2, 3}), true, 10, "trailing data"},
		{"bad gzip", []byte{0x1f, 0x8b, 0, 0}, true, 0, "gzip"},
		{"truncated gzip", gz(idx(8, []uint32{3000}, make([]byte, 3000)))[:30], true, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.labels {
				_, err = ReadLabels(bytes.NewReader(tc.file))
			} else {
				_, err = ReadImages(bytes.NewReader(tc.file))
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FormatError", err)
			}
			if tc.msg != "" && (fe.Offset != tc.offset || !strings.Contains(fe.Msg, tc.msg)) {
				t.Errorf("err = %v, want offset %d and %q", err, tc.offset, tc.msg)
			}
		})
	}
}

func TestOpenFashionMNIST(t *testing.T) {
	ip := filepath.Join(testdata, "t10k-images-idx3-ubyte.gz")
	lp := filepath.Join(testdata, "t10k-labels-idx1-ubyte.gz")
	if _, err := os.Stat(ip); err != nil {
		t.Skipf("%s not found (written by scripts/train_fashion.py's helper; see testdata/fashion-mnist/README.md)", ip)
	}
	im, err := OpenImages(ip)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := OpenLabels(lp)
	if err != nil {
		t.Fatal(err)
	}
	if im.N != 10000 || im.Rows != 28 || im.Cols != 28 || len(labels) != 10000 {
		t.Fatalf("got %d images of %dx%d, %d labels", im.N, im.Rows, im.Cols, len(labels))
	}
	if got := labels[:8]; !bytes.Equal(got, []byte{9, 2, 1, 1, 6, 1, 4, 6}) {
		t.Errorf("first labels %v", got)
	}
	if _, err := OpenImages(lp); err == nil || !strings.Contains(err.Error(), lp) {
		t.Errorf("labels read as images: err = %v, want an error naming the file", err)
	}
}

func fuzzSeeds(f *testing.F, labels bool) {
	if labels {
		if b, err := os.ReadFile(filepath.Join(testdata, "t10k-labels-idx1-ubyte.gz")); err == nil {
			f.Add(b)
		}
		f.Add(idx(8, []uint32{3}, []byte{1, 2, 3}))
		return
	}
	f.Add(idx(8, []uint32{2, 2, 2}, make([]byte, 8)))
	f.Add(gz(idx(8, []uint32{1, 3, 3}, make([]byte, 9))))
}

func FuzzReadImages(f *testing.F) {
	fuzzSeeds(f, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := ReadImages(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(im.Pixels) != im.N*im.Rows*im.Cols {
			t.Fatalf("%d pixels for %dx%dx%d", len(im.Pixels), im.N, im.Rows, im.Cols)
		}
		if im.N > 0 {
			if _, err := im.Tensor(0, 1, 0, 1); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzReadLabels(f *testing.F) {
	fuzzSeeds(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadLabels(bytes.NewReader(b))
	})
}
