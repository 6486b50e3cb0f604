package store

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is; the returned errors wrap them with
// the run, layer or file concerned.
var (
	// ErrNotFound: the run (or layer of a run) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrLocked: the index or a run is held by another writer (another process, or another
	// Writer of the same run). Retry later, or stop the other writer.
	ErrLocked = errors.New("locked by another writer")
	// ErrVersion: the store directory was written in a format version this code does not read.
	ErrVersion = errors.New("unsupported store format version")
	// ErrRunExists: CreateRun with the name of an existing run.
	ErrRunExists = errors.New("run already exists")
	// ErrInvalidName: a run name, layer path or tag key is empty, longer than 255 bytes, not
	// UTF-8 or contains a control character (see FORMAT.md §4.1).
	ErrInvalidName = errors.New("invalid name")
	// ErrReadOnly: a write operation on a store opened with OpenReadOnly.
	ErrReadOnly = errors.New("store is read-only")
	// ErrClosed: an operation on a closed Store or Writer.
	ErrClosed = errors.New("closed")
	// ErrShape: tensor data whose length does not match the layer's shape, or a row that
	// does not fit the schema.
	ErrShape = errors.New("shape mismatch")
)

// CorruptionError reports bytes on disk that do not follow FORMAT.md: a truncated or
// bit-flipped segment, a bad index value. File is relative to the store directory; Offset is
// the byte offset of the structure found bad, or -1 if unknown.
type CorruptionError struct {
	File   string
	Offset int64
	Err    error
}

func (e *CorruptionError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("store: corrupt %s at offset %d: %v", e.File, e.Offset, e.Err)
	}
	return fmt.Sprintf("store: corrupt %s: %v", e.File, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

func corruptf(file string, off int64, format string, args ...any) *CorruptionError {
	return &CorruptionError{File: file, Offset: off, Err: fmt.Errorf(format, args...)}
}

// Problem is one finding of Check: an index entry whose data is missing or wrong.
type Problem struct {
	Run    string `json:"run"`
	Layer  string `json:"layer,omitempty"`
	Batch  int64  `json:"batch"`
	File   string `json:"file,omitempty"`
	Offset int64  `json:"offset"`
	Err    error  `json:"-"`
}

// MarshalJSON encodes the problem with its error as text ("error").
func (p Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	msg := ""
	if p.Err != nil {
		msg = p.Err.Error()
	}
	return json.Marshal(struct {
		plain
		Error string `json:"error"`
	}{plain(p), msg})
}

func (p Problem) String() string {
	return fmt.Sprintf("run %q layer %q batch %d: %s offset %d: %v", p.Run, p.Layer, p.Batch, p.File, p.Offset, p.Err)
}
