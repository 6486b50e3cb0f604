package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Check verifies every index entry of a run ("" = every run) against its segment: the segment
// record, the file and its committed size, magic, schema, the message at the entry's offset,
// its record index (against the footer of sealed segments), row range and the batch and layer
// values of the rows. It returns what is wrong, one Problem per entry (one per segment when a
// whole segment is unreadable); the error is for failures to read the index itself.
func (s *Store) Check(run string) ([]Problem, error) {
	type item struct {
		key entryKey
		e   entry
	}
	type runItems struct {
		rec    runRecord
		layers []layerRecord
		segs   map[uint32]segment
		items  []item
	}
	var runs []*runItems
	var problems []Problem
	err := s.view(func(tx *bolt.Tx) error {
		var recs []runRecord
		if run != "" {
			r, err := lookupRun(tx, run)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		} else {
			err := tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
				r, err := decodeRunAt(k, v)
				if err != nil {
					problems = append(problems, Problem{File: indexFile, Offset: -1, Err: fmt.Errorf("runs/%s: %w", keyHex(k), err)})
					return nil
				}
				recs = append(recs, r)
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, r := range recs {
			ri := &runItems{rec: r, segs: map[uint32]segment{}}
			ls, err := runLayers(tx, r.ID)
			if err != nil {
				problems = append(problems, Problem{Run: r.Info.Name, File: indexFile, Offset: -1, Err: err})
				continue
			}
			ri.layers = ls
			prefix := runKey(r.ID)
			c := tx.Bucket(bucketSegments).Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if len(k) != 12 {
					problems = append(problems, Problem{Run: r.Info.Name, File: indexFile, Offset: -1, Err: fmt.Errorf("segment key %s of %d bytes, want 12", keyHex(k), len(k))})
					continue
				}
				seg, err := decodeSegment(v)
				if err != nil {
					problems = append(problems, Problem{Run: r.Info.Name, File: indexFile, Offset: -1, Err: fmt.Errorf("segment record %s: %v", keyHex(k), err)})
					continue
				}
				ri.segs[binary.BigEndian.Uint32(k[8:])] = seg
			}
			c = tx.Bucket(bucketEntries).Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				ek, err := decodeEntryKey(k)
				if err == nil {
					var e entry
					if e, err = decodeEntry(v); err == nil {
						ri.items = append(ri.items, item{ek, e})
						continue
					}
				}
				problems = append(problems, Problem{Run: r.Info.Name, File: indexFile, Offset: -1, Err: &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("entry %s: %w", keyHex(k), err)}})
			}
			runs = append(runs, ri)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: check: %w", err)
	}
	for _, ri := range runs {
		name := ri.rec.Info.Name
		c := &segCache{s: s, runID: ri.rec.ID, files: map[uint32]*segFile{}}
		badSeg := map[uint32]bool{}
		footerReported := map[uint32]bool{}
		for _, it := range ri.items {
			p := Problem{Run: name, Batch: it.key.batch, File: segRel(ri.rec.ID, it.e.seq), Offset: int64(it.e.offset)}
			if int(it.key.layer) >= len(ri.layers) {
				p.Err = &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("entry of layer id %d, run has %d layers", it.key.layer, len(ri.layers))}
				problems = append(problems, p)
				continue
			}
			layer := ri.layers[it.key.layer]
			p.Layer = layer.Path
			if badSeg[it.e.seq] {
				continue
			}
			seg, ok := ri.segs[it.e.seq]
			if !ok {
				p.Err = &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("segment %d has no record", it.e.seq)}
				problems = append(problems, p)
				badSeg[it.e.seq] = true
				continue
			}
			if seg.kind != it.key.kind || (seg.kind == kindTensor && seg.layer != it.key.layer) || it.e.offset+it.e.length > seg.size || it.e.record >= seg.records {
				p.Err = &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("entry does not fit its segment record")}
				problems = append(problems, p)
				continue
			}
			if err := checkEntry(c, it.e, seg, it.key, layer); err != nil {
				p.Err = err
				if ce := (*CorruptionError)(nil); errors.As(err, &ce) && ce.File == p.File && ce.Offset >= 0 {
					p.Offset = ce.Offset // where the damage is, not where the entry starts
				}
				problems = append(problems, p)
				if _, open := c.files[it.e.seq]; !open {
					badSeg[it.e.seq] = true
				}
			}
			// a damaged footer does not make entries unreadable: one problem per segment
			if f := c.files[it.e.seq]; f != nil && f.footerErr != nil && !footerReported[it.e.seq] {
				footerReported[it.e.seq] = true
				fp := p
				fp.Err, fp.Offset = f.footerErr, int64(len(f.data))
				var ce *CorruptionError
				if errors.As(f.footerErr, &ce) {
					fp.Offset = ce.Offset
				}
				problems = append(problems, fp)
			}
		}
		c.close()
	}
	return problems, nil
}

// checkEntry reads one entry the way readers do, through the message at its offset, and for
// sealed segments also through the footer.
func checkEntry(c *segCache, e entry, seg segment, k entryKey, layer layerRecord) error {
	f, err := c.file(e.seq, seg)
	if err != nil {
		return err
	}
	if k.kind == kindTensor {
		// the schema message has no checksum; readers trust the index, Check compares
		if v, _ := f.schema.Metadata().GetValue("actrec.layer"); v != layer.Path {
			return corruptf(f.rel, 8, "schema metadata actrec.layer is %q, index says layer %q", v, layer.Path)
		}
	}
	rec, err := f.recordAt(int64(e.offset), int64(e.length), e.crc)
	if err != nil {
		return err
	}
	defer rec.Release()
	if uint64(e.row)+uint64(e.rows) > uint64(rec.NumRows()) {
		return corruptf(f.rel, int64(e.offset), "rows %d..%d of a record batch of %d rows", e.row, e.row+e.rows, rec.NumRows())
	}
	if err := checkRowKeys(rec, f, e, k.batch, layer.Path); err != nil {
		return err
	}
	if k.kind == kindTensor {
		want, _ := shapeSize(layer.Shape)
		if _, n, err := tensorValues(rec.Column(tcTensor)); err != nil || n != want {
			return corruptf(f.rel, int64(e.offset), "tensor of %d values, layer shape %v (%v)", n, layer.Shape, err)
		}
	} else {
		for row := int(e.row); row < int(e.row+e.rows); row++ {
			if _, err := statsRowAt(rec, row); err != nil {
				return corruptf(f.rel, int64(e.offset), "row %d: %w", row, err)
			}
		}
	}
	if f.footer != nil {
		if f.footer.NumRecords() != int(seg.records) {
			return corruptf(f.rel, int64(len(f.data)), "footer lists %d record batches, index %d", f.footer.NumRecords(), seg.records)
		}
		frec, err := f.entryRecord(e)
		if err != nil {
			return err
		}
		defer frec.Release()
		if frec.NumRows() != rec.NumRows() {
			return corruptf(f.rel, int64(e.offset), "footer record batch %d has %d rows, message at offset %d has %d", e.record, frec.NumRows(), e.offset, rec.NumRows())
		}
	}
	return nil
}
