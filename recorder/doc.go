// Package recorder turns the layer outputs of forward passes into store rows
// without getting in the way of inference: it decides which layers, batches
// and samples to keep, computes per-(batch, layer) statistics, copies sampled
// tensors, and hands everything to a store.Writer through a bounded queue.
//
// # Use
//
//	st, _ := store.Open(dir, store.DefaultOptions())
//	cfg := recorder.DefaultConfig()                      // stats of every leaf, every batch
//	cfg.Overrides = []recorder.LayerMode{{Select: "relu1", Mode: recorder.ModeBoth}}
//	cfg.Samples = recorder.SamplePolicy{Indices: []int{0, 2}}
//	rec, _ := recorder.New(st, store.RunInfo{Name: "run1", Input: "fashion-mnist test"}, cfg)
//	_ = rec.Attach(model, []int{1, 1, 28, 28})           // creates the run, registers hooks
//	for i, x := range batches {
//		ctx := recorder.WithBatch(ctx, recorder.Batch{Index: int64(i), DatasetIndex: int64(i * 64)})
//		model.Forward(ctx, x)
//	}
//	err := rec.Close()                                   // flushes, marks the run complete
//
// Without an nn model, Declare the layers and call Record(ctx, layer, batch,
// tensor) with activations from any Go inference code.
//
// Layers are selected by exact module path, glob (path.Match on the dotted
// path: "relu*", "layer1.*"; '*' does not cross a dot), op type ("op:Conv2d")
// or "all" (every leaf; the default). A selector matching nothing is an
// error that lists the valid names. What is kept per layer (ModeStats,
// ModeTensors, ModeBoth) is Config.Mode, overridden per layer by
// Config.Overrides. Batches are chosen by BatchPolicy (every Nth, first K,
// ranges "0-9,20,50-", a seeded probability, at most one per interval; all
// conditions ANDed), separately for everything (Batches) and for tensors
// (TensorBatches); samples inside a batch by SamplePolicy (index list, first
// k, k at random seeded per (seed, batch)). Seeded choices are pure functions
// of (seed, batch index): the same configuration selects the same batches
// and samples in every run. Config.TensorBudget caps the tensor bytes of a
// run: once reached, tensors stop (stats continue) and the run's Meta gets
// "tensor_budget_reached_at_batch".
//
// # Batch identity
//
// WithBatch sets the batch index and the dataset index of sample 0. Without
// it, every Model.Forward call (nn.CallID) gets the next batch index when
// its first recorded layer runs, and a dataset index counting the samples
// of earlier calls (right for a sequential pass over a data set; with
// concurrent callers use WithBatch). The mapping is forgotten when the root
// module's hook fires, and is bounded in any case.
//
// # Concurrency and what is copied when
//
// A Recorder is safe for concurrent use; an nn.Model may run Forward on many
// goroutines, and each call records under its own batch. Hooks run on the
// Forward goroutine and see the output only during the call, so a hook:
//
//   - computes the statistics in place, on the output that is still hot in
//     cache, splitting outputs of 64 Ki elements or more across GOMAXPROCS
//     goroutines (the forward pass is waiting anyway);
//   - copies only the selected samples' tensors into one pooled buffer;
//   - pushes the resulting item onto a queue bounded by Config.QueueBytes
//     (default 256 MiB), counting stats rows, tensor copies and items being
//     written.
//
// Workers (Config.Workers, default 1) pop items and call
// Writer.AppendStats/AppendTensors. When the queue is full, Policy Block
// (default, lossless) makes the forward pass wait; Policy Drop skips that
// (batch, layer) and counts the batch in the run's Meta "dropped_batches".
// Hooks cannot return errors: the first error of a hook or of the writer is
// kept, returned by Err, by the next Record and by Close (the run is then
// closed as interrupted), and recording stops. A hook recovers its own
// panics; it never panics into the forward pass. Close detaches the hooks,
// waits until every queued row is written, records the end time and Meta and
// closes the run as complete.
//
// Why hooks compute statistics instead of workers (Config.StatsInWorkers
// switches to the latter): RecipeCNN(3,10) at batch 64 produces 4.3 M output
// elements (17 MB) per batch. A worker needs its own copy of all of it: the
// copy is extra memory traffic on top of the same statistics work, which
// then reads the data again from memory rather than from cache, and the
// queue must hold 17 MB per batch (15 batches fill the default 256 MiB).
// Measured with BenchmarkOverheadInterleaved (plain and recorded passes
// alternated, process CPU time, shared 2-core machine under heavy load),
// before ReLU derivation: statistics in hooks cost 49-51 % CPU over plain
// inference (3 runs), statistics in workers 64-72 % (5 runs).
//
// # Cost
//
// Statistics cost about 0.55 ns of CPU per element when every output is
// counted (BenchmarkStatsRecipeBatch/kernel), and about 0.46 ns with the
// recorder's derivation of ReLU histograms (below;
// BenchmarkStatsRecipeBatch/recorder): 33 % of the CPU of a plain
// RecipeCNN(3,10) forward pass at batch 64, which produces 4.3 M output
// elements in about 6 ms. That model does so little arithmetic per output
// element that reading every activation once is a sizeable fraction of
// inference. The larger part of the overhead of recording every layer is
// not the recorder's: a hook on a module makes nn materialise that
// module's whole-batch output instead of running its fused, in-place,
// sample-by-sample path, which costs 65-85 % CPU with empty hooks on every
// layer (BenchmarkOverheadInterleaved/nn-noop-hooks). MomentsOnly halves
// the statistics part; recording only some batches (BatchPolicy.Every)
// scales it down proportionally; recording fewer layers keeps more of nn's
// fusion.
//
// ReLU derivation: within one Forward call, the recorder keeps the
// histogram and signed-zero counts of every clean (NaN- and Inf-free)
// output it summarised. When a recorded ReLU's input is such an output
// (same tensor, data pointer, length, and a fingerprint of 32 sampled
// elements), its histogram is derived: positive buckets are the input's,
// bucket 0x8000 holds the output's -0 and bucket 0x0000 its +0 plus the
// input's positive subnormals of that bucket; only the moments and zero
// counts of the output are summed. The result is checked (no NaN/Inf,
// minimum >= 0, maximum equal to the input's positive maximum, bucket total
// equal to the finite count) and otherwise counted in full; tests compare
// derived and counted histograms on data with signed zeros and subnormals.
//
// # Statistics
//
// Per (batch, layer), over the whole output of that batch (store.StatsRow):
// Count is every element; Mean, Std (population, ddof 0), Min, Max, L2
// (sqrt of the sum of squares) and ZeroFrac (zeros / finite count; -0
// counts as zero) are over finite values only; NaN and Inf count the
// non-finite elements, which never enter the other statistics. Everything
// is accumulated in float64: each chunk of 1024 elements is summed as
// d = x - K and d² with K the chunk's first element (exact shift, no
// cancellation problem since K is one of the data), and chunks are merged
// with Chan et al.'s parallel update of (n, mean, M2). L2 is derived as
// sqrt(M2 + n·mean²), a sum of non-negative terms. A chunk containing NaN or
// Inf is detected by its non-finite float64 sum and redone by a filtering
// two-pass path. On amd64 with AVX2+FMA the moment and histogram kernels are
// assembly (stats_amd64.s), elsewhere Go; tests check both against each
// other and everything against a float64 reference.
//
// The histogram has one bucket per bfloat16 value: key = upper 16 bits of
// the float32 bit pattern, so every finite value is in exactly one bucket
// and histograms of any batches, layers and runs merge by adding counts
// (store.Histogram.Merge). Keys are in value order, zero counts omitted,
// NaN and ±Inf excluded. It is counted in a dense pooled array of counters
// (exact zeros go to rotating spare counters so that ReLU outputs do not
// serialise on one counter) and converted to the sparse store.Histogram by
// scanning only the key ranges that min and max allow. Config.Histogram
// (default true) controls whether the histogram is stored; percentiles are
// computed either way.
//
// Percentiles are at store.Quantiles (1, 5, 25, 50, 75, 95, 99 %), read from
// the histogram with store.Histogram.Quantile: numpy's default definition
// (linear interpolation between the closest ranks, position q·(n-1)), each
// rank's value read as its bucket's midpoint, then clamped to [Min, Max].
// Error bound, tested against exact sorted percentiles: with x_lo and x_hi
// the two exact ranks interpolated between,
//
//	|p - exact| <= 2^-8 · max(|x_lo|, |x_hi|) + 2^-133
//
// because a bucket's relative width is at most 2^-7 (the absolute term is
// for the subnormal buckets, whose width is 2^-133).
//
// Config.ChannelStats adds per-channel mean and max over the finite values
// of outputs of rank >= 3 (N, C, ...).
package recorder
