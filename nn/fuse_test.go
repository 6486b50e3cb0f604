package nn

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestFusedMatchesUnfused runs Conv2d → ReLU → MaxPool2d chains fused (no
// hooks) and unfused (a hook on each module in turn, which disables the
// fusion around it): the outputs must be bit-identical, NaN included.
func TestFusedMatchesUnfused(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	for _, cc := range []Conv2dOptions{
		{InChannels: 3, OutChannels: 5, KernelSize: [2]int{3, 3}},
		{InChannels: 4, OutChannels: 6, KernelSize: [2]int{3, 2}, Stride: [2]int{2, 1}, Padding: [2]int{1, 1}, Groups: 2, NoBias: true},
		{InChannels: 4, OutChannels: 4, KernelSize: [2]int{3, 3}, Padding: [2]int{1, 1}, Groups: 4},
		{InChannels: 2, OutChannels: 3, KernelSize: [2]int{1, 1}},
	} {
		for _, pc := range []PoolOptions{
			{KernelSize: [2]int{2, 2}},
			{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}, CeilMode: true},
		} {
			for _, batch := range []int{1, 5} {
				conv, err := NewConv2d(cc)
				if err != nil {
					t.Fatal(err)
				}
				fillRand(r, conv.Weight, conv.Bias)
				pool, _ := NewMaxPool2d(pc)
				b := NewBuilder("chain")
				x := b.Input("x", -1, cc.InChannels, -1, -1)
				h := b.Add("conv", conv, x)
				h = b.Add("relu", NewReLU(), h)
				h = b.Add("pool", pool, h)
				y := b.Add("tanh", NewTanh(), h)
				m, err := b.Build(y)
				if err != nil {
					t.Fatal(err)
				}
				if m.leaves[0].fuse != 2 {
					t.Fatalf("chain not marked for fusing: fuse = %d", m.leaves[0].fuse)
				}
				in := NewTensor(batch, cc.InChannels, 9, 8)
				fillRand(r, in)
				in.Data[7] = float32(math.NaN())
				want, err := m.Forward(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				for _, path := range []string{"conv", "relu", "pool", "tanh"} {
					h, _ := m.RegisterForwardPreHook(path, func(context.Context, ModuleInfo, []*Tensor) {})
					h2, _ := m.RegisterForwardHook(path, func(context.Context, ModuleInfo, []*Tensor, *Tensor) {})
					got, err := m.Forward(context.Background(), in)
					if err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) || fmt.Sprint(got.Data) != fmt.Sprint(want.Data) {
						t.Errorf("%+v %+v batch %d, hooks on %s: output differs from the fused run", cc, pc, batch, path)
					}
					h.Remove()
					h2.Remove()
				}
			}
		}
	}
}

func TestFusedShapeErrorNamesPool(t *testing.T) {
	m, _ := RecipeCNN(1, 10)
	_, err := m.Forward(context.Background(), NewTensor(1, 1, 3, 3))
	if err == nil || err.Error() != "nn: maxpool1 (MaxPool2d): input shape [1 32 1 1], want [N C H W] with H >= 2, W >= 2" {
		t.Errorf("err = %v", err)
	}
}

// Guards that a forward hook on a container reading a fused chain's inner
// tensor from outside (its leaves "a.conv", "relu", "a.pool" are not
// contiguous) keeps that tensor materialised instead of getting nil.
func TestFusedChainContainerHookSeesInnerTensor(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	conv, _ := NewConv2d(Conv2dOptions{InChannels: 1, OutChannels: 2, KernelSize: [2]int{3, 3}})
	fillRand(r, conv.Weight, conv.Bias)
	pool, _ := NewMaxPool2d(PoolOptions{KernelSize: [2]int{2, 2}})
	b := NewBuilder("m")
	x := b.Input("x", -1, 1, 8, 8)
	h := b.Add("a.conv", conv, x)
	h = b.Add("relu", NewReLU(), h)
	y := b.Add("a.pool", pool, h)
	m, err := b.Build(y)
	if err != nil {
		t.Fatal(err)
	}
	if m.leaves[0].fuse != 2 {
		t.Fatalf("chain not marked for fusing: fuse = %d", m.leaves[0].fuse)
	}
	in := NewTensor(2, 1, 8, 8)
	fillRand(r, in)
	var got []*Tensor
	m.RegisterForwardHook("a", func(_ context.Context, _ ModuleInfo, ins []*Tensor, _ *Tensor) {
		got = append([]*Tensor(nil), ins...)
	})
	if k := m.fusable(m.hooks.Load(), 0); k != 1 {
		t.Errorf("fusable = %d with a hook on \"a\", want 1 (conv and relu still fused, relu's output materialised)", k)
	}
	if _, err := m.Forward(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("container hook got %d inputs, want 2 (x and relu's output)", len(got))
	}
	if got[1] == nil {
		t.Fatalf("container hook of \"a\" got a nil tensor for relu's output (the fused chain never computed it)")
	}
	c, err := conv.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := NewReLU().Forward(c)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got[1].Shape, got[1].Data) != fmt.Sprint(want.Shape, want.Data) {
		t.Errorf("container hook of \"a\" got %v, want relu's output", got[1].Shape)
	}
}
