// Package query reads an actrec store: it lists runs and layers, returns and
// aggregates statistics, shows tensors, diffs two runs and exports them for
// notebooks, DuckDB and Spark. It only reads; open the store with
// store.OpenReadOnly (every function here works while a run is being
// recorded: it sees what the writer has committed).
//
// # Functions
//
//   - ListRuns, GetRun, Layers: the index, without touching tensor data.
//   - Stats: per-batch statistics rows, or one row per layer aggregated over
//     batches with Aggregate: count-weighted mean, pooled (population) std,
//     min of mins, max of maxes, merged histograms (store.Histogram.Merge)
//     and percentiles read from the merged histogram — never averaged
//     percentiles.
//   - Show: shape, stats and the first values of one sample's tensor.
//   - Diff: two runs layer by layer (see below).
//   - Export: arrow, parquet, npz, npy (tensors) and csv, jsonl (stats).
//
// Diff, Export and Stats take a context.Context first: once it is done they
// stop promptly (Diff and Export check it before every tensor row, Stats
// between layers), Export removes its temporary output, and the error wraps
// ctx.Err() (context.Canceled after Ctrl-C in actquery, exit status 130).
//
// Unknown runs and layers give a *NotFoundError (wrapping
// store.ErrNotFound) that lists the closest existing names by edit
// distance. Corrupt store files surface as *store.CorruptionError naming
// the file and offset.
//
// # Diff
//
// Run A is the candidate, run B the reference. Layers are matched by path,
// or through DiffOptions.Map (A path -> B path, see ParseMap and
// ReadMapFile), and reported in A's execution order, then the layers only
// in B. Samples are matched by dataset index (the k-th occurrence of an
// index in A with the k-th in B), so runs with different batch sizes
// compare; when a run has no dataset indices (-1) samples are matched by
// (batch, sample).
//
// For layers with tensors in both runs the error metrics are computed in
// float64 in one streaming pass (ErrorAccumulator): max and mean absolute
// error, RMSE, relative L2 error ||a-b||/||b||, cosine similarity, SQNR in
// dB 10*log10(sum b^2 / sum (a-b)^2) (+Inf when equal) and the fraction of
// elements with |a-b| > atol + rtol*|b|. For layers with stats the
// per-batch stats are aggregated per run (over the batches both runs have
// when those hold the same number of elements, else over all batches of
// each run) and compared: deltas of mean, std, min and max, NaN/Inf counts,
// and the Wasserstein-1 distance between the merged histograms on the
// shared bfloat16 bucket grid (Wasserstein1).
//
// Non-finite values: a NaN in both runs at the same element, or the same
// infinity in both, counts as equal. Any other pair with a non-finite value
// (NaN or Inf against a finite value, NaN against Inf, +Inf against -Inf)
// is a non-finite mismatch: it counts in TensorDiff.NonFinite and in the
// elements outside the tolerance, max_abs_err is NaN (max_abs_err_finite
// keeps the maximum over the finite pairs; the sums behind mean error,
// RMSE, rel_l2, cosine and SQNR leave such pairs out), and the layer fails
// whatever the thresholds, --min-sqnr and --min-cosine included. Differing
// NaN or Inf counts in the stats fail the layer the same way: for
// stats-only layers, and for layers with tensors when the stats cover the
// same batches in both runs (tensors may be recorded for some samples only,
// so a NaN can show in the stats alone).
//
// A layer's status is equal, ok (within the thresholds), failed,
// shape_mismatch (counted as failed; the rest of the layers are still
// compared), only_a, only_b or no_common_data (both runs have the layer but
// no data of the same kind for common batches or samples: one run has no
// batches, tensors in one and stats only in the other, disjoint samples;
// the reason says which) or unreadable (its data could not be read: a
// damaged store; the error, naming file and offset, is in its reasons and
// LayerDiff.Err; the other layers are still compared and the diff does not
// pass). With zero thresholds any difference fails: any element of the
// tensors; for statistics (aggregated over each run's batches, so compare
// runs over the same samples), mean, std, min or max beyond 1e-9 relative
// (aggregating the same values in other batch groupings rounds the last
// bits differently) and any difference of the exactly merged histograms
// (HIST_W1 > 0: different values). With thresholds, statistics are gated
// on mean, std, min, max and NaN/Inf counts only. The
// first diverging layer is the first failed or shape-mismatched layer of A
// in execution order. A layer with no common data does not fail the diff by
// itself, but a diff that compared nothing at all (DiffReport.ComparedLayers
// is 0: disjoint layers, an empty run, tensors against stats) does not pass;
// DiffReport.Reasons says why. Batches with data (of the matched layers, by
// the index) in one run only are listed whatever the other run holds.
//
// Memory stays bounded: two windows of run-B rows of at most
// DiffOptions.MemoryBudget (default 64 MiB) each, one being loaded while
// the other is compared; run A's data is read in place from the store's
// memory map. When both runs hold the same batches, samples and dataset
// indices (the common case: same data, same batch size) each run is read
// once, in lockstep. Otherwise Diff first lists the rows of both runs
// (batch, sample, dataset index: some tens of bytes per sample), matches
// them, and walks run A in windows holding only the matched run-B rows;
// with a shuffled sample order the run-B batches are then read once per
// window.
//
// # Export layouts
//
// Tensor exports hold, per layer, rows (batch int64, sample int32,
// dataset_index int64, tensor):
//
//   - arrow: an Arrow IPC file per layer; tensor is the canonical extension
//     arrow.fixed_shape_tensor (storage fixed_size_list<float32>, metadata
//     {"shape":[...]}). Schema metadata actrec.run, actrec.layer, actrec.op.
//   - parquet: one file per layer (uncompressed, no dictionary); tensor is
//     list<float32> (Parquet has no fixed-size list), the shape is in the
//     key-value metadata actrec.shape. A directory output is a Hive
//     partitioned dataset run=<run>/layer=<layer>/part-0.parquet, partition
//     values escaped as in Hive (%XX for / = : and other special
//     characters); exporting another run adds its partition.
//   - npz: per layer "<layer>" float32 (n, *shape) and "<layer>.batch",
//     "<layer>.sample", "<layer>.dataset_index" int64 (n,); npy: one layer.
//     NPY format 1.0, data 64-byte aligned, npz entries stored
//     uncompressed (package query/npy).
//   - csv, jsonl: stats rows with columns run, layer, batch, count, mean,
//     std, min, max, l2, zero_frac, nan, inf, p01, p05, p25, p50, p75, p95,
//     p99, hist_buckets. CSV writes non-finite numbers as nan, inf, -inf;
//     JSON as the strings "NaN", "+Inf", "-Inf" (see Float).
//
// A selection without rows of the format's kind (a batch range beyond the
// run, csv of a tensors-only run, npz of a stats-only one) is an error
// wrapping store.ErrNotFound naming the range and the batches the run has;
// nothing is written. WriteStats streams csv or jsonl to an io.Writer
// (actquery export --out -).
//
// Outputs are written under a temporary name and renamed into place; an
// existing output is refused without ExportOptions.Force
// (ErrOutputExists) and an output inside the store directory always
// (ErrOutputInStore).
//
// # JSON
//
// Result types carry JSON tags; their field names are the stable --json
// schema of cmd/actquery, documented in cmd/actquery/JSON.md.
//
// # Concurrency
//
// Functions are safe to call concurrently on one *store.Store (the store
// is). ErrorAccumulator values are not; merge per-goroutine accumulators.
package query
