// Package store owns every byte actrec keeps on disk: recorded runs as Arrow IPC segment
// files indexed in a bbolt database. The on-disk format is specified in FORMAT.md; this
// comment is the guide to the Go API.
//
// # Data model
//
// A run (unique name, provenance in RunInfo, a RunState) has layers (LayerInfo: module path,
// op, per-sample output shape, execution order). Per (run, layer, batch) the store keeps a
// stats row (StatsRow, with a mergeable Histogram) and/or tensor rows (TensorRow: one per
// sample, with the sample's index in its batch and in the input data set, so that runs with
// different batch sizes can be aligned sample by sample).
//
//	s, err := store.Open("actrec-data", store.DefaultOptions())
//	w, err := s.CreateRun(store.RunInfo{Name: "r1", Model: "recipe-cnn"}, layers)
//	err = w.AppendStats("conv1", row)            // buffered
//	err = w.AppendTensors("conv1", rows...)      // buffered, data copied
//	err = w.Close(store.StateComplete)           // flush, seal, record the state
//	rows, err := s.Stats("r1", "conv1", store.BatchRange{From: 0, To: 100})
//	err = s.Tensors("r1", "conv1", store.BatchRange{}, func(r store.TensorRow) error { ... })
//
// # Concurrency
//
// A Store is safe for concurrent use by multiple goroutines. It keeps no file open between
// calls: each call opens index.db, runs one bbolt transaction and closes it (read-only,
// with a shared lock, for look-ups; read-write, with an exclusive lock, for commits). So any
// number of processes can list and read a store while others record into it; a reader sees
// every batch committed up to the writer's last flush. A lock held by another process for
// longer than Options.LockTimeout gives ErrLocked.
//
// A Writer records one run. Its methods are safe for concurrent use by multiple goroutines.
// Appends take a short lock and copy rows into in-memory buffers; a flush (the Writer's timer,
// Flush, Close, or an Append that fills Options.MaxBufferBytes) swaps those buffers out and
// writes, fsyncs and commits them while other appends continue into fresh buffers, so an
// Append waits for disk only when the buffers are full (memory stays below about twice
// MaxBufferBytes). A write or commit error is sticky: every later call returns it (except
// ErrLocked from a busy index, whose commit is retried at the next flush). There is at most
// one Writer per run across all processes: CreateRun takes an exclusive flock(2) on
// the run's LOCK file and holds it until Close, and the kernel releases it if the process
// dies. Creating a run whose name exists fails with ErrRunExists; deleting a run that a live
// writer holds fails with ErrLocked.
//
// Open creates index.db only in a new store (no index.db, or an empty one, and nothing in
// segments/); a lost, emptied or truncated index.db next to recorded segments is a
// *CorruptionError and nothing is changed. RemoveRun (DeleteRun with the bytes freed) and
// Reclaim delete only what the index proves is garbage (FORMAT.md §1).
//
// Rows passed to AppendTensors and AppendStats are copied; the caller may reuse them. Rows
// given to the Tensors callback may alias a read-only memory map of a segment: they are
// valid only during the callback and must not be modified. Stats returns copies.
//
// # Durability and crashes
//
// A Writer buffers rows in memory. At every flush (each Options.FlushInterval, default 1 s,
// when Options.MaxBufferBytes are buffered, and on Flush and Close) it appends them to its
// segments as record batches, fsyncs them, and only then commits the index entries that
// point at them. A process killed at any moment therefore loses at most the rows appended
// since its last flush. The next Open (read-write) reports the run as StateCrashed and
// salvages the complete record batches its writer wrote but did not commit; OpenReadOnly
// reports the run as crashed without changing anything.
//
// # Errors
//
// Callers branch on the sentinels with errors.Is: ErrNotFound, ErrLocked, ErrVersion,
// ErrRunExists, ErrInvalidName, ErrReadOnly, ErrClosed, ErrShape. Bytes on disk that do not
// follow the format give a *CorruptionError naming the file (relative to the store
// directory) and the byte offset of the bad structure; nothing read from disk is trusted
// before it is checked (lengths, offsets, flatbuffer metadata, a CRC-32C per record batch),
// and no input makes the package panic or crash: a damaged index.db page, which would make
// bbolt fault outside its memory map or point into the heap, gives a *CorruptionError
// naming index.db (its pages are bounds-checked before bbolt reads them, pagecheck.go, and
// index transactions run with debug.SetPanicOnFault on their goroutine and recover). Check verifies a whole run and returns Problems.
//
// # Options
//
// Every field of Options states its default and unit; DefaultOptions returns the defaults:
// Compression None (zero-copy reads; LZ4 and Zstd available), SegmentMaxBytes 256 MiB,
// SegmentMaxAge 10 min, FlushInterval 1 s, MaxBufferBytes 64 MiB, LockTimeout 2 s, NoSync
// false.
package store
