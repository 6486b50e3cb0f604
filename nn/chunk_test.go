package nn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// chunkCollector reassembles the chunks of every (call, module) and checks
// the ChunkHook contract as it goes.
type chunkCollector struct {
	mu     sync.Mutex
	t      *testing.T
	data   map[chunkKey][]float32
	shape  map[chunkKey][]int
	seen   map[chunkKey][]int // per row: times delivered
	chunks map[chunkKey]int
	done   map[chunkKey]int
}

type chunkKey struct {
	call uint64
	path string
}

func newChunkCollector(t *testing.T) *chunkCollector {
	return &chunkCollector{t: t, data: map[chunkKey][]float32{}, shape: map[chunkKey][]int{},
		seen: map[chunkKey][]int{}, chunks: map[chunkKey]int{}, done: map[chunkKey]int{}}
}

func (c *chunkCollector) Chunk(ctx context.Context, mod ModuleInfo, out *Tensor, lo, hi int) {
	k := chunkKey{CallID(ctx), mod.Path}
	rowLen := len(out.Data)
	if len(out.Shape) > 0 {
		if out.Shape[0] != hi-lo {
			c.t.Errorf("%s: chunk [%d,%d) has shape %v", mod.Path, lo, hi, out.Shape)
			return
		}
		if hi > lo {
			rowLen /= hi - lo
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done[k] > 0 {
		c.t.Errorf("%s: chunk after Done", mod.Path)
	}
	c.chunks[k]++
	if c.shape[k] == nil {
		c.shape[k] = slices.Clone(out.Shape)
	}
	for r := lo; r < hi; r++ {
		for len(c.seen[k]) <= r {
			c.seen[k] = append(c.seen[k], 0)
		}
		c.seen[k][r]++
		need := (r + 1) * rowLen
		for len(c.data[k]) < need {
			c.data[k] = append(c.data[k], 0)
		}
		copy(c.data[k][r*rowLen:need], out.Data[(r-lo)*rowLen:(r-lo+1)*rowLen])
	}
}

func (c *chunkCollector) Done(ctx context.Context, mod ModuleInfo, n int) {
	k := chunkKey{CallID(ctx), mod.Path}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done[k]++
	if len(c.seen[k]) != n {
		c.t.Errorf("%s: Done(%d) after rows [0,%d) were seen", mod.Path, n, len(c.seen[k]))
	}
	for r, s := range c.seen[k] {
		if s != 1 {
			c.t.Errorf("%s: row %d delivered %d times", mod.Path, r, s)
		}
	}
}

// reference returns every module's output of m for x, captured by forward
// hooks (which disable fusion) on a model with the same weights.
func referenceOutputs(t *testing.T, m *Model, x *Tensor) map[string][]float32 {
	t.Helper()
	ref := map[string][]float32{}
	var mu sync.Mutex
	h := m.RegisterGlobalHook(func(_ context.Context, mod ModuleInfo, _ []*Tensor, out *Tensor) {
		mu.Lock()
		ref[mod.Path] = slices.Clone(out.Data)
		mu.Unlock()
	})
	defer h.Remove()
	if _, err := m.Forward(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	return ref
}

// sameBits reports whether a and b are bit-identical, any NaN matching any
// NaN (the fused chain may propagate another NaN payload, as without hooks).
func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}

func chainModel(t *testing.T, r *rand.Rand, cc Conv2dOptions, pc PoolOptions) *Model {
	t.Helper()
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
	return m
}

// TestChunkHookMatchesUnfused registers chunk hooks on every module (alone
// and in subsets) and checks that the chunks reassemble, bit for bit, the
// outputs forward hooks see, that every row is delivered exactly once
// before Done, that the fused chain delivers per-sample chunks (it still
// runs fused), and that the model's output is unchanged.
func TestChunkHookMatchesUnfused(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	type model struct {
		name string
		m    *Model
		x    *Tensor
	}
	var models []model
	for i, cc := range []Conv2dOptions{
		{InChannels: 3, OutChannels: 5, KernelSize: [2]int{3, 3}},
		{InChannels: 4, OutChannels: 6, KernelSize: [2]int{3, 2}, Stride: [2]int{2, 1}, Padding: [2]int{1, 1}, Groups: 2, NoBias: true},
		{InChannels: 4, OutChannels: 4, KernelSize: [2]int{3, 3}, Padding: [2]int{1, 1}, Groups: 4},
		{InChannels: 2, OutChannels: 3, KernelSize: [2]int{1, 1}},
	} {
		for j, pc := range []PoolOptions{
			{KernelSize: [2]int{2, 2}},
			{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}, CeilMode: true},
		} {
			for _, batch := range []int{1, 5} {
				x := NewTensor(batch, cc.InChannels, 9, 8)
				fillRand(r, x)
				x.Data[7] = float32(math.NaN())
				x.Data[11] = float32(math.Copysign(0, -1))
				models = append(models, model{fmt.Sprintf("chain%d-%d-b%d", i, j, batch), chainModel(t, r, cc, pc), x})
			}
		}
	}
	rc, err := RecipeCNN(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	x := NewTensor(7, 3, 28, 28)
	fillRand(r, x)
	models = append(models, model{"recipe", rc, x})
	pn, err := ParityNet()
	if err != nil {
		t.Fatal(err)
	}
	px := NewTensor(3, 3, 16, 16)
	fillRand(r, px)
	models = append(models, model{"paritynet", pn, px})

	for _, mc := range models {
		t.Run(mc.name, func(t *testing.T) {
			m := mc.m
			ref := referenceOutputs(t, m, mc.x)
			var paths []string
			for _, mi := range m.Modules() {
				paths = append(paths, mi.Path)
			}
			// all modules; then each module alone (fusion around the others)
			sets := [][]string{paths}
			for _, p := range paths {
				sets = append(sets, []string{p})
			}
			for _, set := range sets {
				c := newChunkCollector(t)
				var hs []*HookHandle
				for _, p := range set {
					h, err := m.RegisterChunkHook(p, c)
					if err != nil {
						t.Fatal(err)
					}
					hs = append(hs, h)
				}
				got, err := m.Forward(context.Background(), mc.x)
				if err != nil {
					t.Fatal(err)
				}
				if !sameBits(got.Data, ref[""]) {
					t.Errorf("hooks on %v: model output differs", set)
				}
				for _, h := range hs {
					h.Remove()
				}
				if len(c.done) != len(set) {
					t.Errorf("hooks on %v: Done for %d modules", set, len(c.done))
				}
				for k, d := range c.data {
					if c.done[k] != 1 {
						t.Errorf("%s: Done called %d times", k.path, c.done[k])
					}
					if !sameBits(d, ref[k.path]) {
						t.Errorf("hooks on %v: %s: chunks differ from the unfused output", set, k.path)
					}
				}
				if mc.name == "recipe" {
					n := mc.x.Shape[0]
					for _, p := range []string{"conv1", "relu1", "maxpool1", "conv2", "relu2", "maxpool2"} {
						if k := (chunkKey{c.lastCall(), p}); c.done[k] == 1 && c.chunks[k] != n {
							t.Errorf("hooks on %v: %s delivered %d chunks, want %d (one per sample, fused)", set, p, c.chunks[k], n)
						}
					}
				}
			}
			if m.hooks.Load() != nil {
				t.Error("hooks left after Remove")
			}
		})
	}
}

func (c *chunkCollector) lastCall() uint64 {
	var id uint64
	for k := range c.done {
		id = max(id, k.call)
	}
	return id
}

// TestChunkHookConcurrentCalls runs Forward on several goroutines with
// different inputs: each call's chunks, keyed by CallID, must reassemble
// that call's outputs.
func TestChunkHookConcurrentCalls(t *testing.T) {
	m, err := RecipeCNN(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	const calls = 6
	xs := make([]*Tensor, calls)
	refs := make([]map[string][]float32, calls)
	for i := range xs {
		xs[i] = NewTensor(3+i, 1, 28, 28)
		fillRand(r, xs[i])
		refs[i] = referenceOutputs(t, m, xs[i])
	}
	c := newChunkCollector(t)
	var hs []*HookHandle
	for _, mi := range m.Modules() {
		h, err := m.RegisterChunkHook(mi.Path, c)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	ids := make([]uint64, calls)
	var wg sync.WaitGroup
	for i := range xs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// registering and removing hooks while other calls run
			h, _ := m.RegisterChunkHook("conv1", &callCatcher{})
			defer h.Remove()
			if _, err := m.Forward(context.Background(), xs[i]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, h := range hs {
		h.Remove()
	}
	// Match calls to inputs by their batch size (all differ).
	for k := range c.data {
		if k.path == "" {
			ids[c.shape[k][0]-3] = k.call
		}
	}
	for i := range xs {
		if ids[i] == 0 {
			t.Fatalf("no chunks for call %d", i)
		}
		for p, want := range refs[i] {
			if got := c.data[chunkKey{ids[i], p}]; !sameBits(got, want) {
				t.Errorf("call %d: %s: chunks differ from the reference", i, p)
			}
		}
	}
}

// callCatcher is a chunk hook that does nothing (registering hooks while
// other Forward calls run must be safe).
type callCatcher struct{}

func (*callCatcher) Chunk(context.Context, ModuleInfo, *Tensor, int, int) {}
func (*callCatcher) Done(context.Context, ModuleInfo, int)                {}

func TestRegisterChunkHookErrors(t *testing.T) {
	m, _ := RecipeCNN(1, 10)
	if _, err := m.RegisterChunkHook("nope", &callCatcher{}); err == nil {
		t.Error("unknown path accepted")
	}
	if _, err := m.RegisterChunkHook("conv1", nil); err == nil {
		t.Error("nil hook accepted")
	}
	h, err := m.RegisterChunkHook("conv1", &callCatcher{})
	if err != nil {
		t.Fatal(err)
	}
	if m.hooks.Load() == nil {
		t.Fatal("hook not registered")
	}
	h.Remove()
	h.Remove()
	if m.hooks.Load() != nil {
		t.Error("Remove left the hook set non-empty: Forward would not take the fast path")
	}
}

func TestLeafInputs(t *testing.T) {
	m, _ := RecipeCNN(1, 10)
	for path, want := range map[string]string{"conv1": "", "relu1": "conv1", "flatten": "maxpool2", "fc2": "relu3"} {
		got, ok := m.LeafInputs(path)
		if !ok || len(got) != 1 || got[0] != want {
			t.Errorf("LeafInputs(%q) = %q, %v; want [%q]", path, got, ok, want)
		}
	}
	if _, ok := m.LeafInputs(""); ok {
		t.Error("LeafInputs of the root: ok")
	}
	pn, _ := ParityNet()
	for _, mi := range pn.Modules() {
		if mi.Op == "Add" {
			got, _ := pn.LeafInputs(mi.Path)
			if len(got) != 2 || got[0] == got[1] {
				t.Errorf("LeafInputs(%q) = %q", mi.Path, got)
			}
		}
	}
}

// filterHook wants every other call of each module.
type filterHook struct {
	*chunkCollector
	mu    sync.Mutex
	asked map[string]int
}

func (f *filterHook) Wants(_ context.Context, mod ModuleInfo) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked[mod.Path]++
	return f.asked[mod.Path]%2 == 0
}

// A ChunkFilter that declines a call gets neither chunks nor Done for it;
// hooks that want the call still get everything, bit for bit.
func TestChunkFilter(t *testing.T) {
	m, _ := RecipeCNN(3, 10)
	r := rand.New(rand.NewPCG(9, 10))
	x := NewTensor(4, 3, 28, 28)
	fillRand(r, x)
	ref := referenceOutputs(t, m, x)
	f := &filterHook{chunkCollector: newChunkCollector(t), asked: map[string]int{}}
	all := newChunkCollector(t)
	for _, mi := range m.Modules() {
		h1, _ := m.RegisterChunkHook(mi.Path, f)
		h2, _ := m.RegisterChunkHook(mi.Path, all)
		defer h1.Remove()
		defer h2.Remove()
	}
	for i := 0; i < 4; i++ {
		got, err := m.Forward(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		if !sameBits(got.Data, ref[""]) {
			t.Fatal("output differs")
		}
	}
	mods := len(m.Modules())
	if len(f.asked) != mods || len(f.done) != 2*mods || len(all.done) != 4*mods {
		t.Errorf("asked %d modules, filter Done for %d (call, module)s, unfiltered %d; want %d, %d, %d", len(f.asked), len(f.done), len(all.done), mods, 2*mods, 4*mods)
	}
	for k, d := range f.data {
		if !sameBits(d, ref[k.path]) {
			t.Errorf("%s: filtered hook's chunks differ", k.path)
		}
	}
	for k, d := range all.data {
		if !sameBits(d, ref[k.path]) {
			t.Errorf("%s: chunks differ", k.path)
		}
	}
}

// destHook is a ChunkHook on one module that supplies the memory of the
// module's whole output (ChunkDest) and records what it saw.
type destHook struct {
	mu      sync.Mutex
	dest    []float32
	asked   int
	aliased int // chunks that were views of dest at their rows
	copied  int // chunks elsewhere (copied into dest by the hook)
	per     int
}

func (h *destHook) ChunkDest(_ context.Context, _ ModuleInfo, n int) []float32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked++
	h.dest = make([]float32, n*h.per)
	return h.dest
}

func (h *destHook) Chunk(_ context.Context, _ ModuleInfo, out *Tensor, lo, hi int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dest == nil {
		h.dest = make([]float32, 0)
	}
	if need := hi * h.per; len(h.dest) < need {
		h.dest = append(h.dest, make([]float32, need-len(h.dest))...)
	}
	dst := h.dest[lo*h.per : hi*h.per]
	if &dst[0] == &out.Data[0] {
		h.aliased++
		return
	}
	h.copied++
	copy(dst, out.Data)
}

func (h *destHook) Done(context.Context, ModuleInfo, int) {}

// A ChunkDest hook on the convolution of a fused chain gets the
// convolution's output computed in its own memory, never modified
// afterwards (it equals the unfused output after Forward, and the
// model's output is unchanged); with a hook on the ReLU too, the ReLU
// would modify it, so nn does not ask.
func TestChunkDest(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	m, err := RecipeCNN(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{7, 1} { // 1 < threads: the GEMM is split instead of the batch
		x := NewTensor(n, 3, 28, 28)
		fillRand(r, x)
		x.Data[9] = float32(math.NaN())
		ref := referenceOutputs(t, m, x)
		for _, threads := range []int{1, 2} {
			for _, alsoReLU := range []bool{false, true} {
				SetThreads(threads)
				h := &destHook{per: 32 * 26 * 26}
				hh, err := m.RegisterChunkHook("conv1", h)
				if err != nil {
					t.Fatal(err)
				}
				var hr *HookHandle
				if alsoReLU {
					hr, err = m.RegisterChunkHook("relu1", newChunkCollector(t))
					if err != nil {
						t.Fatal(err)
					}
				}
				y, err := m.Forward(context.Background(), x)
				hh.Remove()
				if hr != nil {
					hr.Remove()
				}
				if err != nil {
					t.Fatal(err)
				}
				if !sameBits(y.Data, ref["fc2"]) {
					t.Errorf("threads %d relu hook %v: output differs from the unhooked model's", threads, alsoReLU)
				}
				if !sameBits(h.dest, ref["conv1"]) {
					t.Errorf("threads %d relu hook %v: conv1 output in the hook's memory differs from the unfused output", threads, alsoReLU)
				}
				wantAsked, wantAliased := 1, n
				if alsoReLU {
					wantAsked, wantAliased = 0, 0
				}
				if h.asked != wantAsked || h.aliased != wantAliased || h.aliased+h.copied != n {
					t.Errorf("batch %d threads %d relu hook %v: ChunkDest called %d times, %d chunks in place, %d elsewhere; want %d, %d",
						n, threads, alsoReLU, h.asked, h.aliased, h.copied, wantAsked, wantAliased)
				}
			}
		}
	}
	SetThreads(0)
}

// outHook is destHook supplying the memory of a pooled output (OutputDest).
type outHook struct{ destHook }

func (h *outHook) OutputDest(ctx context.Context, mod ModuleInfo, n int) []float32 {
	return h.ChunkDest(ctx, mod, n)
}

// An OutputDest hook on the pool of a fused chain gets the pooled output
// computed in its own memory, which later layers read but nothing modifies
// (the Sigmoid after it, which would run in place, does not: the hook's
// memory equals the unfused pool output after Forward); a pool whose
// output is the model's output is not asked.
func TestOutputDest(t *testing.T) {
	defer SetThreads(SetThreads(0))
	r := rand.New(rand.NewPCG(7, 8))
	build := func(tail bool) *Model {
		conv, _ := NewConv2d(Conv2dOptions{InChannels: 1, OutChannels: 2, KernelSize: [2]int{3, 3}})
		fillRand(r, conv.Weight, conv.Bias)
		pool, _ := NewMaxPool2d(PoolOptions{KernelSize: [2]int{2, 2}})
		b := NewBuilder("m")
		x := b.Input("x", -1, 1, 10, 10)
		h := b.Add("conv", conv, x)
		h = b.Add("relu", NewReLU(), h)
		h = b.Add("pool", pool, h)
		if tail {
			fc, _ := NewLinear(LinearOptions{InFeatures: 2 * 4 * 4, OutFeatures: 3})
			fillRand(r, fc.Weight, fc.Bias)
			h = b.Add("sig", NewSigmoid(), h) // would run in place on the pool output
			h = b.Add("flat", NewFlatten(1, -1), h)
			h = b.Add("fc", fc, h)
		}
		m, err := b.Build(h)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tail := range []bool{true, false} {
		m := build(tail)
		for _, n := range []int{5, 1} {
			x := NewTensor(n, 1, 10, 10)
			fillRand(r, x)
			ref := referenceOutputs(t, m, x)
			for _, threads := range []int{1, 2} {
				SetThreads(threads)
				h := &outHook{destHook{per: 2 * 4 * 4}}
				hh, err := m.RegisterChunkHook("pool", h)
				if err != nil {
					t.Fatal(err)
				}
				y, err := m.Forward(context.Background(), x)
				hh.Remove()
				if err != nil {
					t.Fatal(err)
				}
				last := "pool"
				if tail {
					last = "fc"
				}
				if !sameBits(y.Data, ref[last]) {
					t.Errorf("tail %v batch %d threads %d: output differs from the unhooked model's", tail, n, threads)
				}
				if !sameBits(h.dest, ref["pool"]) {
					t.Errorf("tail %v batch %d threads %d: pool output in the hook's memory differs from the unfused output", tail, n, threads)
				}
				// with the hook's memory every chunk is a view of it
				if tail && (h.asked != 1 || h.aliased == 0 || h.copied != 0) || !tail && (h.asked != 0 || h.aliased != 0) {
					t.Errorf("tail %v batch %d threads %d: OutputDest called %d times, %d chunks in place, %d elsewhere",
						tail, n, threads, h.asked, h.aliased, h.copied)
				}
			}
		}
	}
}

type panicChunks struct{ at int }

func (p panicChunks) Chunk(_ context.Context, _ ModuleInfo, _ *Tensor, lo, hi int) {
	if lo <= p.at && p.at < hi {
		panic("chunk hook failed")
	}
}
func (panicChunks) Done(context.Context, ModuleInfo, int) {}

// A chunk hook that panics in one of the goroutines a fused chain is split
// over does not crash the process: the call-end hooks see ErrCallAborted
// and the panic reaches Forward's caller, whatever the threads setting and
// whichever sample's goroutine panicked.
func TestChunkHookPanicReachesCaller(t *testing.T) {
	defer SetThreads(SetThreads(0))
	m, err := RecipeCNN(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	x := NewTensor(8, 3, 28, 28)
	for _, threads := range []int{1, 2, 4} {
		for _, at := range []int{0, 7} {
			SetThreads(threads)
			h, err := m.RegisterChunkHook("conv1", panicChunks{at: at})
			if err != nil {
				t.Fatal(err)
			}
			var ended error
			he := m.RegisterCallEndHook(func(_ context.Context, err error) { ended = err })
			got := func() (p any) {
				defer func() { p = recover() }()
				m.Forward(context.Background(), x)
				return nil
			}()
			h.Remove()
			he.Remove()
			if got != "chunk hook failed" || !errors.Is(ended, ErrCallAborted) {
				t.Errorf("threads %d, panic at sample %d: recovered %v, call-end hook saw %v", threads, at, got, ended)
			}
		}
	}
	if _, err := m.Forward(context.Background(), x); err != nil {
		t.Fatalf("the model no longer works: %v", err)
	}
}
