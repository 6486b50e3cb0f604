package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	bolt "go.etcd.io/bbolt"
)

// recover runs in Open's write transaction: it marks runs whose writer died as crashed,
// salvages their unsealed segments and removes leftover temporary files (FORMAT.md §9).
func (s *Store) recover(tx *bolt.Tx) error {
	var crashed []runRecord
	err := tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
		r, err := decodeRunAt(k, v)
		if err != nil {
			return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("runs/%s: %w", keyHex(k), err)}
		}
		if r.Info.State == StateRecording {
			crashed = append(crashed, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range crashed {
		dir := s.runDir(r.ID)
		lk, err := tryLockRun(filepath.Join(dir, "LOCK"))
		switch {
		case errors.Is(err, ErrLocked):
			continue // a live writer
		case errors.Is(err, fs.ErrNotExist):
			// no segment directory: nothing to salvage
		case err != nil:
			return err
		}
		if err := s.salvageRun(tx, &r); err != nil {
			lk.release()
			return fmt.Errorf("salvage run %q: %w", r.Info.Name, err)
		}
		r.Info.State = StateCrashed
		if err := putRun(tx, r); err != nil {
			lk.release()
			return err
		}
		lk.release()
	}
	return nil
}

// salvageRun indexes the complete record batches of a crashed run's segments that the index
// does not reference yet.
func (s *Store) salvageRun(tx *bolt.Tx, r *runRecord) error {
	layers, err := runLayers(tx, r.ID)
	if err != nil {
		return err
	}
	segs := map[uint32]segment{}
	c := tx.Bucket(bucketSegments).Cursor()
	prefix := runKey(r.ID)
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != 12 {
			return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("segment key %s of %d bytes, want 12", keyHex(k), len(k))}
		}
		seg, err := decodeSegment(v)
		if err != nil {
			return &CorruptionError{File: indexFile, Offset: -1, Err: err}
		}
		segs[binary.BigEndian.Uint32(k[8:])] = seg
	}
	files, err := os.ReadDir(s.runDir(r.ID))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	batchesBefore := r.Batches
	for _, f := range files {
		name := f.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(s.runDir(r.ID), name))
			continue
		}
		seq, ok := parseSegFileName(name)
		if !ok {
			continue
		}
		seg, known := segs[seq]
		if known && seg.sealed() {
			continue
		}
		_, err := s.salvageSegment(tx, r, layers, seq, seg, known)
		if err != nil {
			var ce *CorruptionError
			if errors.As(err, &ce) {
				continue // unreadable: left for Check and Reclaim
			}
			return err
		}
		if seq >= r.NextSeq {
			r.NextSeq = seq + 1
		}
	}
	for i, l := range layers {
		v, err := encodeRecord(l)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketLayers).Put(layerKey(r.ID, uint32(i)), v); err != nil {
			return err
		}
	}
	if salvaged := r.Batches - batchesBefore; salvaged > 0 {
		if r.Info.Meta == nil {
			r.Info.Meta = map[string]string{}
		}
		prev, _ := strconv.Atoi(r.Info.Meta["salvaged_batches"])
		r.Info.Meta["salvaged_batches"] = strconv.Itoa(prev + salvaged)
	}
	return nil
}

// salvageSegment reads the record batches after the committed size of one segment, indexes
// the complete ones and returns how many it indexed.
func (s *Store) salvageSegment(tx *bolt.Tx, r *runRecord, layers []layerRecord, seq uint32, seg segment, known bool) (int, error) {
	rel := segRel(r.ID, seq)
	sf, err := mapSegment(filepath.Join(s.dir, rel), rel, -1)
	if err != nil {
		return 0, err
	}
	defer sf.close()
	if !known {
		kind, layer, err := segmentIdentity(sf, layers)
		if err != nil {
			return 0, err
		}
		seg = segment{kind: kind, layer: layer}
	}
	if err := checkSchema(sf.schema, seg.kind); err != nil {
		return 0, &CorruptionError{File: rel, Offset: 8, Err: err}
	}
	pos := max(int64(seg.size), sf.end)
	var pend []pendingEntry
	var salvaged []fileBlock // the record batches salvaged, as the footer must list them
	added := 0
	for {
		msg, next, err := sf.messageAt(pos, -1)
		if err != nil {
			break // end-of-stream marker, footer or torn message: stop here
		}
		if msg.Type() != ipc.MessageRecordBatch {
			msg.Release()
			break
		}
		rec, err := sf.decode(msg, pos)
		if err != nil {
			break
		}
		crc := crc32.Checksum(sf.data[pos:next], castagnoli)
		p, err := salvageEntries(rec, seg, seq, layers, pos, next-pos, crc)
		rec.Release()
		if err != nil {
			break
		}
		pend = append(pend, p...)
		salvaged = append(salvaged, fileBlock{offset: pos, length: next - pos})
		seg.records++
		added++
		pos = next
	}
	seg.size = uint64(pos)
	if added > 0 {
		seg.flags |= segSalvaged
	}
	// a crash after sealing but before the commit leaves a complete footer; sealed
	// segments are read through it, so it must list the salvaged record batches where
	// they were found and with the schema they were decoded with
	if fr, err := openFooterOf(sf.data); err == nil {
		if fr.NumRecords() == int(seg.records) && fr.Schema().Equal(sf.schema) && footerLists(sf.data, salvaged) {
			seg.flags |= segSealed
			seg.size = uint64(len(sf.data))
		}
		fr.Close()
	}
	if seg.records == 0 {
		return 0, nil // nothing to index; Reclaim removes the file
	}
	if err := addEntries(tx, r, layers, pend); err != nil {
		return 0, err
	}
	if err := tx.Bucket(bucketSegments).Put(segKey(r.ID, seq), seg.encode()); err != nil {
		return 0, err
	}
	return added, nil
}

func openFooterOf(data []byte) (fr *ipc.FileReader, err error) {
	if _, err := footerBlocks(data); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			fr, err = nil, fmt.Errorf("footer undecodable: %v", r)
		}
	}()
	return ipc.NewMappedFileReader(data)
}

// footerLists reports whether the footer of data ends with the record batch blocks want.
func footerLists(data []byte, want []fileBlock) bool {
	blocks, err := footerBlocks(data)
	if err != nil || len(blocks) < len(want) {
		return false
	}
	for i, b := range blocks[len(blocks)-len(want):] {
		if b.offset != want[i].offset {
			return false
		}
	}
	return true
}

// segmentIdentity tells the kind and layer of a segment from its schema metadata.
func segmentIdentity(sf *segFile, layers []layerRecord) (byte, uint32, error) {
	md := sf.schema.Metadata()
	kind, _ := md.GetValue("actrec.kind")
	switch kind {
	case "stats":
		return kindStats, 0, nil
	case "tensor":
		path, _ := md.GetValue("actrec.layer")
		if id, ok := findLayer(layers, path); ok {
			return kindTensor, id, nil
		}
		return 0, 0, corruptf(sf.rel, 8, "tensor segment of unknown layer %q", path)
	}
	return 0, 0, corruptf(sf.rel, 8, "segment kind %q", kind)
}

// salvageEntries derives index entries from a record batch's batch and layer columns, the
// way Writer.appendRecord made them.
func salvageEntries(rec arrow.RecordBatch, seg segment, seq uint32, layers []layerRecord, off, length int64, crc uint32) ([]pendingEntry, error) {
	bc, ok1 := rec.Column(0).(*array.Int64)
	lc, ok2 := rec.Column(1).(*array.String)
	n := int(rec.NumRows())
	if !ok1 || !ok2 || n == 0 {
		return nil, errors.New("unexpected batch/layer columns")
	}
	if seg.kind == kindTensor {
		want, _ := shapeSize(layers[seg.layer].Shape)
		if _, got, err := tensorValues(rec.Column(tcTensor)); err != nil || got != want {
			return nil, fmt.Errorf("tensor size %d, layer has %d (%v)", got, want, err)
		}
	} else {
		// stats rows must pass the checks Stats and Check make when reading them back
		for i := range n {
			if _, err := statsRowAt(rec, i); err != nil {
				return nil, fmt.Errorf("row %d: %w", i, err)
			}
		}
	}
	var out []pendingEntry
	for i := 0; i < n; {
		id, ok := findLayer(layers, lc.Value(i))
		if !ok || (seg.kind == kindTensor && id != seg.layer) {
			return nil, fmt.Errorf("row %d of layer %q", i, lc.Value(i))
		}
		j := i + 1
		// a tensor entry covers the rows of one batch; every row's layer is checked
		for seg.kind == kindTensor && j < n && bc.Value(j) == bc.Value(i) && lc.Value(j) == lc.Value(i) {
			j++
		}
		out = append(out, pendingEntry{
			layer: id, kind: seg.kind, batch: bc.Value(i),
			e:     entry{seq: seq, record: seg.records, offset: uint64(off), length: uint64(length), row: uint32(i), rows: uint32(j - i), crc: crc},
			bytes: length * int64(j-i) / int64(n),
		})
		i = j
	}
	return out, nil
}
