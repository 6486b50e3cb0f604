package store

// Segment files: appending record batches (segWriter) and reading messages from a mapped
// segment (segFile). See FORMAT.md §2, §8.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var arrowMagic = []byte("ARROW1\x00\x00")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// countingWriter counts bytes, keeps the first 16 bytes written (magic and the schema message
// prefix, from which the end of the schema message is known) and computes the CRC-32C of
// the bytes after the schema message since the last reset of crc.
type countingWriter struct {
	w        io.Writer
	n        int64
	head     [16]byte
	hashFrom int64 // end of the schema message, 0 until known
	crc      uint32
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	q, start := p[:n], c.n
	if start < 16 {
		copy(c.head[start:], q)
	}
	c.n += int64(n)
	if c.hashFrom == 0 && c.n >= 16 {
		c.hashFrom = 16 + int64(binary.LittleEndian.Uint32(c.head[12:]))
	}
	if c.hashFrom > 0 && c.n > c.hashFrom {
		c.crc = crc32.Update(c.crc, castagnoli, q[max(0, c.hashFrom-start):])
	}
	return n, err
}

// segWriter appends record batches to one segment file.
type segWriter struct {
	seq     uint32
	kind    byte
	layer   uint32
	rel     string // path relative to the store dir
	f       *os.File
	bw      *bufio.Writer
	cw      *countingWriter
	fw      *ipc.FileWriter
	schema  *arrow.Schema
	opened  time.Time
	records uint32
	synced  int64 // bytes known durable
	sealed  bool
}

func createSegment(path, rel string, seq uint32, kind byte, layer uint32, schema *arrow.Schema, c Compression) (*segWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &countingWriter{w: bw}
	opts := []ipc.Option{ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator)}
	switch c {
	case LZ4:
		opts = append(opts, ipc.WithLZ4())
	case Zstd:
		opts = append(opts, ipc.WithZstd())
	}
	fw, err := ipc.NewFileWriter(cw, opts...)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create segment %s: %w", rel, err)
	}
	return &segWriter{seq: seq, kind: kind, layer: layer, rel: rel, f: f, bw: bw, cw: cw, fw: fw, schema: schema, opened: time.Now()}, nil
}

// write appends rec and returns the offset, total length and CRC-32C of its record batch
// message.
func (s *segWriter) write(rec arrow.RecordBatch) (off, length int64, crc uint32, err error) {
	before := s.cw.n
	s.cw.crc = 0
	if err := s.fw.Write(rec); err != nil {
		return 0, 0, 0, fmt.Errorf("write segment %s: %w", s.rel, err)
	}
	if before == 0 { // the first write also wrote magic and schema
		before = s.cw.hashFrom
		if !bytes.Equal(s.cw.head[:6], arrowMagic[:6]) || before%8 != 0 || before > s.cw.n {
			return 0, 0, 0, fmt.Errorf("write segment %s: unexpected IPC file header %x", s.rel, s.cw.head)
		}
	}
	s.records++
	return before, s.cw.n - before, s.cw.crc, nil
}

// seal writes the footer; the file stays open until sync.
func (s *segWriter) seal() error {
	if s.sealed {
		return nil
	}
	if err := s.fw.Close(); err != nil {
		return fmt.Errorf("seal segment %s: %w", s.rel, err)
	}
	s.sealed = true
	return nil
}

// sync makes everything written durable (unless noSync).
func (s *segWriter) sync(noSync bool) error {
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("write segment %s: %w", s.rel, err)
	}
	if !noSync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("fsync segment %s: %w", s.rel, err)
		}
	}
	s.synced = s.cw.n
	return nil
}

func (s *segWriter) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// segFile is a read-only memory map of the committed part of a segment.
type segFile struct {
	rel    string
	data   []byte
	mapped bool
	schema *arrow.Schema
	schMsg *ipc.Message
	end    int64           // end of the schema message
	footer *ipc.FileReader // sealed segments: reader over the footer
	// footerErr is why the footer of a sealed segment could not be used; entries are then
	// read by their offsets (FORMAT.md §8: a reader never needs the footer)
	footerErr error
	blocks    []fileBlock // the footer's record batch blocks, verified
	// nodes and buffers of a record batch of this schema
	nodes, buffers int
}

// fileBlock is a record batch block listed in a footer.
type fileBlock struct{ offset, length int64 }

// mapSegment maps the first size bytes of the file at path (the committed size; -1: all of
// it). A file cut shorter is mapped as far as it goes: the entries past its end fail on their
// own (CorruptionErrors at their offsets), the others stay readable, and a sealed segment
// loses only its footer (Check reports both).
func mapSegment(path, rel string, size int64) (*segFile, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &CorruptionError{File: rel, Offset: -1, Err: fmt.Errorf("segment file missing: %w", err)}
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if size < 0 {
		size = fi.Size()
	}
	if fi.Size() < size {
		size = fi.Size()
	}
	if size < 16 {
		return nil, &CorruptionError{File: rel, Offset: 0, Err: fmt.Errorf("segment of %d bytes: %w", size, io.ErrUnexpectedEOF)}
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("segment %s of %d bytes cannot be mapped", rel, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", rel, err)
	}
	sf := &segFile{rel: rel, data: data, mapped: true}
	if err := sf.init(); err != nil {
		sf.close()
		return nil, err
	}
	return sf, nil
}

// newSegFile reads segment bytes held in memory (fuzzing, tests).
func newSegFile(rel string, data []byte) (*segFile, error) {
	sf := &segFile{rel: rel, data: data}
	if err := sf.init(); err != nil {
		return nil, err
	}
	return sf, nil
}

func (sf *segFile) init() error {
	if len(sf.data) < 16 || !bytes.Equal(sf.data[:8], arrowMagic) {
		return &CorruptionError{File: sf.rel, Offset: 0, Err: errors.New("bad magic: not an Arrow IPC file")}
	}
	msg, end, err := sf.messageAt(8, -1)
	if errors.Is(err, io.EOF) { // an end-of-stream marker where the schema must be
		return &CorruptionError{File: sf.rel, Offset: 8, Err: fmt.Errorf("end-of-stream marker instead of the schema: %w", io.ErrUnexpectedEOF)}
	}
	if err != nil {
		return err
	}
	if msg.Type() != ipc.MessageSchema {
		msg.Release()
		return &CorruptionError{File: sf.rel, Offset: 8, Err: fmt.Errorf("first message is %s, want Schema", msg.Type())}
	}
	sf.schMsg, sf.end = msg, end
	rd, err := sf.reader(nil)
	if err != nil {
		return err
	}
	sf.schema = rd.Schema()
	rd.Release()
	if sf.nodes, sf.buffers, err = schemaCounts(sf.schema); err != nil {
		sf.schema = nil
		return &CorruptionError{File: sf.rel, Offset: 8, Err: err}
	}
	return nil
}

func (sf *segFile) close() {
	if sf.footer != nil {
		sf.footer.Close()
		sf.footer = nil
	}
	if sf.schMsg != nil {
		sf.schMsg.Release()
		sf.schMsg = nil
	}
	if sf.mapped && sf.data != nil {
		_ = syscall.Munmap(sf.data)
	}
	sf.data = nil
}

// maxMetaLen bounds a message's metadata length (a record batch of a few columns needs far less).
const maxMetaLen = 64 << 20

// messageAt parses the encapsulated message at off, validating every length against the
// mapped bytes (never trusting them), and returns it with the offset just after it. If want
// >= 0 the message must be exactly want bytes long. The message aliases the mapped bytes.
func (sf *segFile) messageAt(off, want int64) (msg *ipc.Message, next int64, err error) {
	bad := func(format string, args ...any) (*ipc.Message, int64, error) {
		return nil, 0, corruptf(sf.rel, off, format, args...)
	}
	size := int64(len(sf.data))
	if off < 8 || off%8 != 0 || off > size-8 {
		return bad("message offset outside the %d bytes of the segment: %w", size, io.ErrUnexpectedEOF)
	}
	if c := binary.LittleEndian.Uint32(sf.data[off:]); c != 0xFFFFFFFF {
		return bad("no message continuation marker (%#x)", c)
	}
	metaLen := int64(int32(binary.LittleEndian.Uint32(sf.data[off+4:])))
	switch {
	case metaLen == 0:
		return nil, off + 8, io.EOF // end-of-stream marker
	case metaLen < 8 || metaLen > maxMetaLen || (8+metaLen)%8 != 0:
		return bad("message metadata length %d invalid", metaLen)
	case metaLen > size-off-8:
		return bad("message metadata of %d bytes past end of segment: %w", metaLen, io.ErrUnexpectedEOF)
	}
	meta := sf.data[off+8 : off+8+metaLen]
	defer func() {
		if r := recover(); r != nil { // flatbuffers index out of range on garbage metadata
			msg, next, err = nil, 0, corruptf(sf.rel, off, "message metadata undecodable: %v", r)
		}
	}()
	probe := ipc.NewMessage(memory.NewBufferBytes(meta), memory.NewBufferBytes(nil))
	bodyLen, typ := probe.BodyLen(), probe.Type()
	probe.Release()
	bodyStart := off + 8 + metaLen
	switch {
	case bodyLen < 0 || bodyLen%8 != 0:
		return bad("message body length %d invalid", bodyLen)
	case bodyLen > size-bodyStart:
		return bad("message body of %d bytes past end of segment: %w", bodyLen, io.ErrUnexpectedEOF)
	case typ != ipc.MessageSchema && typ != ipc.MessageRecordBatch:
		return bad("unexpected message type %s", typ)
	case want >= 0 && 8+metaLen+bodyLen != want:
		return bad("message of %d bytes, index says %d", 8+metaLen+bodyLen, want)
	}
	body := sf.data[bodyStart : bodyStart+bodyLen]
	if err := checkMessageMeta(meta, body); err != nil {
		return bad("%w", err)
	}
	if typ == ipc.MessageRecordBatch {
		if sf.schema == nil {
			return bad("record batch before the schema")
		}
		nodes, bufs, err := recordBatchCounts(meta)
		if err != nil {
			return bad("%w", err)
		}
		if nodes != sf.nodes || bufs != sf.buffers {
			return bad("record batch has %d field nodes and %d buffers, schema needs %d and %d", nodes, bufs, sf.nodes, sf.buffers)
		}
	}
	return ipc.NewMessage(memory.NewBufferBytes(meta), memory.NewBufferBytes(body)), bodyStart + bodyLen, nil
}

// msgList is an ipc.MessageReader over already parsed messages: the schema message then the
// record batch messages to decode.
type msgList struct {
	msgs []*ipc.Message
	i    int
}

func (m *msgList) Message() (*ipc.Message, error) {
	if m.i >= len(m.msgs) {
		return nil, io.EOF
	}
	m.i++
	return m.msgs[m.i-1], nil
}
func (m *msgList) Retain()  {}
func (m *msgList) Release() {}

// reader returns an IPC stream reader over the schema message followed by msgs.
func (sf *segFile) reader(msgs []*ipc.Message) (rd *ipc.Reader, err error) {
	defer func() {
		if r := recover(); r != nil {
			rd, err = nil, corruptf(sf.rel, 8, "schema undecodable: %v", r)
		}
	}()
	all := append([]*ipc.Message{sf.schMsg}, msgs...)
	rd, err = ipc.NewReaderFromMessageReader(&msgList{msgs: all}, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, corruptf(sf.rel, 8, "schema: %w", err)
	}
	return rd, nil
}

// verifyCRC checks the CRC-32C of the length bytes at off.
func (sf *segFile) verifyCRC(off, length int64, want uint32) error {
	if off < 0 || length < 0 || off > int64(len(sf.data))-length {
		return corruptf(sf.rel, off, "message of %d bytes past end of segment: %w", length, io.ErrUnexpectedEOF)
	}
	if got := crc32.Checksum(sf.data[off:off+length], castagnoli); got != want {
		return corruptf(sf.rel, off, "checksum mismatch: CRC-32C %08x, index says %08x", got, want)
	}
	return nil
}

// recordAt decodes the record batch message of length bytes at off after checking its CRC.
// The record aliases the mapped bytes when the segment is uncompressed; the caller releases it.
func (sf *segFile) recordAt(off, length int64, crc uint32) (arrow.RecordBatch, error) {
	if err := sf.verifyCRC(off, length, crc); err != nil {
		return nil, err
	}
	msg, _, err := sf.messageAt(off, length)
	if err != nil {
		return nil, err
	}
	if msg.Type() != ipc.MessageRecordBatch {
		msg.Release()
		return nil, corruptf(sf.rel, off, "message is %s, want RecordBatch", msg.Type())
	}
	return sf.decode(msg, off)
}

func (sf *segFile) decode(msg *ipc.Message, off int64) (rec arrow.RecordBatch, err error) {
	defer msg.Release()
	defer func() {
		if r := recover(); r != nil {
			rec, err = nil, corruptf(sf.rel, off, "record batch undecodable: %v", r)
		}
	}()
	rd, err := sf.reader([]*ipc.Message{msg})
	if err != nil {
		return nil, err
	}
	defer rd.Release()
	if !rd.Next() {
		if err := rd.Err(); err != nil {
			return nil, corruptf(sf.rel, off, "record batch: %w", err)
		}
		return nil, corruptf(sf.rel, off, "record batch missing")
	}
	rec = rd.RecordBatch()
	if err := validateRecord(rec); err != nil {
		return nil, corruptf(sf.rel, off, "record batch: %w", err)
	}
	rec.Retain()
	return rec, nil
}

// validateRecord checks every column's buffers against its length and offsets, so that
// reading values from a record decoded from disk bytes cannot go out of bounds.
func validateRecord(rec arrow.RecordBatch) error {
	for i, c := range rec.Columns() {
		if c.Len() != int(rec.NumRows()) {
			return fmt.Errorf("column %d has %d rows, record %d", i, c.Len(), rec.NumRows())
		}
	}
	return array.ValidateRecordFull(rec)
}
