package npy

import (
	"archive/zip"
	"fmt"
	"io"
	"strings"
)

// NPZWriter writes a .npz archive: a zip file of .npy entries, stored
// uncompressed (numpy.load reads it with zero decompression cost and the
// data of each entry stays 64-byte aligned relative to the entry start).
// Entries are written one after the other; creating an entry finishes the
// previous one.
type NPZWriter struct {
	zw    *zip.Writer
	cur   *Writer
	names map[string]bool
}

// NewNPZWriter starts an archive on w.
func NewNPZWriter(w io.Writer) *NPZWriter {
	return &NPZWriter{zw: zip.NewWriter(w), names: map[string]bool{}}
}

// Create starts the array called name (numpy's key; ".npy" is appended for
// the entry name) and returns a Writer for its elements, valid until the
// next Create or Close.
func (z *NPZWriter) Create(name string, dtype DType, shape []int) (*Writer, error) {
	if err := z.finish(); err != nil {
		return nil, err
	}
	if name == "" || strings.ContainsAny(name, "\x00") {
		return nil, fmt.Errorf("npy: invalid array name %q", name)
	}
	if z.names[name] {
		return nil, fmt.Errorf("npy: duplicate array name %q", name)
	}
	z.names[name] = true
	fw, err := z.zw.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
	if err != nil {
		return nil, fmt.Errorf("npy: create %s.npy: %w", name, err)
	}
	w, err := NewWriter(fw, dtype, shape)
	if err != nil {
		return nil, err
	}
	z.cur = w
	return w, nil
}

func (z *NPZWriter) finish() error {
	if z.cur == nil {
		return nil
	}
	err := z.cur.Close()
	z.cur = nil
	return err
}

// Close finishes the last array and writes the zip directory. It does not
// close the underlying writer.
func (z *NPZWriter) Close() error {
	if err := z.finish(); err != nil {
		return err
	}
	return z.zw.Close()
}
