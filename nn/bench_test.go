package nn

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkRecipeCNN measures Forward of RecipeCNN(3, 10) on 3x28x28 input,
// like /work/shared/bench/torch_seedcnn.py (scripts/bench_torch.py runs
// the PyTorch side). Run with both thread counts:
//
//	go test ./nn -run '^$' -bench RecipeCNN -cpu 1,2
func BenchmarkRecipeCNN(b *testing.B) {
	m, err := RecipeCNN(3, 10)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(0, 0))
	for _, batch := range []int{1, 64} {
		x := NewTensor(batch, 3, 28, 28)
		for i := range x.Data {
			x.Data[i] = r.Float32()
		}
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := processCPUTime()
			for b.Loop() {
				if _, err := m.Forward(ctx, x); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time of the whole process per call (all threads, GC
			// included): steadier than ns/op on a shared, loaded machine.
			b.ReportMetric(float64((processCPUTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(batch), "ns/sample")
		})
	}
}

// BenchmarkRecipeCNNLayers times each layer of RecipeCNN at batch 1 and 64.
func BenchmarkRecipeCNNLayers(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchLayers(b, batch) })
	}
}

func benchLayers(b *testing.B, batch int) {
	m, err := RecipeCNN(3, 10)
	if err != nil {
		b.Fatal(err)
	}
	x := NewTensor(batch, 3, 28, 28)
	r := rand.New(rand.NewPCG(0, 0))
	for i := range x.Data {
		x.Data[i] = r.Float32()
	}
	ins := map[string]*Tensor{}
	h := m.RegisterGlobalHook(func(_ context.Context, mod ModuleInfo, in []*Tensor, _ *Tensor) {
		if mod.Leaf {
			ins[mod.Path] = in[0].Clone()
		}
	})
	if _, err := m.Forward(context.Background(), x); err != nil {
		b.Fatal(err)
	}
	h.Remove()
	for _, mod := range m.Modules() {
		if !mod.Leaf {
			continue
		}
		l := m.Layer(mod.Path)
		in := ins[mod.Path]
		b.Run(mod.Path, func(b *testing.B) {
			for b.Loop() {
				if _, err := l.Forward(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecipeCNNHooked is BenchmarkRecipeCNN at batch 64 with a global
// no-op hook (every module reported, no in-place work): the cost of the
// hook machinery itself.
func BenchmarkRecipeCNNHooked(b *testing.B) {
	m, err := RecipeCNN(3, 10)
	if err != nil {
		b.Fatal(err)
	}
	x := NewTensor(64, 3, 28, 28)
	r := rand.New(rand.NewPCG(0, 0))
	for i := range x.Data {
		x.Data[i] = r.Float32()
	}
	calls := 0
	h := m.RegisterGlobalHook(func(context.Context, ModuleInfo, []*Tensor, *Tensor) { calls++ })
	defer h.Remove()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Forward(ctx, x); err != nil {
			b.Fatal(err)
		}
	}
	if calls == 0 {
		b.Fatal("hook not called")
	}
}

// BenchmarkRecipeCNNChunkHooked is BenchmarkRecipeCNN at batch 64 with a
// no-op chunk hook on every module: fusion is kept, so this should cost
// about as much as no hook at all (compare BenchmarkRecipeCNNHooked).
func BenchmarkRecipeCNNChunkHooked(b *testing.B) {
	m, err := RecipeCNN(3, 10)
	if err != nil {
		b.Fatal(err)
	}
	x := NewTensor(64, 3, 28, 28)
	r := rand.New(rand.NewPCG(0, 0))
	for i := range x.Data {
		x.Data[i] = r.Float32()
	}
	for _, mi := range m.Modules() {
		h, err := m.RegisterChunkHook(mi.Path, &callCatcher{})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Remove()
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Forward(ctx, x); err != nil {
			b.Fatal(err)
		}
	}
}
