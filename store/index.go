package store

// Key and value encodings of index.db (FORMAT.md §4).

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

const (
	formatName    = "actrec-store"
	formatVersion = 1
	indexFile     = "index.db"
	segmentsDir   = "segments"
)

var (
	bucketMeta     = []byte("meta")
	bucketNames    = []byte("names")
	bucketRuns     = []byte("runs")
	bucketLayers   = []byte("layers")
	bucketSegments = []byte("segments")
	bucketEntries  = []byte("entries")
	bucketBatches  = []byte("batches")
	bucketDeleted  = []byte("deleted") // optional: created by the first DeleteRun

	keyFormat  = []byte("format")
	keyVersion = []byte("version")
)

// entry kinds (FORMAT.md §4.2), also segment kinds.
const (
	kindStats  byte = 1
	kindTensor byte = 2
)

const (
	segSealed   byte = 1
	segSalvaged byte = 2
)

const (
	entryKeyLen   = 8 + 4 + 1 + 8 + 4
	entryValueLen = 36
	segValueLen   = 24
)

// validName reports whether s is a valid run name, layer path or tag key (FORMAT.md §4.1).
func validName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(s) > 255 {
		return fmt.Errorf("%w: %d bytes (max 255)", ErrInvalidName, len(s))
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %q is not UTF-8", ErrInvalidName, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %q contains control character %U", ErrInvalidName, s, r)
		}
	}
	return nil
}

func u64(v uint64) []byte { b := make([]byte, 8); binary.BigEndian.PutUint64(b, v); return b }

func batchKey(b int64) uint64     { return uint64(b) ^ 1<<63 }
func batchFromKey(k uint64) int64 { return int64(k ^ 1<<63) }

func runKey(id uint64) []byte { return u64(id) }

func layerKey(run uint64, layer uint32) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint64(k, run)
	binary.BigEndian.PutUint32(k[8:], layer)
	return k
}

func segKey(run uint64, seq uint32) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint64(k, run)
	binary.BigEndian.PutUint32(k[8:], seq)
	return k
}

func runBatchKey(run uint64, batch int64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, run)
	binary.BigEndian.PutUint64(k[8:], batchKey(batch))
	return k
}

type entryKey struct {
	run   uint64
	layer uint32
	kind  byte
	batch int64
	part  uint32
}

func (k entryKey) encode() []byte {
	b := make([]byte, entryKeyLen)
	binary.BigEndian.PutUint64(b, k.run)
	binary.BigEndian.PutUint32(b[8:], k.layer)
	b[12] = k.kind
	binary.BigEndian.PutUint64(b[13:], batchKey(k.batch))
	binary.BigEndian.PutUint32(b[21:], k.part)
	return b
}

func decodeEntryKey(b []byte) (entryKey, error) {
	if len(b) != entryKeyLen {
		return entryKey{}, fmt.Errorf("entry key of %d bytes, want %d", len(b), entryKeyLen)
	}
	k := entryKey{
		run:   binary.BigEndian.Uint64(b),
		layer: binary.BigEndian.Uint32(b[8:]),
		kind:  b[12],
		batch: batchFromKey(binary.BigEndian.Uint64(b[13:])),
		part:  binary.BigEndian.Uint32(b[21:]),
	}
	if k.kind != kindStats && k.kind != kindTensor {
		return entryKey{}, fmt.Errorf("entry key kind %d", k.kind)
	}
	return k, nil
}

// entry points at the rows of one (run, layer, kind, batch, part) inside a segment.
type entry struct {
	seq    uint32
	record uint32
	offset uint64
	length uint64
	row    uint32
	rows   uint32
	crc    uint32 // CRC-32C (Castagnoli) of the whole message
}

func (e entry) encode() []byte {
	b := make([]byte, entryValueLen)
	binary.BigEndian.PutUint32(b, e.seq)
	binary.BigEndian.PutUint32(b[4:], e.record)
	binary.BigEndian.PutUint64(b[8:], e.offset)
	binary.BigEndian.PutUint64(b[16:], e.length)
	binary.BigEndian.PutUint32(b[24:], e.row)
	binary.BigEndian.PutUint32(b[28:], e.rows)
	binary.BigEndian.PutUint32(b[32:], e.crc)
	return b
}

// maxFileOffset bounds offsets and lengths read from the index (2^48 bytes = 256 TiB), so sums
// of them never overflow.
const maxFileOffset = 1 << 48

func decodeEntry(b []byte) (entry, error) {
	if len(b) != entryValueLen {
		return entry{}, fmt.Errorf("entry of %d bytes, want %d", len(b), entryValueLen)
	}
	e := entry{
		seq:    binary.BigEndian.Uint32(b),
		record: binary.BigEndian.Uint32(b[4:]),
		offset: binary.BigEndian.Uint64(b[8:]),
		length: binary.BigEndian.Uint64(b[16:]),
		row:    binary.BigEndian.Uint32(b[24:]),
		rows:   binary.BigEndian.Uint32(b[28:]),
		crc:    binary.BigEndian.Uint32(b[32:]),
	}
	switch {
	case e.offset < 8 || e.offset%8 != 0 || e.offset > maxFileOffset:
		return entry{}, fmt.Errorf("entry offset %d invalid", e.offset)
	case e.length < 16 || e.length%8 != 0 || e.length > maxFileOffset:
		return entry{}, fmt.Errorf("entry length %d invalid", e.length)
	case e.rows == 0:
		return entry{}, errors.New("entry with 0 rows")
	case uint64(e.row)+uint64(e.rows) > 1<<31:
		return entry{}, fmt.Errorf("entry rows %d+%d out of range", e.row, e.rows)
	}
	return e, nil
}

// segment is the index record of one segment file.
type segment struct {
	kind    byte
	flags   byte
	layer   uint32
	size    uint64
	records uint32
}

func (s segment) sealed() bool { return s.flags&segSealed != 0 }

func (s segment) encode() []byte {
	b := make([]byte, segValueLen)
	b[0] = s.kind
	b[1] = s.flags
	binary.BigEndian.PutUint32(b[4:], s.layer)
	binary.BigEndian.PutUint64(b[8:], s.size)
	binary.BigEndian.PutUint32(b[16:], s.records)
	return b
}

func decodeSegment(b []byte) (segment, error) {
	if len(b) != segValueLen {
		return segment{}, fmt.Errorf("segment record of %d bytes, want %d", len(b), segValueLen)
	}
	s := segment{
		kind:    b[0],
		flags:   b[1],
		layer:   binary.BigEndian.Uint32(b[4:]),
		size:    binary.BigEndian.Uint64(b[8:]),
		records: binary.BigEndian.Uint32(b[16:]),
	}
	switch {
	case s.kind != kindStats && s.kind != kindTensor:
		return segment{}, fmt.Errorf("segment kind %d", s.kind)
	case s.flags&^(segSealed|segSalvaged) != 0:
		return segment{}, fmt.Errorf("segment flags %#x", s.flags)
	case b[2] != 0 || b[3] != 0 || binary.BigEndian.Uint32(b[20:]) != 0:
		return segment{}, errors.New("segment reserved bytes not zero")
	case s.size > maxFileOffset:
		return segment{}, fmt.Errorf("segment size %d invalid", s.size)
	case s.kind == kindStats && s.layer != 0:
		return segment{}, fmt.Errorf("stats segment with layer %d", s.layer)
	}
	return s, nil
}

// maxRecordLen bounds the JSON value of a run or layer record. Writers refuse to put a
// larger one; readers reject one before decoding it, since a corrupt page of index.db can
// give a value any length.
const maxRecordLen = 4 << 20

// encodeRecord encodes a run or layer record as JSON, at most maxRecordLen bytes.
func encodeRecord(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > maxRecordLen {
		return nil, fmt.Errorf("index record of %d bytes, at most %d (run info too large?)", len(b), maxRecordLen)
	}
	return b, nil
}

// checkRecordLen rejects a JSON record value of an implausible length before it is decoded.
func checkRecordLen(what string, b []byte) error {
	if len(b) < 2 || len(b) > maxRecordLen {
		return fmt.Errorf("%s record of %d bytes (must be 2..%d)", what, len(b), maxRecordLen)
	}
	return nil
}

// runRecord is the JSON value of bucket runs.
type runRecord struct {
	V       int     `json:"v"`
	ID      uint64  `json:"id"`
	Info    RunInfo `json:"info"`
	Layers  int     `json:"layers"`
	Batches int     `json:"batches"`
	Entries int     `json:"entries"`
	Bytes   int64   `json:"bytes"`
	NextSeq uint32  `json:"next_seq"`
}

func decodeRun(b []byte) (runRecord, error) {
	if err := checkRecordLen("run", b); err != nil {
		return runRecord{}, err
	}
	var r runRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return runRecord{}, fmt.Errorf("run record: %w", err)
	}
	if r.V != formatVersion {
		return runRecord{}, fmt.Errorf("run record version %d", r.V)
	}
	if err := validName(r.Info.Name); err != nil {
		return runRecord{}, fmt.Errorf("run record: %w", err)
	}
	if r.Layers < 0 || r.Batches < 0 || r.Entries < 0 || r.Bytes < 0 {
		return runRecord{}, errors.New("run record: negative counter")
	}
	return r, nil
}

// decodeRunAt decodes the run record v stored under key k of bucket runs.
func decodeRunAt(k, v []byte) (runRecord, error) {
	if len(k) != 8 {
		return runRecord{}, fmt.Errorf("run key of %d bytes, want 8", len(k))
	}
	r, err := decodeRun(v)
	if err != nil {
		return runRecord{}, err
	}
	if id := binary.BigEndian.Uint64(k); r.ID != id {
		return runRecord{}, fmt.Errorf("run record of id %d under key %d", r.ID, id)
	}
	return r, nil
}

// layerRecord is the JSON value of bucket layers.
type layerRecord struct {
	V             int    `json:"v"`
	Path          string `json:"path"`
	Op            string `json:"op"`
	Shape         []int  `json:"shape"`
	Order         int    `json:"order"`
	StatsBatches  int    `json:"stats_batches"`
	TensorBatches int    `json:"tensor_batches"`
	Bytes         int64  `json:"bytes"`
}

func decodeLayer(b []byte) (layerRecord, error) {
	if err := checkRecordLen("layer", b); err != nil {
		return layerRecord{}, err
	}
	var l layerRecord
	if err := json.Unmarshal(b, &l); err != nil {
		return layerRecord{}, fmt.Errorf("layer record: %w", err)
	}
	if l.V != formatVersion {
		return layerRecord{}, fmt.Errorf("layer record version %d", l.V)
	}
	if err := validName(l.Path); err != nil {
		return layerRecord{}, fmt.Errorf("layer record: %w", err)
	}
	if _, err := shapeSize(l.Shape); err != nil {
		return layerRecord{}, fmt.Errorf("layer record: %w", err)
	}
	if l.StatsBatches < 0 || l.TensorBatches < 0 || l.Bytes < 0 {
		return layerRecord{}, errors.New("layer record: negative counter")
	}
	return l, nil
}

func (l layerRecord) info() LayerInfo {
	return LayerInfo{Path: l.Path, Op: l.Op, Shape: l.Shape, Order: l.Order}
}

func runDirName(id uint64) string { return fmt.Sprintf("%016x", id) }

func segFileName(seq uint32) string { return fmt.Sprintf("%08x.arrow", seq) }

func parseSegFileName(name string) (uint32, bool) {
	if len(name) != 14 || name[8:] != ".arrow" {
		return 0, false
	}
	v, err := strconv.ParseUint(name[:8], 16, 32)
	// only the names segFileName writes (lower-case hex): a stray
	// "0000000A.arrow" is not ours, and Reclaim must never delete it
	return uint32(v), err == nil && segFileName(uint32(v)) == name
}
