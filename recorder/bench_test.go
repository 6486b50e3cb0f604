package recorder

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// BenchmarkOverhead measures inference of RecipeCNN(3,10) at batch 64
// without a recorder and with the recipe's recording configurations, each
// writing to a real store in a temporary directory. Overhead of x is
// (x - plain) / plain in ns/op.
func BenchmarkOverhead(b *testing.B) {
	stats := func() Config { return DefaultConfig() }
	samples := func() Config {
		c := DefaultConfig()
		c.Overrides = []LayerMode{{Select: "relu1", Mode: ModeBoth}, {Select: "maxpool2", Mode: ModeBoth}, {Select: "fc1", Mode: ModeBoth}}
		c.Samples = SamplePolicy{Indices: []int{0, 2}}
		return c
	}
	inWorkers := func() Config {
		c := DefaultConfig()
		c.StatsInWorkers = true
		return c
	}
	cases := []struct {
		name string
		cfg  func() Config
	}{
		{"plain", nil},
		{"stats-all-layers", stats},
		{"stats+samples-0,2-relu1,maxpool2,fc1", samples},
		{"stats-in-workers-all-layers", inWorkers},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			m, err := nn.RecipeCNN(3, 10)
			if err != nil {
				b.Fatal(err)
			}
			x := input(64, 1)
			var r *Recorder
			if c.cfg != nil {
				st, err := store.Open(b.TempDir(), store.DefaultOptions())
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				r, err = New(st, store.RunInfo{Name: "bench"}, c.cfg())
				if err != nil {
					b.Fatal(err)
				}
				if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
					b.Fatal(err)
				}
			}
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
	for b.Loop() {
		peak := longRecording(b, 10000, 8<<20)
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	}
}

// longRecording records batches of a [64 1024] output (stats + samples 0
// and 2) with a queue of capBytes and returns the peak HeapInuse sampled
// after every batch.
func longRecording(tb testing.TB, batches int, capBytes int64) uint64 {
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
	var peak uint64
	for i := 0; i < batches; i++ {
		if err := r.Record(context.Background(), "x", Batch{Index: int64(i)}, x); err != nil {
			tb.Fatal(err)
		}
		if i%100 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := r.Close(); err != nil {
		tb.Fatal(err)
	}
	if n := r.Stats().StatsRows; n != int64(batches) {
		tb.Fatal(fmt.Sprintf("%d stats rows, want %d", n, batches))
	}
	return peak
}
