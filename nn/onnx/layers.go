package onnx

// Layers for ONNX operators that have no counterpart in package nn. All of them
// are safe for concurrent use, never modify their inputs and return a new
// tensor from Forward.

import (
	"fmt"
	"math"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/nn/internal/gemm"
)

func shapeErr(op, want string, in ...[]int) error {
	got := make([][]int, len(in))
	for i, s := range in {
		got[i] = append([]int(nil), s...)
	}
	return &nn.ShapeError{Op: op, Got: got, Want: want}
}

func checkInputs(op string, n int, in []*nn.Tensor) error {
	if len(in) != n {
		return fmt.Errorf("onnx: %s: got %d inputs, want %d", op, len(in), n)
	}
	for i, t := range in {
		if t == nil {
			return fmt.Errorf("onnx: %s: input %d is nil", op, i)
		}
		if n, err := shapeSize(t.Shape); err != nil || n != len(t.Data) {
			return fmt.Errorf("onnx: %s: input %d: shape %v does not match %d values", op, i, t.Shape, len(t.Data))
		}
	}
	return nil
}

func shapesOf(in []*nn.Tensor) [][]int {
	s := make([][]int, len(in))
	for i, t := range in {
		s[i] = t.Shape
	}
	return s
}

// shapeSize is the element count of a shape, with overflow and sign checks.
func shapeSize(s []int) (int, error) {
	n := 1
	for _, d := range s {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in %v", s)
		}
		if d > 0 && n > maxElements/d {
			return 0, fmt.Errorf("shape %v has more than %d elements", s, maxElements)
		}
		n *= d
	}
	return n, nil
}

func clone(s []int) []int { return append([]int(nil), s...) }

// ---- element-wise operations with broadcasting ----

type binOp int

const (
	opAdd binOp = iota
	opSub
	opMul
	opDiv
	opPow
	opPRelu
)

var binOpNames = [...]string{"Add", "Sub", "Mul", "Div", "Pow", "PReLU"}

// elementwise is an element-wise operator with NumPy broadcasting. Either operand
// may be a constant (an initializer, a Constant node or a folded value); the
// runtime operands are the layer's inputs, in order.
type elementwise struct {
	op     binOp
	consts [2]*nn.Tensor // nil: runtime operand
	params []nn.Param    // constants that are initializers
}

func (b *elementwise) Op() string         { return binOpNames[b.op] }
func (b *elementwise) Params() []nn.Param { return b.params }

func (b *elementwise) nIn() int {
	n := 0
	for _, c := range b.consts {
		if c == nil {
			n++
		}
	}
	return n
}

func (b *elementwise) operandShapes(in [][]int) ([2][]int, error) {
	var s [2][]int
	if len(in) != b.nIn() {
		return s, fmt.Errorf("onnx: %s: got %d inputs, want %d", b.Op(), len(in), b.nIn())
	}
	k := 0
	for i, c := range b.consts {
		if c != nil {
			s[i] = c.Shape
		} else {
			s[i] = in[k]
			k++
		}
	}
	return s, nil
}

func (b *elementwise) OutputShape(in ...[]int) ([]int, error) {
	s, err := b.operandShapes(in)
	if err != nil {
		return nil, err
	}
	out, ok := nn.BroadcastShape(s[0], s[1])
	if !ok {
		return nil, shapeErr(b.Op(), "broadcastable shapes", s[0], s[1])
	}
	if _, err := shapeSize(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (b *elementwise) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs(b.Op(), b.nIn(), in); err != nil {
		return nil, err
	}
	var x [2]*nn.Tensor
	k := 0
	for i, c := range b.consts {
		if c != nil {
			x[i] = c
		} else {
			x[i] = in[k]
			k++
		}
	}
	s, err := b.OutputShape(shapesOf(in)...)
	if err != nil {
		return nil, err
	}
	n, _ := shapeSize(s)
	y := &nn.Tensor{Shape: s, Data: make([]float32, n)}
	broadcast(b.op, y.Data, s, x[0].Data, x[0].Shape, x[1].Data, x[1].Shape)
	return y, nil
}

// bstrides returns the strides of shape s viewed with the broadcast shape
// of rank n (0 for stretched dimensions).
func bstrides(s []int, n int) []int {
	st := make([]int, n)
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 1 {
			st[n-len(s)+i] = acc
		}
		acc *= s[i]
	}
	return st
}

// broadcast computes out = a op b for the broadcast shape os.
func broadcast(op binOp, out []float32, os []int, a []float32, as []int, b []float32, bs []int) {
	if len(out) == 0 {
		return
	}
	r := len(os)
	if r == 0 {
		kernel(op, out, a, 0, b, 0)
		return
	}
	sa, sb := bstrides(as, r), bstrides(bs, r)
	inner := os[r-1]
	ia, ib := sa[r-1], sb[r-1]
	idx := make([]int, r-1)
	oa, ob := 0, 0
	for o := 0; o < len(out); o += inner {
		kernel(op, out[o:o+inner], a[oa:], ia, b[ob:], ib)
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			oa += sa[d]
			ob += sb[d]
			if idx[d] < os[d] {
				break
			}
			oa -= sa[d] * os[d]
			ob -= sb[d] * os[d]
			idx[d] = 0
		}
	}
}

// kernel computes dst[i] = a[i*sa] op b[i*sb]; sa, sb are 0 or 1.
func kernel(op binOp, dst, a []float32, sa int, b []float32, sb int) {
	switch op {
	case opAdd:
		for i := range dst {
			dst[i] = a[i*sa] + b[i*sb]
		}
	case opSub:
		for i := range dst {
			dst[i] = a[i*sa] - b[i*sb]
		}
	case opMul:
		for i := range dst {
			dst[i] = a[i*sa] * b[i*sb]
		}
	case opDiv:
		for i := range dst {
			dst[i] = a[i*sa] / b[i*sb]
		}
	case opPow:
		for i := range dst {
			dst[i] = float32(math.Pow(float64(a[i*sa]), float64(b[i*sb])))
		}
	case opPRelu:
		for i := range dst {
			v := a[i*sa]
			if v < 0 {
				v *= b[i*sb]
			}
			dst[i] = v
		}
	}
}

// unary is an element-wise function of one tensor.
type unary struct {
	op string
	f  func(float32) float32
}

func (u *unary) Op() string { return u.op }
func (u *unary) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: %s: got %d inputs, want 1", u.op, len(in))
	}
	return clone(in[0]), nil
}
func (u *unary) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs(u.op, 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	y := &nn.Tensor{Shape: clone(x.Shape), Data: make([]float32, len(x.Data))}
	for i, v := range x.Data {
		y.Data[i] = u.f(v)
	}
	return y, nil
}

func newLeakyReLU(alpha float32) *unary {
	return &unary{op: "LeakyReLU", f: func(v float32) float32 {
		if v < 0 {
			return v * alpha
		}
		return v
	}}
}

func newClip(lo, hi float32) *unary {
	return &unary{op: "Clip", f: func(v float32) float32 {
		if v < lo {
			return lo
		}
		if v > hi {
			return hi
		}
		return v
	}}
}

func f64(f func(float64) float64) func(float32) float32 {
	return func(v float32) float32 { return float32(f(float64(v))) }
}

// ---- Gemm and MatMul ----

// gemmLayer is ONNX Gemm: alpha*op(A)*op(B) + beta*C with A the runtime
// input, B and C constants (C broadcast to [M, N], optional).
type gemmLayer struct {
	transA, transB bool
	alpha, beta    float32
	b, c           *nn.Tensor
	params         []nn.Param
}

func (g *gemmLayer) Op() string         { return "Gemm" }
func (g *gemmLayer) Params() []nn.Param { return g.params }

func (g *gemmLayer) dims(a []int) (m, k, n int, err error) {
	if len(a) != 2 {
		return 0, 0, 0, shapeErr("Gemm", "a 2-D input", a)
	}
	m, k = a[0], a[1]
	if g.transA {
		m, k = k, m
	}
	kb, n := g.b.Shape[0], g.b.Shape[1]
	if g.transB {
		kb, n = n, kb
	}
	if kb != k {
		want := fmt.Sprintf("[M %d]", kb)
		if g.transA {
			want = fmt.Sprintf("[%d M]", kb)
		}
		return 0, 0, 0, shapeErr("Gemm", want, a)
	}
	if g.c != nil {
		// unidirectional: broadcasting C must not grow [M, N]
		if s, ok := nn.BroadcastShape([]int{m, n}, g.c.Shape); !ok || len(s) != 2 || s[0] != m || s[1] != n {
			return 0, 0, 0, shapeErr("Gemm", fmt.Sprintf("C %v broadcastable to [%d %d]", g.c.Shape, m, n), a)
		}
	}
	return m, k, n, nil
}

func (g *gemmLayer) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: Gemm: got %d inputs, want 1", len(in))
	}
	m, _, n, err := g.dims(in[0])
	if err != nil {
		return nil, err
	}
	return []int{m, n}, nil
}

func (g *gemmLayer) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("Gemm", 1, in); err != nil {
		return nil, err
	}
	a := in[0]
	m, k, n, err := g.dims(a.Shape)
	if err != nil {
		return nil, err
	}
	y := &nn.Tensor{Shape: []int{m, n}, Data: make([]float32, m*n)}
	if g.c != nil && g.beta != 0 {
		scaled := g.c.Data
		if g.beta != 1 {
			scaled = make([]float32, len(g.c.Data))
			for i, v := range g.c.Data {
				scaled[i] = v * g.beta
			}
		}
		zero := make([]float32, 1)
		broadcast(opAdd, y.Data, y.Shape, zero, nil, scaled, g.c.Shape)
	}
	if m > 0 && n > 0 && k > 0 {
		lda, ldb := k, n
		if g.transA {
			lda = m
		}
		if g.transB {
			ldb = k
		}
		gemm.SgemmParallel(0, g.transA, g.transB, m, n, k, g.alpha, a.Data, lda, g.b.Data, ldb, 1, y.Data, n)
	}
	return y, nil
}

// matMul is ONNX MatMul (NumPy matmul semantics). consts holds a constant
// operand (nil: runtime), like binary.
type matMul struct {
	consts [2]*nn.Tensor
	params []nn.Param
}

func (mm *matMul) Op() string         { return "MatMul" }
func (mm *matMul) Params() []nn.Param { return mm.params }

func (mm *matMul) nIn() int {
	n := 0
	for _, c := range mm.consts {
		if c == nil {
			n++
		}
	}
	return n
}

type mmPlan struct {
	out        []int
	batch      []int // broadcast batch shape
	m, k, n    int
	sa, sb     []int // batch strides (in matrices) of a and b
	squeezeA   bool
	squeezeB   bool
	aBatched   bool
	bBatched   bool
	outSize    int
	batchCount int
}

func (mm *matMul) plan(as, bs []int) (*mmPlan, error) {
	if len(as) == 0 || len(bs) == 0 {
		return nil, shapeErr("MatMul", "inputs of rank >= 1", as, bs)
	}
	p := &mmPlan{}
	a, b := clone(as), clone(bs)
	if len(a) == 1 {
		a = []int{1, a[0]}
		p.squeezeA = true
	}
	if len(b) == 1 {
		b = []int{b[0], 1}
		p.squeezeB = true
	}
	p.m, p.k = a[len(a)-2], a[len(a)-1]
	if b[len(b)-2] != p.k {
		return nil, shapeErr("MatMul", fmt.Sprintf("inner dimensions equal (%d)", p.k), as, bs)
	}
	p.n = b[len(b)-1]
	ab, bb := a[:len(a)-2], b[:len(b)-2]
	batch, ok := nn.BroadcastShape(ab, bb)
	if !ok {
		return nil, shapeErr("MatMul", "broadcastable batch dimensions", as, bs)
	}
	p.batch = batch
	p.sa, p.sb = bstrides(ab, len(batch)), bstrides(bb, len(batch))
	p.out = clone(batch)
	if !p.squeezeA {
		p.out = append(p.out, p.m)
	}
	if !p.squeezeB {
		p.out = append(p.out, p.n)
	}
	var err error
	if p.outSize, err = shapeSize(p.out); err != nil {
		return nil, err
	}
	if p.batchCount, err = shapeSize(batch); err != nil {
		return nil, err
	}
	return p, nil
}

func (mm *matMul) operands(in [][]int) ([2][]int, error) {
	var s [2][]int
	if len(in) != mm.nIn() {
		return s, fmt.Errorf("onnx: MatMul: got %d inputs, want %d", len(in), mm.nIn())
	}
	k := 0
	for i, c := range mm.consts {
		if c != nil {
			s[i] = c.Shape
		} else {
			s[i] = in[k]
			k++
		}
	}
	return s, nil
}

func (mm *matMul) OutputShape(in ...[]int) ([]int, error) {
	s, err := mm.operands(in)
	if err != nil {
		return nil, err
	}
	p, err := mm.plan(s[0], s[1])
	if err != nil {
		return nil, err
	}
	return p.out, nil
}

func (mm *matMul) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("MatMul", mm.nIn(), in); err != nil {
		return nil, err
	}
	var x [2]*nn.Tensor
	k := 0
	for i, c := range mm.consts {
		if c != nil {
			x[i] = c
		} else {
			x[i] = in[k]
			k++
		}
	}
	p, err := mm.plan(x[0].Shape, x[1].Shape)
	if err != nil {
		return nil, err
	}
	y := &nn.Tensor{Shape: p.out, Data: make([]float32, p.outSize)}
	if p.m == 0 || p.n == 0 || p.k == 0 || p.batchCount == 0 {
		return y, nil
	}
	msz, bsz, osz := p.m*p.k, p.k*p.n, p.m*p.n
	// b shared by the whole batch: one GEMM with the batch folded into M.
	allZero := true
	for _, s := range p.sb {
		allZero = allZero && s == 0
	}
	if allZero && len(x[0].Data) == p.batchCount*msz {
		gemm.SgemmParallel(0, false, false, p.batchCount*p.m, p.n, p.k, 1, x[0].Data, p.k, x[1].Data, p.n, 0, y.Data, p.n)
		return y, nil
	}
	idx := make([]int, len(p.batch))
	oa, ob := 0, 0
	for bi := 0; bi < p.batchCount; bi++ {
		gemm.Sgemm(false, false, p.m, p.n, p.k, 1, x[0].Data[oa*msz:], p.k, x[1].Data[ob*bsz:], p.n, 0, y.Data[bi*osz:], p.n)
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			oa += p.sa[d]
			ob += p.sb[d]
			if idx[d] < p.batch[d] {
				break
			}
			oa -= p.sa[d] * p.batch[d]
			ob -= p.sb[d] * p.batch[d]
			idx[d] = 0
		}
	}
	return y, nil
}

// ---- shape manipulation ----

// reshape is ONNX Reshape (and Flatten, Squeeze, Unsqueeze on runtime data)
// with a target fixed at load time. Target entries: a size, 0 (copy the
// input's dimension unless allowZero), -1 (inferred), or batchDim: the batch
// size N, read from the input's dimension batchFrom at run time.
type reshape struct {
	op        string
	target    []int64
	batch     []bool
	batchFrom int
	allowZero bool
}

func (r *reshape) Op() string { return r.op }

func (r *reshape) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: %s: got %d inputs, want 1", r.op, len(in))
	}
	x := in[0]
	total, err := shapeSize(x)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(r.target))
	infer := -1
	prod := 1
	for i, t := range r.target {
		switch {
		case r.batch != nil && r.batch[i]:
			if r.batchFrom < 0 || r.batchFrom >= len(x) {
				return nil, shapeErr(r.op, fmt.Sprintf("the batch size at dimension %d", r.batchFrom), x)
			}
			out[i] = x[r.batchFrom]
		case t == 0 && !r.allowZero:
			if i >= len(x) {
				return nil, shapeErr(r.op, fmt.Sprintf("rank > %d (target %v copies dimension %d)", i, r.target, i), x)
			}
			out[i] = x[i]
		case t == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("onnx: %s: target %v has more than one -1", r.op, r.target)
			}
			infer = i
			continue
		case t < -1 || t > maxElements:
			return nil, fmt.Errorf("onnx: %s: invalid target dimension %d", r.op, t)
		default:
			out[i] = int(t)
		}
		if out[i] > 0 && prod > maxElements/out[i] {
			return nil, fmt.Errorf("onnx: %s: target too large", r.op)
		}
		prod *= out[i]
	}
	if infer >= 0 {
		if prod == 0 || total%prod != 0 {
			return nil, shapeErr(r.op, fmt.Sprintf("a size divisible by %d for target %v", prod, r.target), x)
		}
		out[infer] = total / prod
		prod = total
	}
	if prod != total {
		return nil, shapeErr(r.op, fmt.Sprintf("%d elements for target %v", prod, r.target), x)
	}
	return out, nil
}

func (r *reshape) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs(r.op, 1, in); err != nil {
		return nil, err
	}
	s, err := r.OutputShape(in[0].Shape)
	if err != nil {
		return nil, err
	}
	return &nn.Tensor{Shape: s, Data: append([]float32(nil), in[0].Data...)}, nil
}

// viewFn is a data-preserving shape change computed by a function of the
// input shape (Flatten with any axis, Squeeze, Unsqueeze).
type viewFn struct {
	op string
	fn func([]int) ([]int, error)
}

func (v *viewFn) Op() string { return v.op }
func (v *viewFn) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: %s: got %d inputs, want 1", v.op, len(in))
	}
	return v.fn(in[0])
}
func (v *viewFn) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs(v.op, 1, in); err != nil {
		return nil, err
	}
	s, err := v.fn(in[0].Shape)
	if err != nil {
		return nil, err
	}
	return &nn.Tensor{Shape: s, Data: append([]float32(nil), in[0].Data...)}, nil
}

// transpose is ONNX Transpose.
type transpose struct{ perm []int }

func (t *transpose) Op() string { return "Transpose" }
func (t *transpose) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: Transpose: got %d inputs, want 1", len(in))
	}
	x := in[0]
	perm := t.perm
	if perm == nil {
		perm = make([]int, len(x))
		for i := range perm {
			perm[i] = len(x) - 1 - i
		}
	}
	if len(perm) != len(x) {
		return nil, shapeErr("Transpose", fmt.Sprintf("rank %d (perm %v)", len(perm), perm), x)
	}
	out := make([]int, len(x))
	for i, p := range perm {
		out[i] = x[p]
	}
	return out, nil
}
func (t *transpose) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("Transpose", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	s, err := t.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	r := len(s)
	y := &nn.Tensor{Shape: s, Data: make([]float32, len(x.Data))}
	if r == 0 || len(x.Data) == 0 {
		copy(y.Data, x.Data)
		return y, nil
	}
	perm := t.perm
	if perm == nil {
		perm = make([]int, r)
		for i := range perm {
			perm[i] = r - 1 - i
		}
	}
	inStr := make([]int, r)
	acc := 1
	for i := r - 1; i >= 0; i-- {
		inStr[i] = acc
		acc *= x.Shape[i]
	}
	st := make([]int, r) // input stride of each output dimension
	for i, p := range perm {
		st[i] = inStr[p]
	}
	idx := make([]int, r)
	off := 0
	inner, is := s[r-1], st[r-1]
	for o := 0; o < len(y.Data); o += inner {
		for i := 0; i < inner; i++ {
			y.Data[o+i] = x.Data[off+i*is]
		}
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			off += st[d]
			if idx[d] < s[d] {
				break
			}
			off -= st[d] * s[d]
			idx[d] = 0
		}
	}
	return y, nil
}

// concat is ONNX Concat of runtime inputs and constants (consts[i] nil: the
// next runtime input).
type concat struct {
	axis   int // may be negative
	consts []*nn.Tensor
	nIn    int
}

func (c *concat) Op() string { return "Concat" }

func (c *concat) shapes(in [][]int) ([][]int, error) {
	if len(in) != c.nIn {
		return nil, fmt.Errorf("onnx: Concat: got %d inputs, want %d", len(in), c.nIn)
	}
	all := make([][]int, len(c.consts))
	k := 0
	for i, t := range c.consts {
		if t != nil {
			all[i] = t.Shape
		} else {
			all[i] = in[k]
			k++
		}
	}
	return all, nil
}

func (c *concat) outShape(all [][]int) ([]int, int, error) {
	r := len(all[0])
	ax := c.axis
	if ax < 0 {
		ax += r
	}
	if ax < 0 || ax >= r {
		return nil, 0, shapeErr("Concat", fmt.Sprintf("rank > %d", c.axis), all...)
	}
	out := clone(all[0])
	out[ax] = 0
	for _, s := range all {
		if len(s) != r {
			return nil, 0, shapeErr("Concat", "inputs of equal rank", all...)
		}
		for d := range s {
			if d != ax && s[d] != out[d] {
				return nil, 0, shapeErr("Concat", fmt.Sprintf("equal dimensions except %d", ax), all...)
			}
		}
		out[ax] += s[ax]
	}
	if _, err := shapeSize(out); err != nil {
		return nil, 0, err
	}
	return out, ax, nil
}

func (c *concat) OutputShape(in ...[]int) ([]int, error) {
	all, err := c.shapes(in)
	if err != nil {
		return nil, err
	}
	out, _, err := c.outShape(all)
	return out, err
}

func (c *concat) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("Concat", c.nIn, in); err != nil {
		return nil, err
	}
	all := make([]*nn.Tensor, len(c.consts))
	k := 0
	for i, t := range c.consts {
		if t != nil {
			all[i] = t
		} else {
			all[i] = in[k]
			k++
		}
	}
	shapes := shapesOf(all)
	s, ax, err := c.outShape(shapes)
	if err != nil {
		return nil, err
	}
	n, _ := shapeSize(s)
	y := &nn.Tensor{Shape: s, Data: make([]float32, n)}
	outer := 1
	for _, d := range s[:ax] {
		outer *= d
	}
	inner := 1
	for _, d := range s[ax+1:] {
		inner *= d
	}
	off := 0
	for o := 0; o < outer; o++ {
		for _, t := range all {
			blk := t.Shape[ax] * inner
			copy(y.Data[off:off+blk], t.Data[o*blk:(o+1)*blk])
			off += blk
		}
	}
	return y, nil
}

// slice is ONNX Slice with constant starts, ends, axes and steps.
type slice struct {
	starts, ends, axes, steps []int64
}

func (s *slice) Op() string { return "Slice" }

// ranges returns per dimension the first index, step and count.
func (s *slice) ranges(x []int) (first, step, count []int, err error) {
	r := len(x)
	first, step, count = make([]int, r), make([]int, r), make([]int, r)
	for d := range x {
		first[d], step[d], count[d] = 0, 1, x[d]
	}
	seen := make([]bool, r)
	for i := range s.starts {
		ax := int(s.axes[i])
		if ax < 0 {
			ax += r
		}
		if ax < 0 || ax >= r || seen[ax] {
			return nil, nil, nil, shapeErr("Slice", fmt.Sprintf("axes %v valid and distinct", s.axes), x)
		}
		seen[ax] = true
		dim := int64(x[ax])
		st := s.steps[i]
		if st == 0 || st > maxElements || st < -maxElements {
			return nil, nil, nil, fmt.Errorf("onnx: Slice: step %d out of range", st)
		}
		b, e := s.starts[i], s.ends[i]
		if b < 0 {
			b += dim
		}
		if e < 0 {
			e += dim
		}
		if st > 0 {
			b = min(max(b, 0), dim)
			e = min(max(e, 0), dim)
		} else {
			b = min(max(b, 0), dim-1)
			e = min(max(e, -1), dim-1)
		}
		n := int64(0)
		if st > 0 && e > b {
			n = (e - b + st - 1) / st
		} else if st < 0 && e < b {
			n = (b - e + (-st) - 1) / (-st)
		}
		first[ax], step[ax], count[ax] = int(b), int(st), int(n)
	}
	return first, step, count, nil
}

func (s *slice) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: Slice: got %d inputs, want 1", len(in))
	}
	_, _, count, err := s.ranges(in[0])
	return count, err
}

func (s *slice) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("Slice", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	first, step, count, err := s.ranges(x.Shape)
	if err != nil {
		return nil, err
	}
	n, _ := shapeSize(count)
	y := &nn.Tensor{Shape: count, Data: make([]float32, n)}
	if n == 0 {
		return y, nil
	}
	r := len(count)
	if r == 0 {
		y.Data[0] = x.Data[0]
		return y, nil
	}
	str := make([]int, r)
	acc := 1
	for d := r - 1; d >= 0; d-- {
		str[d] = acc
		acc *= x.Shape[d]
	}
	base := 0
	for d := range first {
		base += first[d] * str[d]
	}
	idx := make([]int, r)
	off := base
	inner, is := count[r-1], step[r-1]*str[r-1]
	for o := 0; o < n; o += inner {
		for i := 0; i < inner; i++ {
			y.Data[o+i] = x.Data[off+i*is]
		}
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			off += step[d] * str[d]
			if idx[d] < count[d] {
				break
			}
			off -= step[d] * str[d] * count[d]
			idx[d] = 0
		}
	}
	return y, nil
}

// gather is ONNX Gather of runtime data with constant indices.
type gather struct {
	axis    int
	indices []int64
	ishape  []int
}

func (g *gather) Op() string { return "Gather" }

func (g *gather) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: Gather: got %d inputs, want 1", len(in))
	}
	x := in[0]
	ax := g.axis
	if ax < 0 {
		ax += len(x)
	}
	if ax < 0 || ax >= len(x) {
		return nil, shapeErr("Gather", fmt.Sprintf("rank > %d", g.axis), x)
	}
	for _, i := range g.indices {
		if i < -int64(x[ax]) || i >= int64(x[ax]) {
			return nil, shapeErr("Gather", fmt.Sprintf("dimension %d larger than index %d", ax, i), x)
		}
	}
	out := append(append(clone(x[:ax]), g.ishape...), x[ax+1:]...)
	if _, err := shapeSize(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (g *gather) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("Gather", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	s, err := g.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	ax := g.axis
	if ax < 0 {
		ax += len(x.Shape)
	}
	n, _ := shapeSize(s)
	y := &nn.Tensor{Shape: s, Data: make([]float32, n)}
	outer, inner := 1, 1
	for _, d := range x.Shape[:ax] {
		outer *= d
	}
	for _, d := range x.Shape[ax+1:] {
		inner *= d
	}
	dim := x.Shape[ax]
	off := 0
	for o := 0; o < outer; o++ {
		for _, i := range g.indices {
			if i < 0 {
				i += int64(dim)
			}
			src := (o*dim + int(i)) * inner
			copy(y.Data[off:off+inner], x.Data[src:src+inner])
			off += inner
		}
	}
	return y, nil
}

// pad is ONNX Pad in constant mode with constant pads (non-negative).
type pad struct {
	pads  []int64 // begin of every axis, then end of every axis
	value float32
}

func (p *pad) Op() string { return "Pad" }
func (p *pad) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: Pad: got %d inputs, want 1", len(in))
	}
	x := in[0]
	if len(p.pads) != 2*len(x) {
		return nil, shapeErr("Pad", fmt.Sprintf("rank %d for pads %v", len(p.pads)/2, p.pads), x)
	}
	out := clone(x)
	for d := range x {
		out[d] += int(p.pads[d]) + int(p.pads[d+len(x)])
	}
	if _, err := shapeSize(out); err != nil {
		return nil, err
	}
	return out, nil
}
func (p *pad) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("Pad", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	s, err := p.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	n, _ := shapeSize(s)
	y := &nn.Tensor{Shape: s, Data: make([]float32, n)}
	if p.value != 0 {
		for i := range y.Data {
			y.Data[i] = p.value
		}
	}
	r := len(s)
	if len(x.Data) == 0 || r == 0 {
		copy(y.Data, x.Data)
		return y, nil
	}
	ostr := make([]int, r)
	acc := 1
	for d := r - 1; d >= 0; d-- {
		ostr[d] = acc
		acc *= s[d]
	}
	base := 0
	for d := 0; d < r; d++ {
		base += int(p.pads[d]) * ostr[d]
	}
	idx := make([]int, r)
	off := base
	inner := x.Shape[r-1]
	for i := 0; i < len(x.Data); i += inner {
		copy(y.Data[off:off+inner], x.Data[i:i+inner])
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			off += ostr[d]
			if idx[d] < x.Shape[d] {
				break
			}
			off -= ostr[d] * x.Shape[d]
			idx[d] = 0
		}
	}
	return y, nil
}

// identity copies its input (ONNX Identity, and Dropout at inference).
type identity struct{ op string }

func (i *identity) Op() string { return i.op }
func (i *identity) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: %s: got %d inputs, want 1", i.op, len(in))
	}
	return clone(in[0]), nil
}
func (i *identity) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs(i.op, 1, in); err != nil {
		return nil, err
	}
	return &nn.Tensor{Shape: clone(in[0].Shape), Data: append([]float32(nil), in[0].Data...)}, nil
}

// softmax2D is Softmax/LogSoftmax before opset 13: the input is coerced to 2-D
// [prod(dims[:axis]), prod(dims[axis:])] and normalised over the second dimension.
type softmax2D struct {
	op   string
	axis int
	log  bool
}

func (s *softmax2D) Op() string { return s.op }
func (s *softmax2D) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: %s: got %d inputs, want 1", s.op, len(in))
	}
	ax := s.axis
	if ax < 0 {
		ax += len(in[0])
	}
	if ax < 0 || ax > len(in[0]) {
		return nil, shapeErr(s.op, fmt.Sprintf("rank >= %d", s.axis), in[0])
	}
	return clone(in[0]), nil
}
func (s *softmax2D) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs(s.op, 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	if _, err := s.OutputShape(x.Shape); err != nil {
		return nil, err
	}
	ax := s.axis
	if ax < 0 {
		ax += len(x.Shape)
	}
	inner := 1
	for _, d := range x.Shape[ax:] {
		inner *= d
	}
	y := &nn.Tensor{Shape: clone(x.Shape), Data: make([]float32, len(x.Data))}
	if inner == 0 {
		return y, nil
	}
	for o := 0; o+inner <= len(x.Data); o += inner {
		softmaxRow(y.Data[o:o+inner], x.Data[o:o+inner], s.log)
	}
	return y, nil
}

func softmaxRow(dst, src []float32, log bool) {
	m := float32(math.Inf(-1))
	for _, v := range src {
		if v > m {
			m = v
		}
	}
	var sum float64
	for i, v := range src {
		e := math.Exp(float64(v - m))
		dst[i] = float32(e)
		sum += e
	}
	if log {
		ls := math.Log(sum)
		for i, v := range src {
			dst[i] = float32(float64(v-m) - ls)
		}
		return
	}
	for i := range dst {
		dst[i] = float32(float64(dst[i]) / sum)
	}
}

// batchNorm is BatchNormalization (inference) over dimension 1 for inputs of
// any rank >= 2 (nn.BatchNorm2d is used for rank 4).
type batchNorm struct {
	eps                         float64
	scale, bias, mean, variance *nn.Tensor
	params                      []nn.Param
}

func (b *batchNorm) Op() string         { return "BatchNorm" }
func (b *batchNorm) Params() []nn.Param { return b.params }
func (b *batchNorm) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: BatchNormalization: got %d inputs, want 1", len(in))
	}
	x := in[0]
	if len(x) < 2 || x[1] != len(b.mean.Data) {
		return nil, shapeErr("BatchNorm", fmt.Sprintf("[N %d ...]", len(b.mean.Data)), x)
	}
	return clone(x), nil
}
func (b *batchNorm) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("BatchNorm", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	if _, err := b.OutputShape(x.Shape); err != nil {
		return nil, err
	}
	c := x.Shape[1]
	inner := 1
	for _, d := range x.Shape[2:] {
		inner *= d
	}
	y := &nn.Tensor{Shape: clone(x.Shape), Data: make([]float32, len(x.Data))}
	for o := 0; o < len(x.Data); o += inner {
		ch := (o / inner) % c
		a := float64(b.scale.Data[ch]) / math.Sqrt(float64(b.variance.Data[ch])+b.eps)
		sh := float64(b.bias.Data[ch]) - float64(b.mean.Data[ch])*a
		for i := o; i < o+inner; i++ {
			y.Data[i] = float32(float64(x.Data[i])*a + sh)
		}
	}
	return y, nil
}

// ---- reductions and normalisation ----

type reduceKind int

const (
	reduceMean reduceKind = iota
	reduceSum
	reduceMax
	reduceMin
)

// reduce is ReduceMean/Sum/Max/Min over axes fixed at load time (sorted,
// non-negative, for inputs of the given rank).
type reduce struct {
	op       string
	kind     reduceKind
	axes     []int
	rank     int
	keepDims bool
}

func (r *reduce) Op() string { return r.op }

func (r *reduce) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: %s: got %d inputs, want 1", r.op, len(in))
	}
	x := in[0]
	if len(x) != r.rank {
		return nil, shapeErr(r.op, fmt.Sprintf("rank %d", r.rank), x)
	}
	var out []int
	j := 0
	for d, v := range x {
		if j < len(r.axes) && r.axes[j] == d {
			j++
			if r.kind >= reduceMax && v == 0 {
				return nil, shapeErr(r.op, fmt.Sprintf("dimension %d not empty", d), x)
			}
			if r.keepDims {
				out = append(out, 1)
			}
			continue
		}
		out = append(out, v)
	}
	if out == nil {
		out = []int{}
	}
	return out, nil
}

func (r *reduce) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs(r.op, 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	s, err := r.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	n, _ := shapeSize(s)
	acc := make([]float64, n)
	switch r.kind {
	case reduceMax:
		for i := range acc {
			acc[i] = math.Inf(-1)
		}
	case reduceMin:
		for i := range acc {
			acc[i] = math.Inf(1)
		}
	}
	// Output strides for the input's dimensions (0 on reduced axes).
	rank := len(x.Shape)
	ostr := make([]int, rank)
	stride := 1
	red := make([]bool, rank)
	for _, a := range r.axes {
		red[a] = true
	}
	count := 1
	for d := rank - 1; d >= 0; d-- {
		if red[d] {
			count *= x.Shape[d]
			continue
		}
		ostr[d] = stride
		stride *= x.Shape[d]
	}
	idx := make([]int, rank)
	o := 0
	for _, v := range x.Data {
		f := float64(v)
		switch r.kind {
		case reduceMean, reduceSum:
			acc[o] += f
		case reduceMax:
			if f > acc[o] || math.IsNaN(f) {
				acc[o] = f
			}
		case reduceMin:
			if f < acc[o] || math.IsNaN(f) {
				acc[o] = f
			}
		}
		for d := rank - 1; d >= 0; d-- {
			idx[d]++
			o += ostr[d]
			if idx[d] < x.Shape[d] {
				break
			}
			o -= ostr[d] * x.Shape[d]
			idx[d] = 0
		}
	}
	y := &nn.Tensor{Shape: s, Data: make([]float32, n)}
	for i, v := range acc {
		if r.kind == reduceMean {
			v /= float64(count)
		}
		y.Data[i] = float32(v)
	}
	return y, nil
}

// layerNorm is LayerNormalization (opset 17) over the dimensions from axis
// on: y = (x - mean) / sqrt(var + eps) * weight + bias.
type layerNorm struct {
	axis         int // non-negative
	eps          float64
	weight, bias *nn.Tensor // bias may be nil
	params       []nn.Param
}

func (l *layerNorm) Op() string         { return "LayerNorm" }
func (l *layerNorm) Params() []nn.Param { return l.params }

func (l *layerNorm) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: LayerNormalization: got %d inputs, want 1", len(in))
	}
	x := in[0]
	if l.axis >= len(x) || !equalTail(x[l.axis:], l.weight.Shape) || l.bias != nil && !equalTail(x[l.axis:], l.bias.Shape) {
		return nil, shapeErr("LayerNorm", fmt.Sprintf("[... %v]", l.weight.Shape), x)
	}
	return clone(x), nil
}

// equalTail reports whether a parameter of shape p broadcasts exactly over
// the normalised dimensions s (leading 1s allowed).
func equalTail(s, p []int) bool {
	n := 1
	for _, d := range s {
		n *= d
	}
	m := 1
	for _, d := range p {
		m *= d
	}
	if n != m || len(p) > len(s) {
		return false
	}
	for i := range p {
		if p[len(p)-1-i] != s[len(s)-1-i] {
			return false
		}
	}
	return true
}

func (l *layerNorm) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("LayerNorm", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	if _, err := l.OutputShape(x.Shape); err != nil {
		return nil, err
	}
	inner := len(l.weight.Data)
	y := &nn.Tensor{Shape: clone(x.Shape), Data: make([]float32, len(x.Data))}
	if inner == 0 {
		return y, nil
	}
	for o := 0; o+inner <= len(x.Data); o += inner {
		row := x.Data[o : o+inner]
		var mean float64
		for _, v := range row {
			mean += float64(v)
		}
		mean /= float64(inner)
		var variance float64
		for _, v := range row {
			d := float64(v) - mean
			variance += d * d
		}
		variance /= float64(inner)
		inv := 1 / math.Sqrt(variance+l.eps)
		for i, v := range row {
			r := (float64(v) - mean) * inv * float64(l.weight.Data[i])
			if l.bias != nil {
				r += float64(l.bias.Data[i])
			}
			y.Data[o+i] = float32(r)
		}
	}
	return y, nil
}

// ---- Expand and Resize ----

// expand is ONNX Expand of a runtime tensor to a constant shape (entries
// marked batch take the input's batch size, its dimension 0).
type expand struct {
	shape []int64
	batch []bool
}

func (e *expand) Op() string { return "Expand" }

func (e *expand) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: Expand: got %d inputs, want 1", len(in))
	}
	x := in[0]
	target := make([]int, len(e.shape))
	for i, v := range e.shape {
		switch {
		case e.batch != nil && e.batch[i]:
			if len(x) == 0 {
				return nil, shapeErr("Expand", "a batch dimension", x)
			}
			target[i] = x[0]
		case v < 0 || v > maxElements:
			return nil, fmt.Errorf("onnx: Expand: invalid shape %v", e.shape)
		default:
			target[i] = int(v)
		}
	}
	out, ok := nn.BroadcastShape(x, target)
	if !ok {
		return nil, shapeErr("Expand", fmt.Sprintf("a shape broadcastable to %v", e.shape), x)
	}
	if _, err := shapeSize(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (e *expand) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("Expand", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	s, err := e.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	n, _ := shapeSize(s)
	y := &nn.Tensor{Shape: s, Data: make([]float32, n)}
	broadcast(opAdd, y.Data, s, x.Data, x.Shape, make([]float32, 1), nil)
	return y, nil
}

// expandConst is ONNX Expand of a constant to a shape that involves the
// batch size, which it reads from its input's dimension 0.
type expandConst struct {
	data  *nn.Tensor
	shape []int64
	batch []bool
}

func (e *expandConst) Op() string { return "Expand" }

func (e *expandConst) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 || len(in[0]) == 0 {
		return nil, fmt.Errorf("onnx: Expand: want one input with a batch dimension")
	}
	target := make([]int, len(e.shape))
	for i, v := range e.shape {
		switch {
		case e.batch != nil && e.batch[i]:
			target[i] = in[0][0] // the batch size
		case v < 0 || v > maxElements:
			return nil, fmt.Errorf("onnx: Expand: invalid shape %v", e.shape)
		default:
			target[i] = int(v)
		}
	}
	out, ok := nn.BroadcastShape(e.data.Shape, target)
	if !ok {
		return nil, shapeErr("Expand", fmt.Sprintf("a shape broadcastable to %v", e.shape), e.data.Shape)
	}
	if _, err := shapeSize(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (e *expandConst) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("Expand", 1, in); err != nil {
		return nil, err
	}
	s, err := e.OutputShape(in[0].Shape)
	if err != nil {
		return nil, err
	}
	n, _ := shapeSize(s)
	y := &nn.Tensor{Shape: s, Data: make([]float32, n)}
	broadcast(opAdd, y.Data, s, e.data.Data, e.data.Shape, make([]float32, 1), nil)
	return y, nil
}

// resize is ONNX Resize over the last two dimensions of a 4-D input, modes
// nearest and linear (bilinear).
type resize struct {
	linear    bool
	coordMode string    // asymmetric, half_pixel, pytorch_half_pixel, align_corners
	nearest   string    // floor, ceil, round_prefer_floor, round_prefer_ceil
	scales    []float32 // 4 values, or nil
	sizes     []int64   // 4 values (batch entry marked in sizesBatch), or nil
	sizeBatch []bool
}

func (r *resize) Op() string { return "Resize" }

func (r *resize) outHW(x []int) (oh, ow int, sh, sw float64, err error) {
	if len(x) != 4 {
		return 0, 0, 0, 0, shapeErr("Resize", "[N C H W]", x)
	}
	if r.sizes != nil {
		for d := 0; d < 2; d++ {
			if (r.sizeBatch == nil || !r.sizeBatch[d]) && r.sizes[d] != int64(x[d]) {
				return 0, 0, 0, 0, shapeErr("Resize", fmt.Sprintf("sizes %v to keep N and C", r.sizes), x)
			}
		}
		oh, ow = int(r.sizes[2]), int(r.sizes[3])
		sh, sw = float64(oh)/float64(x[2]), float64(ow)/float64(x[3])
	} else {
		sh, sw = float64(r.scales[2]), float64(r.scales[3])
		oh, ow = int(math.Floor(float64(x[2])*sh)), int(math.Floor(float64(x[3])*sw))
	}
	if oh <= 0 || ow <= 0 || oh > 1<<20 || ow > 1<<20 || x[2] == 0 || x[3] == 0 {
		return 0, 0, 0, 0, shapeErr("Resize", fmt.Sprintf("an output size between 1 and 2^20 (got %dx%d)", oh, ow), x)
	}
	if _, err := shapeSize([]int{x[0], x[1], oh, ow}); err != nil {
		return 0, 0, 0, 0, err
	}
	return oh, ow, sh, sw, nil
}

func (r *resize) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: Resize: got %d inputs, want 1", len(in))
	}
	oh, ow, _, _, err := r.outHW(in[0])
	if err != nil {
		return nil, err
	}
	return []int{in[0][0], in[0][1], oh, ow}, nil
}

// source maps an output coordinate to the input coordinate.
func (r *resize) source(o, in, out int, scale float64) float64 {
	switch r.coordMode {
	case "asymmetric":
		return float64(o) / scale
	case "align_corners":
		if out == 1 {
			return 0
		}
		return float64(o) * float64(in-1) / float64(out-1)
	case "pytorch_half_pixel":
		if out == 1 {
			return 0
		}
		return (float64(o)+0.5)/scale - 0.5
	}
	return (float64(o)+0.5)/scale - 0.5 // half_pixel
}

// taps returns, per output index, the two input indices and the weight of the second.
func (r *resize) taps(in, out int, scale float64) (i0, i1 []int, w []float32) {
	i0, i1, w = make([]int, out), make([]int, out), make([]float32, out)
	for o := range out {
		s := r.source(o, in, out, scale)
		if !r.linear {
			var k float64
			switch r.nearest {
			case "floor":
				k = math.Floor(s)
			case "ceil":
				k = math.Ceil(s)
			case "round_prefer_ceil":
				k = math.Floor(s + 0.5)
			default: // round_prefer_floor
				k = math.Ceil(s - 0.5)
			}
			j := int(min(max(k, 0), float64(in-1)))
			i0[o], i1[o] = j, j
			continue
		}
		s = min(max(s, 0), float64(in-1))
		f := math.Floor(s)
		i0[o] = int(f)
		i1[o] = min(i0[o]+1, in-1)
		w[o] = float32(s - f)
	}
	return
}

func (r *resize) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("Resize", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	oh, ow, sh, sw, err := r.outHW(x.Shape)
	if err != nil {
		return nil, err
	}
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	y := &nn.Tensor{Shape: []int{n, c, oh, ow}, Data: make([]float32, n*c*oh*ow)}
	h0, h1, hw := r.taps(h, oh, sh)
	w0, w1, ww := r.taps(wd, ow, sw)
	for p := 0; p < n*c; p++ {
		src := x.Data[p*h*wd : (p+1)*h*wd]
		dst := y.Data[p*oh*ow : (p+1)*oh*ow]
		for i := range oh {
			a, b, t := src[h0[i]*wd:], src[h1[i]*wd:], hw[i]
			row := dst[i*ow : (i+1)*ow]
			for j := range ow {
				top := a[w0[j]] + (a[w1[j]]-a[w0[j]])*ww[j]
				bot := b[w0[j]] + (b[w1[j]]-b[w0[j]])*ww[j]
				row[j] = top + (bot-top)*t
			}
		}
	}
	return y, nil
}

// deconv2d is ONNX ConvTranspose for NCHW input (PyTorch
// nn.ConvTranspose2d): GEMM of the transposed weight with each input
// sample, then col2im scatter-add.
type deconv2d struct {
	weight, bias *nn.Tensor // weight [C, M/group, kH, kW]; bias [M] or nil
	group        int
	stride, dil  [2]int
	padBegin     [2]int
	padEnd       [2]int
	outPad       [2]int
}

func (c *deconv2d) Op() string { return "ConvTranspose2d" }

func (c *deconv2d) Params() []nn.Param {
	ps := []nn.Param{{Name: "weight", T: c.weight}}
	if c.bias != nil {
		ps = append(ps, nn.Param{Name: "bias", T: c.bias})
	}
	return ps
}

func (c *deconv2d) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: ConvTranspose: got %d inputs, want 1", len(in))
	}
	x := in[0]
	w := c.weight.Shape
	if len(x) != 4 || x[1] != w[0] {
		return nil, shapeErr("ConvTranspose2d", fmt.Sprintf("[N %d H W]", w[0]), x)
	}
	out := []int{x[0], w[1] * c.group, 0, 0}
	for i := range 2 {
		out[2+i] = c.stride[i]*(x[2+i]-1) + c.outPad[i] + (w[2+i]-1)*c.dil[i] + 1 - c.padBegin[i] - c.padEnd[i]
		if x[2+i] == 0 || out[2+i] <= 0 {
			return nil, shapeErr("ConvTranspose2d", "an input giving a positive output size", x)
		}
	}
	if _, err := shapeSize(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *deconv2d) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("ConvTranspose2d", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	s, err := c.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	n, ch, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, oh, ow := s[1], s[2], s[3]
	kh, kw := c.weight.Shape[2], c.weight.Shape[3]
	cg, mg := ch/c.group, m/c.group
	kk := kh * kw
	hw := h * w
	y := &nn.Tensor{Shape: s, Data: make([]float32, n*m*oh*ow)}
	if hw > maxElements/(mg*kk+1) {
		return nil, fmt.Errorf("onnx: ConvTranspose: input too large")
	}
	col := make([]float32, mg*kk*hw)
	for b := range n {
		for g := range c.group {
			if cg > 0 {
				gemm.SgemmParallel(0, true, false, mg*kk, hw, cg, 1,
					c.weight.Data[g*cg*mg*kk:], mg*kk, x.Data[(b*ch+g*cg)*hw:], hw, 0, col, hw)
			} else {
				clear(col)
			}
			for mm := range mg {
				dst := y.Data[((b*m)+g*mg+mm)*oh*ow:][:oh*ow]
				for i := range kh {
					for j := range kw {
						src := col[((mm*kh+i)*kw+j)*hw:][:hw]
						for ih := range h {
							r := ih*c.stride[0] - c.padBegin[0] + i*c.dil[0]
							if r < 0 || r >= oh {
								continue
							}
							row := dst[r*ow:][:ow]
							for iw := range w {
								q := iw*c.stride[1] - c.padBegin[1] + j*c.dil[1]
								if q >= 0 && q < ow {
									row[q] += src[ih*w+iw]
								}
							}
						}
					}
				}
				if c.bias != nil {
					bv := c.bias.Data[g*mg+mm]
					for k := range dst {
						dst[k] += bv
					}
				}
			}
		}
	}
	return y, nil
}

// instanceNorm is InstanceNormalization: every (sample, channel) plane is
// normalised by its own mean and variance, then scaled and shifted per channel.
type instanceNorm struct {
	eps         float64
	scale, bias *nn.Tensor
	params      []nn.Param
}

func (l *instanceNorm) Op() string         { return "InstanceNorm" }
func (l *instanceNorm) Params() []nn.Param { return l.params }

func (l *instanceNorm) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("onnx: InstanceNormalization: got %d inputs, want 1", len(in))
	}
	x := in[0]
	if len(x) < 3 || x[1] != len(l.scale.Data) {
		return nil, shapeErr("InstanceNorm", fmt.Sprintf("[N %d ...]", len(l.scale.Data)), x)
	}
	return clone(x), nil
}

func (l *instanceNorm) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if err := checkInputs("InstanceNorm", 1, in); err != nil {
		return nil, err
	}
	x := in[0]
	if _, err := l.OutputShape(x.Shape); err != nil {
		return nil, err
	}
	c := x.Shape[1]
	inner := 1
	for _, d := range x.Shape[2:] {
		inner *= d
	}
	y := &nn.Tensor{Shape: clone(x.Shape), Data: make([]float32, len(x.Data))}
	if inner == 0 {
		return y, nil
	}
	for o := 0; o+inner <= len(x.Data); o += inner {
		ch := (o / inner) % c
		row := x.Data[o : o+inner]
		var mean float64
		for _, v := range row {
			mean += float64(v)
		}
		mean /= float64(inner)
		var variance float64
		for _, v := range row {
			d := float64(v) - mean
			variance += d * d
		}
		variance /= float64(inner)
		a := float64(l.scale.Data[ch]) / math.Sqrt(variance+l.eps)
		b := float64(l.bias.Data[ch]) - mean*a
		for i, v := range row {
			y.Data[o+i] = float32(float64(v)*a + b)
		}
	}
	return y, nil
}
