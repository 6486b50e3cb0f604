// Package dataset reads image-classification data sets for the nn runtime:
// IDX files (the MNIST / Fashion-MNIST format), optionally gzip-compressed.
//
// Readers distrust every length in a file: sizes are checked against limits
// and against the bytes actually present before anything is allocated in
// full, and malformed input yields a *FormatError, never a panic.
package dataset

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/actrec/actrec/nn"
)

// MaxBytes bounds the data of one IDX file (1 GiB).
const MaxBytes = 1 << 30

// FormatError reports a malformed IDX file, at a byte offset of the
// (decompressed) stream.
type FormatError struct {
	File   string // "" for a bare reader
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	f := e.File
	if f == "" {
		f = "IDX data"
	}
	return fmt.Sprintf("dataset: %s: offset %d: %s", f, e.Offset, e.Msg)
}

// Images is a set of single-channel 8-bit images, stored contiguously.
type Images struct {
	N, Rows, Cols int
	Pixels        []uint8 // N*Rows*Cols bytes, image-major, row-major
}

// Image returns the pixels of image i.
func (im *Images) Image(i int) []uint8 {
	n := im.Rows * im.Cols
	return im.Pixels[i*n : (i+1)*n]
}

// Tensor returns images [lo, hi) as an [hi-lo, 1, Rows, Cols] tensor with
// x = (pixel/255 - mean) / std, computed in float32 like torchvision's
// ToTensor followed by Normalize.
func (im *Images) Tensor(lo, hi int, mean, std float32) (*nn.Tensor, error) {
	if lo < 0 || hi > im.N || lo > hi {
		return nil, fmt.Errorf("dataset: images [%d, %d) out of range [0, %d)", lo, hi, im.N)
	}
	if std == 0 {
		return nil, fmt.Errorf("dataset: std must not be 0")
	}
	t := nn.NewTensor(hi-lo, 1, im.Rows, im.Cols)
	n := im.Rows * im.Cols
	for i, p := range im.Pixels[lo*n : hi*n] {
		t.Data[i] = (float32(p)/255 - mean) / std
	}
	return t, nil
}

// header reads an IDX header: magic (two zero bytes, type 0x08 = uint8,
// number of dimensions) and the big-endian uint32 dimensions, checking the
// type, the dimension count and the total size.
func header(r io.Reader, wantDims int) ([]int, int, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, 0, &FormatError{Offset: 0, Msg: "truncated magic number: " + errText(err)}
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, 0, &FormatError{Offset: 0, Msg: fmt.Sprintf("bad magic % x: not an IDX file", magic)}
	}
	if magic[2] != 0x08 {
		return nil, 0, &FormatError{Offset: 2, Msg: fmt.Sprintf("data type %#02x, want 0x08 (unsigned byte)", magic[2])}
	}
	if int(magic[3]) != wantDims {
		return nil, 0, &FormatError{Offset: 3, Msg: fmt.Sprintf("%d dimensions, want %d", magic[3], wantDims)}
	}
	dims := make([]int, wantDims)
	total := int64(1)
	for i := range dims {
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, 0, &FormatError{Offset: int64(4 + 4*i), Msg: "truncated dimensions: " + errText(err)}
		}
		d := int64(binary.BigEndian.Uint32(b[:]))
		if d > MaxBytes || total*d > MaxBytes {
			return nil, 0, &FormatError{Offset: int64(4 + 4*i), Msg: fmt.Sprintf("dimension %d makes the data larger than %d bytes", d, MaxBytes)}
		}
		total *= d
		dims[i] = int(d)
	}
	return dims, int(total), nil
}

func errText(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of file"
	}
	return err.Error()
}

// body reads exactly n data bytes after a header of hdr bytes, growing the
// buffer only as data arrives, and rejects trailing bytes.
func body(r io.Reader, hdr, n int) ([]uint8, error) {
	data, err := io.ReadAll(io.LimitReader(r, int64(n)+1))
	if err != nil {
		return nil, &FormatError{Offset: int64(hdr + len(data)), Msg: err.Error()}
	}
	switch {
	case len(data) < n:
		return nil, &FormatError{Offset: int64(hdr + len(data)), Msg: fmt.Sprintf("unexpected end of file: header promises %d data bytes, file has %d", n, len(data))}
	case len(data) > n:
		return nil, &FormatError{Offset: int64(hdr + n), Msg: "trailing data after the last item"}
	}
	return data, nil
}

// ReadImages reads an IDX3 image file (magic 0x00000803) from r, which may
// be gzip-compressed.
func ReadImages(r io.Reader) (*Images, error) {
	r, err := maybeGzip(r)
	if err != nil {
		return nil, err
	}
	dims, n, err := header(r, 3)
	if err != nil {
		return nil, err
	}
	px, err := body(r, 16, n)
	if err != nil {
		return nil, err
	}
	return &Images{N: dims[0], Rows: dims[1], Cols: dims[2], Pixels: px}, nil
}

// ReadLabels reads an IDX1 label file (magic 0x00000801) from r, which may
// be gzip-compressed.
func ReadLabels(r io.Reader) ([]uint8, error) {
	r, err := maybeGzip(r)
	if err != nil {
		return nil, err
	}
	_, n, err := header(r, 1)
	if err != nil {
		return nil, err
	}
	return body(r, 8, n)
}

// maybeGzip returns a reader of the decompressed stream if r starts with
// the gzip magic bytes, else r itself.
func maybeGzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, &FormatError{Offset: 0, Msg: "bad gzip header: " + err.Error()}
		}
		return &gzipErrReader{zr}, nil
	}
	return br, nil
}

// gzipErrReader labels decompression errors.
type gzipErrReader struct{ r io.Reader }

func (g *gzipErrReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("gzip: %w", err)
	}
	return n, err
}

func open[T any](path string, read func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	v, err := read(f)
	var fe *FormatError
	if errors.As(err, &fe) {
		fe.File = path
	}
	return v, err
}

// OpenImages reads the IDX3 image file at path (gzip or not).
func OpenImages(path string) (*Images, error) { return open(path, ReadImages) }

// OpenLabels reads the IDX1 label file at path (gzip or not).
func OpenLabels(path string) ([]uint8, error) { return open(path, ReadLabels) }
