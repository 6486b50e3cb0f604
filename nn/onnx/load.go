package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/actrec/actrec/nn"
)

// LoadOptions configures Load. The zero value is the default.
type LoadOptions struct {
	// Name is the model name (nn.Model.Name). Default: the file name without
	// its extension (Decode: the graph's name, else "onnx").
	Name string
	// Dims gives sizes to named symbolic input dimensions (ONNX dim_param)
	// other than dimension 0, which is always the dynamic batch dimension.
	// Default: none; a model input with another symbolic dimension fails to
	// load with an error naming it.
	Dims map[string]int
	// Output selects the graph output that becomes the model's output when
	// the graph has several. Default "": the graph must have exactly one.
	Output string
	// DynamicBatch treats dimension 0 of every input as the dynamic batch
	// dimension even where the file fixes it (torch.onnx.export without
	// dynamic_axes writes the example's batch size). Loading then fails,
	// naming the node, if any node's output does not keep the batch in its
	// first dimension, e.g. a Reshape whose target the exporter computed
	// from the fixed batch size. Default false: a fixed batch size is kept.
	DynamicBatch bool
}

// Problem is one unsupported operator, attribute or input of a model.
type Problem struct {
	Node   string // node name (or its first output name if unnamed); "" for graph-level problems
	Op     string // ONNX op type
	Reason string
}

// UnsupportedError lists everything in a model that the loader cannot run.
// Load returns it (wrapped) when the file is well formed but uses operators,
// attributes or data types outside the supported set; nothing is run.
type UnsupportedError struct {
	Problems []Problem
}

func (e *UnsupportedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "onnx: %d unsupported node(s) or attribute(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		if p.Node != "" {
			fmt.Fprintf(&b, "node %q (%s): ", p.Node, p.Op)
		}
		b.WriteString(p.Reason)
	}
	return b.String()
}

// ErrNotONNX is returned (wrapped) for data that does not decode as an ONNX
// model: protobuf corruption, initializers whose data does not match their
// dims and type, a graph that uses a value before defining it.
var ErrNotONNX = errors.New("not a valid ONNX model")

// Supported opset versions of the default ("" / "ai.onnx") domain.
const (
	MinOpset = 11
	MaxOpset = 21
)

// Load reads an ONNX model file (and its external data files, which must lie
// in the model's directory) and returns it as an nn.Model whose leaves are
// the graph's nodes. It is LoadWithOptions with the default options.
func Load(path string) (*nn.Model, error) { return LoadWithOptions(path, LoadOptions{}) }

// LoadWithOptions is Load with options.
func LoadWithOptions(path string, opts LoadOptions) (*nn.Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	if opts.Name == "" {
		opts.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	src := &dataSource{dir: filepath.Dir(path)}
	defer src.close()
	m, err := decode(data, src, opts)
	if err != nil {
		return nil, fmt.Errorf("onnx: load %s: %w", path, err)
	}
	return m, nil
}

// Decode builds a model from the bytes of an ONNX file. Tensors stored in
// external data files are not supported (use Load).
func Decode(data []byte, opts LoadOptions) (*nn.Model, error) {
	return decode(data, nil, opts)
}

// Sentinel batch sizes used to infer which dimensions of every value follow
// the batch size: shapes are computed twice, once with each.
const (
	batch1 = 11
	batch2 = 13
)

type rtValue struct {
	v      nn.Value
	s1, s2 []int
}

type converter struct {
	opts     LoadOptions
	opset    int64
	src      *dataSource
	b        *nn.Builder
	dynamic  bool // some model input has a dynamic batch dimension
	consts   map[string]*constant
	inits    map[string]bool
	tensors  map[string]*nn.Tensor // initializer tensors, shared between the layers using them
	rt       map[string]*rtValue
	poisoned map[string]bool
	used     map[string]bool // value names consumed by a node or the graph output
	problems []Problem
	taken    map[string]bool // module paths and their prefixes
	folding  bool            // converting a node whose inputs are all constant
	dry      bool            // checking the attributes of a node downstream of a failure
}

func decode(data []byte, src *dataSource, opts LoadOptions) (*nn.Model, error) {
	mp, err := parseModel(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotONNX, err)
	}
	c := &converter{
		opts: opts, src: src,
		consts: map[string]*constant{}, inits: map[string]bool{}, tensors: map[string]*nn.Tensor{},
		rt: map[string]*rtValue{}, poisoned: map[string]bool{}, used: map[string]bool{},
	}
	return c.convert(mp)
}

func (c *converter) problem(n *nodeProto, format string, args ...any) {
	p := Problem{Reason: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Node, p.Op = nodeLabel(n), n.OpType
	}
	c.problems = append(c.problems, p)
}

func nodeLabel(n *nodeProto) string {
	if n.Name != "" {
		return n.Name
	}
	if len(n.Outputs) > 0 {
		return n.Outputs[0]
	}
	return "(unnamed " + n.OpType + ")"
}

func (c *converter) convert(mp *modelProto) (*nn.Model, error) {
	g := mp.Graph
	for _, o := range mp.Opsets {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			c.opset = o.Version
		}
	}
	if c.opset == 0 && len(mp.Opsets) == 0 {
		c.opset = 1 // IR version < 3: no opset_import means opset 1
	}
	if c.opset < MinOpset || c.opset > MaxOpset {
		c.problems = append(c.problems, Problem{Reason: fmt.Sprintf("opset %d of the default domain; supported: %d to %d", c.opset, MinOpset, MaxOpset)})
		return nil, &UnsupportedError{Problems: c.problems}
	}
	if g.HasSparse {
		c.problems = append(c.problems, Problem{Reason: "sparse initializers are not supported"})
	}
	name := c.opts.Name
	if name == "" {
		name = g.Name
	}
	if name == "" {
		name = "onnx"
	}
	c.b = nn.NewBuilder(name)

	// Initializers.
	for _, t := range g.Initializers {
		if t.Name == "" {
			return nil, fmt.Errorf("%w: initializer without a name", ErrNotONNX)
		}
		if _, dup := c.consts[t.Name]; dup {
			return nil, fmt.Errorf("%w: initializer %q defined twice", ErrNotONNX, t.Name)
		}
		k, err := decodeTensor(t, c.src)
		if err != nil {
			return nil, fmt.Errorf("%w: initializer %q: %w", ErrNotONNX, t.Name, err)
		}
		c.consts[t.Name] = k
		c.inits[t.Name] = true
	}

	// Inputs.
	var inputs []*valueInfo
	for _, in := range g.Inputs {
		if c.inits[in.Name] { // older exporters list initializers as inputs too
			continue
		}
		if in.Name == "" {
			return nil, fmt.Errorf("%w: graph input without a name", ErrNotONNX)
		}
		if c.rt[in.Name] != nil {
			return nil, fmt.Errorf("%w: graph input %q declared twice", ErrNotONNX, in.Name)
		}
		inputs = append(inputs, in)
		shape, ok := c.inputShape(in)
		if !ok {
			c.rt[in.Name] = &rtValue{}
			c.poisoned[in.Name] = true
			continue
		}
		v := c.b.Input(in.Name, shape...)
		s1, s2 := clone(shape), clone(shape)
		if len(shape) > 0 && shape[0] < 0 {
			s1[0], s2[0] = batch1, batch2
			c.dynamic = true
		}
		c.rt[in.Name] = &rtValue{v: v, s1: s1, s2: s2}
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("%w: the graph has no inputs", ErrNotONNX)
	}

	// Structure: defined-before-use, unique outputs, consumers.
	defined := map[string]bool{}
	for k := range c.consts {
		defined[k] = true
	}
	for k := range c.rt {
		defined[k] = true
	}
	runtime := map[string]bool{}
	for k := range c.rt {
		runtime[k] = true
	}
	isRuntime := make([]bool, len(g.Nodes))
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in == "" {
				continue
			}
			if !defined[in] {
				return nil, fmt.Errorf("%w: node %q: input %q is not defined before use (the graph must be topologically sorted)", ErrNotONNX, nodeLabel(n), in)
			}
			c.used[in] = true
			if runtime[in] && n.OpType != "Shape" && n.OpType != "Size" {
				isRuntime[i] = true
			}
		}
		for _, out := range n.Outputs {
			if out == "" {
				continue
			}
			if defined[out] {
				return nil, fmt.Errorf("%w: node %q: output %q is defined twice", ErrNotONNX, nodeLabel(n), out)
			}
			defined[out] = true
			runtime[out] = isRuntime[i]
		}
	}
	outName := c.opts.Output
	if outName == "" {
		if len(g.Outputs) != 1 {
			names := make([]string, len(g.Outputs))
			for i, o := range g.Outputs {
				names[i] = o.Name
			}
			return nil, fmt.Errorf("the graph has %d outputs %q; choose one with LoadOptions.Output", len(g.Outputs), names)
		}
		outName = g.Outputs[0].Name
	} else {
		found := false
		for _, o := range g.Outputs {
			found = found || o.Name == outName
		}
		if !found {
			return nil, fmt.Errorf("LoadOptions.Output %q is not a graph output", outName)
		}
	}
	c.used[outName] = true

	paths := nodePaths(g.Nodes, isRuntime)
	c.taken = map[string]bool{}
	for i, p := range paths {
		if !isRuntime[i] {
			continue
		}
		c.taken[p] = true
		parts := strings.Split(p, ".")
		for k := 1; k < len(parts); k++ {
			c.taken[strings.Join(parts[:k], ".")] = true
		}
	}
	for i, n := range g.Nodes {
		if n.Domain != "" && n.Domain != "ai.onnx" {
			c.problem(n, "operator domain %q is not supported", n.Domain)
			c.poison(n)
			continue
		}
		if isRuntime[i] {
			c.addNode(n, paths[i])
		} else {
			c.fold(n)
		}
	}
	if len(c.problems) > 0 {
		return nil, &UnsupportedError{Problems: c.problems}
	}
	out := c.rt[outName]
	if out == nil {
		return nil, fmt.Errorf("graph output %q does not depend on the model's inputs", outName)
	}
	m, err := c.b.Build(out.v)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (c *converter) poison(n *nodeProto) {
	for _, o := range n.Outputs {
		c.poisoned[o] = true
	}
}

// inputShape returns the nn input shape of a graph input (-1 for a dynamic
// dimension 0), or records a problem.
func (c *converter) inputShape(in *valueInfo) ([]int, bool) {
	bad := func(format string, args ...any) ([]int, bool) {
		c.problems = append(c.problems, Problem{Reason: fmt.Sprintf("graph input %q: ", in.Name) + fmt.Sprintf(format, args...)})
		return nil, false
	}
	switch {
	case !in.HasType || in.NonTensor:
		return bad("not a tensor")
	case in.ElemType != dtFloat:
		return bad("element type %s; only FLOAT inputs are supported", dataTypeName(in.ElemType))
	case !in.HasShape:
		return bad("no shape")
	}
	shape := make([]int, len(in.Dims))
	for i, d := range in.Dims {
		switch {
		case i == 0 && (!d.HasValue || c.opts.DynamicBatch):
			shape[i] = -1
		case d.HasValue:
			if d.Value < 0 || d.Value > maxElements {
				return bad("invalid dimension %d", d.Value)
			}
			shape[i] = int(d.Value)
		default:
			v, ok := c.opts.Dims[d.Param]
			if !ok || v <= 0 {
				return bad("dimension %d is symbolic (%q); give it a size with LoadOptions.Dims", i, d.Param)
			}
			shape[i] = v
		}
	}
	probe := clone(shape)
	if len(probe) > 0 && probe[0] < 0 {
		probe[0] = 1
	}
	if _, err := shapeSize(probe); err != nil {
		return bad("%v", err)
	}
	return shape, true
}

// tensorOf returns the nn tensor of a float constant; initializers share one
// tensor between all layers that use them.
func (c *converter) tensorOf(name string) *nn.Tensor {
	if t, ok := c.tensors[name]; ok {
		return t
	}
	k := c.consts[name]
	t := &nn.Tensor{Shape: clone(k.shape), Data: k.f}
	if c.inits[name] {
		c.tensors[name] = t
	}
	return t
}

// addNode converts a node whose output depends on the model's inputs into a
// module of the model.
func (c *converter) addNode(n *nodeProto, path string) {
	if c.skipPoisoned(n) {
		return
	}
	if n.OpType == "Split" {
		c.addSplit(n, path)
		return
	}
	layer, data, ok := c.layerFor(n)
	if !ok {
		c.poison(n)
		return
	}
	if out, ok := c.add(n, path, layer, data); ok {
		c.rt[n.Outputs[0]] = out
		for i, o := range n.Outputs[1:] {
			if o != "" && c.used[o] {
				c.problem(n, "output %d (%q) is used; only the first output is supported", i+1, o)
			}
			c.poisoned[o] = true
		}
	} else {
		c.poison(n)
	}
}

// add appends layer at path, applied to the data inputs, after checking its
// output shape keeps the batch in dimension 0. It records a problem and
// returns false otherwise.
func (c *converter) add(n *nodeProto, path string, layer nn.Layer, data []string) (*rtValue, bool) {
	var vals []nn.Value
	var in1, in2 [][]int
	for _, d := range data {
		r := c.rt[d]
		if r == nil {
			c.problem(n, "input %q: integer or constant tensor used as data", d)
			return nil, false
		}
		vals = append(vals, r.v)
		in1, in2 = append(in1, r.s1), append(in2, r.s2)
	}
	s1, err1 := layer.OutputShape(in1...)
	s2, err2 := layer.OutputShape(in2...)
	if err := errors.Join(err1, err2); err != nil {
		c.problem(n, "input shapes: %v", err1)
		return nil, false
	}
	if c.dynamic {
		ok := len(s1) > 0 && len(s1) == len(s2) && s1[0] == batch1 && s2[0] == batch2
		for d := 1; ok && d < len(s1); d++ {
			ok = s1[d] == s2[d]
		}
		if !ok {
			c.problem(n, "output shape %s does not keep the batch in dimension 0 (N = batch size); only models whose every node output has the batch as its first dimension are supported", symShape(s1, s2))
			return nil, false
		}
	}
	v := c.b.Add(path, layer, vals...)
	return &rtValue{v: v, s1: s1, s2: s2}, true
}

// addSplit converts a Split node into one Slice leaf per output, at
// path.0, path.1, ... (the node's path becomes their container).
func (c *converter) addSplit(n *nodeProto, path string) {
	fail := func(format string, args ...any) {
		c.problem(n, format, args...)
		c.poison(n)
	}
	x := input(n, 0)
	r := c.rt[x]
	if r == nil || len(n.Outputs) == 0 {
		fail("input 0 is missing")
		return
	}
	a := newAttrs(n)
	rank := len(r.s1)
	axis := a.int("axis", 0)
	if axis < -int64(rank) || axis >= int64(rank) {
		fail("axis %d out of range for rank %d", axis, rank)
		return
	}
	if axis < 0 {
		axis += int64(rank)
	}
	dim := int64(r.s1[axis])
	if r.s1[axis] != r.s2[axis] {
		fail("splitting the batch dimension is not supported")
		return
	}
	var sizes []int64
	var err error
	switch {
	case c.opset < 13:
		sizes = a.ints("split")
	default:
		if sizes, err = c.intsIn(n, 1, "split", true); err != nil {
			fail("%v", err)
			return
		}
	}
	k := int64(len(n.Outputs))
	if c.opset >= 18 && a.has("num_outputs") {
		k = a.int("num_outputs", k)
	}
	if errs := a.check(); len(errs) > 0 {
		fail("%s", strings.Join(errs, "; "))
		return
	}
	if sizes == nil {
		if k <= 0 || k != int64(len(n.Outputs)) {
			fail("num_outputs %d for %d outputs", k, len(n.Outputs))
			return
		}
		chunk := (dim + k - 1) / k
		for i := int64(0); i < k; i++ {
			sizes = append(sizes, max(0, min(chunk, dim-i*chunk)))
		}
	}
	if len(sizes) != len(n.Outputs) {
		fail("%d split sizes for %d outputs", len(sizes), len(n.Outputs))
		return
	}
	var sum int64
	for _, sz := range sizes {
		if sz < 0 || sz > dim {
			fail("invalid split sizes %v for dimension %d", sizes, dim)
			return
		}
		sum += sz
	}
	if sum != dim {
		fail("split sizes %v do not add up to dimension %d", sizes, dim)
		return
	}
	var off int64
	for i, o := range n.Outputs {
		l := &slice{starts: []int64{off}, ends: []int64{off + sizes[i]}, axes: []int64{axis}, steps: []int64{1}}
		off += sizes[i]
		out, ok := c.add(n, fmt.Sprintf("%s.%d", path, i), l, []string{x})
		if !ok {
			c.poison(n)
			return
		}
		if o != "" {
			c.rt[o] = out
		}
	}
}

// skipPoisoned reports whether a node reads the output of a node that could
// not be converted. Such a node is not converted either, but its operator and
// (if its converter accepts it without knowing input shapes) its attributes
// are still checked, so that one error lists as many problems as possible.
func (c *converter) skipPoisoned(n *nodeProto) bool {
	poisoned := false
	for _, in := range n.Inputs {
		poisoned = poisoned || c.poisoned[in]
	}
	if !poisoned {
		return false
	}
	c.poison(n)
	conv, ok := converters[n.OpType]
	if !ok {
		c.problem(n, "operator %s is not supported", n.OpType)
		return true
	}
	if conv == nil {
		return true
	}
	a := newAttrs(n)
	c.dry = true
	_, _, err := conv(c, n, a)
	c.dry = false
	if err == nil {
		for _, e := range a.check() {
			c.problem(n, "%s", e)
		}
	}
	return true
}

func symShape(s1, s2 []int) string {
	parts := make([]string, len(s1))
	for i := range s1 {
		switch {
		case i < len(s2) && s1[i] == s2[i]:
			parts[i] = fmt.Sprint(s1[i])
		case i < len(s2) && s1[i] == batch1 && s2[i] == batch2:
			parts[i] = "N"
		default:
			parts[i] = "f(N)"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// layerFor runs the op's converter and checks its attributes.
func (c *converter) layerFor(n *nodeProto) (nn.Layer, []string, bool) {
	conv, ok := converters[n.OpType]
	if !ok {
		c.problem(n, "operator %s is not supported", n.OpType)
		return nil, nil, false
	}
	if conv == nil {
		if n.OpType == "Split" {
			c.problem(n, "Split of values known at load time is not supported")
		} else {
			c.problem(n, "operator %s is only supported on values known at load time (shapes, constants)", n.OpType)
		}
		return nil, nil, false
	}
	a := newAttrs(n)
	layer, data, err := conv(c, n, a)
	if err != nil {
		c.problem(n, "%v", err)
		return nil, nil, false
	}
	if errs := a.check(); len(errs) > 0 {
		for _, e := range errs {
			c.problem(n, "%s", e)
		}
		return nil, nil, false
	}
	return layer, data, true
}

// ---- node names -> module paths ----

// nodePaths derives a unique dotted module path for every runtime node.
// PyTorch exporters name nodes after the module scope: "/layer1/layer1.0/conv1/Conv"
// becomes "layer1.0.conv1" if it is the only node of its scope, else
// "layer1.0.conv1.Conv". Other names are sanitised; unnamed nodes use their
// first output's name.
func nodePaths(nodes []*nodeProto, isRuntime []bool) []string {
	type split struct{ scope, op string }
	sp := make([]split, len(nodes))
	count := map[string]int{}
	for i, n := range nodes {
		if !isRuntime[i] {
			continue
		}
		name := n.Name
		if name == "" && len(n.Outputs) > 0 {
			name = n.Outputs[0]
		}
		sp[i] = splitName(name)
		if sp[i].scope == "" && sp[i].op == "" {
			sp[i].op = sanitizeComponent(n.OpType)
		}
		count[sp[i].scope]++
	}
	inner := map[string]bool{} // scopes that contain deeper scopes
	for i := range nodes {
		if !isRuntime[i] {
			continue
		}
		parts := strings.Split(sp[i].scope, ".")
		for k := 1; k < len(parts); k++ {
			inner[strings.Join(parts[:k], ".")] = true
		}
	}
	cand := make([]string, len(nodes))
	prefix := map[string]bool{}
	for i := range nodes {
		if !isRuntime[i] {
			continue
		}
		s := sp[i]
		if s.scope != "" && count[s.scope] == 1 && !inner[s.scope] {
			cand[i] = s.scope
		} else {
			cand[i] = joinPath(s.scope, s.op)
		}
		if cand[i] == "" {
			cand[i] = "node"
		}
		parts := strings.Split(cand[i], ".")
		for k := 1; k < len(parts); k++ {
			prefix[strings.Join(parts[:k], ".")] = true
		}
	}
	taken := map[string]bool{}
	for i := range nodes {
		if !isRuntime[i] {
			continue
		}
		p := cand[i]
		for k := 2; taken[p] || prefix[p]; k++ {
			p = fmt.Sprintf("%s_%d", cand[i], k)
		}
		taken[p] = true
		cand[i] = p
	}
	return cand
}

// extraPath names a node that turns out to be a module only during
// conversion (a constant expanded to the batch size), avoiding the paths
// and containers already in use.
func (c *converter) extraPath(n *nodeProto) string {
	name := n.Name
	if name == "" && len(n.Outputs) > 0 {
		name = n.Outputs[0]
	}
	s := splitName(name)
	base := joinPath(s.scope, s.op)
	if base == "" {
		base = sanitizeComponent(n.OpType)
	}
	p := base
	for k := 2; c.taken[p]; k++ {
		p = fmt.Sprintf("%s_%d", base, k)
	}
	c.taken[p] = true
	return p
}

func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}

// splitName turns a node name into a dotted scope and a last component.
func splitName(name string) (s struct{ scope, op string }) {
	if strings.Contains(name, "/") {
		segs := strings.Split(name, "/")
		var kept []string
		for _, seg := range segs {
			if seg != "" {
				kept = append(kept, seg)
			}
		}
		if len(kept) == 0 {
			return s
		}
		var out []string
		for _, seg := range kept[:len(kept)-1] {
			if len(out) > 0 && strings.HasPrefix(seg, out[len(out)-1]+".") {
				out[len(out)-1] = seg
			} else {
				out = append(out, seg)
			}
		}
		s.scope = sanitizePath(strings.Join(out, "."))
		s.op = sanitizeComponent(kept[len(kept)-1])
		return s
	}
	s.op = sanitizeComponent(name)
	return s
}

func sanitizeComponent(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), "_")
}

func sanitizePath(p string) string {
	var parts []string
	for _, part := range strings.Split(p, ".") {
		if s := sanitizeComponent(part); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ".")
}

// ---- attributes ----

type attrs struct {
	node *nodeProto
	m    map[string]*attribute
	used map[string]bool
	errs []string
}

func newAttrs(n *nodeProto) *attrs {
	a := &attrs{node: n, m: map[string]*attribute{}, used: map[string]bool{}}
	for _, at := range n.Attrs {
		if _, dup := a.m[at.Name]; dup {
			a.errs = append(a.errs, fmt.Sprintf("attribute %q given twice", at.Name))
		}
		a.m[at.Name] = at
		if at.RefAttrName != "" {
			a.errs = append(a.errs, fmt.Sprintf("attribute %q refers to a function attribute", at.Name))
		}
	}
	return a
}

func (a *attrs) get(name string, typ int64) *attribute {
	a.used[name] = true
	at := a.m[name]
	if at == nil {
		return nil
	}
	if at.Type != typ {
		a.errs = append(a.errs, fmt.Sprintf("attribute %q has type %d, want %d", name, at.Type, typ))
		return nil
	}
	return at
}

func (a *attrs) has(name string) bool { return a.m[name] != nil }

func (a *attrs) int(name string, def int64) int64 {
	if at := a.get(name, attrInt); at != nil {
		return at.I
	}
	return def
}

func (a *attrs) float(name string, def float32) float32 {
	if at := a.get(name, attrFloat); at != nil {
		return at.F
	}
	return def
}

func (a *attrs) str(name, def string) string {
	if at := a.get(name, attrString); at != nil {
		return string(at.S)
	}
	return def
}

func (a *attrs) ints(name string) []int64 {
	if at := a.get(name, attrInts); at != nil {
		return at.Ints
	}
	return nil
}

func (a *attrs) floats(name string) []float32 {
	if at := a.get(name, attrFloats); at != nil {
		return at.Floats
	}
	return nil
}

func (a *attrs) tensor(name string) *tensorProto {
	if at := a.get(name, attrTensor); at != nil {
		return at.T
	}
	return nil
}

// ignore marks attributes that do not change inference results.
func (a *attrs) ignore(names ...string) {
	for _, n := range names {
		a.used[n] = true
	}
}

// check returns the type errors and the attributes no converter read.
func (a *attrs) check() []string {
	errs := a.errs
	var unknown []string
	for name := range a.m {
		if !a.used[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, u := range unknown {
		errs = append(errs, fmt.Sprintf("attribute %q is not supported", u))
	}
	return errs
}
