package query

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/actrec/actrec/store"
)

// Benchmarks over synthetic stores. Sizes come from the environment so
// that CI runs them small:
//
//	ACTREC_BENCH_DIFF_MB   tensor data per run for diff/export benchmarks (default 16)
//	ACTREC_BENCH_ENTRIES   index entries for runs/layers benchmarks (default 10000)
//	ACTREC_BENCH_DIR       directory for the stores (default a temp dir); kept between runs
//	ACTREC_BENCH_NPY_DIR   if set, BenchmarkDiff also exports both runs' layer as .npy there,
//	                       for query/testdata/bench_diff_numpy.py
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchShape is the per-sample shape of the benchmark layer (256 KiB).
var benchShape = []int{64, 32, 32}

const benchBatch = 16

// benchDiffStore records runs "a" and "b" (b = a + small noise), each with
// one tensor layer of mb MiB, or reuses them from ACTREC_BENCH_DIR.
func benchDiffStore(b *testing.B, mb int) (*store.Store, string) {
	b.Helper()
	root := os.Getenv("ACTREC_BENCH_DIR")
	if root == "" {
		root = b.TempDir()
	}
	dir := filepath.Join(root, "diff-"+strconv.Itoa(mb)+"mb")
	if _, err := os.Stat(filepath.Join(dir, "index.db")); err != nil {
		os.RemoveAll(dir)
		opts := store.DefaultOptions()
		opts.NoSync = true
		opts.FlushInterval = -1
		s, err := store.Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		elems := 1
		for _, d := range benchShape {
			elems *= d
		}
		samples := mb << 20 / (elems * 4)
		rng := rand.New(rand.NewPCG(1, 2))
		base := make([]float32, elems*benchBatch)
		for i := range base {
			base[i] = float32(rng.NormFloat64())
		}
		for _, run := range []string{"a", "b"} {
			w, err := s.CreateRun(store.RunInfo{Name: run, Created: time.Now(), State: store.StateRecording},
				[]store.LayerInfo{{Path: "block.conv", Op: "Conv2d", Shape: benchShape}})
			if err != nil {
				b.Fatal(err)
			}
			data := make([]float32, len(base))
			for bt := 0; bt*benchBatch < samples; bt++ {
				var rows []store.TensorRow
				for sm := 0; sm < benchBatch && bt*benchBatch+sm < samples; sm++ {
					ds := bt*benchBatch + sm
					v := data[sm*elems : (sm+1)*elems]
					for i := range v {
						v[i] = base[(sm*elems+i+ds)%len(base)]
						if run == "b" && i%97 == 0 {
							v[i] += 1e-3
						}
					}
					rows = append(rows, store.TensorRow{Batch: int64(bt), Sample: int32(sm), DatasetIndex: int64(ds), Data: v})
				}
				if err := w.AppendTensors("block.conv", rows...); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(store.StateComplete); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, dir
}

// peakHeap samples the live heap while fn runs and returns the peak bytes.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	read := func() {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak.Load() {
			peak.Store(v)
		}
	}
	read()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				read()
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	read()
	return peak.Load()
}

// BenchmarkDiff: throughput of Diff in bytes of one run's tensor data per
// second, and the peak live heap during a diff (MB).
func BenchmarkDiff(b *testing.B) {
	mb := envInt("ACTREC_BENCH_DIFF_MB", 16)
	s, _ := benchDiffStore(b, mb)
	if dir := os.Getenv("ACTREC_BENCH_NPY_DIR"); dir != "" {
		for _, run := range []string{"a", "b"} {
			out := filepath.Join(dir, run+".npy")
			if _, err := Export(b.Context(), s, run, ExportOptions{Format: FormatNPY, Out: out, Force: true}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(int64(mb) << 20)
	b.ResetTimer()
	var peak uint64
	cpu0 := cpuTime()
	for b.Loop() {
		var rep *DiffReport
		p := peakHeap(func() {
			var err error
			rep, err = Diff(b.Context(), s, "a", "b", DiffOptions{Tol: Tolerance{Atol: 1e-2}})
			if err != nil {
				b.Fatal(err)
			}
		})
		peak = max(peak, p)
		if rep.Layers[0].Tensor == nil || rep.Layers[0].Tensor.MaxAbsErr == 0 {
			b.Fatalf("diff found nothing: %+v", rep.Layers[0])
		}
	}
	// On a shared, loaded machine wall time mostly measures the neighbours;
	// bytes per CPU-second (user+sys, all goroutines) is the steadier figure.
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(int64(b.N)*int64(mb)<<20)/cpu.Seconds()/1e9, "GB/cpu-s")
}

// cpuTime is the process's user+sys CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExport: MB/s of tensor data exported to npz and to parquet.
func BenchmarkExport(b *testing.B) {
	mb := envInt("ACTREC_BENCH_DIFF_MB", 16)
	s, _ := benchDiffStore(b, mb)
	for _, tc := range []struct{ format, name string }{
		{FormatNPZ, "a.npz"}, {FormatParquet, "a.parquet"}, {FormatArrow, "a.arrow"},
	} {
		b.Run(tc.format, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), tc.name)
			b.SetBytes(int64(mb) << 20)
			for b.Loop() {
				if _, err := Export(b.Context(), s, "a", ExportOptions{Format: tc.format, Out: out, Force: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchEntriesStore records one run with layers x batches stats entries.
func benchEntriesStore(b *testing.B, entries int) *store.Store {
	b.Helper()
	root := os.Getenv("ACTREC_BENCH_DIR")
	if root == "" {
		root = b.TempDir()
	}
	dir := filepath.Join(root, "entries-"+strconv.Itoa(entries))
	const layers = 100
	if _, err := os.Stat(filepath.Join(dir, "index.db")); err != nil {
		os.RemoveAll(dir)
		opts := store.DefaultOptions()
		opts.NoSync = true
		opts.FlushInterval = -1
		s, err := store.Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		var infos []store.LayerInfo
		for i := range layers {
			infos = append(infos, store.LayerInfo{Path: "layer" + strconv.Itoa(i), Op: "ReLU", Shape: []int{8}, Order: i})
		}
		w, err := s.CreateRun(store.RunInfo{Name: "big", Created: time.Now(), State: store.StateRecording}, infos)
		if err != nil {
			b.Fatal(err)
		}
		row := statsOf(0, [][]float32{{1, 2, 3, 0, -1, 4, 5, 6}})
		for bt := 0; bt < entries/layers; bt++ {
			for _, l := range infos {
				row.Batch = int64(bt)
				if err := w.AppendStats(l.Path, row); err != nil {
					b.Fatal(err)
				}
			}
			if bt%1000 == 999 {
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := w.Close(store.StateComplete); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkRunsLayers: ListRuns and Layers on a store of
// ACTREC_BENCH_ENTRIES index entries (target: < 1 s at 10^6).
func BenchmarkRunsLayers(b *testing.B) {
	entries := envInt("ACTREC_BENCH_ENTRIES", 10000)
	s := benchEntriesStore(b, entries)
	b.Run("runs", func(b *testing.B) {
		for b.Loop() {
			runs, err := ListRuns(s)
			if err != nil || len(runs) != 1 || runs[0].Entries < entries {
				b.Fatalf("runs %+v, %v", runs, err)
			}
		}
	})
	b.Run("layers", func(b *testing.B) {
		for b.Loop() {
			ls, err := Layers(s, "big")
			if err != nil || len(ls) != 100 {
				b.Fatalf("layers %d, %v", len(ls), err)
			}
		}
	})
}
