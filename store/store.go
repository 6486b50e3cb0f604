package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Store is a directory of recorded runs: index.db plus segment files (FORMAT.md). It holds no
// file open between operations: every call opens index.db, does one transaction and closes it,
// so several processes can read a store while one process records into it.
//
// A Store is safe for concurrent use by multiple goroutines.
type Store struct {
	dir      string
	opts     Options
	readOnly bool
	closed   atomic.Bool

	// dbMu orders this process's own opens of index.db (bbolt's flock would otherwise make
	// them poll each other); other processes are excluded by the flock.
	dbMu sync.RWMutex

	wmu     sync.Mutex
	writers map[*Writer]struct{}

	// pagesMu guards the txid of index.db whose pages were last checked (checkPages) or
	// written by this Store.
	pagesMu   sync.Mutex
	pagesOK   bool
	pagesTxid uint64
}

// Open opens the store in dir for reading and writing, creating it if needed. It checks the
// format version (ErrVersion), marks runs whose writer died as crashed and salvages their
// unfinished segments (FORMAT.md §9).
//
// Open creates a new index.db only in a new store: when index.db is missing or empty (0
// bytes) and segments/ is empty or absent. A missing or empty index.db next to recorded
// segments is a *CorruptionError naming index.db, and nothing is changed: a fresh index
// would hand out the run ids of the recorded segment directories again. Later operations
// never create or initialise index.db.
func Open(dir string, opts Options) (*Store, error) {
	registerExtensions()
	s := &Store{dir: dir, opts: opts.withDefaults(), writers: map[*Writer]struct{}{}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	segs, err := segmentsEntries(dir)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	create := false
	switch fi, err := os.Stat(filepath.Join(dir, indexFile)); {
	case errors.Is(err, fs.ErrNotExist):
		if segs > 0 {
			return nil, fmt.Errorf("store: open %s: %w", dir, &CorruptionError{File: indexFile, Offset: -1,
				Err: fmt.Errorf("missing, but %s/ holds %d entries (recorded runs): refusing to create a new index over them; nothing was changed", segmentsDir, segs)})
		}
		create = true
	case err != nil:
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	case fi.Size() == 0:
		if segs > 0 {
			return nil, fmt.Errorf("store: open %s: %w", dir, emptyIndexError(segs))
		}
		// a new store whose creation was interrupted, or is under way in another
		// process (bbolt initialises the file under its lock): nothing to lose
		create = true
	}
	if err := os.MkdirAll(filepath.Join(dir, segmentsDir), 0o755); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	// Look first: most opens find nothing to recover and need no write transaction.
	need := create
	if !create {
		err = s.view(func(tx *bolt.Tx) error {
			if !hasBuckets(tx) {
				need = true // bbolt created the file, then our first commit did not happen
				return nil
			}
			if err := checkVersion(tx); err != nil {
				return err
			}
			need, err = s.needsRecovery(tx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
	}
	if !need {
		return s, nil
	}
	created := false
	err = s.updateDB(create, func(tx *bolt.Tx) error {
		if !hasBuckets(tx) {
			if segs > 0 {
				return &CorruptionError{File: indexFile, Offset: -1,
					Err: fmt.Errorf("holds no buckets, but %s/ holds %d entries (recorded runs): refusing to initialise it; nothing was changed", segmentsDir, segs)}
			}
			created = true
			return initIndex(tx)
		}
		if err := checkVersion(tx); err != nil {
			return err
		}
		return s.recover(tx)
	})
	if err != nil {
		if create && isIOError(err) {
			// Creating the index failed (disk full, say): it holds nothing,
			// and a partly written file would read as a corrupt store for
			// good. Remove it, so that the next Open starts afresh.
			os.Remove(filepath.Join(dir, indexFile))
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if created && !s.opts.NoSync { // make index.db and segments/ durable entries of dir
		if err := syncDir(dir); err != nil {
			return nil, fmt.Errorf("store: open %s: fsync: %w", dir, err)
		}
	}
	return s, nil
}

// segmentsEntries counts the entries of dir/segments (0 if it does not exist).
func segmentsEntries(dir string) (int, error) {
	ents, err := os.ReadDir(filepath.Join(dir, segmentsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	return len(ents), err
}

func emptyIndexError(segs int) *CorruptionError {
	msg := "empty (0 bytes)"
	if segs > 0 {
		msg += fmt.Sprintf(", but %s/ holds %d entries (recorded runs are present)", segmentsDir, segs)
	}
	return &CorruptionError{File: indexFile, Offset: 0, Err: fmt.Errorf("%s: refusing to initialise a new index; nothing was changed", msg)}
}

// hasBuckets reports whether index.db has any top-level bucket.
func hasBuckets(tx *bolt.Tx) bool {
	k, _ := tx.Cursor().First()
	return k != nil
}

// needsRecovery reports whether a run is recording without a live writer (FORMAT.md §9).
func (s *Store) needsRecovery(tx *bolt.Tx) (bool, error) {
	need := false
	err := tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
		r, err := decodeRunAt(k, v)
		if err != nil {
			return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("runs/%s: %w", keyHex(k), err)}
		}
		if r.Info.State == StateRecording && runLockFree(filepath.Join(s.runDir(r.ID), "LOCK")) {
			need = true
		}
		return nil
	})
	return need, err
}

// OpenReadOnly opens an existing store for reading; it never writes. Runs whose writer died
// are reported as crashed, but not salvaged (a read-write Open does that).
func OpenReadOnly(dir string) (*Store, error) {
	registerExtensions()
	s := &Store{dir: dir, opts: DefaultOptions(), readOnly: true}
	if _, err := os.Stat(filepath.Join(dir, indexFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: open %s: no %s: %w", dir, indexFile, ErrNotFound)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if err := s.view(checkVersion); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close closes the store. Writers still open are closed as interrupted.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.wmu.Lock()
	ws := make([]*Writer, 0, len(s.writers))
	for w := range s.writers {
		ws = append(ws, w)
	}
	s.wmu.Unlock()
	var errs []error
	for _, w := range ws {
		if err := w.Close(StateInterrupted); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func initIndex(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketMeta, bucketNames, bucketRuns, bucketLayers, bucketSegments, bucketEntries, bucketBatches} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	m := tx.Bucket(bucketMeta)
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, formatVersion)
	if err := m.Put(keyFormat, []byte(formatName)); err != nil {
		return err
	}
	return m.Put(keyVersion, v)
}

func checkVersion(tx *bolt.Tx) error {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		for _, b := range [][]byte{bucketNames, bucketRuns, bucketLayers, bucketSegments, bucketEntries, bucketBatches} {
			if tx.Bucket(b) != nil {
				return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("bucket %q missing, bucket %q present", bucketMeta, b)}
			}
		}
		return fmt.Errorf("%w: %s has no meta bucket (not an actrec store?)", ErrVersion, indexFile)
	}
	if f := m.Get(keyFormat); !bytes.Equal(f, []byte(formatName)) {
		return fmt.Errorf("%w: format %q, want %q", ErrVersion, f, formatName)
	}
	v := m.Get(keyVersion)
	if len(v) != 4 {
		return fmt.Errorf("%w: version value of %d bytes", ErrVersion, len(v))
	}
	if n := binary.BigEndian.Uint32(v); n != formatVersion {
		return fmt.Errorf("%w: store has format version %d, this code reads version %d", ErrVersion, n, formatVersion)
	}
	for _, b := range [][]byte{bucketNames, bucketRuns, bucketLayers, bucketSegments, bucketEntries, bucketBatches} {
		if tx.Bucket(b) == nil {
			return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("bucket %q missing", b)}
		}
	}
	return nil
}

// openDB opens index.db. Only with create may it create the file or initialise an empty one
// (bbolt silently initialises a 0-byte file); otherwise a missing or empty index.db is a
// CorruptionError. An error opening it that is not a system call's is a CorruptionError too
// (e.g. bbolt's "file size too small").
func (s *Store) openDB(readOnly, create bool) (*bolt.DB, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	path := filepath.Join(s.dir, indexFile)
	if !readOnly {
		// bbolt reads the freelist page as it opens for writing, before the page check
		// below could run: check unchecked pages under a read-only open first
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 && !s.pagesChecked(path) {
			rdb, err := s.openDB(true, false)
			if err != nil {
				return nil, err
			}
			rdb.Close()
		}
	}
	db, err := bolt.Open(path, 0o644, &bolt.Options{
		Timeout:  s.opts.LockTimeout,
		ReadOnly: readOnly,
		NoSync:   s.opts.NoSync,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			if !create {
				flag &^= os.O_CREATE
			}
			f, err := os.OpenFile(name, flag, perm)
			if errors.Is(err, fs.ErrNotExist) && !create {
				return nil, &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("missing: %w", err)}
			}
			if err != nil {
				return nil, err
			}
			if fi, err := f.Stat(); err == nil && fi.Size() == 0 && !create {
				f.Close()
				segs, _ := segmentsEntries(s.dir)
				return nil, emptyIndexError(segs)
			}
			return f, nil
		},
	})
	var ce *CorruptionError
	switch {
	case err == nil:
		if err := s.checkPages(path); err != nil {
			db.Close()
			if errors.As(err, &ce) || isIOError(err) {
				return nil, err
			}
			return nil, &CorruptionError{File: indexFile, Offset: -1, Err: err}
		}
		return db, nil
	case errors.As(err, &ce):
		return nil, err
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s is held by another process for longer than %v", ErrLocked, path, s.opts.LockTimeout)
	case errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("%w: %s: bbolt %v", ErrVersion, indexFile, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), !isIOError(err):
		return nil, &CorruptionError{File: indexFile, Offset: 0, Err: err}
	}
	return nil, err
}

// view runs fn in a read transaction of a freshly opened, read-only index.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	return guardIndex(func() (err error) {
		s.dbMu.RLock()
		defer s.dbMu.RUnlock()
		db, err := s.openDB(true, false)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := db.Close(); err == nil {
				err = cerr
			}
		}()
		return db.View(fn)
	})
}

// update runs fn in a write transaction of a freshly opened index, closed afterwards.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	return s.updateDB(false, fn)
}

// updateDB is update, creating index.db if create.
func (s *Store) updateDB(create bool, fn func(*bolt.Tx) error) error {
	if s.readOnly {
		return ErrReadOnly
	}
	return guardIndex(func() (err error) {
		s.dbMu.Lock()
		defer s.dbMu.Unlock()
		db, err := s.openDB(false, create)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := db.Close(); err == nil {
				err = cerr
			}
		}()
		var fnErr error
		var txid uint64
		err = db.Update(func(tx *bolt.Tx) error {
			txid = uint64(tx.ID())
			fnErr = fn(tx)
			return fnErr
		})
		if err == nil {
			s.pagesWritten(txid)
		}
		if err != nil && fnErr == nil && !isIOError(err) {
			// the commit failed for a reason other than the file system: bbolt wrote pages
			// whose ids came from a damaged page (e.g. "writeat ...: negative offset")
			return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("commit: %w", err)}
		}
		return err
	})
}

// isIOError reports whether err comes from a system call (disk full, I/O error, ...). EFBIG
// does not count: index.db never grows that large, but a page id from a damaged page does.
func isIOError(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && errno != syscall.EFBIG
}

// guardIndex runs fn, which opens index.db and runs a bbolt transaction, so that a corrupt
// index.db cannot crash the process. bbolt reads the file through a memory map and trusts the
// page headers and element offsets it finds there; a flipped byte can make it index past the
// map (a fault, fatal by default) or slice out of range (a panic). guardIndex turns faults of
// this goroutine into panics (debug.SetPanicOnFault is per goroutine; the previous setting
// is restored) and any panic into a *CorruptionError naming index.db. The transaction, and
// every callback of it, must therefore run on the calling goroutine.
func guardIndex(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = indexPanicError(r)
		}
	}()
	return fn()
}

// indexPanicError describes a panic recovered from a transaction on index.db.
func indexPanicError(r any) *CorruptionError {
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("bbolt: memory fault at %#x: a page header or element offset points outside the file", f.Addr())}
	}
	return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("bbolt: %v", r)}
}

// keyHex formats an index key for an error message. Keys come from a possibly corrupt page:
// at most the first 32 bytes are shown.
func keyHex(k []byte) string {
	const show = 32
	if len(k) <= show {
		return fmt.Sprintf("%x", k)
	}
	return fmt.Sprintf("%x... (%d bytes)", k[:show], len(k))
}

func (s *Store) runDir(id uint64) string {
	return filepath.Join(s.dir, segmentsDir, runDirName(id))
}

func segRel(id uint64, seq uint32) string {
	return filepath.Join(segmentsDir, runDirName(id), segFileName(seq))
}

// lookupRun finds a run record by name.
func lookupRun(tx *bolt.Tx, name string) (runRecord, error) {
	idb := tx.Bucket(bucketNames).Get([]byte(name))
	if idb == nil {
		return runRecord{}, fmt.Errorf("run %q: %w", name, ErrNotFound)
	}
	if len(idb) != 8 {
		return runRecord{}, &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("names/%q: id of %d bytes", name, len(idb))}
	}
	id := binary.BigEndian.Uint64(idb)
	v := tx.Bucket(bucketRuns).Get(runKey(id))
	if v == nil {
		return runRecord{}, &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("run %q: id %d has no run record", name, id)}
	}
	r, err := decodeRun(v)
	if err != nil {
		return runRecord{}, &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("run %q: %w", name, err)}
	}
	if r.ID != id || r.Info.Name != name {
		return runRecord{}, &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("run %q: record of %q id %d", name, r.Info.Name, r.ID)}
	}
	return r, nil
}

// runLayers returns the layer records of a run indexed by layer id.
func runLayers(tx *bolt.Tx, id uint64) ([]layerRecord, error) {
	var ls []layerRecord
	c := tx.Bucket(bucketLayers).Cursor()
	prefix := runKey(id)
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != 12 || binary.BigEndian.Uint32(k[8:]) != uint32(len(ls)) {
			return nil, &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("layers key %s out of sequence", keyHex(k))}
		}
		l, err := decodeLayer(v)
		if err != nil {
			return nil, &CorruptionError{File: indexFile, Offset: -1, Err: err}
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func findLayer(ls []layerRecord, path string) (uint32, bool) {
	for i, l := range ls {
		if l.Path == path {
			return uint32(i), true
		}
	}
	return 0, false
}

func (s *Store) summary(r runRecord) RunSummary {
	info := r.Info
	if info.State == StateRecording && runLockFree(filepath.Join(s.runDir(r.ID), "LOCK")) {
		info.State = StateCrashed
	}
	return RunSummary{RunInfo: info, Batches: r.Batches, Layers: r.Layers, Entries: r.Entries, Bytes: r.Bytes}
}

// Runs lists all runs, sorted by creation time then name.
func (s *Store) Runs() ([]RunSummary, error) {
	var out []RunSummary
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			r, err := decodeRunAt(k, v)
			if err != nil {
				return &CorruptionError{File: indexFile, Offset: -1, Err: fmt.Errorf("runs/%s: %w", keyHex(k), err)}
			}
			out = append(out, s.summary(r))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: runs: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Run returns one run; ErrNotFound if there is none of that name.
func (s *Store) Run(name string) (RunSummary, error) {
	var out RunSummary
	err := s.view(func(tx *bolt.Tx) error {
		r, err := lookupRun(tx, name)
		if err != nil {
			return err
		}
		out = s.summary(r)
		return nil
	})
	if err != nil {
		return RunSummary{}, fmt.Errorf("store: %w", err)
	}
	return out, nil
}

// Layers lists the layers of a run in execution order.
func (s *Store) Layers(run string) ([]LayerSummary, error) {
	var out []LayerSummary
	err := s.view(func(tx *bolt.Tx) error {
		r, err := lookupRun(tx, run)
		if err != nil {
			return err
		}
		ls, err := runLayers(tx, r.ID)
		if err != nil {
			return err
		}
		for _, l := range ls {
			out = append(out, LayerSummary{LayerInfo: l.info(), StatsBatches: l.StatsBatches, TensorBatches: l.TensorBatches, Bytes: l.Bytes})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: layers: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Order < out[j].Order })
	return out, nil
}

// deletePrefix deletes every key of bucket b starting with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// DeleteRun removes a run from the index, then its segment files. A run being recorded by a
// live writer cannot be deleted (ErrLocked).
func (s *Store) DeleteRun(name string) error {
	_, err := s.RemoveRun(name)
	return err
}

// RemoveRun is DeleteRun that also returns the bytes of the run's files it removed.
func (s *Store) RemoveRun(name string) (freed int64, err error) {
	var id uint64
	err = s.update(func(tx *bolt.Tx) error {
		r, err := lookupRun(tx, name)
		if err != nil {
			return err
		}
		id = r.ID
		lk, err := tryLockRun(filepath.Join(s.runDir(id), "LOCK"))
		if err != nil {
			if errors.Is(err, ErrLocked) {
				return err
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		defer lk.release()
		prefix := runKey(id)
		for _, b := range [][]byte{bucketLayers, bucketSegments, bucketEntries, bucketBatches} {
			if err := deletePrefix(tx.Bucket(b), prefix); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketRuns).Delete(prefix); err != nil {
			return err
		}
		if err := tx.Bucket(bucketNames).Delete([]byte(name)); err != nil {
			return err
		}
		// the tombstone lets Reclaim tell this run's directory from ones it must not touch
		del, err := tx.CreateBucketIfNotExists(bucketDeleted)
		if err != nil {
			return err
		}
		return del.Put(prefix, []byte{})
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete run: %w", err)
	}
	dir := s.runDir(id)
	freed = dirSize(dir)
	if err := os.RemoveAll(dir); err != nil {
		return freed - dirSize(dir), fmt.Errorf("store: delete run %q: %w (Reclaim will retry)", name, err)
	}
	return freed, nil
}

// Reclaim removes what no index entry refers to and returns the number of bytes freed:
// the segment directories of deleted runs (those the index holds a tombstone for), segment
// directories holding nothing but a LOCK file whose run id the index has handed out (left by
// a CreateRun that crashed before its commit), and, in the directories of runs no live
// writer holds, segment files no segment record refers to and *.arrow.tmp files. It never
// removes a directory of a run id the index has not handed out yet, nor one with segment
// files whose run the index does not know was deleted (FORMAT.md §1).
func (s *Store) Reclaim() (int64, error) {
	var freed int64
	err := s.update(func(tx *bolt.Tx) error {
		next := tx.Bucket(bucketNames).Sequence() // ids handed out: 1..next
		del := tx.Bucket(bucketDeleted)
		ents, err := os.ReadDir(filepath.Join(s.dir, segmentsDir))
		if err != nil {
			return err
		}
		present := map[uint64]bool{}
		for _, de := range ents {
			path := filepath.Join(s.dir, segmentsDir, de.Name())
			id, ok := parseRunDirName(de.Name())
			if !ok || !de.IsDir() {
				continue // not ours: never delete what we did not create
			}
			present[id] = true
			rv := tx.Bucket(bucketRuns).Get(runKey(id))
			if rv == nil {
				deleted := del != nil && del.Get(runKey(id)) != nil
				if id == 0 || id > next || !(deleted || onlyLockFile(path)) {
					continue // not provably garbage: left alone (Check reports nothing of it)
				}
				n := dirSize(path)
				if err := os.RemoveAll(path); err != nil {
					return err
				}
				freed += n
				delete(present, id)
				continue
			}
			// a live writer owns its files
			lk, err := tryLockRun(filepath.Join(path, "LOCK"))
			if err != nil {
				continue
			}
			files, _ := os.ReadDir(path)
			for _, f := range files {
				seq, ok := parseSegFileName(f.Name())
				tmp := strings.HasSuffix(f.Name(), ".arrow.tmp")
				if !tmp && (!ok || tx.Bucket(bucketSegments).Get(segKey(id, seq)) != nil) {
					continue
				}
				info, ierr := f.Info()
				if err := os.Remove(filepath.Join(path, f.Name())); err == nil && ierr == nil {
					freed += info.Size()
				}
			}
			lk.release()
		}
		if del == nil {
			return nil
		}
		// drop the tombstones of directories that are gone
		var gone [][]byte
		err = del.ForEach(func(k, _ []byte) error {
			if len(k) != 8 || !present[binary.BigEndian.Uint64(k)] {
				gone = append(gone, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range gone {
			if err := del.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return freed, fmt.Errorf("store: reclaim: %w", err)
	}
	return freed, nil
}

func parseRunDirName(name string) (uint64, bool) {
	if len(name) != 16 {
		return 0, false
	}
	var id uint64
	for _, c := range name {
		switch {
		case c >= '0' && c <= '9':
			id = id<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			id = id<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return id, true
}

func dirSize(path string) int64 {
	var n int64
	_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
