package nn

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// ForwardHook is called after a module has run, with the module's inputs
// and output. For a container, in holds the values its layers read from
// outside the container (in order of first use) and out is the output of
// its last layer; for the root "" they are the model's inputs and output.
//
// The tensors are valid only during the call: a hook that keeps data must
// copy it. Hooks must not modify the tensors.
type ForwardHook func(ctx context.Context, mod ModuleInfo, in []*Tensor, out *Tensor)

// ForwardPreHook is called before a module runs, with its inputs (see
// ForwardHook for containers and the root).
type ForwardPreHook func(ctx context.Context, mod ModuleInfo, in []*Tensor)

// ChunkHook sees a module's output in pieces of whole samples, without
// making the runtime materialise tensors it would otherwise not: a
// Conv2d → ReLU → MaxPool2d chain keeps running fused and sample by sample,
// and delivers each stage's output per sample from the goroutine that
// computed it, while the data is hot in the cache.
//
// Chunk is called with out holding rows [lo, hi) of the module's output
// along dimension 0 (shape [hi-lo, ...]); for one module and Forward call
// the chunks cover [0, N) exactly once, in no particular order, possibly
// concurrently for disjoint ranges (from Forward's worker goroutines).
// Modules that do not run fused (and containers and the root) deliver one
// chunk [0, N) on the Forward goroutine, after their forward hooks. Done is
// called once per Forward call on the Forward goroutine, with n = N, after
// every chunk of that module was delivered and returned, and before any
// later module runs. A 0-dimensional output is delivered as one chunk
// [0, 1) of the whole tensor.
//
// The context is Forward's, carrying CallID, so concurrent Forward calls
// can keep their chunks apart. out is valid only during the Chunk call and
// must not be modified; Chunk must not panic and must be safe for
// concurrent use.
type ChunkHook interface {
	Chunk(ctx context.Context, mod ModuleInfo, out *Tensor, lo, hi int)
	Done(ctx context.Context, mod ModuleInfo, n int)
}

// ChunkFilter may be implemented by a ChunkHook that records only some
// Forward calls. Wants is called once per Forward call and module, on the
// Forward goroutine, before any chunk of that module; if it returns false,
// neither Chunk nor Done is called for that module in that call, and a
// fused chain none of whose hooks want the call runs as if unhooked.
type ChunkFilter interface {
	Wants(ctx context.Context, mod ModuleInfo) bool
}

// ChunkDest may be implemented by a ChunkHook that keeps a module's whole
// output (e.g. to hand it to another goroutine) to receive it without
// copying. When the module is the convolution of a fused Conv2d→[ReLU]→
// MaxPool2d chain and its only hook in the call, and nothing else forces
// the convolution's output to be modified after it is delivered (no hook
// on the ReLU), ChunkDest is called once per call, on the Forward
// goroutine, after Wants and before any chunk, with the number of rows n:
// if it returns a slice of exactly n × (elements per row) values, each
// sample of the output is computed into its place in that slice, the
// chunks delivered are views of it, and nn neither modifies nor keeps it
// after delivering the chunk. Otherwise (nil or another length) chunks come
// from nn's scratch memory, valid only during Chunk, as for every other
// module.
type ChunkDest interface {
	ChunkDest(ctx context.Context, mod ModuleInfo, n int) []float32
}

// RawChunkDest may be implemented by a ChunkDest hook that can add a
// fused convolution's bias itself (off the Forward goroutine). Where
// ChunkDest would be called for a convolution with a bias, RawChunkDest is
// called first, with that bias (one value per output channel, nn's own
// storage: read it during the call only). If it returns a slice of exactly
// n × (elements per row) values, each sample is computed there without
// the bias, the chunks delivered hold it so, and nn adds the bias only
// where it goes on (the pooled planes): the hook must add bias[c] to every
// element of channel c (float32 addition, which gives nn's values bit for
// bit) before it uses the chunks as the module's output. This saves nn a
// pass over the whole convolution output. Otherwise (nil or another
// length) nn calls ChunkDest.
type RawChunkDest interface {
	ChunkDest
	RawChunkDest(ctx context.Context, mod ModuleInfo, n int, bias []float32) []float32
}

// OutputDest may be implemented by a ChunkHook that keeps a module's whole
// output to receive it without copying, where nn keeps that output as an
// activation: the pooled output of a fused Conv2d→[ReLU]→MaxPool2d chain.
// When that MaxPool2d's hook is its only one in the call and its output is
// not the model's output, OutputDest is called once per call, on the
// Forward goroutine, after Wants and before any chunk, with the number of
// rows n. If it returns a slice of exactly n × (elements per row) values,
// nn computes the output in it (overwriting every value) and uses it as
// the module's output tensor: the chunks delivered are views of it, later
// layers read it, and nothing modifies it once its chunk is delivered (no
// layer runs in place for the rest of that call). nn drops it like any
// activation; the hook may read it at any time, but must not modify or
// reuse it before the Forward call has returned. Otherwise (nil or another
// length) the output is nn's own, as for every other module.
type OutputDest interface {
	OutputDest(ctx context.Context, mod ModuleInfo, n int) []float32
}

// CallEndHook is called once at the end of every Forward call that runs
// with hooks registered, on success and on error: after the root's forward
// and chunk hooks on success (err nil), or as Forward returns an error
// (a layer's error, ctx.Err() on cancellation, err is what Forward
// returns). A hook of the call that panics (also one called from the
// goroutines Forward splits a layer over) ends the call: the call-end hooks
// see ErrCallAborted, then the panic propagates out of Forward on the
// caller's goroutine. It runs on the Forward goroutine with the
// call's context (carrying CallID), after every chunk of the call was
// delivered; hooks that keep per-call state release it here.
type CallEndHook func(ctx context.Context, err error)

// ErrCallAborted is the error a CallEndHook sees when the call did not
// return: a hook panicked into Forward (or called runtime.Goexit).
var ErrCallAborted = errors.New("nn: Forward call aborted by a hook's panic")

// HookHandle detaches a registered hook.
type HookHandle struct {
	m    *Model
	id   uint64
	done atomic.Bool
}

type hookEntry[F any] struct {
	id uint64
	fn F
}

// hookSet is an immutable snapshot of the registered hooks; the Model swaps
// whole snapshots atomically so that Forward reads hooks without locking.
type hookSet struct {
	pre    [][]hookEntry[ForwardPreHook] // per module index
	fwd    [][]hookEntry[ForwardHook]    // per module index
	chunk  [][]hookEntry[ChunkHook]      // per module index
	global []hookEntry[ForwardHook]
	end    []hookEntry[CallEndHook]
}

func (hs *hookSet) empty() bool {
	if len(hs.global)+len(hs.end) > 0 {
		return false
	}
	for i := range hs.pre {
		if len(hs.pre[i]) > 0 || len(hs.fwd[i]) > 0 || len(hs.chunk[i]) > 0 {
			return false
		}
	}
	return true
}

// update applies fn to a copy of the current hook set and publishes it.
func (m *Model) update(fn func(hs *hookSet)) {
	m.hookMu.Lock()
	defer m.hookMu.Unlock()
	next := &hookSet{
		pre:   make([][]hookEntry[ForwardPreHook], len(m.mods)),
		fwd:   make([][]hookEntry[ForwardHook], len(m.mods)),
		chunk: make([][]hookEntry[ChunkHook], len(m.mods)),
	}
	if cur := m.hooks.Load(); cur != nil {
		copy(next.pre, cur.pre)
		copy(next.fwd, cur.fwd)
		copy(next.chunk, cur.chunk)
		next.global = cur.global
		next.end = cur.end
	}
	fn(next)
	if next.empty() {
		m.hooks.Store(nil)
	} else {
		m.hooks.Store(next)
	}
}

func (m *Model) newHandle() *HookHandle {
	m.hookID++
	return &HookHandle{m: m, id: m.hookID}
}

func appendCopy[T any](s []T, v T) []T {
	return append(append(make([]T, 0, len(s)+1), s...), v)
}

func without[T any](s []hookEntry[T], id uint64) []hookEntry[T] {
	var out []hookEntry[T]
	for _, e := range s {
		if e.id != id {
			out = append(out, e)
		}
	}
	return out
}

// register adds h to the hooks of the module at path, in the per-module
// slice that list selects from a copy of the hook set.
func register[T any](m *Model, path string, isNil bool, h T, list func(*hookSet) [][]hookEntry[T]) (*HookHandle, error) {
	i, err := m.lookup(path)
	if err != nil {
		return nil, err
	}
	if isNil {
		return nil, fmt.Errorf("nn: %s: nil hook", m.name)
	}
	var hd *HookHandle
	m.update(func(hs *hookSet) {
		hd = m.newHandle()
		l := list(hs)
		l[i] = appendCopy(l[i], hookEntry[T]{hd.id, h})
	})
	return hd, nil
}

func (m *Model) lookup(path string) (int, error) {
	i, ok := m.index[path]
	if !ok {
		return 0, fmt.Errorf("nn: %s: no module %q; valid paths: %s", m.name, path, m.validPaths())
	}
	return i, nil
}

// RegisterForwardHook registers h to run after the module at path ("" for
// the whole model) on every Forward call. It returns an error listing the
// valid paths if there is no such module.
func (m *Model) RegisterForwardHook(path string, h ForwardHook) (*HookHandle, error) {
	return register(m, path, h == nil, h, func(hs *hookSet) [][]hookEntry[ForwardHook] { return hs.fwd })
}

// RegisterForwardPreHook registers h to run before the module at path (""
// for the whole model) on every Forward call.
func (m *Model) RegisterForwardPreHook(path string, h ForwardPreHook) (*HookHandle, error) {
	return register(m, path, h == nil, h, func(hs *hookSet) [][]hookEntry[ForwardPreHook] { return hs.pre })
}

// RegisterChunkHook registers h to receive the output of the module at
// path ("" for the whole model) in chunks on every Forward call (see
// ChunkHook). Unlike a forward hook, a chunk hook on a module of a fused
// Conv2d → ReLU → MaxPool2d chain does not disable the fusion.
func (m *Model) RegisterChunkHook(path string, h ChunkHook) (*HookHandle, error) {
	return register(m, path, h == nil, h, func(hs *hookSet) [][]hookEntry[ChunkHook] { return hs.chunk })
}

// RegisterGlobalHook registers h to run after every module: each leaf, each
// container after its last leaf, and the root "" last. For one module,
// module-specific hooks run before global ones; hooks of the same kind run
// in registration order. A nil h is ignored (its handle does nothing).
func (m *Model) RegisterGlobalHook(h ForwardHook) *HookHandle {
	var hd *HookHandle
	m.update(func(hs *hookSet) {
		hd = m.newHandle()
		if h != nil {
			hs.global = appendCopy(hs.global, hookEntry[ForwardHook]{hd.id, h})
		}
	})
	return hd
}

// RegisterCallEndHook registers h to run once at the end of every Forward
// call that runs hooks, whether it succeeds or fails (see CallEndHook). A
// nil h is ignored (its handle does nothing).
func (m *Model) RegisterCallEndHook(h CallEndHook) *HookHandle {
	var hd *HookHandle
	m.update(func(hs *hookSet) {
		hd = m.newHandle()
		if h != nil {
			hs.end = appendCopy(hs.end, hookEntry[CallEndHook]{hd.id, h})
		}
	})
	return hd
}

// Remove detaches the hook. Forward calls already running may still call it
// once more. Remove is idempotent and safe for concurrent use.
func (h *HookHandle) Remove() {
	if h == nil || h.m == nil || h.done.Swap(true) {
		return
	}
	h.m.update(func(hs *hookSet) {
		for i := range hs.pre {
			hs.pre[i] = without(hs.pre[i], h.id)
			hs.fwd[i] = without(hs.fwd[i], h.id)
			hs.chunk[i] = without(hs.chunk[i], h.id)
		}
		hs.global = without(hs.global, h.id)
		hs.end = without(hs.end, h.id)
	})
}

type callIDKey struct{}

// callIDs numbers Forward calls process-wide, so that ids are unique across
// models too.
var callIDs atomic.Uint64

// CallID returns the id of the Model.Forward call whose hooks receive ctx:
// unique among all Forward calls of the process, never 0. It returns 0 for a
// context that does not come from Forward.
func CallID(ctx context.Context) uint64 {
	if ctx == nil {
		return 0
	}
	id, _ := ctx.Value(callIDKey{}).(uint64)
	return id
}

func (m *Model) gather(vals []*Tensor, ids []int) []*Tensor {
	out := make([]*Tensor, len(ids))
	for i, v := range ids {
		out[i] = vals[v]
	}
	return out
}

func (m *Model) runPre(ctx context.Context, hs *hookSet, mod int, in []*Tensor) {
	for _, e := range hs.pre[mod] {
		e.fn(ctx, m.mods[mod], in)
	}
}

func (m *Model) runFwd(ctx context.Context, hs *hookSet, mod int, in []*Tensor, out *Tensor) {
	info := m.mods[mod]
	for _, e := range hs.fwd[mod] {
		e.fn(ctx, info, in, out)
	}
	for _, e := range hs.global {
		e.fn(ctx, info, in, out)
	}
}

// rows returns the number of rows a chunk hook sees in t.
func rows(t *Tensor) int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Shape[0]
}

// wanting returns the chunk hooks of mod that want this call (see
// ChunkFilter).
func (m *Model) wanting(ctx context.Context, hs *hookSet, mod int) []hookEntry[ChunkHook] {
	hooks := hs.chunk[mod]
	for i, e := range hooks {
		if f, ok := e.fn.(ChunkFilter); ok && !f.Wants(ctx, m.mods[mod]) {
			// copy the ones that want it
			out := append([]hookEntry[ChunkHook](nil), hooks[:i]...)
			for _, e := range hooks[i+1:] {
				if f, ok := e.fn.(ChunkFilter); !ok || f.Wants(ctx, m.mods[mod]) {
					out = append(out, e)
				}
			}
			return out
		}
	}
	return hooks
}

// runChunks delivers out to the chunk hooks of mod as one chunk, then
// calls their Done.
func (m *Model) runChunks(ctx context.Context, hs *hookSet, mod int, out *Tensor) {
	info := m.mods[mod]
	n := rows(out)
	hooks := m.wanting(ctx, hs, mod)
	for _, e := range hooks {
		e.fn.Chunk(ctx, info, out, 0, n)
	}
	for _, e := range hooks {
		e.fn.Done(ctx, info, n)
	}
}

// fusedChunks returns the chunk callbacks of the k+1 leaves of a fused
// chain starting at leaf li, or nil if no hook wants the call; hooks[st]
// are the wanting hooks of stage st.
func (m *Model) fusedChunks(ctx context.Context, hs *hookSet, li, k int, hooks *[3][]hookEntry[ChunkHook]) *stageChunks {
	var ch *stageChunks
	for st := 0; st <= k; st++ {
		mod := m.leaves[li+st].mod
		hooks[st] = m.wanting(ctx, hs, mod)
		hooks := hooks[st]
		if len(hooks) == 0 {
			continue
		}
		if ch == nil {
			ch = &stageChunks{}
		}
		info := m.mods[mod]
		ch.fns[st] = func(out *Tensor, lo, hi int) {
			for _, e := range hooks {
				e.fn.Chunk(ctx, info, out, lo, hi)
			}
		}
		if d, ok := hooks[0].fn.(ChunkDest); ok && st == 0 && len(hooks) == 1 {
			ch.dest = func(n int) []float32 { return d.ChunkDest(ctx, info, n) }
			conv, _ := m.leaves[li].layer.(*Conv2d)
			if rd, ok := d.(RawChunkDest); ok && conv != nil && conv.Bias != nil {
				ch.rawDest = func(n int) []float32 { return rd.RawChunkDest(ctx, info, n, conv.Bias.Data) }
			}
		}
		if d, ok := hooks[0].fn.(OutputDest); ok && st == 2 && len(hooks) == 1 && m.leaves[li+st].out != m.out {
			ch.outDest = func(n int) []float32 { return d.OutputDest(ctx, info, n) }
		}
	}
	return ch
}

// forwardHooked is Forward with at least one hook registered: runHooked,
// then the call-end hooks, whatever the outcome.
func (m *Model) forwardHooked(ctx context.Context, hs *hookSet, vals []*Tensor) (*Tensor, error) {
	ctx = context.WithValue(ctx, callIDKey{}, callIDs.Add(1))
	if len(hs.end) == 0 {
		return m.runHooked(ctx, hs, vals)
	}
	ended := false
	defer func() {
		if !ended { // a hook is panicking through Forward: tell, do not recover
			m.runEnd(ctx, hs, ErrCallAborted)
		}
	}()
	out, err := m.runHooked(ctx, hs, vals)
	ended = true
	m.runEnd(ctx, hs, err)
	return out, err
}

// runEnd calls the call-end hooks.
func (m *Model) runEnd(ctx context.Context, hs *hookSet, err error) {
	for _, e := range hs.end {
		e.fn(ctx, err)
	}
}

// runHooked runs the layers and the module hooks of a hooked Forward call
// (ctx carries its CallID).
func (m *Model) runHooked(ctx context.Context, hs *hookSet, vals []*Tensor) (*Tensor, error) {
	inputs := make([]*Tensor, len(m.inputs))
	for i, def := range m.inputs {
		inputs[i] = vals[def.value]
	}
	m.runPre(ctx, hs, 0, inputs)
	lent := false // an output lives in a hook's memory (OutputDest): no layer runs in place
	for li := 0; li < len(m.leaves); li++ {
		l := &m.leaves[li]
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, c := range m.starts[li] {
			if len(hs.pre[c]) > 0 {
				m.runPre(ctx, hs, c, m.gather(vals, m.conts[c].ext))
			}
		}
		args := m.gather(vals, l.in)
		m.runPre(ctx, hs, l.mod, args)
		if k := m.fusable(hs, li); k > 0 {
			// no hook sees the chain's inner tensors (see fusable)
			var hooks [3][]hookEntry[ChunkHook]
			ch := m.fusedChunks(ctx, hs, li, k, &hooks)
			out, err := m.runFused(vals, li, k, ch)
			if err != nil {
				return nil, err
			}
			lent = lent || (ch != nil && ch.outDestUsed)
			vals[m.leaves[li+k].out] = out
			for st := 0; st <= k; st++ {
				mod := m.leaves[li+st].mod
				for _, e := range hooks[st] {
					e.fn.Done(ctx, m.mods[mod], rows(out))
				}
			}
			m.endContainers(ctx, hs, vals, li+k)
			m.releaseHooked(vals, li, l)
			li += k
			continue
		}
		var out *Tensor
		var err error
		if l.inPlace != nil && !lent && len(hs.fwd[l.mod])+len(hs.global) == 0 && !m.neededByContainer(l.in[0], li, true) {
			out, err = runInPlace(l.inPlace, args[0])
		} else {
			out, err = runLayer(l.layer, args)
		}
		if err != nil {
			return nil, m.wrap(l.mod, err)
		}
		vals[l.out] = out
		if len(hs.fwd[l.mod])+len(hs.global) > 0 {
			m.runFwd(ctx, hs, l.mod, args, out)
		}
		if len(hs.chunk[l.mod]) > 0 {
			m.runChunks(ctx, hs, l.mod, out)
		}
		m.endContainers(ctx, hs, vals, li)
		m.releaseHooked(vals, li, l)
	}
	out := vals[m.out]
	m.runFwd(ctx, hs, 0, inputs, out)
	if len(hs.chunk[0]) > 0 {
		m.runChunks(ctx, hs, 0, out)
	}
	return out, nil
}

// endContainers runs the hooks of the containers whose last leaf is li.
func (m *Model) endContainers(ctx context.Context, hs *hookSet, vals []*Tensor, li int) {
	for _, c := range m.ends[li] {
		if len(hs.fwd[c])+len(hs.global) > 0 {
			m.runFwd(ctx, hs, c, m.gather(vals, m.conts[c].ext), vals[m.conts[c].out])
		}
		if len(hs.chunk[c]) > 0 {
			m.runChunks(ctx, hs, c, vals[m.conts[c].out])
		}
	}
}

// releaseHooked is release that keeps values still needed by an enclosing
// container's hooks (its external inputs) until the container has ended.
func (m *Model) releaseHooked(vals []*Tensor, li int, l *leaf) {
	for _, v := range l.in {
		if m.lastUse[v] == li && !m.neededByContainer(v, li, false) {
			vals[v] = nil
		}
	}
}

// neededByContainer reports whether v is an external input of a container
// open at leaf li (whose hooks will still report it); with closing, also of
// a container whose last leaf is li.
func (m *Model) neededByContainer(v, li int, closing bool) bool {
	for ci := range m.conts {
		c := &m.conts[ci]
		if c.ext == nil || c.first > li || c.last < li || (c.last == li && !closing) {
			continue
		}
		for _, e := range c.ext {
			if e == v {
				return true
			}
		}
	}
	return false
}
