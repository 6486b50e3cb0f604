// Package npy writes and reads NumPy .npy files (format version 1.0) and
// writes .npz archives, streaming: an array of any size is written in
// pieces without holding it in memory, at the speed of the underlying
// writer.
//
// The shape of an array goes into its header, before the data, so a writer
// must know the shape first (callers count rows from an index before
// writing). Only little-endian float32 ("<f4") and int64 ("<i8") arrays in C
// order are supported; that is all actrec stores.
//
// Layout written (numpy's format 1.0, NEP 1):
//
//	"\x93NUMPY" 0x01 0x00 HEADER_LEN(uint16 LE) HEADER
//
// where HEADER is the ASCII dict
// "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }" padded with
// spaces and ended by '\n' so that the data starts at a multiple of 64 bytes.
//
// Writers and readers are not safe for concurrent use.
package npy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unsafe"
)

// DType is the numpy type descriptor of an array.
type DType string

// Supported types.
const (
	Float32 DType = "<f4"
	Int64   DType = "<i8"
)

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case Int64:
		return 8
	}
	return 0
}

const magic = "\x93NUMPY"

// Align is the alignment of the data start, in bytes.
const Align = 64

// ErrCount is returned when more or fewer elements are written than the
// header's shape announced.
var ErrCount = errors.New("npy: element count does not match the shape")

// Header returns the complete header (magic, version, length, dict,
// padding) of an array of the given type and shape.
func Header(dtype DType, shape []int) ([]byte, error) {
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("npy: unsupported dtype %q", dtype)
	}
	var sb strings.Builder
	sb.WriteString("{'descr': '")
	sb.WriteString(string(dtype))
	sb.WriteString("', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("npy: negative dimension %d in shape %v", d, shape)
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		sb.WriteString(",")
	}
	sb.WriteString("), }")
	dict := sb.String()
	// 10 bytes of preamble + dict + padding + '\n' = multiple of Align.
	total := 10 + len(dict) + 1
	total = (total + Align - 1) / Align * Align
	if total-10 > 0xffff {
		return nil, fmt.Errorf("npy: header of %d bytes too long for format 1.0", total-10)
	}
	hdr := make([]byte, 0, total)
	hdr = append(hdr, magic...)
	hdr = append(hdr, 1, 0)
	hdr = binary.LittleEndian.AppendUint16(hdr, uint16(total-10))
	hdr = append(hdr, dict...)
	for len(hdr) < total-1 {
		hdr = append(hdr, ' ')
	}
	hdr = append(hdr, '\n')
	return hdr, nil
}

// Writer writes one array: the header at creation, then the elements in C
// order through WriteFloat32 or WriteInt64, then Close checks that exactly
// the announced number of elements was written.
type Writer struct {
	w         io.Writer
	dtype     DType
	remaining int64 // elements still to write
	buf       []byte
}

// NewWriter writes the header of an array of the given type and shape to w
// and returns a Writer for its elements.
func NewWriter(w io.Writer, dtype DType, shape []int) (*Writer, error) {
	hdr, err := Header(dtype, shape)
	if err != nil {
		return nil, err
	}
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("npy: write header: %w", err)
	}
	return &Writer{w: w, dtype: dtype, remaining: n}, nil
}

// Remaining is the number of elements still to be written.
func (w *Writer) Remaining() int64 { return w.remaining }

// WriteFloat32 appends elements to a float32 array.
func (w *Writer) WriteFloat32(v []float32) error {
	if w.dtype != Float32 {
		return fmt.Errorf("npy: WriteFloat32 on a %s array", w.dtype)
	}
	if int64(len(v)) > w.remaining {
		return fmt.Errorf("%w: %d more elements than announced", ErrCount, int64(len(v))-w.remaining)
	}
	w.remaining -= int64(len(v))
	if len(v) == 0 {
		return nil
	}
	if littleEndian() {
		_, err := w.w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4))
		return err
	}
	return w.writeSwapped(len(v), func(dst []byte, i int) {
		binary.LittleEndian.PutUint32(dst, *(*uint32)(unsafe.Pointer(&v[i])))
	}, 4)
}

// WriteInt64 appends elements to an int64 array.
func (w *Writer) WriteInt64(v []int64) error {
	if w.dtype != Int64 {
		return fmt.Errorf("npy: WriteInt64 on a %s array", w.dtype)
	}
	if int64(len(v)) > w.remaining {
		return fmt.Errorf("%w: %d more elements than announced", ErrCount, int64(len(v))-w.remaining)
	}
	w.remaining -= int64(len(v))
	if len(v) == 0 {
		return nil
	}
	if littleEndian() {
		_, err := w.w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*8))
		return err
	}
	return w.writeSwapped(len(v), func(dst []byte, i int) {
		binary.LittleEndian.PutUint64(dst, uint64(v[i]))
	}, 8)
}

// writeSwapped is the big-endian fallback: encode through a bounded buffer.
func (w *Writer) writeSwapped(n int, put func(dst []byte, i int), size int) error {
	if w.buf == nil {
		w.buf = make([]byte, 64<<10)
	}
	per := len(w.buf) / size
	for lo := 0; lo < n; lo += per {
		hi := min(n, lo+per)
		for i := lo; i < hi; i++ {
			put(w.buf[(i-lo)*size:], i)
		}
		if _, err := w.w.Write(w.buf[:(hi-lo)*size]); err != nil {
			return err
		}
	}
	return nil
}

// Close reports ErrCount if fewer elements were written than announced. It
// does not close the underlying writer.
func (w *Writer) Close() error {
	if w.remaining != 0 {
		return fmt.Errorf("%w: %d elements missing", ErrCount, w.remaining)
	}
	return nil
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
