package npy

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ErrFormat is wrapped by every error about malformed .npy bytes.
var ErrFormat = errors.New("npy: malformed file")

// Array is an array read back by Read: Float32 or Int64 holds the data,
// according to DType.
type Array struct {
	DType   DType
	Shape   []int
	Float32 []float32
	Int64   []int64
}

// maxHeader bounds the header length accepted by Read.
const maxHeader = 1 << 16

// Read reads a whole .npy file of version 1.0 or 2.0 written in C order as
// little-endian float32 or int64 (what this package writes). It trusts no
// length: the element count must match the bytes actually present, so
// that a hostile header cannot make it allocate more than the input size.
func Read(r io.Reader) (*Array, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("%w: preamble: %v", ErrFormat, err)
	}
	if string(pre[:6]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrFormat, pre[:6])
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%w: header length: %v", ErrFormat, err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%w: header length: %v", ErrFormat, err)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]) & 0x7fffffff)
	default:
		return nil, fmt.Errorf("%w: unsupported version %d.%d", ErrFormat, pre[6], pre[7])
	}
	if hlen > maxHeader {
		return nil, fmt.Errorf("%w: header length %d", ErrFormat, hlen)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	a, err := parseHeader(string(hdr))
	if err != nil {
		return nil, err
	}
	n := int64(1)
	for _, d := range a.Shape {
		if d != 0 && n > math.MaxInt64/int64(d)/8 {
			return nil, fmt.Errorf("%w: shape %v too large", ErrFormat, a.Shape)
		}
		n *= int64(d)
	}
	// Read what is there (bounded by the input), then compare.
	var data bytes.Buffer
	if _, err := io.Copy(&data, io.LimitReader(r, n*int64(a.DType.Size())+1)); err != nil {
		return nil, fmt.Errorf("npy: read data: %w", err)
	}
	if int64(data.Len()) != n*int64(a.DType.Size()) {
		return nil, fmt.Errorf("%w: %d data bytes for shape %v of %s", ErrFormat, data.Len(), a.Shape, a.DType)
	}
	b := data.Bytes()
	switch a.DType {
	case Float32:
		a.Float32 = make([]float32, n)
		for i := range a.Float32 {
			a.Float32[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case Int64:
		a.Int64 = make([]int64, n)
		for i := range a.Int64 {
			a.Int64[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
	}
	return a, nil
}

// parseHeader parses the dict written by numpy for simple arrays:
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
func parseHeader(h string) (*Array, error) {
	h = strings.TrimSpace(h)
	if !strings.HasPrefix(h, "{") || !strings.HasSuffix(h, "}") {
		return nil, fmt.Errorf("%w: header is not a dict: %q", ErrFormat, h)
	}
	field := func(key string) (string, error) {
		i := strings.Index(h, "'"+key+"':")
		if i < 0 {
			return "", fmt.Errorf("%w: header has no %q", ErrFormat, key)
		}
		return strings.TrimSpace(h[i+len(key)+3:]), nil
	}
	a := &Array{}
	v, err := field("descr")
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(v, "'<f4'"):
		a.DType = Float32
	case strings.HasPrefix(v, "'<i8'"):
		a.DType = Int64
	default:
		return nil, fmt.Errorf("%w: unsupported descr %.10q", ErrFormat, v)
	}
	if v, err = field("fortran_order"); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(v, "False") {
		return nil, fmt.Errorf("%w: fortran_order arrays are not supported", ErrFormat)
	}
	if v, err = field("shape"); err != nil {
		return nil, err
	}
	end := strings.IndexByte(v, ')')
	if !strings.HasPrefix(v, "(") || end < 0 {
		return nil, fmt.Errorf("%w: bad shape %.20q", ErrFormat, v)
	}
	a.Shape = []int{}
	for _, part := range strings.Split(v[1:end], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := strconv.Atoi(part)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%w: bad dimension %q", ErrFormat, part)
		}
		a.Shape = append(a.Shape, d)
	}
	return a, nil
}

// ReadNPZ reads every array of a .npz archive, keyed by array name (the
// entry name without ".npy").
func ReadNPZ(r io.ReaderAt, size int64) (map[string]*Array, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: npz: %v", ErrFormat, err)
	}
	out := make(map[string]*Array, len(zr.File))
	for _, f := range zr.File {
		name, ok := strings.CutSuffix(f.Name, ".npy")
		if !ok {
			return nil, fmt.Errorf("%w: npz entry %q is not a .npy file", ErrFormat, f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: npz entry %s: %v", ErrFormat, f.Name, err)
		}
		a, err := Read(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("npz entry %s: %w", f.Name, err)
		}
		out[name] = a
	}
	return out, nil
}
