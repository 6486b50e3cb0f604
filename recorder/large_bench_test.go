package recorder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/nn/onnx"
	"github.com/actrec/actrec/store"
)

// BenchmarkOverheadLarge is BenchmarkOverheadStream on the torchvision
// models that scripts/onnx_export.py --large exports (random weights,
// 224×224, batch 8): resnet18 and mobilenet_v2 loaded from
// $ACTREC_ONNX_LARGE, the full statistics of every module (every leaf and
// container ONNX import gives, every batch). Unlike the recipe's CNN,
// whose first convolution costs 27 multiply-adds per output element,
// these do hundreds, so the per-element cost of the statistics weighs
// less. Skipped when the variable is not set.
func BenchmarkOverheadLarge(b *testing.B) {
	dir := os.Getenv("ACTREC_ONNX_LARGE")
	if dir == "" {
		b.Skip("ACTREC_ONNX_LARGE is not set: generate the models with `/usr/bin/python3 scripts/onnx_export.py --large DIR`")
	}
	configs := []overheadConfig{
		{"stats-all-layers", func() Config { return DefaultConfig() }},
		{"moments-only-all-layers", func() Config {
			c := DefaultConfig()
			c.MomentsOnly = true
			return c
		}},
		{"stats-in-workers-all-layers", func() Config {
			c := DefaultConfig()
			c.StatsInWorkers = true
			return c
		}},
	}
	for _, name := range []string{"resnet18", "mobilenet_v2"} {
		path := filepath.Join(dir, name+".onnx")
		for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
			for _, c := range configs {
				b.Run(fmt.Sprintf("%s/threads=%d/%s", name, threads, c.name), func(b *testing.B) {
					defer nn.SetThreads(nn.SetThreads(threads))
					plain, err := onnx.Load(path)
					if err != nil {
						b.Fatal(err)
					}
					m, err := onnx.Load(path)
					if err != nil {
						b.Fatal(err)
					}
					st, err := store.Open(b.TempDir(), store.DefaultOptions())
					if err != nil {
						b.Fatal(err)
					}
					defer st.Close()
					r, err := New(st, store.RunInfo{Name: "bench-" + name}, c.cfg())
					if err != nil {
						b.Fatal(err)
					}
					if err := r.Attach(m, []int{1, 3, 224, 224}); err != nil {
						b.Fatal(err)
					}
					x := nn.NewTensor(8, 3, 224, 224)
					for i := range x.Data {
						x.Data[i] = float32(i%255)/255 - 0.5
					}
					ctx := context.Background()
					for _, mod := range []*nn.Model{plain, m} {
						if _, err := mod.Forward(ctx, x); err != nil {
							b.Fatal(err)
						}
					}
					streamOverhead(b, plain, m, r, x, 4)
				})
			}
		}
	}
}
