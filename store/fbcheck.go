package store

// A bounds checker for the flatbuffer metadata of Arrow IPC messages read from disk.
// arrow-go decodes it without verification and sizes allocations by vector lengths found in
// the bytes (schema fields, children, custom metadata) and by the uncompressed-length prefix
// of compressed buffers, so a flipped bit can make it allocate terabytes. Every message is
// checked here before arrow sees it. Layout: https://flatbuffers.dev/internals/ and Arrow's
// format/Message.fbs, Schema.fbs.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

const (
	maxFBDepth = 16 // nesting of Field.children
	maxFBVec   = 1 << 16
	// maxRecordBytes bounds the uncompressed body of one record batch; the Writer splits
	// larger ones (FORMAT.md §2).
	maxRecordBytes = 1 << 30
	// maxChunkBytes bounds the size of one sample's tensor, and so of a record batch.
	maxChunkBytes = 256 << 20
	// tensorChunkBytes and statsChunkRows size the record batches the Writer makes: small
	// enough that reading one entry (which checks the CRC of its whole record batch) stays
	// cheap, large enough that per-batch overhead does not matter.
	tensorChunkBytes = 4 << 20
	tensorChunkRows  = 4096
	statsChunkRows   = 4096
)

// fbuf is a flatbuffer being checked; visits bounds the tables visited, so that a buffer
// whose vectors point at the same tables over and over cannot make the check take
// exponential time.
type fbuf struct {
	b      []byte
	visits int
}

const maxFBVisits = 1 << 14

var errFB = errors.New("malformed message metadata")

func (f *fbuf) u32(pos int) (uint32, error) {
	if pos < 0 || pos > len(f.b)-4 {
		return 0, errFB
	}
	return binary.LittleEndian.Uint32(f.b[pos:]), nil
}

// table validates the table at pos and returns its vtable position and size.
func (f *fbuf) table(pos int) (vt, vtSize int, err error) {
	if f.visits++; f.visits > maxFBVisits {
		return 0, 0, fmt.Errorf("%w: more than %d tables", errFB, maxFBVisits)
	}
	so, err := f.u32(pos)
	if err != nil {
		return 0, 0, err
	}
	vt = pos - int(int32(so))
	if vt < 0 || vt > len(f.b)-4 {
		return 0, 0, errFB
	}
	vtSize = int(binary.LittleEndian.Uint16(f.b[vt:]))
	tSize := int(binary.LittleEndian.Uint16(f.b[vt+2:]))
	if vtSize < 4 || vtSize%2 != 0 || vt+vtSize > len(f.b) || pos+tSize > len(f.b) {
		return 0, 0, errFB
	}
	return vt, vtSize, nil
}

// field returns the absolute position of field i of the table at pos, or 0 if absent.
func (f *fbuf) field(pos, i int) (int, error) {
	vt, vtSize, err := f.table(pos)
	if err != nil {
		return 0, err
	}
	o := 4 + 2*i
	if o+2 > vtSize {
		return 0, nil
	}
	fo := int(binary.LittleEndian.Uint16(f.b[vt+o:]))
	if fo == 0 {
		return 0, nil
	}
	if pos+fo > len(f.b)-1 {
		return 0, errFB
	}
	return pos + fo, nil
}

// ref follows the offset stored in field i (a table, vector or string); 0 if absent.
func (f *fbuf) ref(pos, i int) (int, error) {
	fp, err := f.field(pos, i)
	if err != nil || fp == 0 {
		return 0, err
	}
	u, err := f.u32(fp)
	if err != nil {
		return 0, err
	}
	t := fp + int(u)
	if u > uint32(len(f.b)) || t > len(f.b)-4 {
		return 0, errFB
	}
	return t, nil
}

// vector validates the vector in field i with elements of elem bytes; returns its length and
// the position of its first element.
func (f *fbuf) vector(pos, i, elem int) (n, start int, err error) {
	v, err := f.ref(pos, i)
	if err != nil || v == 0 {
		return 0, 0, err
	}
	u, _ := f.u32(v)
	if u > maxFBVec || int(u)*elem > len(f.b)-v-4 {
		return 0, 0, errFB
	}
	return int(u), v + 4, nil
}

// tables validates a vector of tables in field i and calls fn on each.
func (f *fbuf) tables(pos, i int, fn func(int) error) error {
	n, start, err := f.vector(pos, i, 4)
	if err != nil {
		return err
	}
	for k := 0; k < n; k++ {
		e := start + 4*k
		u, _ := f.u32(e)
		t := e + int(u)
		if u > uint32(len(f.b)) || t > len(f.b)-4 {
			return errFB
		}
		if _, _, err := f.table(t); err != nil {
			return err
		}
		if fn != nil {
			if err := fn(t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fbuf) keyValues(pos, i int) error {
	return f.tables(pos, i, func(kv int) error {
		for k := 0; k < 2; k++ {
			if _, _, err := f.vector(kv, k, 1); err != nil {
				return err
			}
		}
		return nil
	})
}

func (f *fbuf) fieldTable(pos, depth int) error {
	if depth > maxFBDepth {
		return errFB
	}
	if _, _, err := f.vector(pos, 0, 1); err != nil { // name
		return err
	}
	tt, err := f.field(pos, 2) // type_type
	if err != nil {
		return err
	}
	typ, err := f.ref(pos, 3)
	if err != nil {
		return err
	}
	if typ != 0 {
		if _, _, err := f.table(typ); err != nil {
			return err
		}
		if tt != 0 && f.b[tt] == 14 { // Union: typeIds vector of int
			if _, _, err := f.vector(typ, 1, 4); err != nil {
				return err
			}
		}
	}
	if d, err := f.ref(pos, 4); err != nil || d != 0 {
		return fmt.Errorf("%w: dictionary-encoded field", errFB)
	}
	if err := f.tables(pos, 5, func(c int) error { return f.fieldTable(c, depth+1) }); err != nil {
		return err
	}
	return f.keyValues(pos, 6)
}

// checkFooter verifies the footer flatbuffer of an IPC file (its schema like a Schema
// message's) and returns its record batch blocks.
func checkFooter(footer []byte) ([]fileBlock, error) {
	b := &fbuf{b: footer}
	root, err := b.u32(0)
	if err != nil || int(root) > len(b.b)-4 {
		return nil, errFB
	}
	ft := int(root)
	if _, _, err := b.table(ft); err != nil {
		return nil, err
	}
	sch, err := b.ref(ft, 1)
	if err != nil || sch == 0 {
		return nil, errFB
	}
	if err := checkSchemaTable(b, sch); err != nil {
		return nil, err
	}
	if n, _, err := b.vector(ft, 2, 24); err != nil || n != 0 {
		return nil, fmt.Errorf("%w: footer lists %d dictionaries", errFB, n)
	}
	if err := b.keyValues(ft, 4); err != nil {
		return nil, err
	}
	n, start, err := b.vector(ft, 3, 24)
	if err != nil {
		return nil, err
	}
	blocks := make([]fileBlock, n)
	for k := range blocks {
		p := start + 24*k
		off := int64(binary.LittleEndian.Uint64(footer[p:]))
		meta := int64(int32(binary.LittleEndian.Uint32(footer[p+8:])))
		body := int64(binary.LittleEndian.Uint64(footer[p+16:]))
		if off < 0 || meta < 0 || body < 0 || off > maxFileOffset || meta > maxMetaLen || body > maxFileOffset {
			return nil, fmt.Errorf("%w: footer block %d", errFB, k)
		}
		blocks[k] = fileBlock{offset: off, length: meta + body}
	}
	return blocks, nil
}

func checkSchemaTable(b *fbuf, hdr int) error {
	if _, _, err := b.table(hdr); err != nil {
		return err
	}
	if err := b.tables(hdr, 1, func(f int) error { return b.fieldTable(f, 0) }); err != nil {
		return err
	}
	if err := b.keyValues(hdr, 2); err != nil {
		return err
	}
	_, _, err := b.vector(hdr, 3, 8)
	return err
}

// checkMessageMeta verifies the metadata of a Schema or RecordBatch message and, for a record
// batch, that its buffers lie inside body and that compressed buffers declare a bounded
// uncompressed size.
func checkMessageMeta(meta, body []byte) error {
	b := &fbuf{b: meta}
	root, err := b.u32(0)
	if err != nil || int(root) > len(b.b)-4 {
		return errFB
	}
	msg := int(root)
	if err := b.keyValues(msg, 4); err != nil {
		return err
	}
	ht, err := b.field(msg, 1)
	if err != nil || ht == 0 {
		return errFB
	}
	hdr, err := b.ref(msg, 2)
	if err != nil || hdr == 0 {
		return errFB
	}
	if _, _, err := b.table(hdr); err != nil {
		return err
	}
	switch b.b[ht] {
	case 1: // Schema
		return checkSchemaTable(b, hdr)
	case 3: // RecordBatch
		if _, _, err := b.vector(hdr, 1, 16); err != nil { // nodes
			return err
		}
		if _, _, err := b.vector(hdr, 4, 8); err != nil { // variadicBufferCounts
			return err
		}
		comp, err := b.ref(hdr, 3)
		if err != nil {
			return err
		}
		if comp != 0 {
			if _, _, err := b.table(comp); err != nil {
				return err
			}
		}
		n, start, err := b.vector(hdr, 2, 16) // buffers: {offset int64, length int64}
		if err != nil {
			return err
		}
		var total int64
		for k := 0; k < n; k++ {
			off := int64(binary.LittleEndian.Uint64(meta[start+16*k:]))
			l := int64(binary.LittleEndian.Uint64(meta[start+16*k+8:]))
			if off < 0 || l < 0 || off > int64(len(body)) || l > int64(len(body))-off {
				return fmt.Errorf("%w: buffer %d [%d, +%d) outside body of %d bytes", errFB, k, off, l, len(body))
			}
			if comp == 0 || l == 0 {
				continue
			}
			if l < 8 {
				return fmt.Errorf("%w: compressed buffer %d of %d bytes", errFB, k, l)
			}
			u := int64(binary.LittleEndian.Uint64(body[off:]))
			if u == -1 {
				continue
			}
			if u < 0 || u > maxRecordBytes-total {
				return fmt.Errorf("%w: compressed buffer %d claims %d bytes uncompressed", errFB, k, u)
			}
			total += u
		}
		return nil
	}
	return fmt.Errorf("%w: message type %d", errFB, b.b[ht])
}

// footerBlocks locates and verifies the footer of an IPC file held in data.
func footerBlocks(data []byte) ([]fileBlock, error) {
	n := int64(len(data))
	if n < 8+8+10 || string(data[n-6:]) != "ARROW1" {
		return nil, errors.New("no footer: file does not end with ARROW1")
	}
	size := int64(int32(binary.LittleEndian.Uint32(data[n-10:])))
	if size <= 0 || size > n-8-10 {
		return nil, fmt.Errorf("footer size %d invalid", size)
	}
	blocks, err := checkFooter(data[n-10-size : n-10])
	if err != nil {
		return nil, fmt.Errorf("footer: %w", err)
	}
	return blocks, nil
}

// recordBatchCounts returns the lengths of the nodes and buffers vectors of a RecordBatch
// message already checked by checkMessageMeta.
func recordBatchCounts(meta []byte) (nodes, buffers int, err error) {
	b := &fbuf{b: meta}
	root, err := b.u32(0)
	if err != nil {
		return 0, 0, err
	}
	hdr, err := b.ref(int(root), 2)
	if err != nil || hdr == 0 {
		return 0, 0, errFB
	}
	if nodes, _, err = b.vector(hdr, 1, 16); err != nil {
		return 0, 0, err
	}
	buffers, _, err = b.vector(hdr, 2, 16)
	return nodes, buffers, err
}

// ipcCounts returns how many field nodes and buffers the IPC encoding of a column of type dt
// has. arrow-go reads exactly that many without checking the vectors' lengths, so a record
// batch must have them.
func ipcCounts(dt arrow.DataType) (nodes, buffers int, err error) {
	switch t := dt.(type) {
	case arrow.ExtensionType:
		return ipcCounts(t.StorageType())
	case *arrow.StringType, *arrow.BinaryType:
		return 1, 3, nil
	case *arrow.ListType:
		n, b, err := ipcCounts(t.Elem())
		return n + 1, b + 2, err
	case *arrow.FixedSizeListType:
		n, b, err := ipcCounts(t.Elem())
		return n + 1, b + 1, err
	case arrow.FixedWidthDataType:
		if dt.ID() == arrow.BOOL || t.BitWidth() >= 8 {
			return 1, 2, nil
		}
	}
	return 0, 0, fmt.Errorf("column type %s not in the store format", dt)
}

func schemaCounts(s *arrow.Schema) (nodes, buffers int, err error) {
	for _, f := range s.Fields() {
		n, b, err := ipcCounts(f.Type)
		if err != nil {
			return 0, 0, err
		}
		nodes, buffers = nodes+n, buffers+b
	}
	return nodes, buffers, nil
}
