package nn

import (
	"context"
	"math/rand/v2"
	"testing"
)

type zzConvHook struct{}

func (zzConvHook) Chunk(context.Context, ModuleInfo, *Tensor, int, int) {}
func (zzConvHook) Done(context.Context, ModuleInfo, int)                {}

// OutputDest's memory is never modified after delivery, whatever follows
// the pool (in-place capable layers, views, a second fused chain), with or
// without hooks on the convolution (late ReLU), depthwise or not, batch
// sizes 0, 1, 5, threads 1 and 2.
func TestOutputDestTails(t *testing.T) {
	defer SetThreads(SetThreads(0))
	r := rand.New(rand.NewPCG(9, 9))
	type tailFn func(b *Builder, h Value) Value
	bn := func() Layer {
		l, err := NewBatchNorm2d(BatchNorm2dOptions{NumFeatures: 4})
		if err != nil {
			t.Fatal(err)
		}
		fillRand(r, l.Weight, l.Bias, l.RunningMean)
		for i := range l.RunningVar.Data {
			l.RunningVar.Data[i] = 1
		}
		return l
	}
	tails := map[string]tailFn{
		"sigmoid":      func(b *Builder, h Value) Value { return b.Add("t1", NewSigmoid(), h) },
		"relu":         func(b *Builder, h Value) Value { return b.Add("t1", NewReLU(), h) },
		"tanh":         func(b *Builder, h Value) Value { return b.Add("t1", NewTanh(), h) },
		"flatten-relu": func(b *Builder, h Value) Value { return b.Add("t2", NewReLU(), b.Add("t1", NewFlatten(1, -1), h)) },
		"dropout-sig":  func(b *Builder, h Value) Value { return b.Add("t2", NewSigmoid(), b.Add("t1", NewDropout(0.5), h)) },
		"bn":           func(b *Builder, h Value) Value { return b.Add("t1", bn(), h) },
		"flatten":      func(b *Builder, h Value) Value { return b.Add("t1", NewFlatten(1, -1), h) },
		"dropout":      func(b *Builder, h Value) Value { return b.Add("t1", NewDropout(0.5), h) },
		"chain2-sig": func(b *Builder, h Value) Value {
			c2, _ := NewConv2d(Conv2dOptions{InChannels: 4, OutChannels: 4, KernelSize: [2]int{1, 1}})
			fillRand(r, c2.Weight, c2.Bias)
			p2, _ := NewMaxPool2d(PoolOptions{KernelSize: [2]int{2, 2}})
			h = b.Add("c2", c2, h)
			h = b.Add("r2", NewReLU(), h)
			h = b.Add("p2", p2, h)
			return b.Add("t1", NewSigmoid(), h)
		},
	}
	for name, tail := range tails {
		for _, dw := range []bool{false, true} {
			opts := Conv2dOptions{InChannels: 2, OutChannels: 4, KernelSize: [2]int{3, 3}, Padding: [2]int{1, 1}}
			if dw {
				opts.Groups = 2
			}
			conv, _ := NewConv2d(opts)
			fillRand(r, conv.Weight, conv.Bias)
			pool, _ := NewMaxPool2d(PoolOptions{KernelSize: [2]int{2, 2}})
			b := NewBuilder("m")
			x := b.Input("x", -1, 2, 8, 8)
			h := b.Add("conv", conv, x)
			h = b.Add("relu", NewReLU(), h)
			h = b.Add("pool", pool, h)
			h = tail(b, h)
			m, err := b.Build(h)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{0, 1, 5} {
				in := NewTensor(n, 2, 8, 8)
				fillRand(r, in)
				ref := referenceOutputs(t, m, in)
				want, err := m.Forward(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				for _, threads := range []int{1, 2} {
					for _, convHooked := range []bool{false, true} {
						for _, p2 := range []bool{false, true} {
							if p2 && name != "chain2-sig" {
								continue
							}
							SetThreads(threads)
							hk := &outHook{destHook{per: 4 * 4 * 4}}
							hh, err := m.RegisterChunkHook("pool", hk)
							if err != nil {
								t.Fatal(err)
							}
							var hk2 *outHook
							var h2 *HookHandle
							if p2 {
								hk2 = &outHook{destHook{per: 4 * 2 * 2}}
								h2, _ = m.RegisterChunkHook("p2", hk2)
							}
							var ch *HookHandle
							if convHooked {
								ch, _ = m.RegisterChunkHook("conv", zzConvHook{})
							}
							y, err := m.Forward(context.Background(), in)
							hh.Remove()
							if h2 != nil {
								h2.Remove()
							}
							if n > 0 && len(y.Data) > 0 && len(hk.dest) > 0 && (&y.Data[0] == &hk.dest[0]) {
								t.Errorf("model output aliases the OutputDest memory")
							}
							if ch != nil {
								ch.Remove()
							}
							if err != nil {
								t.Fatal(err)
							}
							tag := func() string {
								return name + map[bool]string{true: " dw", false: ""}[dw]
							}
							if !sameBits(y.Data, want.Data) {
								t.Errorf("%s n=%d threads=%d convHooked=%v: output differs", tag(), n, threads, convHooked)
							}
							if n > 0 && hk.asked != 1 {
								t.Errorf("%s n=%d: OutputDest asked %d times", tag(), n, hk.asked)
							}
							if n > 0 && !sameBits(hk.dest, ref["pool"]) {
								t.Errorf("%s n=%d threads=%d convHooked=%v: pool memory modified after delivery", tag(), n, threads, convHooked)
							}
							if p2 && n > 0 && !sameBits(hk2.dest, ref["p2"]) {
								t.Errorf("%s n=%d: p2 memory modified", tag(), n)
							}
							if p2 && n > 0 && hk2.asked != 1 {
								t.Errorf("p2 OutputDest asked %d", hk2.asked)
							}
						}
					}
				}
			}
		}
	}
}

// rawDestHook is a RawChunkDest hook on a convolution: it keeps the
// pre-bias output in its own memory (or declines, with decline set, and
// gets ChunkDest's biased output instead).
type rawDestHook struct {
	decline bool
	mem     []float32
	bias    []float32
	raw     bool
}

func (h *rawDestHook) Chunk(context.Context, ModuleInfo, *Tensor, int, int) {}
func (h *rawDestHook) Done(context.Context, ModuleInfo, int)                {}
func (h *rawDestHook) ChunkDest(context.Context, ModuleInfo, int) []float32 { return h.mem }
func (h *rawDestHook) RawChunkDest(_ context.Context, _ ModuleInfo, n int, bias []float32) []float32 {
	if h.decline {
		return nil
	}
	h.bias, h.raw = append([]float32(nil), bias...), true
	return h.mem
}

// RawChunkDest: the hook's memory holds the convolution's output before
// bias, which plus the bias is nn's output bit for bit; the model's output
// is the unhooked one; a hook that declines gets the biased output through
// ChunkDest. RecipeCNN's conv1 and conv2, batch 1 and 5, threads 1 and 2.
func TestRawChunkDest(t *testing.T) {
	defer SetThreads(SetThreads(0))
	r := rand.New(rand.NewPCG(11, 12))
	m, err := RecipeCNN(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 5} {
		in := NewTensor(n, 3, 28, 28)
		fillRand(r, in)
		ref := referenceOutputs(t, m, in)
		want, err := m.Forward(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, threads := range []int{1, 2} {
			SetThreads(threads)
			for _, path := range []string{"conv1", "conv2"} {
				for _, decline := range []bool{false, true} {
					h := &rawDestHook{decline: decline, mem: make([]float32, len(ref[path]))}
					hd, err := m.RegisterChunkHook(path, h)
					if err != nil {
						t.Fatal(err)
					}
					got, err := m.Forward(context.Background(), in)
					hd.Remove()
					if err != nil {
						t.Fatal(err)
					}
					if !sameBits(got.Data, want.Data) {
						t.Errorf("n=%d threads=%d %s decline=%v: model output differs", n, threads, path, decline)
					}
					if h.raw == decline {
						t.Fatalf("n=%d %s decline=%v: RawChunkDest used %v", n, path, decline, h.raw)
					}
					out := append([]float32(nil), h.mem...)
					if !decline {
						conv := m.Layer(path).(*Conv2d)
						if !sameBits(h.bias, conv.Bias.Data) {
							t.Fatalf("%s: bias %v, want the layer's", path, h.bias)
						}
						plane := len(out) / (n * len(h.bias))
						for i := range out {
							out[i] += h.bias[(i/plane)%len(h.bias)]
						}
						if sameBits(h.mem, ref[path]) {
							t.Errorf("%s: the raw memory already holds the biased output", path)
						}
					}
					if !sameBits(out, ref[path]) {
						t.Errorf("n=%d threads=%d %s decline=%v: output (plus bias) differs from the unhooked convolution's", n, threads, path, decline)
					}
				}
			}
		}
	}
}
