package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	bolt "go.etcd.io/bbolt"
)

// lookup is the result of an index look-up: entries of one (run, layer, kind) in batch order.
type lookup struct {
	run     runRecord
	layer   layerRecord
	layerID uint32
	segs    map[uint32]segment
	keys    []entryKey
	ents    []entry
}

// find collects the entries of run/layer/kind in r, without touching any segment.
func (s *Store) find(run, layer string, kind byte, r BatchRange) (*lookup, error) {
	lus, err := s.findKinds(run, layer, []byte{kind}, r)
	if err != nil {
		return nil, err
	}
	return lus[0], nil
}

// findKinds is find for several kinds, in one read transaction.
func (s *Store) findKinds(run, layer string, kinds []byte, r BatchRange) ([]*lookup, error) {
	var lus []*lookup
	err := s.view(func(tx *bolt.Tx) error {
		rr, err := lookupRun(tx, run)
		if err != nil {
			return err
		}
		ls, err := runLayers(tx, rr.ID)
		if err != nil {
			return err
		}
		id, ok := findLayer(ls, layer)
		if !ok {
			return fmt.Errorf("run %q layer %q: %w", run, layer, ErrNotFound)
		}
		for _, kind := range kinds {
			lu := &lookup{segs: map[uint32]segment{}, run: rr, layer: ls[id], layerID: id}
			if err := collectEntries(tx, lu, kind, r); err != nil {
				return err
			}
			lus = append(lus, lu)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return lus, nil
}

func collectEntries(tx *bolt.Tx, lu *lookup, kind byte, r BatchRange) error {
	lo, hi, all := r.bounds()
	start := entryKey{run: lu.run.ID, layer: lu.layerID, kind: kind, batch: lo}.encode()
	prefix := start[:13]
	if all {
		start = prefix
	}
	if all { // size the slices from the layer's counters (a hint, bounded)
		hint := lu.layer.StatsBatches
		if kind == kindTensor {
			hint = lu.layer.TensorBatches
		}
		hint = min(max(hint, 0), 1<<22)
		lu.keys, lu.ents = make([]entryKey, 0, hint), make([]entry, 0, hint)
	}
	c := tx.Bucket(bucketEntries).Cursor()
	sb := tx.Bucket(bucketSegments)
	for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		ek, err := decodeEntryKey(k)
		if err != nil {
			return &CorruptionError{File: indexFile, Offset: -1, Err: err}
		}
		if !all && ek.batch >= hi {
			break
		}
		e, err := decodeEntry(v)
		if err != nil {
			return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("entry %s: %w", keyHex(k), err)}
		}
		seg, ok := lu.segs[e.seq]
		if !ok {
			sv := sb.Get(segKey(lu.run.ID, e.seq))
			if sv == nil {
				return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("entry %s: segment %d has no record", keyHex(k), e.seq)}
			}
			if seg, err = decodeSegment(sv); err != nil {
				return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("segment %d of run %q: %w", e.seq, lu.run.Info.Name, err)}
			}
			lu.segs[e.seq] = seg
		}
		if seg.kind != kind || (kind == kindTensor && seg.layer != lu.layerID) || e.offset+e.length > seg.size || e.record >= seg.records {
			return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("entry %s does not fit segment %d (kind %d layer %d size %d records %d)", keyHex(k), e.seq, seg.kind, seg.layer, seg.size, seg.records)}
		}
		lu.keys = append(lu.keys, ek)
		lu.ents = append(lu.ents, e)
	}
	return nil
}

// segCache keeps the segments and the last record batch of a read open.
type segCache struct {
	s     *Store
	runID uint64
	files map[uint32]*segFile
	seq   uint32
	recNo uint32
	rec   arrow.RecordBatch
}

func (c *segCache) close() {
	if c.rec != nil {
		c.rec.Release()
		c.rec = nil
	}
	for _, f := range c.files {
		f.close()
	}
}

func (c *segCache) file(seq uint32, seg segment) (*segFile, error) {
	if f, ok := c.files[seq]; ok {
		return f, nil
	}
	rel := segRel(c.runID, seq)
	f, err := mapSegment(filepath.Join(c.s.dir, rel), rel, int64(seg.size))
	if err != nil {
		return nil, err
	}
	if err := checkSchema(f.schema, seg.kind); err != nil {
		f.close()
		return nil, &CorruptionError{File: rel, Offset: 8, Err: err}
	}
	if seg.sealed() {
		// a damaged footer costs nothing but the footer: every entry is located by its
		// offset from the index and CRC-checked, so it is read from its message instead
		f.footerErr = f.openFooter()
	}
	c.files[seq] = f
	return f, nil
}

// record returns the record batch of an entry (valid until the next call).
func (c *segCache) record(e entry, seg segment) (arrow.RecordBatch, *segFile, error) {
	f, err := c.file(e.seq, seg)
	if err != nil {
		return nil, nil, err
	}
	if c.rec == nil || c.seq != e.seq || c.recNo != e.record {
		if c.rec != nil {
			c.rec.Release()
			c.rec = nil
		}
		rec, err := f.entryRecord(e)
		if err != nil {
			return nil, nil, err
		}
		c.rec, c.seq, c.recNo = rec, e.seq, e.record
	}
	// every entry's row range is checked, also when its record batch is cached: entries
	// sharing a record batch are separate index values, each possibly damaged
	if uint64(e.row)+uint64(e.rows) > uint64(c.rec.NumRows()) {
		return nil, nil, corruptf(f.rel, int64(e.offset), "rows %d..%d of a record batch of %d rows", e.row, uint64(e.row)+uint64(e.rows), c.rec.NumRows())
	}
	return c.rec, f, nil
}

// openFooter reads a sealed segment's footer with ipc.NewMappedFileReader (zero-copy).
func (sf *segFile) openFooter() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corruptf(sf.rel, int64(len(sf.data)), "footer undecodable: %v", r)
		}
	}()
	blocks, err := footerBlocks(sf.data)
	if err != nil {
		return &CorruptionError{File: sf.rel, Offset: int64(len(sf.data)), Err: err}
	}
	fr, err := ipc.NewMappedFileReader(sf.data)
	if err != nil {
		return corruptf(sf.rel, int64(len(sf.data)), "footer: %w", err)
	}
	if !fr.Schema().Equal(sf.schema) {
		fr.Close()
		return corruptf(sf.rel, int64(len(sf.data)), "footer schema differs from the stream schema")
	}
	sf.footer, sf.blocks = fr, blocks
	return nil
}

// entryRecord decodes the record batch of e: through the footer of a sealed segment, else
// from the message at e.offset.
func (sf *segFile) entryRecord(e entry) (rec arrow.RecordBatch, err error) {
	if sf.footer == nil {
		return sf.recordAt(int64(e.offset), int64(e.length), e.crc)
	}
	if err := sf.verifyCRC(int64(e.offset), int64(e.length), e.crc); err != nil {
		return nil, err
	}
	return sf.footerRecord(int(e.record), int64(e.offset), int64(e.length))
}

// footerRecord decodes record batch i through the footer (zero-copy). Its footer block must
// be the message of length bytes at off, which is verified first.
func (sf *segFile) footerRecord(i int, off, length int64) (rec arrow.RecordBatch, err error) {
	if i < 0 || i >= len(sf.blocks) || i >= sf.footer.NumRecords() {
		return nil, corruptf(sf.rel, int64(len(sf.data)), "footer lists %d record batches, index wants #%d", len(sf.blocks), i)
	}
	if b := sf.blocks[i]; b.offset != off || b.length != length {
		return nil, corruptf(sf.rel, int64(len(sf.data)), "footer block %d is [%d, +%d), index says [%d, +%d)", i, b.offset, b.length, off, length)
	}
	msg, _, err := sf.messageAt(off, length)
	if err != nil {
		return nil, err
	}
	msg.Release()
	defer func() {
		if r := recover(); r != nil {
			rec, err = nil, corruptf(sf.rel, off, "record batch undecodable: %v", r)
		}
	}()
	rec, err = sf.footer.RecordBatchAt(i)
	if err != nil {
		return nil, corruptf(sf.rel, off, "record batch %d: %w", i, err)
	}
	if err := validateRecord(rec); err != nil {
		rec.Release()
		return nil, corruptf(sf.rel, off, "record batch %d: %w", i, err)
	}
	return rec, nil
}

func checkRowKeys(rec arrow.RecordBatch, f *segFile, e entry, batch int64, layer string) error {
	bc, ok1 := rec.Column(0).(*array.Int64)
	lc, ok2 := rec.Column(1).(*array.String)
	if !ok1 || !ok2 {
		return corruptf(f.rel, int64(e.offset), "batch/layer columns of unexpected type")
	}
	for i := int(e.row); i < int(e.row+e.rows); i++ {
		if bc.Value(i) != batch || lc.Value(i) != layer {
			return corruptf(f.rel, int64(e.offset), "row %d is batch %d layer %q, index says batch %d layer %q", i, bc.Value(i), lc.Value(i), batch, layer)
		}
	}
	return nil
}

// Stats returns the stats rows of one layer of a run for the batches in r, in batch order.
// It looks entries up in the index and reads only the record batches they point at.
func (s *Store) Stats(run, layer string, r BatchRange) ([]StatsRow, error) {
	lu, err := s.find(run, layer, kindStats, r)
	if err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	c := &segCache{s: s, runID: lu.run.ID, files: map[uint32]*segFile{}}
	defer c.close()
	out := make([]StatsRow, 0, len(lu.ents))
	for i, e := range lu.ents {
		rec, f, err := c.record(e, lu.segs[e.seq])
		if err != nil {
			return nil, fmt.Errorf("store: stats of run %q layer %q batch %d: %w", run, layer, lu.keys[i].batch, err)
		}
		if err := checkRowKeys(rec, f, e, lu.keys[i].batch, layer); err != nil {
			return nil, fmt.Errorf("store: stats: %w", err)
		}
		for row := int(e.row); row < int(e.row+e.rows); row++ {
			sr, err := statsRowAt(rec, row)
			if err != nil {
				return nil, fmt.Errorf("store: stats: %w", corruptf(f.rel, int64(e.offset), "row %d: %w", row, err))
			}
			out = append(out, sr)
		}
	}
	return out, nil
}

func statsRowAt(rec arrow.RecordBatch, i int) (sr StatsRow, err error) {
	f64 := func(c int) float64 { return rec.Column(c).(*array.Float64).Value(i) }
	i64 := func(c int) int64 { return rec.Column(c).(*array.Int64).Value(i) }
	sr = StatsRow{
		Batch: i64(scBatch), Count: i64(scCount),
		Mean: f64(scMean), Std: f64(scStd), Min: f64(scMin), Max: f64(scMax), L2: f64(scL2), ZeroFrac: f64(scZeroFrac),
		NaN: i64(scNaN), Inf: i64(scInf),
	}
	for q := range 7 {
		sr.Percentiles[q] = f64(scP01 + q)
	}
	keys := rec.Column(scHistKeys).(*array.List)
	counts := rec.Column(scHistCounts).(*array.List)
	ks, ke := keys.ValueOffsets(i)
	cs, ce := counts.ValueOffsets(i)
	kv := keys.ListValues().(*array.Uint16).Values()
	cv := counts.ListValues().(*array.Uint64).Values()
	if ks < 0 || ke < ks || ke > int64(len(kv)) || cs < 0 || ce < cs || ce > int64(len(cv)) {
		return sr, errors.New("histogram offsets out of range")
	}
	sr.Hist.Keys = append([]uint16(nil), kv[ks:ke]...)
	sr.Hist.Counts = append([]uint64(nil), cv[cs:ce]...)
	if err := sr.Hist.Validate(); err != nil {
		return sr, err
	}
	for _, ch := range []struct {
		col int
		dst *[]float32
	}{{scChannelMean, &sr.ChannelMean}, {scChannelMax, &sr.ChannelMax}} {
		l := rec.Column(ch.col).(*array.List)
		if l.IsNull(i) {
			continue
		}
		s, e := l.ValueOffsets(i)
		v := l.ListValues().(*array.Float32).Float32Values()
		if s < 0 || e < s || e > int64(len(v)) {
			return sr, errors.New("channel offsets out of range")
		}
		*ch.dst = append(make([]float32, 0, e-s), v[s:e]...)
	}
	if sr.Count < 0 || sr.NaN < 0 || sr.Inf < 0 {
		return sr, errors.New("negative count")
	}
	return sr, nil
}

// Tensors streams the tensor rows of one layer of a run for the batches in r, in batch order
// (rows of a batch in the order they were appended). Row.Data may alias a read-only memory map
// of the segment: it is valid only during fn, and fn must not modify it. An error from fn
// stops the scan and is returned as is.
func (s *Store) Tensors(run, layer string, r BatchRange, fn func(TensorRow) error) error {
	lu, err := s.find(run, layer, kindTensor, r)
	if err != nil {
		return fmt.Errorf("store: tensors: %w", err)
	}
	c := &segCache{s: s, runID: lu.run.ID, files: map[uint32]*segFile{}}
	defer c.close()
	want, _ := shapeSize(lu.layer.Shape)
	for i, e := range lu.ents {
		rec, f, err := c.record(e, lu.segs[e.seq])
		if err != nil {
			return fmt.Errorf("store: tensors of run %q layer %q batch %d: %w", run, layer, lu.keys[i].batch, err)
		}
		if err := checkRowKeys(rec, f, e, lu.keys[i].batch, layer); err != nil {
			return fmt.Errorf("store: tensors: %w", err)
		}
		vals, n, err := tensorValues(rec.Column(tcTensor))
		if err != nil || n != want {
			if err == nil {
				err = fmt.Errorf("tensor of %d values, layer shape %v has %d", n, lu.layer.Shape, want)
			}
			return fmt.Errorf("store: tensors: %w", corruptf(f.rel, int64(e.offset), "%w", err))
		}
		samples := rec.Column(tcSample).(*array.Int32)
		ds := rec.Column(tcDatasetIndex).(*array.Int64)
		for row := int(e.row); row < int(e.row+e.rows); row++ {
			tr := TensorRow{Batch: lu.keys[i].batch, Sample: samples.Value(row), DatasetIndex: ds.Value(row), Data: vals[row*n : (row+1)*n : (row+1)*n]}
			if err := fn(tr); err != nil {
				return err
			}
		}
	}
	return nil
}

// EntryKind tells what an index entry holds.
type EntryKind string

const (
	KindStats  EntryKind = "stats"  // a StatsRow
	KindTensor EntryKind = "tensor" // TensorRows of one batch
)

// Entry describes one index entry: the stats row or a group of tensor rows of one batch of a
// layer, as the index knows them (no segment is read).
type Entry struct {
	Batch   int64     `json:"batch"`
	Kind    EntryKind `json:"kind"`
	Part    int       `json:"part"`    // entries of one batch and kind are numbered from 0
	Rows    int       `json:"rows"`    // stats: 1; tensor: samples
	Segment string    `json:"segment"` // file relative to the store directory
	Offset  int64     `json:"offset"`  // of the record batch message in Segment
}

// Entries lists the index entries of one layer of a run for the batches in r, stats entries
// first then tensor entries, each in batch order. It reads only the index.
func (s *Store) Entries(run, layer string, r BatchRange) ([]Entry, error) {
	lus, err := s.findKinds(run, layer, []byte{kindStats, kindTensor}, r)
	if err != nil {
		return nil, fmt.Errorf("store: entries: %w", err)
	}
	out := make([]Entry, 0, len(lus[0].ents)+len(lus[1].ents))
	for _, lu := range lus {
		k := KindStats
		if lu == lus[1] {
			k = KindTensor
		}
		names := map[uint32]string{}
		for i, e := range lu.ents {
			name, ok := names[e.seq]
			if !ok {
				name = segRel(lu.run.ID, e.seq)
				names[e.seq] = name
			}
			out = append(out, Entry{Batch: lu.keys[i].batch, Kind: k, Part: int(lu.keys[i].part), Rows: int(e.rows), Segment: name, Offset: int64(e.offset)})
		}
	}
	return out, nil
}
