package nn

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// ModuleInfo describes one module of a model's module tree.
type ModuleInfo struct {
	Path  string // "" = root (the whole model); containers and leaves use dotted paths
	Op    string // PyTorch class name: "Conv2d", "Sequential", "BasicBlock", the model's op for the root
	Order int    // execution order of leaves 0..n-1; containers: order of their first leaf; root: -1
	Leaf  bool   // true for layers, false for containers and the root
}

// LayerShape is a module and its output shape for a given input shape.
type LayerShape struct {
	ModuleInfo
	Shape []int
}

// Model is a built network: a graph of leaf layers with a module tree, hooks
// and a state dict.
//
// Forward, Modules, Module, Shapes and StateDict are safe for concurrent use
// by multiple goroutines, as are registering and removing hooks (also while
// Forward calls are running). LoadStateDict must not run concurrently with
// Forward.
type Model struct {
	name    string
	mods    []ModuleInfo // Modules() order; mods[0] is the root
	index   map[string]int
	inputs  []inputDef
	leaves  []leaf // execution order
	conts   []container
	starts  [][]int // per leaf: containers whose first leaf it is, outermost first
	ends    [][]int // per leaf: containers whose last leaf it is, innermost first
	nvals   int     // value ids are 1..nvals-1
	out     int
	lastUse []int // per value: index of the last leaf reading it (-1 none)
	params  []namedParam

	hooks  atomic.Pointer[hookSet] // nil when no hook is registered
	hookMu sync.Mutex              // serialises hook registration
	hookID uint64                  // guarded by hookMu
}

type leaf struct {
	mod   int // index in mods
	layer Layer
	in    []int
	out   int
	// inPlace is set if the layer can overwrite its input and is the last
	// reader of a value that is not a model input.
	inPlace inPlaceLayer
	// fuse > 0 marks a Conv2d whose output only the next leaf, a ReLU,
	// reads (fuse 1), and whose ReLU output only the leaf after, a
	// MaxPool2d, reads (fuse 2): the chain can run sample by sample in one
	// pass when no hook needs the intermediate tensors.
	fuse int
}

type container struct {
	first, last int   // leaf indexes
	ext         []int // values read by the container's leaves but produced outside it
	out         int   // output value of its last leaf
}

type namedParam struct {
	key string
	t   *Tensor
}

// Name returns the model's name.
func (m *Model) Name() string { return m.name }

// Modules returns every module, like PyTorch's named_modules(): the root ""
// first, then containers and leaves in definition order, each container
// before its children.
func (m *Model) Modules() []ModuleInfo { return append([]ModuleInfo(nil), m.mods...) }

// Module returns the module at path.
func (m *Model) Module(path string) (ModuleInfo, bool) {
	i, ok := m.index[path]
	if !ok {
		return ModuleInfo{}, false
	}
	return m.mods[i], true
}

// Layer returns the leaf layer at path, or nil if path is not a leaf.
func (m *Model) Layer(path string) Layer {
	i, ok := m.index[path]
	if !ok || !m.mods[i].Leaf {
		return nil
	}
	return m.leaves[m.mods[i].Order].layer
}

// InputShapes returns the declared shapes of the model's inputs (-1 = any).
func (m *Model) InputShapes() [][]int {
	s := make([][]int, len(m.inputs))
	for i, in := range m.inputs {
		s[i] = cloneShape(in.shape)
	}
	return s
}

// ModuleError is an error returned by a module during Forward.
type ModuleError struct {
	Path, Op string
	Err      error
}

func (e *ModuleError) Error() string {
	msg := e.Err.Error()
	msg = strings.TrimPrefix(msg, "nn: ")
	msg = strings.TrimPrefix(msg, e.Op+": ")
	return fmt.Sprintf("nn: %s (%s): %s", e.Path, e.Op, msg)
}

func (e *ModuleError) Unwrap() error { return e.Err }

func (m *Model) wrap(mod int, err error) error {
	info := m.mods[mod]
	var se *ShapeError
	if errors.As(err, &se) && se.Path == "" {
		c := *se
		c.Path, c.Op = info.Path, info.Op
		return &c
	}
	return &ModuleError{Path: info.Path, Op: info.Op, Err: err}
}

func fmtWant(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		switch {
		case d >= 0:
			parts[i] = fmt.Sprint(d)
		case i == 0:
			parts[i] = "N"
		default:
			parts[i] = "*"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func (m *Model) checkInputShapes(in [][]int) error {
	if len(in) != len(m.inputs) {
		return fmt.Errorf("nn: %s: got %d inputs, want %d", m.name, len(in), len(m.inputs))
	}
	for i, def := range m.inputs {
		s := in[i]
		ok := len(s) == len(def.shape)
		for j := 0; ok && j < len(s); j++ {
			ok = s[j] >= 0 && (def.shape[j] < 0 || def.shape[j] == s[j])
		}
		if !ok {
			return &ShapeError{Op: fmt.Sprintf("%s input %q", m.name, def.name), Got: [][]int{cloneShape(s)}, Want: fmtWant(def.shape)}
		}
	}
	return nil
}

// Forward runs the model on its inputs and returns its output. The inputs
// are not modified. Hooks registered on the model run synchronously on the
// calling goroutine; the context is passed to them and carries the call's
// CallID. Forward stops with ctx.Err() if ctx is cancelled between layers.
//
// An input of the wrong shape yields a *ShapeError naming the module that
// rejected it, both shapes included.
func (m *Model) Forward(ctx context.Context, in ...*Tensor) (*Tensor, error) {
	shapes := make([][]int, len(in))
	for i, t := range in {
		if err := t.check(); err != nil {
			return nil, fmt.Errorf("nn: %s: input %d: %v", m.name, i, err)
		}
		shapes[i] = t.Shape
	}
	if err := m.checkInputShapes(shapes); err != nil {
		return nil, err
	}
	vals := make([]*Tensor, m.nvals)
	for i, def := range m.inputs {
		vals[def.value] = in[i]
	}
	if hs := m.hooks.Load(); hs != nil {
		return m.forwardHooked(ctx, hs, vals)
	}
	var argBuf [4]*Tensor
	for li := 0; li < len(m.leaves); li++ {
		l := &m.leaves[li]
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if l.fuse > 0 {
			out, err := m.runFused(vals, li, l.fuse, nil)
			if err != nil {
				return nil, err
			}
			vals[m.leaves[li+l.fuse].out] = out
			m.release(vals, li, l)
			li += l.fuse
			continue
		}
		args := argBuf[:0]
		for _, v := range l.in {
			args = append(args, vals[v])
		}
		var out *Tensor
		var err error
		if l.inPlace != nil {
			out, err = runInPlace(l.inPlace, args[0])
		} else {
			out, err = runLayer(l.layer, args)
		}
		if err != nil {
			return nil, m.wrap(l.mod, err)
		}
		vals[l.out] = out
		m.release(vals, li, l)
	}
	return vals[m.out], nil
}

// runLayer calls l.Forward, turning a panic of the layer (a layer from
// another package that does not check its input, say) into an error.
func runLayer(l Layer, args []*Tensor) (out *Tensor, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("layer panicked: %v", p)
		}
	}()
	out, err = l.Forward(args...)
	if err == nil && out == nil {
		err = errors.New("layer returned no tensor")
	}
	return out, err
}

func runInPlace(l inPlaceLayer, x *Tensor) (out *Tensor, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("layer panicked: %v", p)
		}
	}()
	return l.forwardInPlace(x)
}

// runFused runs the Conv2d at leaf li with the k (1 or 2) leaves after it
// (ReLU, then MaxPool2d) in one pass, and returns the last one's output.
// ch (may be nil) receives the stages' outputs in chunks.
func (m *Model) runFused(vals []*Tensor, li, k int, ch *stageChunks) (*Tensor, error) {
	l := &m.leaves[li]
	conv := l.layer.(*Conv2d)
	x := vals[l.in[0]]
	if err := x.check(); err != nil {
		return nil, m.wrap(l.mod, fmt.Errorf("nn: Conv2d: %v", err))
	}
	s, err := conv.OutputShape(x.Shape)
	if err != nil {
		return nil, m.wrap(l.mod, err)
	}
	if k == 1 {
		return conv.forward(x, s, true, nil, nil, ch), nil
	}
	pl := &m.leaves[li+2]
	pool := pl.layer.(*MaxPool2d)
	ps, err := pool.OutputShape(s)
	if err != nil {
		return nil, m.wrap(pl.mod, err)
	}
	return conv.forward(x, s, true, pool, ps, ch), nil
}

// fusable returns how many leaves after leaf li may run fused with it
// given the registered hooks: none of them may see a tensor the fused
// chain does not materialise.
func (m *Model) fusable(hs *hookSet, li int) int {
	l := &m.leaves[li]
	if l.fuse == 0 || len(hs.global) > 0 || len(hs.fwd[l.mod]) > 0 || len(m.ends[li]) > 0 {
		return 0
	}
	r := &m.leaves[li+1]
	if len(hs.pre[r.mod])+len(hs.fwd[r.mod]) > 0 || len(m.starts[li+1]) > 0 || m.hookedInput(hs, l.out) {
		return 0
	}
	if l.fuse == 1 {
		return 1
	}
	p := &m.leaves[li+2]
	if len(hs.pre[p.mod])+len(hs.fwd[p.mod]) > 0 || len(m.ends[li+1]) > 0 || len(m.starts[li+2]) > 0 || m.hookedInput(hs, r.out) {
		return 1
	}
	return 2
}

// hookedInput reports whether value v is an external input of a container
// with forward hooks, which report it as one of the container's inputs (a
// container whose leaves are not contiguous may read a fused chain's inner
// tensor from outside, wherever it starts and ends).
func (m *Model) hookedInput(hs *hookSet, v int) bool {
	for ci := range m.conts {
		if len(hs.fwd[ci]) == 0 {
			continue
		}
		for _, e := range m.conts[ci].ext {
			if e == v {
				return true
			}
		}
	}
	return false
}

// release drops the values whose last reader was leaf li, so that large
// intermediate tensors can be collected during a long forward pass.
func (m *Model) release(vals []*Tensor, li int, l *leaf) {
	for _, v := range l.in {
		if m.lastUse[v] == li {
			vals[v] = nil
		}
	}
}

// Shapes returns the output shape of every module (in Modules order; the
// root's is the model's output shape) for inputs of the given full shapes.
func (m *Model) Shapes(in ...[]int) ([]LayerShape, error) {
	if err := m.checkInputShapes(in); err != nil {
		return nil, err
	}
	vs := make([][]int, m.nvals)
	for i, def := range m.inputs {
		vs[def.value] = in[i]
	}
	for _, l := range m.leaves {
		args := make([][]int, len(l.in))
		for i, v := range l.in {
			args[i] = vs[v]
		}
		s, err := l.layer.OutputShape(args...)
		if err != nil {
			return nil, m.wrap(l.mod, err)
		}
		vs[l.out] = s
	}
	res := make([]LayerShape, len(m.mods))
	for i, mi := range m.mods {
		var s []int
		switch {
		case mi.Path == "":
			s = vs[m.out]
		case mi.Leaf:
			s = vs[m.leaves[mi.Order].out]
		default:
			s = vs[m.conts[i].out]
		}
		res[i] = LayerShape{ModuleInfo: mi, Shape: cloneShape(s)}
	}
	return res, nil
}

// validPaths returns the module paths for error messages.
func (m *Model) validPaths() string {
	ps := make([]string, 0, len(m.mods))
	for _, mi := range m.mods {
		ps = append(ps, fmt.Sprintf("%q", mi.Path))
	}
	return strings.Join(ps, ", ")
}

// StateDict returns the model's parameters and buffers keyed by their
// PyTorch state_dict names (module path + "." + parameter name). The tensors
// are the model's own storage: modifying them changes the model.
func (m *Model) StateDict() map[string]*Tensor {
	sd := make(map[string]*Tensor, len(m.params))
	for _, p := range m.params {
		sd[p.key] = p.t
	}
	return sd
}

// StateDictKeys returns the state_dict keys in module definition order.
func (m *Model) StateDictKeys() []string {
	ks := make([]string, len(m.params))
	for i, p := range m.params {
		ks[i] = p.key
	}
	return ks
}

// ShapeMismatch is a state dict tensor whose shape differs from the model's.
type ShapeMismatch struct {
	Key       string
	Got, Want []int
}

// StateDictError lists every problem LoadStateDict found, by name.
type StateDictError struct {
	Missing    []string // model keys absent from the state dict
	Unexpected []string // state dict keys the model does not have
	Mismatched []ShapeMismatch
}

func (e *StateDictError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "missing keys: "+strings.Join(e.Missing, ", "))
	}
	if len(e.Unexpected) > 0 {
		parts = append(parts, "unexpected keys: "+strings.Join(e.Unexpected, ", "))
	}
	for _, mm := range e.Mismatched {
		parts = append(parts, fmt.Sprintf("%s: shape %v, want %v", mm.Key, mm.Got, mm.Want))
	}
	return "nn: load state dict: " + strings.Join(parts, "; ")
}

// LoadStateDict copies the tensors of sd into the model's parameters. It
// checks everything first and changes nothing unless sd has exactly the
// model's keys with the model's shapes; otherwise it returns a
// *StateDictError listing all missing, unexpected and mis-shaped tensors.
// BatchNorm's "num_batches_tracked" entries are ignored.
//
// LoadStateDict must not be called concurrently with Forward.
func (m *Model) LoadStateDict(sd map[string]*Tensor) error {
	e := &StateDictError{}
	known := make(map[string]bool, len(m.params))
	for _, p := range m.params {
		known[p.key] = true
		t, ok := sd[p.key]
		if !ok || t == nil {
			e.Missing = append(e.Missing, p.key)
			continue
		}
		if !sameShape(t.Shape, p.t.Shape) || t.check() != nil {
			e.Mismatched = append(e.Mismatched, ShapeMismatch{Key: p.key, Got: cloneShape(t.Shape), Want: cloneShape(p.t.Shape)})
		}
	}
	for k := range sd {
		if !known[k] && !strings.HasSuffix(k, ".num_batches_tracked") {
			e.Unexpected = append(e.Unexpected, k)
		}
	}
	sort.Strings(e.Unexpected)
	if len(e.Missing)+len(e.Unexpected)+len(e.Mismatched) > 0 {
		return e
	}
	for _, p := range m.params {
		copy(p.t.Data, sd[p.key].Data)
	}
	return nil
}

// LeafInputs returns, for the leaf at path, the path of the leaf that
// produces each of its inputs, in argument order; an input of the model
// is reported as "". ok is false if path is not a leaf. A leaf's input
// tensor holds exactly the producing leaf's output data.
func (m *Model) LeafInputs(path string) (producers []string, ok bool) {
	i, found := m.index[path]
	if !found || !m.mods[i].Leaf {
		return nil, false
	}
	l := &m.leaves[m.mods[i].Order]
	producers = make([]string, len(l.in))
	for j, v := range l.in {
		for k := range m.leaves {
			if m.leaves[k].out == v {
				producers[j] = m.mods[m.leaves[k].mod].Path
				break
			}
		}
	}
	return producers, true
}
