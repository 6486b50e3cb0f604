// Package store owns every byte actrec keeps on disk: runs of recorded activations, as Arrow IPC
// segment files indexed in a bbolt database. The format is specified in FORMAT.md.
//
// # Data model
//
// A run (unique name, provenance, state) has layers (module path, op, per-sample shape,
// execution order); per (run, layer, batch) the store keeps a stats row (StatsRow) and/or
// tensor rows (TensorRow, one per sample, with the sample's index in its batch and in the
// input data set).
//
// # Concurrency
//
// A Store is safe for concurrent use by multiple goroutines, and any number of processes may
// read a store while one process per run writes to it: the index (index.db) is opened for the
// duration of one transaction only, read-only for look-ups and read-write once per flush.
// A Writer is safe for concurrent use by multiple goroutines (its methods are serialized by a
// mutex); there is at most one Writer per run across all processes, enforced with flock(2)
// on the run's LOCK file (a second CreateRun of the same name fails with ErrRunExists; a
// writer of a run held by a live process fails with ErrLocked).
//
// # Durability
//
// A Writer buffers rows in memory and, at every flush (Options.FlushInterval, default 1 s),
// appends them to segment files, fsyncs them and then commits the index entries that point at
// them. A process killed at any moment loses at most the rows appended since the last flush;
// the next Open reports its run as crashed and salvages complete record batches.
//
// # Options
//
// See Options: every field documents its default and unit; DefaultOptions returns them.
package store
