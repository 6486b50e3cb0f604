package nn

import (
	"fmt"
	"sort"
	"strings"
)

// Value is a handle to a value (a model input or a layer output) inside a
// Builder. The zero Value is invalid.
type Value struct {
	b  *Builder
	id int // 1-based; 0 = invalid
}

// Builder assembles a Model as a directed acyclic graph of leaf layers.
// Leaves are added in execution order; every leaf has a dotted module path
// ("conv1", "layer1.0.conv2"). The dotted prefixes of the leaf paths are the
// containers of the module tree (op "Sequential" unless set with Container).
//
// Builder methods record the first error and return it from Build, so that a
// model can be written as a straight list of calls. A Builder is not safe for
// concurrent use.
type Builder struct {
	name    string
	err     error
	nvals   int
	inputs  []inputDef
	leaves  []leafDef
	kinds   map[string]bool   // path -> isLeaf
	ops     map[string]string // container path -> op ("" = root)
	defined []string          // module paths in definition order (no root)
	prod    map[int]int       // value id -> producing leaf index (absent = input)
}

type inputDef struct {
	name  string
	shape []int // -1 = any
	value int
}

type leafDef struct {
	path  string
	layer Layer
	in    []int
	out   int
}

// NewBuilder returns a Builder for a model called name. The root module's op
// is name as well unless set with Container("", op).
func NewBuilder(name string) *Builder {
	return &Builder{
		name:  name,
		kinds: map[string]bool{},
		ops:   map[string]string{},
		prod:  map[int]int{},
	}
}

func (b *Builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("nn: build %s: "+format, append([]any{b.name}, args...)...)
	}
}

func (b *Builder) newValue() Value {
	b.nvals++
	return Value{b: b, id: b.nvals}
}

// Input declares a model input called name with the given full shape. A
// dimension of -1 (typically the batch dimension 0) accepts any size.
// Inputs are passed to Model.Forward in the order they are declared.
func (b *Builder) Input(name string, shape ...int) Value {
	for _, d := range shape {
		if d < -1 {
			b.fail("input %q: invalid shape %v", name, shape)
		}
	}
	for _, in := range b.inputs {
		if in.name == name {
			b.fail("input %q declared twice", name)
		}
	}
	v := b.newValue()
	b.inputs = append(b.inputs, inputDef{name: name, shape: cloneShape(shape), value: v.id})
	return v
}

func validPath(p string) bool {
	if p == "" {
		return false
	}
	for _, part := range strings.Split(p, ".") {
		if part == "" {
			return false
		}
	}
	return true
}

// define records path and its prefixes in definition order.
func (b *Builder) define(path string) {
	parts := strings.Split(path, ".")
	for i := range parts {
		p := strings.Join(parts[:i+1], ".")
		if _, ok := b.kinds[p]; ok {
			if i < len(parts)-1 && b.kinds[p] {
				b.fail("module %q is a layer and cannot contain %q", p, path)
			}
			continue
		}
		b.kinds[p] = false
		b.defined = append(b.defined, p)
	}
}

// Add appends leaf layer l at the dotted module path, applied to the values
// in (which must come from this Builder), and returns its output value.
func (b *Builder) Add(path string, l Layer, in ...Value) Value {
	out := b.newValue()
	switch {
	case l == nil:
		b.fail("%s: nil layer", path)
		return out
	case !validPath(path):
		b.fail("invalid module path %q", path)
		return out
	}
	if _, ok := b.kinds[path]; ok {
		b.fail("module %q defined twice", path)
		return out
	}
	ids := make([]int, len(in))
	for i, v := range in {
		if v.b != b || v.id <= 0 || v.id >= out.id {
			b.fail("%s: input %d is not a value of this builder", path, i)
			return out
		}
		ids[i] = v.id
	}
	b.define(path)
	b.kinds[path] = true
	b.prod[out.id] = len(b.leaves)
	b.leaves = append(b.leaves, leafDef{path: path, layer: l, in: ids, out: out.id})
	return out
}

// Container sets the op type of the container at path ("Sequential",
// "BasicBlock"...). Containers need not be declared: every dotted prefix of
// a leaf path is one, with op "Sequential". Declaring a container before its
// leaves also fixes its position in Model.Modules. Path "" sets the op of the
// root module (the whole model).
func (b *Builder) Container(path, op string) {
	if path == "" {
		b.ops[""] = op
		return
	}
	if !validPath(path) {
		b.fail("invalid container path %q", path)
		return
	}
	if b.kinds[path] {
		b.fail("%q is a layer, not a container", path)
		return
	}
	b.define(path)
	b.ops[path] = op
}

// Build returns the model whose output is out. It reports the first error
// of the Builder's calls, and containers without layers.
func (b *Builder) Build(out Value) (*Model, error) {
	if b.err != nil {
		return nil, b.err
	}
	if out.b != b || out.id <= 0 || out.id > b.nvals {
		return nil, fmt.Errorf("nn: build %s: output is not a value of this builder", b.name)
	}
	if len(b.inputs) == 0 {
		return nil, fmt.Errorf("nn: build %s: no inputs", b.name)
	}
	m := &Model{name: b.name, nvals: b.nvals + 1, out: out.id}
	m.inputs = append(m.inputs, b.inputs...)

	// Module tree in definition order (pre-order, like named_modules).
	children := map[string][]string{}
	for _, p := range b.defined {
		parent := ""
		if i := strings.LastIndexByte(p, '.'); i >= 0 {
			parent = p[:i]
		}
		children[parent] = append(children[parent], p)
	}
	rootOp := b.ops[""]
	if rootOp == "" {
		rootOp = b.name
	}
	m.mods = append(m.mods, ModuleInfo{Path: "", Op: rootOp, Order: -1})
	var walk func(string)
	walk = func(p string) {
		for _, c := range children[p] {
			info := ModuleInfo{Path: c, Leaf: b.kinds[c], Order: -1}
			if !info.Leaf {
				info.Op = b.ops[c]
				if info.Op == "" {
					info.Op = "Sequential"
				}
			}
			m.mods = append(m.mods, info)
			walk(c)
		}
	}
	walk("")
	m.index = make(map[string]int, len(m.mods))
	for i, mi := range m.mods {
		m.index[mi.Path] = i
	}

	// Leaves in execution order.
	m.leaves = make([]leaf, len(b.leaves))
	m.lastUse = make([]int, m.nvals)
	for i := range m.lastUse {
		m.lastUse[i] = -1
	}
	for i, ld := range b.leaves {
		mi := m.index[ld.path]
		m.mods[mi].Op = ld.layer.Op()
		m.mods[mi].Order = i
		m.leaves[i] = leaf{mod: mi, layer: ld.layer, in: ld.in, out: ld.out}
		for _, v := range ld.in {
			m.lastUse[v] = i
		}
	}
	m.lastUse[out.id] = len(b.leaves) // the model output is never released
	for _, in := range b.inputs {
		m.lastUse[in.value] = len(b.leaves) // nor are the caller's inputs
	}

	for i := range m.leaves {
		l := &m.leaves[i]
		if ip, ok := l.layer.(inPlaceLayer); ok && len(l.in) == 1 && m.lastUse[l.in[0]] == i {
			l.inPlace = ip
		}
	}

	for i := range m.leaves {
		l := &m.leaves[i]
		if _, ok := l.layer.(*Conv2d); !ok || len(l.in) != 1 || i+1 >= len(m.leaves) {
			continue
		}
		r := &m.leaves[i+1]
		if _, ok := r.layer.(*ReLU); !ok || len(r.in) != 1 || r.in[0] != l.out || m.lastUse[l.out] != i+1 {
			continue
		}
		l.fuse = 1
		if i+2 >= len(m.leaves) {
			continue
		}
		p := &m.leaves[i+2]
		// With dilation a pooling window can miss the input entirely (its
		// max is -Inf, which the fused ReLU after pooling would turn to 0).
		if mp, ok := p.layer.(*MaxPool2d); ok && mp.Options.Dilation == [2]int{1, 1} && len(p.in) == 1 && p.in[0] == r.out && m.lastUse[r.out] == i+2 {
			l.fuse = 2
		}
	}

	// Containers: first/last leaf, external inputs, output.
	m.conts = make([]container, len(m.mods))
	m.starts = make([][]int, len(m.leaves))
	m.ends = make([][]int, len(m.leaves))
	for ci, mi := range m.mods {
		if mi.Leaf || mi.Path == "" {
			continue
		}
		prefix := mi.Path + "."
		c := container{first: -1}
		inside := map[int]bool{}
		for li, ld := range b.leaves {
			if !strings.HasPrefix(ld.path, prefix) {
				continue
			}
			if c.first < 0 {
				c.first = li
			}
			c.last = li
			inside[ld.out] = true
		}
		if c.first < 0 {
			return nil, fmt.Errorf("nn: build %s: container %q has no layers", b.name, mi.Path)
		}
		seen := map[int]bool{}
		for li := c.first; li <= c.last; li++ {
			ld := b.leaves[li]
			if !strings.HasPrefix(ld.path, prefix) {
				continue
			}
			for _, v := range ld.in {
				if !inside[v] && !seen[v] {
					seen[v] = true
					c.ext = append(c.ext, v)
				}
			}
		}
		c.out = b.leaves[c.last].out
		m.conts[ci] = c
		m.mods[ci].Order = c.first
		m.starts[c.first] = append(m.starts[c.first], ci)
		m.ends[c.last] = append(m.ends[c.last], ci)
	}
	depth := func(ci int) int { return strings.Count(m.mods[ci].Path, ".") }
	for i := range m.leaves {
		sort.SliceStable(m.starts[i], func(a, b int) bool { return depth(m.starts[i][a]) < depth(m.starts[i][b]) })
		sort.SliceStable(m.ends[i], func(a, b int) bool { return depth(m.ends[i][a]) > depth(m.ends[i][b]) })
	}
	for _, mi := range m.mods {
		if !mi.Leaf {
			continue
		}
		if pl, ok := m.leaves[mi.Order].layer.(paramLayer); ok {
			for _, p := range pl.Params() {
				m.params = append(m.params, namedParam{key: mi.Path + "." + p.Name, t: p.T})
			}
		}
	}
	return m, nil
}
