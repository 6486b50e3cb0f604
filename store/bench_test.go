package store

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Benchmarks (figures in the store's report; shared 2-core VM, noisy):
//
//	go test ./store -run '^$' -bench . -benchtime 2s
//
// BenchmarkAppendTensors/* and BenchmarkPlainFileWrite write the same bytes (MB/s comparable)
// into b.TempDir(), or into $ACTREC_BENCH_DIR if set (e.g. /dev/shm to measure the page cache
// without the disk's writeback throttling). The data is ReLU-like: half zeros, half |N(0,1)|.

const benchRowFloats = 64 * 32 * 32 // 256 KiB per sample
const benchBatchRows = 8            // 2 MiB per batch

func benchDir(b *testing.B) string {
	root := os.Getenv("ACTREC_BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "actrec-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func benchRows(b int64) []TensorRow {
	rng := rand.New(rand.NewSource(1))
	rows := make([]TensorRow, benchBatchRows)
	for i := range rows {
		d := make([]float32, benchRowFloats)
		for j := range d {
			if v := rng.NormFloat64(); v > 0 {
				d[j] = float32(v)
			}
		}
		rows[i] = TensorRow{Batch: b, Sample: int32(i), DatasetIndex: b*benchBatchRows + int64(i), Data: d}
	}
	return rows
}

func BenchmarkAppendTensors(b *testing.B) {
	for _, c := range []struct {
		name   string
		comp   Compression
		noSync bool
	}{
		{"none_pagecache", None, true},
		{"none_fsync", None, false},
		{"lz4_pagecache", LZ4, true},
		{"zstd_pagecache", Zstd, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			opts := DefaultOptions()
			opts.Compression = c.comp
			opts.NoSync = c.noSync
			s, err := Open(benchDir(b), opts)
			if err != nil {
				b.Fatal(err)
			}
			w, err := s.CreateRun(RunInfo{Name: "bench"}, []LayerInfo{{Path: "conv", Op: "Conv2d", Shape: []int{64, 32, 32}}})
			if err != nil {
				b.Fatal(err)
			}
			rows := benchRows(0)
			b.SetBytes(benchBatchRows * benchRowFloats * 4)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range rows {
					rows[j].Batch = int64(i)
				}
				if err := w.AppendTensors("conv", rows...); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(StateComplete); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if rs, _ := s.Run("bench"); rs.Batches != b.N {
				b.Fatalf("%d batches stored, %d appended", rs.Batches, b.N)
			}
		})
	}
}

// BenchmarkPlainFileWrite writes the tensor bytes of BenchmarkAppendTensors to one file, the
// baseline (page cache, one fsync at the end like the store's final flush).
func BenchmarkPlainFileWrite(b *testing.B) {
	rows := benchRows(0)
	f, err := os.Create(filepath.Join(benchDir(b), "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	b.SetBytes(benchBatchRows * benchRowFloats * 4)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range rows {
			if _, err := bw.Write(bytesOf(r.Data)); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
}

// bigIndex is a store whose run "big" has one layer with n tensor entries (one 4-float row
// per batch 0..n-1) and n stats entries; built once per process.
var bigIndex struct {
	once sync.Once
	dir  string
	err  error
}

const bigN = 1_000_000

func bigStore(b *testing.B) *Store {
	bigIndex.once.Do(func() {
		dir, err := os.MkdirTemp("", "actrec-store-bench-")
		if err != nil {
			bigIndex.err = err
			return
		}
		bigIndex.dir = dir
		opts := DefaultOptions()
		opts.NoSync = true
		opts.FlushInterval = -1
		s, err := Open(dir, opts)
		if err != nil {
			bigIndex.err = err
			return
		}
		w, err := s.CreateRun(RunInfo{Name: "big"}, []LayerInfo{{Path: "fc", Op: "Linear", Shape: []int{4}}})
		if err != nil {
			bigIndex.err = err
			return
		}
		row := TensorRow{Data: []float32{1, 2, 3, 4}}
		st := StatsRow{Count: 4, Hist: HistogramFromCounts(map[uint16]uint64{0x3f80: 4})}
		for i := int64(0); i < bigN; i++ {
			row.Batch, row.DatasetIndex, st.Batch = i, i, i
			if err := w.AppendTensors("fc", row); err != nil {
				bigIndex.err = err
				return
			}
			if err := w.AppendStats("fc", st); err != nil {
				bigIndex.err = err
				return
			}
			if i%100_000 == 99_999 {
				if err := w.Flush(); err != nil {
					bigIndex.err = err
					return
				}
			}
		}
		bigIndex.err = w.Close(StateComplete)
	})
	if bigIndex.err != nil {
		b.Fatal(bigIndex.err)
	}
	s, err := OpenReadOnly(bigIndex.dir)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func cleanupBench() {
	if bigIndex.dir != "" {
		os.RemoveAll(bigIndex.dir)
	}
}

// BenchmarkLookup: one batch among 10^6, through the index only (index) and reading the
// tensor row from its segment (tensor) or the stats row (stats).
func BenchmarkLookup(b *testing.B) {
	s := bigStore(b)
	b.Run("index", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			k := int64(i*7919) % bigN
			es, err := s.Entries("big", "fc", BatchRange{From: k, To: k + 1})
			if err != nil || len(es) != 2 {
				b.Fatalf("%v %v", es, err)
			}
		}
	})
	b.Run("tensor", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			k := int64(i*7919) % bigN
			n := 0
			err := s.Tensors("big", "fc", BatchRange{From: k, To: k + 1}, func(r TensorRow) error {
				if r.Batch != k || r.Data[3] != 4 {
					return fmt.Errorf("row %+v", r)
				}
				n++
				return nil
			})
			if err != nil || n != 1 {
				b.Fatal(err)
			}
		}
	})
	b.Run("stats", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			k := int64(i*7919) % bigN
			st, err := s.Stats("big", "fc", BatchRange{From: k, To: k + 1})
			if err != nil || len(st) != 1 || st[0].Batch != k {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkList: listing all 2*10^6 entries of the layer from the index, and the 10^6
// entries of one kind.
func BenchmarkList(b *testing.B) {
	s := bigStore(b)
	b.Run("entries", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			es, err := s.Entries("big", "fc", BatchRange{})
			if err != nil || len(es) != 2*bigN {
				b.Fatalf("%d entries, %v", len(es), err)
			}
		}
	})
	b.Run("stats_rows", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st, err := s.Stats("big", "fc", BatchRange{})
			if err != nil || len(st) != bigN {
				b.Fatalf("%d rows, %v", len(st), err)
			}
		}
	})
}
