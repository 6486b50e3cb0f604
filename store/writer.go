package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	bolt "go.etcd.io/bbolt"
)

// Writer records one run. Rows are buffered in memory and written, fsynced and committed to
// the index at every flush: each Options.FlushInterval (by a goroutine of the Writer), when
// Options.MaxBufferBytes are buffered, and on Flush and Close. Only data committed by a flush
// is visible to readers and survives a crash.
//
// A Writer is safe for concurrent use by multiple goroutines. Appends go to in-memory buffers
// under a short lock; a flush swaps the buffers out and writes, fsyncs and commits them while
// appends continue into fresh buffers (an Append that fills MaxBufferBytes waits for the flush
// in progress, which bounds memory). A write error is sticky: every later call returns it.
// There is at most one Writer per run, in any process.
//
// Lock order: fmu (flush side: segments, pending entries) before mu (append side).
type Writer struct {
	s      *Store
	id     uint64
	name   string
	dir    string
	lock   *runLock
	layers []layerRecord
	byPath map[string]uint32
	sizes  []int // elements per tensor row, per layer
	paths  []string

	// append side, guarded by mu
	mu        sync.Mutex
	info      RunInfo
	infoDirty bool
	statsBuf  statsBuffer
	tensBuf   []tensorBuffer
	buffered  int64 // bytes in statsBuf and tensBuf
	inflight  int64 // bytes swapped out by the flush in progress, not yet written
	err       error // sticky write or commit error
	closed    bool

	// flush side, guarded by fmu
	fmu         sync.Mutex
	spareStats  statsBuffer
	spareTens   []tensorBuffer
	commitInfo  RunInfo // info as of the last swap, committed by the next commit
	infoPending bool
	stats       *segWriter   // open stats segment
	tensors     []*segWriter // open tensor segment per layer
	nextSeq     uint32
	newFiles    bool
	pending     []pendingEntry
	dirty       map[*segWriter]bool // segments whose record must be committed

	written atomic.Int64 // bytes written to segments

	stop chan struct{}
	done chan struct{}

	// hooks for tests: after segments are fsynced, before the commit; after the commit
	hookBeforeCommit func()
	hookAfterCommit  func()
}

type pendingEntry struct {
	layer uint32
	kind  byte
	batch int64
	e     entry
	bytes int64
}

// CreateRun creates a run and returns its Writer. info.Name must be a valid, unused name
// (ErrInvalidName, ErrRunExists); Created, Host and GoVersion are filled in when empty; State
// is set to recording. layers are the layers that will be recorded, each with a unique valid
// path and its per-sample output shape.
func (s *Store) CreateRun(info RunInfo, layers []LayerInfo) (*Writer, error) {
	if s.readOnly {
		return nil, fmt.Errorf("store: create run: %w", ErrReadOnly)
	}
	if err := validName(info.Name); err != nil {
		return nil, fmt.Errorf("store: create run: run name: %w", err)
	}
	for k := range info.Tags {
		if err := validName(k); err != nil {
			return nil, fmt.Errorf("store: create run %q: tag key: %w", info.Name, err)
		}
	}
	w := &Writer{s: s, name: info.Name, byPath: map[string]uint32{}, dirty: map[*segWriter]bool{}}
	for i, l := range layers {
		if err := validName(l.Path); err != nil {
			return nil, fmt.Errorf("store: create run %q: layer %d: %w", info.Name, i, err)
		}
		if _, dup := w.byPath[l.Path]; dup {
			return nil, fmt.Errorf("store: create run %q: layer %q listed twice: %w", info.Name, l.Path, ErrInvalidName)
		}
		n, err := shapeSize(l.Shape)
		if err == nil && 4*int64(n) > maxChunkBytes {
			err = fmt.Errorf("%w: %d elements per sample, at most %d", ErrShape, n, maxChunkBytes/4)
		}
		if err != nil {
			return nil, fmt.Errorf("store: create run %q: layer %q: %w", info.Name, l.Path, err)
		}
		w.byPath[l.Path] = uint32(i)
		w.sizes = append(w.sizes, n)
		w.paths = append(w.paths, l.Path)
		w.layers = append(w.layers, layerRecord{V: formatVersion, Path: l.Path, Op: l.Op, Shape: append([]int{}, l.Shape...), Order: l.Order})
	}
	w.tensBuf = make([]tensorBuffer, len(layers))
	w.spareTens = make([]tensorBuffer, len(layers))
	for i := range w.tensBuf {
		w.tensBuf[i].n, w.spareTens[i].n = w.sizes[i], w.sizes[i]
	}
	w.tensors = make([]*segWriter, len(layers))
	if info.Created.IsZero() {
		info.Created = time.Now().UTC()
	}
	if info.Host == "" {
		info.Host, _ = os.Hostname()
	}
	if info.GoVersion == "" {
		info.GoVersion = runtime.Version()
	}
	info.State = StateRecording
	info.Finished = time.Time{}
	info.Tags = maps.Clone(info.Tags)
	info.Meta = maps.Clone(info.Meta)
	w.info, w.commitInfo = info, info

	err := s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketNames).Get([]byte(info.Name)) != nil {
			return fmt.Errorf("run %q: %w", info.Name, ErrRunExists)
		}
		id, err := s.newRunDir(tx)
		if err != nil {
			return err
		}
		w.id = id
		w.dir = s.runDir(id)
		lk, err := tryLockRun(filepath.Join(w.dir, "LOCK"))
		if err != nil {
			return err
		}
		w.lock = lk
		if !s.opts.NoSync {
			if err := syncDir(filepath.Dir(w.dir)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketNames).Put([]byte(info.Name), runKey(id)); err != nil {
			return err
		}
		for i, l := range w.layers {
			v, err := encodeRecord(l)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketLayers).Put(layerKey(id, uint32(i)), v); err != nil {
				return err
			}
		}
		return putRun(tx, runRecord{V: formatVersion, ID: id, Info: info, Layers: len(layers)})
	})
	if err != nil {
		w.lock.release()
		return nil, fmt.Errorf("store: create run: %w", err)
	}
	s.wmu.Lock()
	s.writers[w] = struct{}{}
	s.wmu.Unlock()
	if s.opts.FlushInterval > 0 {
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.loop(s.opts.FlushInterval)
	}
	return w, nil
}

// newRunDir takes the next run id and creates its segment directory exclusively: a
// directory of that id that already exists is never reused. One that holds nothing but a
// LOCK file was left by a CreateRun whose commit did not happen (FORMAT.md §1): its id is
// skipped (Reclaim removes it). One that holds anything else means index.db is older than
// the segments (restored or replaced?): a CorruptionError, and nothing is written.
func (s *Store) newRunDir(tx *bolt.Tx) (uint64, error) {
	if err := os.MkdirAll(filepath.Join(s.dir, segmentsDir), 0o755); err != nil {
		return 0, err
	}
	for range 64 {
		id, err := tx.Bucket(bucketNames).NextSequence()
		if err != nil {
			return 0, err
		}
		dir := s.runDir(id)
		err = os.Mkdir(dir, 0o755)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return 0, err
		}
		if !onlyLockFile(dir) {
			rel := filepath.Join(segmentsDir, runDirName(id))
			return 0, &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf(
				"next run id is %d but %s already exists and holds files of a run index.db does not know (index.db older than the segments?); not reusing it", id, rel)}
		}
	}
	return 0, &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("64 successive run ids have leftover directories in %s/", segmentsDir)}
}

// onlyLockFile reports whether dir holds nothing but (at most) a LOCK file that nobody holds.
func onlyLockFile(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.Name() != "LOCK" {
			return false
		}
	}
	return runLockFree(filepath.Join(dir, "LOCK"))
}

func putRun(tx *bolt.Tx, r runRecord) error {
	v, err := encodeRecord(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketRuns).Put(runKey(r.ID), v)
}

func (w *Writer) loop(every time.Duration) {
	defer close(w.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			// errors are sticky (w.err) and returned by the next call, except ErrLocked
			// (index busy): the entries stay pending and the next flush commits them
			_ = w.flush(false)
		}
	}
}

// Name returns the run's name.
func (w *Writer) Name() string { return w.name }

func (w *Writer) checkLocked() error {
	if w.closed {
		return fmt.Errorf("store: run %q: writer %w", w.name, ErrClosed)
	}
	return w.err
}

func (w *Writer) layer(path string) (uint32, error) {
	id, ok := w.byPath[path]
	if !ok {
		return 0, fmt.Errorf("store: run %q: layer %q: %w", w.name, path, ErrNotFound)
	}
	return id, nil
}

// AppendStats buffers stats rows of one layer. A row whose histogram breaks the Histogram
// invariants (see Histogram.Validate) or with a negative count is refused with ErrShape.
func (w *Writer) AppendStats(layer string, rows ...StatsRow) error {
	w.mu.Lock()
	if err := w.appendStatsLocked(layer, rows); err != nil {
		w.mu.Unlock()
		return err
	}
	return w.maybeFlush()
}

func (w *Writer) appendStatsLocked(layer string, rows []StatsRow) error {
	if err := w.checkLocked(); err != nil {
		return err
	}
	id, err := w.layer(layer)
	if err != nil {
		return err
	}
	for _, r := range rows {
		// what readers would reject is refused here, so a bad row never makes a run unreadable
		if err := r.Hist.Validate(); err != nil {
			return fmt.Errorf("store: run %q layer %q batch %d: %w: %v", w.name, layer, r.Batch, ErrShape, err)
		}
		if r.Count < 0 || r.NaN < 0 || r.Inf < 0 {
			return fmt.Errorf("store: run %q layer %q batch %d: %w: negative count", w.name, layer, r.Batch, ErrShape)
		}
	}
	before := w.statsBuf.bytes
	for _, r := range rows {
		w.statsBuf.add(id, r)
	}
	w.buffered += w.statsBuf.bytes - before
	return nil
}

// AppendTensors buffers tensor rows of one layer; each row's Data must have the layer's
// per-sample size (ErrShape). Data is copied, so the caller may reuse it after the call.
func (w *Writer) AppendTensors(layer string, rows ...TensorRow) error {
	w.mu.Lock()
	if err := w.appendTensorsLocked(layer, rows); err != nil {
		w.mu.Unlock()
		return err
	}
	return w.maybeFlush()
}

func (w *Writer) appendTensorsLocked(layer string, rows []TensorRow) error {
	if err := w.checkLocked(); err != nil {
		return err
	}
	id, err := w.layer(layer)
	if err != nil {
		return err
	}
	n := w.sizes[id]
	for _, r := range rows {
		if len(r.Data) != n {
			return fmt.Errorf("store: run %q layer %q batch %d sample %d: %d values, shape %v has %d: %w",
				w.name, layer, r.Batch, r.Sample, len(r.Data), w.layers[id].Shape, n, ErrShape)
		}
	}
	b := &w.tensBuf[id]
	before := b.bytes()
	for _, r := range rows {
		b.add(r)
	}
	w.buffered += b.bytes() - before
	return nil
}

// maybeFlush is called with mu held and releases it; it flushes when the buffers are full.
// ErrLocked is not returned: the rows are written and their commit is retried.
func (w *Writer) maybeFlush() error {
	full := w.buffered >= w.s.opts.MaxBufferBytes
	w.mu.Unlock()
	if !full {
		return nil
	}
	if err := w.flush(false); err != nil && !errors.Is(err, ErrLocked) {
		return err
	}
	return nil
}

// UpdateRun changes the run's info (tags, meta, config...) at the next flush. Name, State,
// Created and Finished are managed by the store; changes to them are ignored.
func (w *Writer) UpdateRun(fn func(*RunInfo)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkLocked(); err != nil {
		return err
	}
	info := w.info
	info.Tags = maps.Clone(w.info.Tags)
	info.Meta = maps.Clone(w.info.Meta)
	fn(&info)
	for k := range info.Tags {
		if err := validName(k); err != nil {
			return fmt.Errorf("store: run %q: tag key: %w", w.name, err)
		}
	}
	info.Name, info.State, info.Created, info.Finished = w.info.Name, w.info.State, w.info.Created, w.info.Finished
	w.info = info
	w.infoDirty = true
	return nil
}

// Flush writes buffered rows, fsyncs them and commits the index, so that readers see them and
// they survive a crash.
func (w *Writer) Flush() error {
	w.mu.Lock()
	err := w.checkLocked()
	w.mu.Unlock()
	if err != nil {
		return err
	}
	return w.flush(false)
}

// BytesWritten returns the bytes of row data accepted so far: written to segment files plus
// buffered for the next flush. Recorders use it for storage budgets.
func (w *Writer) BytesWritten() int64 {
	w.mu.Lock()
	b := w.buffered + w.inflight
	w.mu.Unlock()
	return w.written.Load() + b
}

// Close flushes, seals the run's segments, records state (complete or interrupted; anything
// else is stored as interrupted) and the finish time, and releases the run. After a write
// error (disk full, I/O; returned again by Close) it writes and commits nothing more and
// leaves the run in state recording: what was committed stays readable, and the next
// read-write Open salvages every entry written whole since (the run is listed as crashed
// until then; FORMAT.md §9).
func (w *Writer) Close(state RunState) error {
	if w.stop != nil {
		select {
		case <-w.stop:
		default:
			close(w.stop)
		}
		<-w.done
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("store: run %q: writer %w", w.name, ErrClosed)
	}
	w.closed = true
	if state != StateComplete {
		state = StateInterrupted
	}
	err := w.err
	if err == nil {
		w.info.State = state
		w.info.Finished = time.Now().UTC()
		w.infoDirty = true
	}
	w.mu.Unlock()
	defer func() {
		w.s.wmu.Lock()
		delete(w.s.writers, w)
		w.s.wmu.Unlock()
		w.fmu.Lock()
		for _, sw := range w.openSegments() {
			sw.close()
		}
		for sw := range w.dirty {
			sw.close()
		}
		w.fmu.Unlock()
		w.lock.release()
	}()
	if err != nil {
		return err
	}
	for try := 0; try < 5; try++ { // another process may hold the index briefly
		if err = w.flush(true); !errors.Is(err, ErrLocked) {
			break
		}
	}
	return err
}

func (w *Writer) openSegments() []*segWriter {
	var out []*segWriter
	if w.stats != nil {
		out = append(out, w.stats)
	}
	for _, t := range w.tensors {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// segmentFor returns the open segment for (kind, layer), creating it.
func (w *Writer) segmentFor(kind byte, layer uint32) (*segWriter, error) {
	slot := &w.stats
	if kind == kindTensor {
		slot = &w.tensors[layer]
	}
	if *slot != nil {
		return *slot, nil
	}
	var schema *arrow.Schema
	if kind == kindStats {
		schema, layer = statsSchema(w.name), 0
	} else {
		var err error
		if schema, err = tensorSchema(w.name, w.paths[layer], w.layers[layer].Shape); err != nil {
			return nil, err
		}
	}
	seq := w.nextSeq
	rel := segRel(w.id, seq)
	sw, err := createSegment(filepath.Join(w.s.dir, rel), rel, seq, kind, layer, schema, w.s.opts.segmentCompression(kind))
	if err != nil {
		return nil, err
	}
	w.nextSeq++
	w.newFiles = true
	*slot = sw
	return sw, nil
}

// swap takes the append side's buffers and info for a flush (fmu held).
func (w *Writer) swap(closing bool) (sb statsBuffer, tb []tensorBuffer, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return sb, nil, w.err
	}
	if w.closed && !closing {
		return sb, nil, fmt.Errorf("store: run %q: writer %w", w.name, ErrClosed)
	}
	sb, tb = w.statsBuf, w.tensBuf
	w.statsBuf, w.tensBuf = w.spareStats, w.spareTens
	w.inflight, w.buffered = w.buffered, 0
	if w.infoDirty {
		w.commitInfo = w.info
		w.commitInfo.Tags, w.commitInfo.Meta = maps.Clone(w.info.Tags), maps.Clone(w.info.Meta)
		w.infoPending, w.infoDirty = true, false
	}
	return sb, tb, nil
}

// fail records a sticky error and returns the first one.
func (w *Writer) fail(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// flush writes the buffered rows as record batches, rolls segments, fsyncs, then commits the
// index (FORMAT.md §7). Appends continue meanwhile into fresh buffers. Write errors are
// sticky; an index commit error (ErrLocked) is not: the entries stay pending and are
// committed by the next flush.
func (w *Writer) flush(closing bool) error {
	w.fmu.Lock()
	defer w.fmu.Unlock()
	sb, tb, err := w.swap(closing)
	if err != nil {
		return err
	}
	err = w.writeBuffers(&sb, tb, closing)
	sb.reset()
	for i := range tb {
		tb[i].reset()
	}
	w.spareStats, w.spareTens = sb, tb
	w.mu.Lock()
	w.inflight = 0
	w.mu.Unlock()
	if err != nil {
		return w.fail(fmt.Errorf("store: run %q: %w", w.name, err))
	}
	if len(w.pending) == 0 && len(w.dirty) == 0 && !w.infoPending {
		return nil
	}
	if w.hookBeforeCommit != nil {
		w.hookBeforeCommit()
	}
	if err := w.s.update(w.commit); err != nil {
		if errors.Is(err, ErrLocked) {
			return fmt.Errorf("store: run %q: commit: %w", w.name, err)
		}
		return w.fail(fmt.Errorf("store: run %q: commit: %w", w.name, err))
	}
	w.pending = w.pending[:0]
	w.infoPending = false
	for sw := range w.dirty {
		if sw.sealed {
			sw.close()
		}
	}
	clear(w.dirty)
	if w.hookAfterCommit != nil {
		w.hookAfterCommit()
	}
	return nil
}

// writeBuffers appends the rows of sb and tb to the segments (fmu held).
func (w *Writer) writeBuffers(sb *statsBuffer, tb []tensorBuffer, closing bool) error {
	for lo := 0; lo < len(sb.rows); lo += statsChunkRows {
		hi := min(lo+statsChunkRows, len(sb.rows))
		sw, err := w.segmentFor(kindStats, 0)
		if err != nil {
			return err
		}
		rec := sb.record(memory.DefaultAllocator, sw.schema, w.paths, lo, hi)
		err = w.appendRecord(sw, rec, func(i int) (uint32, int64) { return sb.layers[lo+i], sb.rows[lo+i].Batch }, true)
		rec.Release()
		if err != nil {
			return err
		}
	}
	for id := range tb {
		b := &tb[id]
		if b.len() == 0 {
			continue
		}
		// record batches of about tensorChunkBytes of tensor data (at least one row)
		per := min(tensorChunkRows, max(1, tensorChunkBytes/(4*max(b.n, 1))))
		for lo := 0; lo < b.len(); lo += per {
			hi := min(lo+per, b.len())
			sw, err := w.segmentFor(kindTensor, uint32(id))
			if err != nil {
				return err
			}
			rec := b.record(sw.schema, w.paths[id], lo, hi)
			err = w.appendRecord(sw, rec, func(i int) (uint32, int64) { return uint32(id), b.batch[lo+i] }, false)
			rec.Release()
			if err != nil {
				return err
			}
			if hi < b.len() && sw.cw.n >= w.s.opts.SegmentMaxBytes {
				if err := sw.seal(); err != nil {
					return err
				}
				w.detach(sw)
			}
		}
	}
	// roll and sync
	now := time.Now()
	for _, sw := range w.openSegments() {
		if closing || sw.cw.n >= w.s.opts.SegmentMaxBytes || now.Sub(sw.opened) >= w.s.opts.SegmentMaxAge {
			if sw.records == 0 {
				sw.close()
				os.Remove(filepath.Join(w.s.dir, sw.rel))
				w.detach(sw)
				continue
			}
			if err := sw.seal(); err != nil {
				return err
			}
			w.dirty[sw] = true
			w.detach(sw)
		}
	}
	for sw := range w.dirty {
		if sw.synced != sw.cw.n {
			before := sw.synced
			if err := sw.sync(w.s.opts.NoSync); err != nil {
				return err
			}
			w.written.Add(sw.synced - before)
		}
	}
	if w.newFiles && !w.s.opts.NoSync {
		if err := syncDir(w.dir); err != nil {
			return fmt.Errorf("fsync %s: %w", w.dir, err)
		}
	}
	w.newFiles = false
	return nil
}

// detach forgets an open segment slot (the segment stays in dirty until committed).
func (w *Writer) detach(sw *segWriter) {
	if w.stats == sw {
		w.stats = nil
	}
	for i, t := range w.tensors {
		if t == sw {
			w.tensors[i] = nil
		}
	}
}

// appendRecord writes rec to sw and queues index entries: one per row for stats, one per run
// of consecutive rows of the same batch for tensors.
func (w *Writer) appendRecord(sw *segWriter, rec arrow.RecordBatch, key func(int) (uint32, int64), perRow bool) error {
	off, length, crc, err := sw.write(rec)
	if err != nil {
		return err
	}
	w.dirty[sw] = true
	n := int(rec.NumRows())
	recIdx := sw.records - 1
	for i := 0; i < n; {
		layer, batch := key(i)
		j := i + 1
		if !perRow {
			for j < n {
				if l, b := key(j); l != layer || b != batch {
					break
				}
				j++
			}
		}
		kind := kindTensor
		if perRow {
			kind = kindStats
		}
		w.pending = append(w.pending, pendingEntry{
			layer: layer, kind: kind, batch: batch,
			e:     entry{seq: sw.seq, record: recIdx, offset: uint64(off), length: uint64(length), row: uint32(i), rows: uint32(j - i), crc: crc},
			bytes: length * int64(j-i) / int64(n),
		})
		i = j
	}
	return nil
}

// commit is the index transaction of a flush.
func (w *Writer) commit(tx *bolt.Tx) error {
	rv := tx.Bucket(bucketRuns).Get(runKey(w.id))
	if rv == nil {
		return fmt.Errorf("run %q: %w (deleted while recording?)", w.name, ErrNotFound)
	}
	r, err := decodeRun(rv)
	if err != nil {
		return &CorruptionError{File: indexFile, Offset: -1, Err: err}
	}
	layers, err := runLayers(tx, w.id)
	if err != nil {
		return err
	}
	if err := addEntries(tx, &r, layers, w.pending); err != nil {
		return err
	}
	for sw := range w.dirty {
		flags := byte(0)
		if sw.sealed {
			flags = segSealed
		}
		seg := segment{kind: sw.kind, flags: flags, layer: sw.layer, size: uint64(sw.synced), records: sw.records}
		if err := tx.Bucket(bucketSegments).Put(segKey(w.id, sw.seq), seg.encode()); err != nil {
			return err
		}
	}
	for i, l := range layers {
		v, err := encodeRecord(l)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketLayers).Put(layerKey(w.id, uint32(i)), v); err != nil {
			return err
		}
	}
	r.Info = w.commitInfo
	r.NextSeq = w.nextSeq
	return putRun(tx, r)
}

// addEntries puts entries into the index, numbering parts and updating counters of r and layers.
func addEntries(tx *bolt.Tx, r *runRecord, layers []layerRecord, pend []pendingEntry) error {
	eb, bb := tx.Bucket(bucketEntries), tx.Bucket(bucketBatches)
	c := eb.Cursor()
	type pk struct {
		layer uint32
		kind  byte
		batch int64
	}
	next := map[pk]uint32{}
	for _, p := range pend {
		if int(p.layer) >= len(layers) {
			return fmt.Errorf("entry of layer %d, run has %d", p.layer, len(layers))
		}
		key := pk{p.layer, p.kind, p.batch}
		part, ok := next[key]
		if !ok {
			// find the last part already committed
			probe := entryKey{run: r.ID, layer: p.layer, kind: p.kind, batch: p.batch, part: ^uint32(0)}.encode()
			k, _ := c.Seek(probe)
			if k == nil {
				k, _ = c.Last()
			} else if !bytes.Equal(k, probe) {
				k, _ = c.Prev()
			}
			if k != nil && len(k) != entryKeyLen && bytes.HasPrefix(k, probe[:8]) {
				return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("entry key %s of %d bytes, want %d", keyHex(k), len(k), entryKeyLen)}
			}
			if len(k) == entryKeyLen && bytes.Equal(k[:21], probe[:21]) {
				part = binary.BigEndian.Uint32(k[21:]) + 1
			}
		}
		next[key] = part + 1
		if err := eb.Put(entryKey{run: r.ID, layer: p.layer, kind: p.kind, batch: p.batch, part: part}.encode(), p.e.encode()); err != nil {
			return err
		}
		if part == 0 {
			if p.kind == kindStats {
				layers[p.layer].StatsBatches++
			} else {
				layers[p.layer].TensorBatches++
			}
		}
		layers[p.layer].Bytes += p.bytes
		r.Entries++
		r.Bytes += p.bytes
		bk := runBatchKey(r.ID, p.batch)
		if bb.Get(bk) == nil {
			if err := bb.Put(bk, []byte{}); err != nil {
				return err
			}
			r.Batches++
		}
	}
	return nil
}
