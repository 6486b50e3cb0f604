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
// it starts (the recorder's pre-hook on the root module), and a dataset
// index counting the samples of earlier calls (right for a sequential pass
// over a data set; with concurrent callers use WithBatch). The mapping is
// forgotten when the call ends (nn's call-end hook, which fires on success
// and on error), and is bounded in any case.
//
// # Concurrency and what is copied when
//
// A Recorder is safe for concurrent use; an nn.Model may run Forward on many
// goroutines, and each call records under its own batch.
//
// Attach registers an nn.ChunkHook on every recorded module (plus a
// pre-hook on the root that starts each call and an nn.CallEndHook that
// ends it, whether Forward succeeds or fails).
// Chunk hooks, unlike forward hooks, leave nn's fused Conv2d → ReLU →
// MaxPool2d chains fused: nn hands each stage's output to the recorder
// sample by sample, from the worker goroutine that computed it, while it
// is hot in the cache; other modules deliver their whole output as one
// chunk. Per (call, layer) the recorder keeps a small set of pooled
// accumulators: a chunk takes an idle one (or a fresh one from the pool),
// adds its elements (splitting chunks of 64 Ki elements or more across
// GOMAXPROCS goroutines) and puts it back, so that concurrent chunks never
// share one; sampled rows are copied from the chunk that holds them into
// the (call, layer)'s pooled buffer (the budget is charged before the first
// chunk). At the module's Done, the accumulators are merged (Chan et al.'s
// update of the moments, histogram counts added), the row is computed and
// the item — stats row plus sampled tensors — is pushed onto a queue
// bounded by Config.QueueBytes (default 256 MiB), counting stats rows,
// tensor copies and items being written.
//
// Workers (Config.Workers, default 1) pop items and call
// Writer.AppendStats/AppendTensors. A Forward call reserves, at its first
// recorded layer, the queue bytes of everything it will record (stats rows,
// sampled copies, and with StatsInWorkers output copies), so that copies
// held by hooks are charged to the queue before they exist; its items are
// pushed out of that reservation and the unused rest is released when the
// call ends, successfully or with an error (or at once when its context is
// cancelled); so are the accumulators and sample buffers of layers a failed
// call did not finish, and their tensor budget is refunded. The layers a
// failed call finished before the error keep their rows. When the queue has no room,
// Policy Block (default, lossless) makes the forward pass wait (once, at
// the reservation: a call never waits while holding bytes); Policy Drop
// skips the whole batch, no layer of it is recorded, and counts it in the
// run's Meta "dropped_batches", so every layer of a run has the same
// batches.
// Hooks cannot return errors: the first error of a hook or of the writer is
// kept, returned by Err, by the next Record and by Close (the run is then
// closed as interrupted), and recording stops. A hook recovers its own
// panics; it never panics into the forward pass. Close detaches the hooks,
// waits until every queued row is written, records the end time and Meta and
// closes the run as complete.
//
// # Memory
//
// What a recording holds beyond the model and its inputs is
//
//	max(Config.QueueBytes, one call's records)   everything the recorder holds
//	+ the store Writer's buffers                  store.Options.MaxBufferBytes
//	+ statistics accumulators                    <= 32 x 768 KiB pooled, plus those in use
//	+ large buffers kept for reuse               <= min(QueueBytes/2, 64 MiB)
//
// and the Go GC's headroom on top (GOGC; the recorder does not set a
// memory limit). The queue's account covers every copy the recorder makes:
// a Forward call reserves the bytes of its sampled copies (and with
// StatsInWorkers its output copies) before its hooks allocate them,
// buffers are charged as allocated (buffers over 1 MiB are not pooled,
// except the last line above: free output copies of the same size, kept
// per Recorder), and an item stays
// charged until the store has taken its rows. The store copies appended
// rows into per-layer buffers, two sets of them (one being flushed), that
// grow by doubling and are kept; a flush starts once MaxBufferBytes are
// buffered. Workers hand tensors to the store in appends of at most 1 MiB
// (at least one row), so that these buffers are sized by MaxBufferBytes
// rather than by the largest item: up to about 4 x (MaxBufferBytes +
// 1 MiB) per layer with tensors, in practice less. (A consequence: a crash
// can leave some of a batch's samples of a layer; rows that made it are
// whole.) Whoever opens the store should size MaxBufferBytes with the
// queue, e.g. a quarter of QueueBytes; the default is 64 MiB.
//
// Measured (BenchmarkLongRecordingBigLayers: every sample of conv1 and
// relu1 of RecipeCNN(1,10) at batch 256, 2 x 22 MiB per call, 20 batches,
// an 8 MiB queue; shared noisy 2-core VM): queue peak 42.3 MiB (one call),
// peak live heap 249 MiB with the default 64 MiB store buffer and
// 71-96 MiB with 4 MiB (42 MiB the recorder's reserved copies, 21 MiB the
// store's buffers); before: 387 and 176 MiB (store buffers sized by the
// item: 126 MiB with 4 MiB). TestRecorderMemoryBoundedBigLayers checks the
// bound with four concurrent callers at batch 128 (live heap 44 MiB; 190
// MiB before copies were reserved).
//
// Statistics in hooks or in workers. By default the hooks compute the
// statistics of each chunk where nn delivers it, on the inference
// goroutine, while it is in the cache: the least CPU in all. With
// Config.StatsInWorkers, the hooks only keep the outputs and a worker
// computes the statistics, which moves that work off the inference
// goroutines onto a spare core, at the price of more CPU in all (the
// worker reads 10-20 MB per batch of RecipeCNN from memory rather than
// cache) and of queue memory for the copies. What the hooks keep is made
// cheap three ways: a fused convolution computes its output directly into
// the recorder's buffer (nn.ChunkDest, no copy), before its bias where the
// call samples none of its tensors (nn.RawChunkDest: the worker adds the
// bias, nn only to the pooled quarter, as unhooked), and its pool its output
// tensor into memory the recorder allocates for the call (nn.OutputDest:
// later layers read it, nothing modifies it); a ReLU, Flatten or
// Dropout whose input is recorded declines its chunks (so nn keeps the
// ReLU after pooling, where it is cheapest) and the worker derives its row
// and sampled tensors from the input's copy (the ReLU's moments with a
// kernel that does not write its output, see TestReLUMomentsFast); other
// outputs are copied once into a buffer reused from batch to batch (the
// derived rows travel with their input's: a call that fails after the
// input's layer still records them). It pays
// when inference leaves a core free (nn.SetThreads below GOMAXPROCS;
// actrec --threads, which then switches it on); with every core busy with
// inference, the hooks are cheaper. Both give the same rows (bit-identical
// histograms, counts, minima and maxima; means and deviations to the last
// bits of a float64, from a different summation order; tested by
// TestRecorderFusedChunks, TestRecorderReusedRows and actrec's
// TestRecord_StatsInWorkers).
//
// # Cost
//
// Measured on RecipeCNN(3,10) at batch 64 (5.6-6.2 ms per plain forward
// pass with one inference thread, 3.3-3.4 ms with two), on a shared 2-core
// VM, 2026-11-27 01:01 UTC, with
//
//	go test -run XXX -bench OverheadStream -benchtime 20x -count 2 ./recorder
//
// (blocks of 32 plain and 32 recorded passes alternated, a recorded block
// ending when its rows are written, the recorded total including Close;
// wall-clock overhead, two runs; BENCHMARKS.md has more runs, other
// windows, and larger models):
//
//	configuration                          1 inference thread   2 threads
//	hooks attached, nothing recorded       1 %                  0 %
//	mean/std/min/max... of relu1, maxpool2,
//	  fc1 (MomentsOnly; PyTorch anchor's)  4.4-5.1 %            2.3-5.9 %
//	stats, every layer, every batch:
//	  in hooks (default)                   21 %                 25-29 %
//	  StatsInWorkers                       4.0-4.6 %            26-31 %
//	stats + samples 0,2 of relu1, maxpool2, fc1:
//	  in hooks                             20 %                 28 %
//	  StatsInWorkers                       5.6-6.9 %            39-41 %
//	moments only, every layer (hooks)      8-10 %               10-11 %
//	stats every 8th batch (hooks)          3.8-4.0 %            3.7-3.8 %
//
// PyTorch's mean/std/min/max hooks on relu1, maxpool2 and fc1 alone
// (../shared/bench/torch_seedcnn.py 64 50 1, alternated with the Go
// benchmark by scripts/bench_overhead.py) cost +28-95 % (median 32 %) in the
// same window, where the same statistics cost Go +0.7-5.9 % (median 4.4 %).
//
// So with a core left to the recorder (nn.SetThreads(1) on two cores, the
// setting of the PyTorch anchor, with StatsInWorkers) the <= 10 % target
// with samples is met in every run and the <= 5 % target for the full
// statistics of every layer at the median (4-6 % in every run of
// 2026-11-27, single runs up to 9.6 %: the spread is the other core's
// load); the anchor's own statistics cost less than 5 % at the median,
// spare core or not. The targets are not met for every layer when
// inference uses every core: the statistics then cost about 0.3 ns of CPU
// per output element (BenchmarkStatsRecipeBatch/recorder; the bfloat16
// histogram, one scattered increment per element, is most of it,
// BenchmarkKernelsL1), about 20 % of this model's forward pass, which does
// about 2.7 ns of work per activation, and with no idle core that CPU is
// wall time. On resnet18 (hundreds of multiply-adds per activation) the
// same statistics cost about 5 % (BenchmarkOverheadLarge). Recording
// every 8th batch (BatchPolicy.Every) scales that down proportionally,
// since calls the recorder records nothing of are declined (nn.ChunkFilter)
// and run as if unhooked; MomentsOnly drops the histogram; recording fewer
// layers costs proportionally less. BenchmarkOverheadInterleaved (one
// recorded pass, waiting for its rows, alternated with one plain pass)
// charges all the recorder's work to the recorded pass, hence
// StatsInWorkers' +27-31 % there: it measures CPU cost, not what a long
// recording does to inference throughput.
//
// The two steps that took the overhead down: nn.ChunkHook (the recorder no
// longer makes nn materialise whole-batch tensors; a forward hook on every
// module alone cost 54-74 %), and nn's AVX2 bias/ReLU kernels (a chunk hook
// on a convolution or ReLU makes nn apply bias and ReLU to the full
// convolution output rather than to the pooled quarter: 17-25 % with
// scalar Go, a few % now).
//
// Derived rows. When the run is created, the recorder asks the model which
// module produces each recorded layer's input (nn.Model.LeafInputs); within
// one Forward call, a layer's result is kept for the layers that reuse it:
//
//   - A recorded ReLU (nn.ReLU) whose input is a recorded layer's output
//     counts only its own moments and zeros; its histogram is derived from
//     the input's at Done: positive buckets are the input's, bucket 0x8000
//     holds the output's -0 and bucket 0x0000 its +0 plus the input's
//     positive subnormals of that bucket. This holds for any y = ReLU(x),
//     NaN and Inf included (positive finite values keep their bucket, NaN
//     and +Inf stay non-finite and outside the histogram, everything else
//     becomes a zero, which is counted). It is checked (minimum >= 0,
//     maximum equal to the input's positive maximum, bucket total equal to
//     the finite count); a failed check (which would mean nn's ReLU is not
//     max(x, 0)) leaves that row without histogram and percentiles. Tests
//     compare derived and counted histograms on data with signed zeros,
//     subnormals, NaN and ±Inf. Where the CPU has AVX-512VL, a ReLU whose
//     row needs nothing but its moments (no sampled tensors, no
//     per-channel statistics, nothing derived from it) has them counted in
//     its input's histogram pass (chunkReLUAVX512, exact: TestChunkStatsReLU,
//     a chunk with NaN or Inf takes a separate pass) and declines its own
//     chunks, so nn keeps it after pooling; the row is pushed at the
//     input's Done (in hooks) or by the worker (StatsInWorkers).
//   - A recorded Flatten or Dropout (identity at inference) whose input is
//     a recorded layer's output has the same data: its row is the input's
//     (per-channel statistics dropped where the output has no channel
//     dimension) and nothing is counted.
//   - MaxPool2d outputs are counted: a pooled value set is a data-dependent
//     subset of the input's, so neither histogram nor moments follow from
//     the input's; in the fused chain its output is a quarter of its
//     input's size and is counted per sample while in cache.
//
// # Statistics
//
// Per (batch, layer), over the whole output of that batch (store.StatsRow):
// Count is every element; Mean, Std (population, ddof 0), Min, Max, L2
// (sqrt of the sum of squares) and ZeroFrac (zeros / finite count; -0
// counts as zero) are over finite values only; NaN and Inf count the
// non-finite elements, which never enter the other statistics. Everything
// is accumulated in float64: each chunk of 4096 elements (chunkLen) is summed as
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
// serialise on one counter; with AVX-512, so does a key that holds a third
// or more of a sample of the previous chunk: ReLU6's sixes, a quantized
// tensor's levels, see hotKey; chunks with such a key or with many zeros
// have their counters computed with vector instructions and incremented
// in a second pass, chunkKeysAVX512) and converted to the sparse
// store.Histogram by
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
