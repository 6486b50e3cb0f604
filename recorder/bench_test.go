package recorder

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// BenchmarkOverhead measures inference of RecipeCNN(3,10) at batch 64
// without a recorder and with the recipe's recording configurations, each
// writing to a real store in a temporary directory. Overhead of x is
// (x - plain) / plain in ns/op.
func BenchmarkOverhead(b *testing.B) {
	cases := append([]overheadConfig{{"plain", nil}}, overheadConfigs()...)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var m *nn.Model
			var r *Recorder
			if c.cfg != nil {
				m, r = recordedRecipe(b, c.cfg())
			} else {
				var err error
				if m, err = nn.RecipeCNN(3, 10); err != nil {
					b.Fatal(err)
				}
			}
			x := input(64, 1)
			ctx := context.Background()
			for i := 0; i < 2; i++ { // warm up pools and caches
				if _, err := m.Forward(ctx, x); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := m.Forward(ctx, x); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if r != nil {
				if err := r.Close(); err != nil {
					b.Fatal(err)
				}
				c := r.Stats()
				b.ReportMetric(float64(c.QueuePeak)/(1<<20), "queue-peak-MB")
			}
		})
	}
}

// BenchmarkOverheadInterleaved measures the same configurations as
// BenchmarkOverhead, but alternates a plain forward pass of an identical
// model with a recorded one (waiting for the writer to finish the batch, so
// that the background work is charged to the recorded pass) and reports
// overhead-% = (recorded - plain) / plain. Interleaving makes the figure
// robust to the load of a shared machine.
func BenchmarkOverheadInterleaved(b *testing.B) {
	for _, c := range append([]overheadConfig{{"nn-noop-hooks", nil}, {"nn-noop-chunk-hooks", nil}}, overheadConfigs()...) {
		b.Run(c.name, func(b *testing.B) {
			plain, err := nn.RecipeCNN(3, 10)
			if err != nil {
				b.Fatal(err)
			}
			var m *nn.Model
			var r *Recorder
			if c.cfg != nil {
				m, r = recordedRecipe(b, c.cfg())
			} else if m, err = nn.RecipeCNN(3, 10); err != nil {
				b.Fatal(err)
			}
			switch {
			case c.name == "nn-noop-chunk-hooks":
				// No recorder: an empty chunk hook on every module (what
				// the recorder uses), fusion kept.
				for _, mi := range m.Modules() {
					h, err := m.RegisterChunkHook(mi.Path, noopChunks{})
					if err != nil {
						b.Fatal(err)
					}
					defer h.Remove()
				}
			case c.cfg == nil:
				// No recorder: an empty forward hook on every module, the
				// cost of nn's unfused hooked forward path alone.
				h := m.RegisterGlobalHook(func(context.Context, nn.ModuleInfo, []*nn.Tensor, *nn.Tensor) {})
				defer h.Remove()
			}
			wait := func() {
				if r != nil {
					r.q.waitEmpty()
				}
			}
			x := input(64, 1)
			ctx := context.Background()
			var tPlain, tRec, cPlain, cRec time.Duration
			for i := 0; i < 2; i++ {
				plain.Forward(ctx, x)
				m.Forward(ctx, x)
				wait()
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				// Alternate the order to cancel cache and frequency effects.
				for j := 0; j < 2; j++ {
					if (i+j)%2 == 0 {
						t0, c0 := time.Now(), cpuTime()
						if _, err := plain.Forward(ctx, x); err != nil {
							b.Fatal(err)
						}
						tPlain += time.Since(t0)
						cPlain += cpuTime() - c0
					} else {
						t0, c0 := time.Now(), cpuTime()
						if _, err := m.Forward(ctx, x); err != nil {
							b.Fatal(err)
						}
						wait()
						tRec += time.Since(t0)
						cRec += cpuTime() - c0
					}
				}
			}
			b.StopTimer()
			if r != nil {
				if err := r.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(tPlain.Nanoseconds())/float64(b.N), "plain-ns/op")
			b.ReportMetric(float64(tRec.Nanoseconds())/float64(b.N), "recorded-ns/op")
			b.ReportMetric(100*float64(tRec-tPlain)/float64(tPlain), "overhead-%")
			b.ReportMetric(100*float64(cRec-cPlain)/float64(cPlain), "cpu-overhead-%")
		})
	}
}

// recordedRecipe returns RecipeCNN(3,10) with a recorder of cfg attached,
// writing to a store in a temporary directory (closed with the benchmark).
func recordedRecipe(b *testing.B, cfg Config) (*nn.Model, *Recorder) {
	m, err := nn.RecipeCNN(3, 10)
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(b.TempDir(), store.DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	r, err := New(st, store.RunInfo{Name: "bench"}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
		b.Fatal(err)
	}
	return m, r
}

type noopChunks struct{}

func (noopChunks) Chunk(context.Context, nn.ModuleInfo, *nn.Tensor, int, int) {}
func (noopChunks) Done(context.Context, nn.ModuleInfo, int)                   {}

// cpuTime returns the CPU time (user + system) used by the process so far,
// all threads included: unlike wall time it does not grow with the load
// other processes put on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type overheadConfig struct {
	name string
	cfg  func() Config
}

func overheadConfigs() []overheadConfig {
	return []overheadConfig{
		// Hooks on every layer that record nothing after batch 0: the cost
		// of nn's hooked forward path (no in-place layers, no buffer reuse)
		// plus the recorder's per-hook bookkeeping.
		{"hooks-only-all-layers", func() Config {
			c := DefaultConfig()
			c.Batches = BatchPolicy{Ranges: "0"}
			return c
		}},
		{"stats-all-layers", func() Config { return DefaultConfig() }},
		{"stats-all-layers-every-8th-batch", func() Config {
			c := DefaultConfig()
			c.Batches = BatchPolicy{Every: 8}
			return c
		}},
		{"moments-only-all-layers", func() Config {
			c := DefaultConfig()
			c.MomentsOnly = true
			return c
		}},
		{"stats+samples-0,2-relu1,maxpool2,fc1", func() Config {
			c := DefaultConfig()
			c.Overrides = []LayerMode{{Select: "relu1", Mode: ModeBoth}, {Select: "maxpool2", Mode: ModeBoth}, {Select: "fc1", Mode: ModeBoth}}
			c.Samples = SamplePolicy{Indices: []int{0, 2}}
			return c
		}},
		// The PyTorch anchor's work (../shared/bench/torch_seedcnn.py's
		// stats hooks: mean, std, min and max of relu1, maxpool2 and fc1),
		// then the full statistics of the same three layers.
		{"anchor-moments-relu1,maxpool2,fc1", func() Config {
			c := DefaultConfig()
			c.Layers = []string{"relu1", "maxpool2", "fc1"}
			c.MomentsOnly = true
			return c
		}},
		{"anchor-stats-relu1,maxpool2,fc1", func() Config {
			c := DefaultConfig()
			c.Layers = []string{"relu1", "maxpool2", "fc1"}
			return c
		}},
		{"stats-in-workers-all-layers", func() Config {
			c := DefaultConfig()
			c.StatsInWorkers = true
			return c
		}},
		{"stats-in-workers+samples-0,2-relu1,maxpool2,fc1", func() Config {
			c := DefaultConfig()
			c.StatsInWorkers = true
			c.Overrides = []LayerMode{{Select: "relu1", Mode: ModeBoth}, {Select: "maxpool2", Mode: ModeBoth}, {Select: "fc1", Mode: ModeBoth}}
			c.Samples = SamplePolicy{Indices: []int{0, 2}}
			return c
		}},
	}
}

// BenchmarkHookParts separates the synchronous costs of a hook on the
// relu1 output of a batch of 64 (32×26×26 per sample, 5.5 MB): computing
// the statistics in place versus copying the output for a worker.
func BenchmarkHookParts(b *testing.B) {
	x := benchData(64*32*26*26, true)
	b.Run("stats-in-place", func(b *testing.B) {
		r := &Recorder{cfg: DefaultConfig()}
		b.SetBytes(int64(4 * len(x)))
		for b.Loop() {
			r.computeStats(x, []int{64, 32, 26, 26})
		}
	})
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(4 * len(x)))
		for b.Loop() {
			p := getBuf(len(x))
			copy(*p, x)
			putBuf(p)
		}
	})
}

// BenchmarkLongRecording records 10,000 batches through the framework-free
// entry point with an 8 MiB queue and reports the peak heap in use.
func BenchmarkLongRecording(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("batches=%d", n), func(b *testing.B) {
			for b.Loop() {
				peak, live, sys := longRecording(b, n, 8<<20)
				b.ReportMetric(float64(peak)/(1<<20), "peak-heapinuse-MB")
				b.ReportMetric(float64(live)/(1<<20), "peak-live-MB")
				b.ReportMetric(float64(sys)/(1<<20), "sys-MB")
			}
		})
	}
}

// BenchmarkLongRecordingBigLayers records every sample's tensors and the
// stats of conv1 and relu1 of RecipeCNN(1,10) at batch 256 (2 x 22 MiB of
// copies per call, like actrec record --batch-size 256 --layers conv1,relu1
// --mode both) with an 8 MiB queue, for two store buffer sizes
// (store.Options.MaxBufferBytes), and reports the heap peaks.
func BenchmarkLongRecordingBigLayers(b *testing.B) {
	for _, maxBuf := range []int64{64 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("storebuf=%dMiB", maxBuf>>20), func(b *testing.B) {
			for b.Loop() {
				got := bigLayerRecording(b, 20, 256, 1, 8<<20, maxBuf, false)
				b.ReportMetric(mib(got.peakInuse), "peak-heapinuse-MB")
				b.ReportMetric(mib(got.live), "peak-live-MB")
				b.ReportMetric(mib(uint64(got.queuePeak)), "queue-peak-MB")
			}
		})
	}
}

// longRecording records batches of a [64 1024] output (stats + samples 0
// and 2) with a queue of capBytes and returns the peak HeapInuse sampled
// every 100 batches, the peak live heap (HeapAlloc right after a GC, every
// 1000 batches) and Sys at the end.
func longRecording(tb testing.TB, batches int, capBytes int64) (peak, live, sys uint64) {
	peak, live, sys, _ = longRecordingQ(tb, batches, capBytes)
	return peak, live, sys
}

// longRecordingQ is longRecording that also returns the queue's peak bytes.
func longRecordingQ(tb testing.TB, batches int, capBytes int64) (peak, live, sys uint64, queuePeak int64) {
	opts := store.DefaultOptions()
	opts.NoSync = true
	opts.MaxBufferBytes = 4 << 20
	st, err := store.Open(tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	cfg.Samples = SamplePolicy{Indices: []int{0, 2}}
	cfg.QueueBytes = capBytes
	r, err := New(st, store.RunInfo{Name: "long"}, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{1024}}}); err != nil {
		tb.Fatal(err)
	}
	x := nn.NewTensor(64, 1024)
	copy(x.Data, benchData(len(x.Data), false))
	var ms runtime.MemStats
	for i := 0; i < batches; i++ {
		if err := r.Record(context.Background(), "x", Batch{Index: int64(i)}, x); err != nil {
			tb.Fatal(err)
		}
		if i%100 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		if i%1000 == 999 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			live = max(live, ms.HeapAlloc)
		}
	}
	if err := r.Close(); err != nil {
		tb.Fatal(err)
	}
	if n := r.Stats().StatsRows; n != int64(batches) {
		tb.Fatal(fmt.Sprintf("%d stats rows, want %d", n, batches))
	}
	runtime.ReadMemStats(&ms)
	return peak, live, ms.Sys, r.Stats().QueuePeak
}

// BenchmarkStatsRecipeBatch computes the statistics of the outputs of all
// ten layers of RecipeCNN(3,10) for one batch of 64 (4.3 M elements), on
// one goroutine, and reports the cost relative to one plain forward pass
// measured interleaved in CPU time (stats-vs-forward-%). "kernel" runs the
// accumulator on every output; "recorder" runs the recorder's chunk path
// (one chunk per sample), which derives ReLU histograms from their inputs'
// and reuses the input's row for Flatten.
func BenchmarkStatsRecipeBatch(b *testing.B) {
	m, err := nn.RecipeCNN(3, 10)
	if err != nil {
		b.Fatal(err)
	}
	type leaf struct {
		path    string
		out, in *nn.Tensor
	}
	var leaves []leaf
	copies := map[*nn.Tensor]*nn.Tensor{}
	clone := func(t *nn.Tensor) *nn.Tensor {
		if c, ok := copies[t]; ok {
			return c
		}
		c := &nn.Tensor{Shape: t.Shape, Data: append([]float32(nil), t.Data...)}
		copies[t] = c
		return c
	}
	h := m.RegisterGlobalHook(func(_ context.Context, mi nn.ModuleInfo, in []*nn.Tensor, out *nn.Tensor) {
		if mi.Leaf {
			leaves = append(leaves, leaf{path: mi.Path, out: clone(out), in: clone(in[0])})
		}
	})
	x := input(64, 1)
	if _, err := m.Forward(context.Background(), x); err != nil {
		b.Fatal(err)
	}
	h.Remove()
	elems := 0
	for _, l := range leaves {
		elems += len(l.out.Data)
	}
	run := func(b *testing.B, stats func(call uint64)) {
		var cStats, cFwd time.Duration
		call := uint64(0)
		for b.Loop() {
			call++
			c0 := cpuTime()
			stats(call)
			c1 := cpuTime()
			if _, err := m.Forward(context.Background(), x); err != nil {
				b.Fatal(err)
			}
			cStats += c1 - c0
			cFwd += cpuTime() - c1
		}
		b.ReportMetric(float64(cStats.Nanoseconds())/float64(b.N)/float64(elems), "stats-cpu-ns/elem")
		b.ReportMetric(100*float64(cStats)/float64(cFwd), "stats-vs-forward-%")
	}
	b.Run("kernel", func(b *testing.B) {
		a := newAccumulator()
		run(b, func(uint64) {
			for _, l := range leaves {
				a.add(l.out.Data)
				a.result(true)
			}
		})
	})
	b.Run("recorder", func(b *testing.B) {
		// The recorder's chunk path, one sample per chunk, ReLU histograms
		// derived and Flatten's row reused.
		r := &Recorder{cfg: DefaultConfig(), layers: map[string]*layerState{}}
		var ls []*layerState
		for _, l := range leaves {
			ls = append(ls, &layerState{info: store.LayerInfo{Path: l.path, Shape: l.out.Shape[1:]}, mode: ModeStats})
			r.layers[l.path] = ls[len(ls)-1]
		}
		r.layerList = ls
		r.planLayers(m)
		run(b, func(uint64) {
			cs := &callState{bs: &batchState{stats: true}, n: 64, layers: map[*layerState]*layerCall{}, done: map[*layerState]*layerResult{}}
			for i, l := range leaves {
				lc := &layerCall{stats: true}
				n := l.out.Shape[0]
				per := len(l.out.Data) / n
				for s := 0; s < n; s++ {
					c := &nn.Tensor{Shape: append([]int{1}, l.out.Shape[1:]...), Data: l.out.Data[s*per : (s+1)*per]}
					r.addChunk(ls[i], lc, c, s, s+1)
				}
				r.layerRow(ls[i], cs, lc)
			}
		})
		if n := r.derived.Load(); n == 0 {
			b.Fatal("no ReLU histogram derived")
		}
	})
}

// BenchmarkOverheadStream measures a long recording's throughput: blocks of
// 32 plain forward passes alternate with blocks of 32 recorded ones (same
// model, same input), without waiting for the writer between passes, so
// that work the recorder does on spare cores overlaps inference; a
// recorded block ends when the writer has written all of it (so that no
// recorder work spills into the next plain block), and the recorded total
// includes Close. The
// sub-benchmarks set nn.SetThreads to 1 (inference on one core, the other
// left to the recorder: the setting of ../shared/bench/torch_seedcnn.py's
// default) and to GOMAXPROCS (no spare core). overhead-% is wall time,
// cpu-overhead-% process CPU time.
func BenchmarkOverheadStream(b *testing.B) {
	for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
		for _, c := range overheadConfigs() {
			b.Run(fmt.Sprintf("threads=%d/%s", threads, c.name), func(b *testing.B) {
				defer nn.SetThreads(nn.SetThreads(threads))
				plain, err := nn.RecipeCNN(3, 10)
				if err != nil {
					b.Fatal(err)
				}
				m, r := recordedRecipe(b, c.cfg())
				x := input(64, 1)
				ctx := context.Background()
				for i := 0; i < 2; i++ {
					plain.Forward(ctx, x)
					m.Forward(ctx, x)
				}
				streamOverhead(b, plain, m, r, x, streamBlock())
			})
		}
	}
}

// streamOverhead runs BenchmarkOverheadStream's measurement: blocks of
// block passes of plain and of m (recorded by r) on x, alternated, until
// the benchmark ends, then r.Close, and reports the overheads.
func streamOverhead(b *testing.B, plain, m *nn.Model, r *Recorder, x *nn.Tensor, block int) {
	ctx := context.Background()
	r.q.waitEmpty()
	var tPlain, tRec, cPlain, cRec time.Duration
	run := func(mod *nn.Model, t, c *time.Duration) {
		t0, c0 := time.Now(), cpuTime()
		for k := 0; k < block; k++ {
			if _, err := mod.Forward(ctx, x); err != nil {
				b.Fatal(err)
			}
		}
		if mod == m {
			r.q.waitEmpty()
		}
		*t += time.Since(t0)
		*c += cpuTime() - c0
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			run(plain, &tPlain, &cPlain)
			run(m, &tRec, &cRec)
		} else {
			run(m, &tRec, &cRec)
			run(plain, &tPlain, &cPlain)
		}
	}
	t0, c0 := time.Now(), cpuTime()
	if err := r.Close(); err != nil {
		b.Fatal(err)
	}
	tRec += time.Since(t0)
	cRec += cpuTime() - c0
	b.StopTimer()
	n := float64(b.N * block)
	b.ReportMetric(float64(tPlain.Nanoseconds())/n, "plain-ns/fwd")
	b.ReportMetric(float64(tRec.Nanoseconds())/n, "recorded-ns/fwd")
	b.ReportMetric(100*float64(tRec-tPlain)/float64(tPlain), "overhead-%")
	b.ReportMetric(100*float64(cRec-cPlain)/float64(cPlain), "cpu-overhead-%")
}

// streamBlock is the number of passes per block of BenchmarkOverheadStream:
// $ACTREC_BENCH_BLOCK, default 32. A recorded block ends when the worker
// has written its rows, so the worker's lag behind the last pass (one
// batch's statistics, about 1.5 ms here) is charged once per block; a long
// recording pays it once.
func streamBlock() int {
	if n, err := strconv.Atoi(os.Getenv("ACTREC_BENCH_BLOCK")); err == nil && n > 0 {
		return n
	}
	return 32
}
