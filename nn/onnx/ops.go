package onnx

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/actrec/actrec/nn"
)

// convFunc turns a node into a layer and the names of the node inputs that
// are the layer's Forward inputs ("data"), in order. Inputs that must be
// known at load time (weights, shapes, axes...) are read as constants.
type convFunc func(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error)

var converters map[string]convFunc

func init() {
	converters = map[string]convFunc{
		"Conv": convConv, "Gemm": convGemm, "MatMul": convMatMul,
		"Add": convBinary(opAdd), "Sub": convBinary(opSub), "Mul": convBinary(opMul),
		"Div": convBinary(opDiv), "Pow": convBinary(opPow),
		"Relu":       simple(func() nn.Layer { return nn.NewReLU() }),
		"Sigmoid":    simple(func() nn.Layer { return nn.NewSigmoid() }),
		"Tanh":       simple(func() nn.Layer { return nn.NewTanh() }),
		"Erf":        unaryOp("Erf", f64(math.Erf)),
		"Sqrt":       unaryOp("Sqrt", f64(math.Sqrt)),
		"Exp":        unaryOp("Exp", f64(math.Exp)),
		"Log":        unaryOp("Log", f64(math.Log)),
		"Neg":        unaryOp("Neg", func(v float32) float32 { return -v }),
		"Abs":        unaryOp("Abs", func(v float32) float32 { return float32(math.Abs(float64(v))) }),
		"Reciprocal": unaryOp("Reciprocal", func(v float32) float32 { return 1 / v }),
		"Floor":      unaryOp("Floor", f64(math.Floor)),
		"Ceil":       unaryOp("Ceil", f64(math.Ceil)),
		"LeakyRelu":  convLeakyRelu, "Clip": convClip, "HardSigmoid": convHardSigmoid,
		"HardSwish": unaryOp("Hardswish", func(v float32) float32 {
			return v * float32(math.Max(0, math.Min(1, float64(v)/6+0.5)))
		}),
		"Gelu": convGelu, "Softmax": convSoftmax(false), "LogSoftmax": convSoftmax(true),
		"MaxPool": convPool(true), "AveragePool": convPool(false),
		"GlobalAveragePool": convGlobalAveragePool, "BatchNormalization": convBatchNorm,
		"Flatten": convFlatten, "Reshape": convReshape, "Transpose": convTranspose,
		"Concat": convConcat, "Identity": convIdentity, "Dropout": convDropout,
		"Unsqueeze": convUnsqueeze, "Squeeze": convSqueeze, "Slice": convSlice,
		"Gather": convGather, "Pad": convPad, "Cast": convCast,
		"ReduceMean": convReduce(reduceMean), "ReduceSum": convReduce(reduceSum),
		"ReduceMax": convReduce(reduceMax), "ReduceMin": convReduce(reduceMin),
		"LayerNormalization": convLayerNorm, "GlobalMaxPool": convGlobalMaxPool,
		"Expand": convExpand, "Resize": convResize, "ConvTranspose": convConvTranspose,
		"Elu": convAlphaUnary("ELU", 1, func(v, a float64) float64 {
			if v < 0 {
				return a * math.Expm1(v)
			}
			return v
		}),
		"Celu": convAlphaUnary("CELU", 1, func(v, a float64) float64 {
			return math.Max(0, v) + math.Min(0, a*math.Expm1(v/a))
		}),
		"Selu":                  convSelu,
		"Softplus":              unaryOp("Softplus", f64(softplus)),
		"Softsign":              unaryOp("Softsign", func(v float32) float32 { return v / (1 + float32(math.Abs(float64(v)))) }),
		"Mish":                  unaryOp("Mish", f64(func(v float64) float64 { return v * math.Tanh(softplus(v)) })),
		"Sin":                   unaryOp("Sin", f64(math.Sin)),
		"Cos":                   unaryOp("Cos", f64(math.Cos)),
		"PRelu":                 convBinary(opPRelu),
		"InstanceNormalization": convInstanceNorm,
		"Split":                 nil,               // converted by converter.addSplit
		"Equal":                 nil, "Where": nil, // integer shape arithmetic, at load time
		// Folded at load time only (see fold).
		"Constant": nil, "Shape": nil, "Size": nil, "ConstantOfShape": nil,
	}
}

// SupportedOps returns the ONNX operators the loader knows, sorted.
func SupportedOps() []string {
	ops := make([]string, 0, len(converters))
	for op := range converters {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}

// ---- input helpers ----

func input(n *nodeProto, i int) string {
	if i < len(n.Inputs) {
		return n.Inputs[i]
	}
	return ""
}

func (c *converter) isData(name string) bool {
	return c.rt[name] != nil || (c.folding && c.consts[name] != nil) || (c.dry && c.poisoned[name])
}

// data requires input i to be present; it is a Forward input of the layer.
func (c *converter) data(n *nodeProto, i int) (string, error) {
	name := input(n, i)
	if name == "" {
		return "", fmt.Errorf("input %d is missing", i)
	}
	return name, nil
}

// shapeOf returns the shape of a value known at load time (with the first
// sentinel batch size for runtime values).
func (c *converter) shapeOf(name string) []int {
	if r := c.rt[name]; r != nil {
		return r.s1
	}
	if k := c.consts[name]; k != nil {
		return k.shape
	}
	return nil
}

// constIn returns input i, which must be known at load time (nil if absent
// and optional).
func (c *converter) constIn(n *nodeProto, i int, what string, optional bool) (*constant, error) {
	name := input(n, i)
	if name == "" {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("input %d (%s) is missing", i, what)
	}
	k := c.consts[name]
	if k == nil {
		return nil, fmt.Errorf("input %d (%s) must be a constant or an initializer", i, what)
	}
	return k, nil
}

func (c *converter) floatIn(n *nodeProto, i int, what string, optional bool) (*nn.Tensor, error) {
	k, err := c.constIn(n, i, what, optional)
	if err != nil || k == nil {
		return nil, err
	}
	if k.isInt {
		return nil, fmt.Errorf("input %d (%s) must be a float tensor", i, what)
	}
	return c.tensorOf(input(n, i)), nil
}

func (c *converter) intsIn(n *nodeProto, i int, what string, optional bool) ([]int64, error) {
	k, err := c.constIn(n, i, what, optional)
	if err != nil || k == nil {
		return nil, err
	}
	if !k.isInt {
		return nil, fmt.Errorf("input %d (%s) must be an integer tensor", i, what)
	}
	if k.hasBatch() {
		return nil, fmt.Errorf("input %d (%s) depends on the batch size", i, what)
	}
	return k.i, nil
}

func (c *converter) scalarIn(n *nodeProto, i int, what string) (float32, bool, error) {
	k, err := c.constIn(n, i, what, true)
	if err != nil || k == nil {
		return 0, false, err
	}
	if k.size() != 1 {
		return 0, false, fmt.Errorf("input %d (%s) must be a scalar, has shape %v", i, what, k.shape)
	}
	if k.isInt {
		return float32(k.i[0]), true, nil
	}
	return k.f[0], true, nil
}

func (c *converter) param(name, role string) []nn.Param {
	if c.inits[name] {
		return []nn.Param{{Name: role, T: c.tensorOf(name)}}
	}
	return nil
}

// ---- converters ----

func simple(f func() nn.Layer) convFunc {
	return func(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
		x, err := c.data(n, 0)
		return f(), []string{x}, err
	}
}

func unaryOp(op string, f func(float32) float32) convFunc {
	return simple(func() nn.Layer { return &unary{op: op, f: f} })
}

func softplus(v float64) float64 {
	if v > 30 {
		return v
	}
	return math.Log1p(math.Exp(v))
}

func convAlphaUnary(op string, def float32, f func(v, a float64) float64) convFunc {
	return func(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
		x, err := c.data(n, 0)
		alpha := float64(a.float("alpha", def))
		if op == "CELU" && alpha == 0 {
			return nil, nil, errors.New("alpha 0")
		}
		return &unary{op: op, f: func(v float32) float32 { return float32(f(float64(v), alpha)) }}, []string{x}, err
	}
}

func convSelu(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	alpha := float64(a.float("alpha", 1.67326319217681884765625))
	gamma := float64(a.float("gamma", 1.05070102214813232421875))
	return &unary{op: "SELU", f: func(v float32) float32 {
		f := float64(v)
		if f <= 0 {
			f = alpha * math.Expm1(f)
		}
		return float32(gamma * f)
	}}, []string{x}, err
}

func convInstanceNorm(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	l := &instanceNorm{eps: float64(a.float("epsilon", 1e-5))}
	if l.scale, err = c.floatIn(n, 1, "scale", false); err != nil {
		return nil, nil, err
	}
	if l.bias, err = c.floatIn(n, 2, "B", false); err != nil {
		return nil, nil, err
	}
	if len(l.scale.Shape) != 1 || len(l.bias.Shape) != 1 || l.scale.Shape[0] != l.bias.Shape[0] {
		return nil, nil, fmt.Errorf("scale %v and B %v must be [C]", l.scale.Shape, l.bias.Shape)
	}
	l.params = append(c.param(input(n, 1), "weight"), c.param(input(n, 2), "bias")...)
	return l, []string{x}, nil
}

func convLeakyRelu(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	return newLeakyReLU(a.float("alpha", 0.01)), []string{x}, err
}

func convHardSigmoid(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	alpha, beta := a.float("alpha", 0.2), a.float("beta", 0.5)
	return &unary{op: "Hardsigmoid", f: func(v float32) float32 {
		return float32(math.Max(0, math.Min(1, float64(alpha*v+beta))))
	}}, []string{x}, err
}

func convClip(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
	if c.opset < 11 {
		lo, hi = a.float("min", lo), a.float("max", hi)
	} else {
		v, ok, err := c.scalarIn(n, 1, "min")
		if err != nil {
			return nil, nil, err
		}
		if ok {
			lo = v
		}
		v, ok, err = c.scalarIn(n, 2, "max")
		if err != nil {
			return nil, nil, err
		}
		if ok {
			hi = v
		}
	}
	return newClip(lo, hi), []string{x}, nil
}

func convGelu(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	g, err := nn.NewGELU(a.str("approximate", "none"))
	return g, []string{x}, err
}

func convBinary(op binOp) convFunc {
	return func(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
		if len(n.Inputs) != 2 {
			return nil, nil, fmt.Errorf("got %d inputs, want 2", len(n.Inputs))
		}
		e := &elementwise{op: op}
		var data []string
		for i := range 2 {
			name := input(n, i)
			switch {
			case name == "":
				return nil, nil, fmt.Errorf("input %d is missing", i)
			case c.isData(name):
				data = append(data, name)
			default:
				t, err := c.floatIn(n, i, "operand", false)
				if err != nil {
					return nil, nil, err
				}
				e.consts[i] = t
				e.params = append(e.params, c.param(name, string(rune('A'+i)))...)
			}
		}
		if op == opAdd && len(data) == 2 {
			return nn.NewAdd(), data, nil
		}
		return e, data, nil
	}
}

func convMatMul(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	if len(n.Inputs) != 2 {
		return nil, nil, fmt.Errorf("got %d inputs, want 2", len(n.Inputs))
	}
	mm := &matMul{}
	var data []string
	for i := range 2 {
		name := input(n, i)
		switch {
		case name == "":
			return nil, nil, fmt.Errorf("input %d is missing", i)
		case c.isData(name):
			data = append(data, name)
		default:
			t, err := c.floatIn(n, i, "operand", false)
			if err != nil {
				return nil, nil, err
			}
			mm.consts[i] = t
			mm.params = append(mm.params, c.param(name, string(rune('A'+i)))...)
		}
	}
	return mm, data, nil
}

func convGemm(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	alpha, beta := a.float("alpha", 1), a.float("beta", 1)
	transA, transB := a.int("transA", 0) != 0, a.int("transB", 0) != 0
	if c.isData(input(n, 1)) || c.isData(input(n, 2)) {
		return nil, nil, errors.New("B and C must be constants or initializers")
	}
	b, err := c.floatIn(n, 1, "B", false)
	if err != nil {
		return nil, nil, err
	}
	if len(b.Shape) != 2 {
		return nil, nil, fmt.Errorf("B has shape %v, want 2-D", b.Shape)
	}
	cc, err := c.floatIn(n, 2, "C", true)
	if err != nil {
		return nil, nil, err
	}
	nOut := b.Shape[0]
	if !transB {
		nOut = b.Shape[1]
	}
	if !transA && transB && alpha == 1 && (cc == nil || beta == 1 && len(cc.Shape) == 1 && cc.Shape[0] == nOut) && b.Shape[0] > 0 && b.Shape[1] > 0 {
		l, err := nn.NewLinear(nn.LinearOptions{InFeatures: b.Shape[1], OutFeatures: b.Shape[0], NoBias: cc == nil})
		if err != nil {
			return nil, nil, err
		}
		l.Weight, l.Bias = b, cc
		return l, []string{x}, nil
	}
	g := &gemmLayer{transA: transA, transB: transB, alpha: alpha, beta: beta, b: b, c: cc}
	g.params = append(c.param(input(n, 1), "B"), c.param(input(n, 2), "C")...)
	return g, []string{x}, nil
}

// spatial reads the 2-D kernel attributes shared by Conv and the pools.
type spatial struct {
	kernel, stride, dilation [2]int
	pad                      [2]int
	ceil                     bool
}

func readSpatial(c *converter, n *nodeProto, a *attrs, kernel []int64, x []int) (spatial, error) {
	var s spatial
	if len(kernel) != 2 {
		return s, fmt.Errorf("kernel %v: only 2-D (NCHW) inputs are supported", kernel)
	}
	strides, dil, pads := a.ints("strides"), a.ints("dilations"), a.ints("pads")
	for i := range 2 {
		s.kernel[i], s.stride[i], s.dilation[i] = int(kernel[i]), 1, 1
		if len(strides) == 2 {
			s.stride[i] = int(strides[i])
		}
		if len(dil) == 2 {
			s.dilation[i] = int(dil[i])
		}
		if s.kernel[i] <= 0 || s.kernel[i] > 1<<16 || s.stride[i] <= 0 || s.stride[i] > 1<<16 || s.dilation[i] <= 0 || s.dilation[i] > 1<<16 {
			return s, fmt.Errorf("invalid kernel %v, strides %v or dilations %v", kernel, strides, dil)
		}
	}
	if strides != nil && len(strides) != 2 || dil != nil && len(dil) != 2 {
		return s, fmt.Errorf("strides %v / dilations %v: want 2 values", strides, dil)
	}
	switch autoPad := a.str("auto_pad", "NOTSET"); autoPad {
	case "NOTSET":
		if pads != nil {
			if len(pads) != 4 {
				return s, fmt.Errorf("pads %v: want 4 values", pads)
			}
			if pads[0] != pads[2] || pads[1] != pads[3] {
				return s, fmt.Errorf("asymmetric pads %v are not supported", pads)
			}
			if pads[0] < 0 || pads[1] < 0 || pads[0] > 1<<16 || pads[1] > 1<<16 {
				return s, fmt.Errorf("invalid pads %v", pads)
			}
			s.pad = [2]int{int(pads[0]), int(pads[1])}
		}
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		if len(x) != 4 {
			return s, fmt.Errorf("auto_pad %s needs a 4-D input", autoPad)
		}
		for i := range 2 {
			in := x[2+i]
			out := (in + s.stride[i] - 1) / s.stride[i]
			total := max(0, (out-1)*s.stride[i]+(s.kernel[i]-1)*s.dilation[i]+1-in)
			if total%2 != 0 {
				return s, fmt.Errorf("auto_pad %s gives asymmetric padding for input %v", autoPad, x)
			}
			s.pad[i] = total / 2
		}
	default:
		return s, fmt.Errorf("auto_pad %q is not supported", autoPad)
	}
	// Padding wider than the input only adds windows of padding; refusing it
	// also bounds the work per output element by the input size.
	if len(x) == 4 && (s.pad[0] > x[2] || s.pad[1] > x[3]) {
		return s, fmt.Errorf("pads %v larger than the input %v are not supported", s.pad, x)
	}
	return s, nil
}

func convConv(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	w, err := c.floatIn(n, 1, "W", false)
	if err != nil {
		return nil, nil, err
	}
	if c.isData(input(n, 1)) {
		return nil, nil, errors.New("W must be a constant or an initializer")
	}
	if len(w.Shape) != 4 {
		return nil, nil, fmt.Errorf("weight shape %v: only 2-D convolutions are supported", w.Shape)
	}
	bias, err := c.floatIn(n, 2, "B", true)
	if err != nil {
		return nil, nil, err
	}
	kernel := a.ints("kernel_shape")
	if kernel == nil {
		kernel = []int64{int64(w.Shape[2]), int64(w.Shape[3])}
	}
	if len(kernel) == 2 && (kernel[0] != int64(w.Shape[2]) || kernel[1] != int64(w.Shape[3])) {
		return nil, nil, fmt.Errorf("kernel_shape %v does not match weight %v", kernel, w.Shape)
	}
	s, err := readSpatial(c, n, a, kernel, c.shapeOf(x))
	if err != nil {
		return nil, nil, err
	}
	groups := a.int("group", 1)
	if groups <= 0 || groups > int64(w.Shape[0]) && w.Shape[0] > 0 {
		return nil, nil, fmt.Errorf("invalid group %d", groups)
	}
	if bias != nil && (len(bias.Shape) != 1 || bias.Shape[0] != w.Shape[0]) {
		return nil, nil, fmt.Errorf("bias shape %v, want [%d]", bias.Shape, w.Shape[0])
	}
	l, err := nn.NewConv2d(nn.Conv2dOptions{
		InChannels: w.Shape[1] * int(groups), OutChannels: w.Shape[0],
		KernelSize: s.kernel, Stride: s.stride, Padding: s.pad, Dilation: s.dilation,
		Groups: int(groups), NoBias: bias == nil,
	})
	if err != nil {
		return nil, nil, err
	}
	l.Weight, l.Bias = w, bias
	return l, []string{x}, nil
}

func convConvTranspose(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	if c.isData(input(n, 1)) {
		return nil, nil, errors.New("W must be a constant or an initializer")
	}
	w, err := c.floatIn(n, 1, "W", false)
	if err != nil {
		return nil, nil, err
	}
	if len(w.Shape) != 4 || w.Shape[0] == 0 || w.Shape[1] == 0 || w.Shape[2] == 0 || w.Shape[3] == 0 {
		return nil, nil, fmt.Errorf("weight shape %v: only 2-D transposed convolutions are supported", w.Shape)
	}
	bias, err := c.floatIn(n, 2, "B", true)
	if err != nil {
		return nil, nil, err
	}
	group := a.int("group", 1)
	if group <= 0 || int64(w.Shape[0])%group != 0 {
		return nil, nil, fmt.Errorf("group %d does not divide %d input channels", group, w.Shape[0])
	}
	l := &deconv2d{weight: w, bias: bias, group: int(group), stride: [2]int{1, 1}, dil: [2]int{1, 1}}
	if bias != nil && (len(bias.Shape) != 1 || bias.Shape[0] != w.Shape[1]*int(group)) {
		return nil, nil, fmt.Errorf("bias shape %v, want [%d]", bias.Shape, w.Shape[1]*int(group))
	}
	if k := a.ints("kernel_shape"); k != nil && (len(k) != 2 || k[0] != int64(w.Shape[2]) || k[1] != int64(w.Shape[3])) {
		return nil, nil, fmt.Errorf("kernel_shape %v does not match weight %v", k, w.Shape)
	}
	read2 := func(name string, v []int64, dst *[2]int, lo int64) error {
		if v == nil {
			return nil
		}
		if len(v) != 2 || v[0] < lo || v[1] < lo || v[0] > 1<<16 || v[1] > 1<<16 {
			return fmt.Errorf("%s %v: want 2 values >= %d", name, v, lo)
		}
		*dst = [2]int{int(v[0]), int(v[1])}
		return nil
	}
	if err := errors.Join(read2("strides", a.ints("strides"), &l.stride, 1),
		read2("dilations", a.ints("dilations"), &l.dil, 1),
		read2("output_padding", a.ints("output_padding"), &l.outPad, 0)); err != nil {
		return nil, nil, err
	}
	if p := a.ints("pads"); p != nil {
		if len(p) != 4 {
			return nil, nil, fmt.Errorf("pads %v: want 4 values", p)
		}
		if err := errors.Join(read2("pads", p[:2], &l.padBegin, 0), read2("pads", p[2:], &l.padEnd, 0)); err != nil {
			return nil, nil, err
		}
	}
	if ap := a.str("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "VALID" {
		return nil, nil, fmt.Errorf("auto_pad %q is not supported", ap)
	}
	if a.has("output_shape") {
		return nil, nil, errors.New("output_shape is not supported")
	}
	return l, []string{x}, nil
}

func convPool(isMax bool) convFunc {
	return func(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
		x, err := c.data(n, 0)
		if err != nil {
			return nil, nil, err
		}
		s, err := readSpatial(c, n, a, a.ints("kernel_shape"), c.shapeOf(x))
		if err != nil {
			return nil, nil, err
		}
		o := nn.PoolOptions{KernelSize: s.kernel, Stride: s.stride, Padding: s.pad, CeilMode: a.int("ceil_mode", 0) != 0}
		if isMax {
			o.Dilation = s.dilation
			if a.int("storage_order", 0) != 0 && len(n.Outputs) > 1 && c.used[n.Outputs[1]] {
				return nil, nil, errors.New("storage_order is not supported")
			}
			l, err := nn.NewMaxPool2d(o)
			return l, []string{x}, err
		}
		if s.dilation != [2]int{1, 1} {
			return nil, nil, errors.New("dilations are not supported for AveragePool")
		}
		o.ExcludePad = a.int("count_include_pad", 0) == 0
		l, err := nn.NewAvgPool2d(o)
		return l, []string{x}, err
	}
}

func convGlobalAveragePool(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	if len(c.shapeOf(x)) != 4 {
		return nil, nil, fmt.Errorf("input shape %v: only 4-D inputs are supported", c.shapeOf(x))
	}
	l, err := nn.NewAdaptiveAvgPool2d([2]int{1, 1})
	return l, []string{x}, err
}

func convBatchNorm(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	eps := a.float("epsilon", 1e-5)
	a.ignore("momentum")
	if a.int("training_mode", 0) != 0 {
		return nil, nil, errors.New("training_mode=1 is not supported")
	}
	if a.int("spatial", 1) != 1 {
		return nil, nil, errors.New("spatial=0 is not supported")
	}
	var ts [4]*nn.Tensor
	for i, what := range []string{"scale", "B", "mean", "var"} {
		if ts[i], err = c.floatIn(n, i+1, what, false); err != nil {
			return nil, nil, err
		}
		if len(ts[i].Shape) != 1 || ts[i].Shape[0] != ts[0].Shape[0] {
			return nil, nil, fmt.Errorf("%s has shape %v, want [C]", what, ts[i].Shape)
		}
	}
	ch := ts[0].Shape[0]
	if len(c.shapeOf(x)) == 4 && ch > 0 {
		l, err := nn.NewBatchNorm2d(nn.BatchNorm2dOptions{NumFeatures: ch, Eps: float64(eps)})
		if err != nil {
			return nil, nil, err
		}
		l.Options.Eps = float64(eps) // an explicit 0 (the option's zero value means 1e-5)
		l.Weight, l.Bias, l.RunningMean, l.RunningVar = ts[0], ts[1], ts[2], ts[3]
		return l, []string{x}, nil
	}
	b := &batchNorm{eps: float64(eps), scale: ts[0], bias: ts[1], mean: ts[2], variance: ts[3]}
	for i, role := range []string{"weight", "bias", "running_mean", "running_var"} {
		b.params = append(b.params, c.param(input(n, i+1), role)...)
	}
	return b, []string{x}, nil
}

func convSoftmax(log bool) convFunc {
	return func(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
		x, err := c.data(n, 0)
		if err != nil {
			return nil, nil, err
		}
		op := "Softmax"
		if log {
			op = "LogSoftmax"
		}
		r := len(c.shapeOf(x))
		if c.opset < 13 {
			axis := int(a.int("axis", 1))
			return &softmax2D{op: op, axis: axis, log: log}, []string{x}, nil
		}
		axis := int(a.int("axis", -1))
		if axis < -r || axis >= r {
			return nil, nil, fmt.Errorf("axis %d out of range for rank %d", axis, r)
		}
		if axis < 0 {
			axis += r
		}
		if axis == r-1 {
			if log {
				return &softmax2D{op: op, axis: axis, log: true}, []string{x}, nil
			}
			return nn.NewSoftmax(-1), []string{x}, nil
		}
		if log {
			return nil, nil, fmt.Errorf("LogSoftmax over axis %d (not the last) is not supported", axis)
		}
		return nn.NewSoftmax(axis), []string{x}, nil
	}
}

func convFlatten(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	axis := int(a.int("axis", 1))
	r := len(c.shapeOf(x))
	if axis < -r || axis > r {
		return nil, nil, fmt.Errorf("axis %d out of range for rank %d", axis, r)
	}
	if axis < 0 {
		axis += r
	}
	if axis == 1 && r >= 2 {
		return nn.NewFlatten(1, -1), []string{x}, nil
	}
	return &viewFn{op: "Flatten", fn: func(s []int) ([]int, error) {
		if len(s) < axis {
			return nil, shapeErr("Flatten", fmt.Sprintf("rank >= %d", axis), s)
		}
		a, b := 1, 1
		for _, d := range s[:axis] {
			a *= d
		}
		for _, d := range s[axis:] {
			b *= d
		}
		return []int{a, b}, nil
	}}, []string{x}, nil
}

func convReshape(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	k, err := c.constIn(n, 1, "shape", false)
	if err != nil {
		return nil, nil, err
	}
	if !k.isInt || len(k.shape) != 1 {
		return nil, nil, fmt.Errorf("shape input must be a 1-D integer tensor, has shape %v", k.shape)
	}
	r := &reshape{op: "Reshape", target: k.i, allowZero: a.int("allowzero", 0) != 0}
	if k.hasBatch() {
		r.batch = k.batch
		r.batchFrom = 0
	}
	return r, []string{x}, nil
}

func convTranspose(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	t := &transpose{}
	if p := a.ints("perm"); p != nil {
		seen := make([]bool, len(p))
		for _, v := range p {
			if v < 0 || v >= int64(len(p)) || seen[v] {
				return nil, nil, fmt.Errorf("perm %v is not a permutation", p)
			}
			seen[v] = true
			t.perm = append(t.perm, int(v))
		}
	}
	return t, []string{x}, nil
}

func convConcat(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	if !a.has("axis") {
		return nil, nil, errors.New("attribute axis is required")
	}
	l := &concat{axis: int(a.int("axis", 0))}
	var data []string
	for i, name := range n.Inputs {
		if name == "" {
			return nil, nil, fmt.Errorf("input %d is missing", i)
		}
		if c.isData(name) {
			data = append(data, name)
			l.consts = append(l.consts, nil)
			continue
		}
		t, err := c.floatIn(n, i, "operand", false)
		if err != nil {
			return nil, nil, err
		}
		l.consts = append(l.consts, t)
	}
	if len(l.consts) == 0 {
		return nil, nil, errors.New("no inputs")
	}
	l.nIn = len(data)
	return l, data, nil
}

func convIdentity(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	return &identity{op: "Identity"}, []string{x}, err
}

func convDropout(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	ratio := float64(0.5)
	a.ignore("seed", "is_test")
	if c.opset < 12 {
		ratio = float64(a.float("ratio", 0.5))
	} else {
		v, ok, err := c.scalarIn(n, 1, "ratio")
		if err != nil {
			return nil, nil, err
		}
		if ok {
			ratio = float64(v)
		}
		t, ok, err := c.scalarIn(n, 2, "training_mode")
		if err != nil {
			return nil, nil, err
		}
		if ok && t != 0 {
			return nil, nil, errors.New("training_mode=true is not supported")
		}
	}
	return nn.NewDropout(ratio), []string{x}, nil
}

// axesArg reads axes from the attribute (before opset 13) or input 1.
func (c *converter) axesArg(n *nodeProto, a *attrs) ([]int64, bool, error) {
	if c.opset < 13 {
		v := a.ints("axes")
		return v, v != nil, nil
	}
	v, err := c.intsIn(n, 1, "axes", true)
	return v, v != nil, err
}

func normAxes(axes []int64, rank int) ([]int, error) {
	out := make([]int, len(axes))
	seen := map[int]bool{}
	for i, ax := range axes {
		if ax < -int64(rank) || ax >= int64(rank) {
			return nil, fmt.Errorf("axis %d out of range for rank %d", ax, rank)
		}
		if ax < 0 {
			ax += int64(rank)
		}
		if seen[int(ax)] {
			return nil, fmt.Errorf("axis %d repeated", ax)
		}
		seen[int(ax)] = true
		out[i] = int(ax)
	}
	sort.Ints(out)
	return out, nil
}

func convUnsqueeze(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	axes, ok, err := c.axesArg(n, a)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, errors.New("axes are required")
	}
	r := len(c.shapeOf(x)) + len(axes)
	ax, err := normAxes(axes, r)
	if err != nil {
		return nil, nil, err
	}
	return &viewFn{op: "Unsqueeze", fn: func(s []int) ([]int, error) {
		if len(s)+len(ax) != r {
			return nil, shapeErr("Unsqueeze", fmt.Sprintf("rank %d", r-len(ax)), s)
		}
		out := make([]int, 0, r)
		k, j := 0, 0
		for d := 0; d < r; d++ {
			if j < len(ax) && ax[j] == d {
				out = append(out, 1)
				j++
			} else {
				out = append(out, s[k])
				k++
			}
		}
		return out, nil
	}}, []string{x}, nil
}

func convSqueeze(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	xs := c.shapeOf(x)
	axes, ok, err := c.axesArg(n, a)
	if err != nil {
		return nil, nil, err
	}
	var ax []int
	if ok {
		if ax, err = normAxes(axes, len(xs)); err != nil {
			return nil, nil, err
		}
	} else {
		for d, v := range xs {
			if v == 1 {
				ax = append(ax, d)
			}
		}
	}
	r := len(xs)
	return &viewFn{op: "Squeeze", fn: func(s []int) ([]int, error) {
		if len(s) != r {
			return nil, shapeErr("Squeeze", fmt.Sprintf("rank %d", r), s)
		}
		var out []int
		j := 0
		for d, v := range s {
			if j < len(ax) && ax[j] == d {
				if v != 1 {
					return nil, shapeErr("Squeeze", fmt.Sprintf("dimension %d of size 1", d), s)
				}
				j++
				continue
			}
			out = append(out, v)
		}
		if out == nil {
			out = []int{}
		}
		return out, nil
	}}, []string{x}, nil
}

func convSlice(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	s := &slice{}
	if s.starts, err = c.intsIn(n, 1, "starts", false); err != nil {
		return nil, nil, err
	}
	if s.ends, err = c.intsIn(n, 2, "ends", false); err != nil {
		return nil, nil, err
	}
	if s.axes, err = c.intsIn(n, 3, "axes", true); err != nil {
		return nil, nil, err
	}
	if s.steps, err = c.intsIn(n, 4, "steps", true); err != nil {
		return nil, nil, err
	}
	k := len(s.starts)
	if s.axes == nil {
		for i := range k {
			s.axes = append(s.axes, int64(i))
		}
	}
	if s.steps == nil {
		for range k {
			s.steps = append(s.steps, 1)
		}
	}
	if len(s.ends) != k || len(s.axes) != k || len(s.steps) != k {
		return nil, nil, fmt.Errorf("starts %v, ends %v, axes %v, steps %v differ in length", s.starts, s.ends, s.axes, s.steps)
	}
	return s, []string{x}, nil
}

func convGather(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	k, err := c.constIn(n, 1, "indices", false)
	if err != nil {
		return nil, nil, err
	}
	if !k.isInt || k.hasBatch() {
		return nil, nil, errors.New("indices must be a constant integer tensor")
	}
	return &gather{axis: int(a.int("axis", 0)), indices: k.i, ishape: k.shape}, []string{x}, nil
}

func convPad(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	if mode := a.str("mode", "constant"); mode != "constant" {
		return nil, nil, fmt.Errorf("mode %q is not supported", mode)
	}
	p := &pad{}
	if c.opset < 11 {
		p.pads, p.value = a.ints("pads"), a.float("value", 0)
	} else {
		if p.pads, err = c.intsIn(n, 1, "pads", false); err != nil {
			return nil, nil, err
		}
		v, _, err := c.scalarIn(n, 2, "constant_value")
		if err != nil {
			return nil, nil, err
		}
		p.value = v
		if input(n, 3) != "" {
			return nil, nil, errors.New("the axes input is not supported")
		}
	}
	for _, v := range p.pads {
		if v < 0 || v > 1<<20 {
			return nil, nil, fmt.Errorf("pads %v: only non-negative pads are supported", p.pads)
		}
	}
	return p, []string{x}, nil
}

func convCast(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	a.ignore("saturate")
	to := int32(a.int("to", 0))
	switch to {
	case dtFloat, dtDouble:
		return &identity{op: "Cast"}, []string{x}, nil
	}
	return nil, nil, fmt.Errorf("cast to %s is not supported (tensors are float32)", dataTypeName(to))
}

func convReduce(kind reduceKind) convFunc {
	return func(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
		x, err := c.data(n, 0)
		if err != nil {
			return nil, nil, err
		}
		r := &reduce{op: n.OpType, kind: kind, rank: len(c.shapeOf(x)), keepDims: a.int("keepdims", 1) != 0}
		// Axes are an input since opset 18 (13 for ReduceSum).
		var axes []int64
		if c.opset >= 18 || kind == reduceSum && c.opset >= 13 {
			if axes, err = c.intsIn(n, 1, "axes", true); err != nil {
				return nil, nil, err
			}
		} else {
			axes = a.ints("axes")
		}
		noop := c.opset >= 13 && a.int("noop_with_empty_axes", 0) != 0
		if len(axes) == 0 {
			if noop {
				return &identity{op: n.OpType}, []string{x}, nil
			}
			for d := range r.rank {
				axes = append(axes, int64(d))
			}
		}
		if r.axes, err = normAxes(axes, r.rank); err != nil {
			return nil, nil, err
		}
		return r, []string{x}, nil
	}
}

func convLayerNorm(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	r := len(c.shapeOf(x))
	axis := int(a.int("axis", -1))
	if axis < -r || axis >= r {
		return nil, nil, fmt.Errorf("axis %d out of range for rank %d", axis, r)
	}
	if axis < 0 {
		axis += r
	}
	if st := a.int("stash_type", 1); st != 1 {
		return nil, nil, fmt.Errorf("stash_type %d is not supported", st)
	}
	for _, o := range n.Outputs[1:] {
		if o != "" && c.used[o] {
			return nil, nil, errors.New("the Mean and InvStdDev outputs are not supported")
		}
	}
	l := &layerNorm{axis: axis, eps: float64(a.float("epsilon", 1e-5))}
	if l.weight, err = c.floatIn(n, 1, "Scale", false); err != nil {
		return nil, nil, err
	}
	if l.bias, err = c.floatIn(n, 2, "B", true); err != nil {
		return nil, nil, err
	}
	l.params = append(c.param(input(n, 1), "weight"), c.param(input(n, 2), "bias")...)
	return l, []string{x}, nil
}

func convGlobalMaxPool(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	r := len(c.shapeOf(x))
	if r < 3 {
		return nil, nil, fmt.Errorf("input rank %d, want >= 3", r)
	}
	l := &reduce{op: "GlobalMaxPool", kind: reduceMax, rank: r, keepDims: true}
	for d := 2; d < r; d++ {
		l.axes = append(l.axes, d)
	}
	return l, []string{x}, nil
}

func convExpand(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	k, err := c.constIn(n, 1, "shape", false)
	if err != nil {
		return nil, nil, err
	}
	if !k.isInt || len(k.shape) != 1 {
		return nil, nil, fmt.Errorf("shape must be a 1-D integer tensor, has shape %v", k.shape)
	}
	if !c.isData(x) {
		// A constant expanded to the batch size (see fold): the runtime input
		// only provides the batch size.
		t, err := c.floatIn(n, 0, "input", false)
		if err != nil {
			return nil, nil, err
		}
		if k.batchSrc == "" {
			return nil, nil, errors.New("input must depend on the model's inputs")
		}
		return &expandConst{data: t, shape: k.i, batch: k.batch}, []string{k.batchSrc}, nil
	}
	return &expand{shape: k.i, batch: k.batch}, []string{x}, nil
}

func convResize(c *converter, n *nodeProto, a *attrs) (nn.Layer, []string, error) {
	x, err := c.data(n, 0)
	if err != nil {
		return nil, nil, err
	}
	r := &resize{
		coordMode: a.str("coordinate_transformation_mode", "half_pixel"),
		nearest:   a.str("nearest_mode", "round_prefer_floor"),
	}
	a.ignore("cubic_coeff_a", "extrapolation_value")
	switch mode := a.str("mode", "nearest"); mode {
	case "nearest":
	case "linear":
		r.linear = true
	default:
		return nil, nil, fmt.Errorf("mode %q is not supported", mode)
	}
	switch r.coordMode {
	case "asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners":
	default:
		return nil, nil, fmt.Errorf("coordinate_transformation_mode %q is not supported", r.coordMode)
	}
	switch r.nearest {
	case "floor", "ceil", "round_prefer_floor", "round_prefer_ceil":
	default:
		return nil, nil, fmt.Errorf("nearest_mode %q is not supported", r.nearest)
	}
	if a.int("exclude_outside", 0) != 0 || a.int("antialias", 0) != 0 || a.has("axes") {
		return nil, nil, errors.New("exclude_outside, antialias and axes are not supported")
	}
	if p := a.str("keep_aspect_ratio_policy", "stretch"); p != "stretch" {
		return nil, nil, fmt.Errorf("keep_aspect_ratio_policy %q is not supported", p)
	}
	if r.coordMode == "tf_crop_and_resize" {
		return nil, nil, errors.New("tf_crop_and_resize is not supported")
	}
	if k := c.consts[input(n, 2)]; k != nil && k.size() > 0 {
		if k.isInt || k.size() != 4 {
			return nil, nil, fmt.Errorf("scales %v: want 4 float values", k.shape)
		}
		if k.f[0] != 1 || k.f[1] != 1 || !(k.f[2] > 0) || !(k.f[3] > 0) {
			return nil, nil, fmt.Errorf("scales %v: only H and W can be scaled", k.f)
		}
		r.scales = k.f
	} else if input(n, 2) != "" && c.consts[input(n, 2)] == nil {
		return nil, nil, errors.New("scales must be a constant")
	}
	if r.scales == nil {
		k, err := c.constIn(n, 3, "sizes", false)
		if err != nil {
			return nil, nil, err
		}
		if !k.isInt || k.size() != 4 {
			return nil, nil, fmt.Errorf("sizes %v: want 4 integer values", k.shape)
		}
		r.sizes, r.sizeBatch = k.i, k.batch
	}
	return r, []string{x}, nil
}

// ---- load-time evaluation ----

// dataMovement ops only rearrange elements; integer constants go through
// them by index (so values and batch-size marks are kept exactly).
var dataMovement = map[string]bool{
	"Identity": true, "Gather": true, "Unsqueeze": true, "Squeeze": true, "Concat": true,
	"Slice": true, "Reshape": true, "Flatten": true, "Transpose": true,
}

// maxFoldElements bounds the size of a tensor computed at load time.
const maxFoldElements = 1 << 26

// fold evaluates a node whose inputs are all known at load time.
func (c *converter) fold(n *nodeProto) {
	if c.skipPoisoned(n) {
		return
	}
	if len(n.Outputs) == 0 || n.Outputs[0] == "" {
		c.problem(n, "node without output")
		return
	}
	if n.OpType == "Expand" {
		// A constant expanded to the batch size becomes a module that reads
		// the batch size from the tensor whose Shape gave it.
		data, shape := c.consts[input(n, 0)], c.consts[input(n, 1)]
		if data != nil && !data.isInt && shape != nil && shape.hasBatch() && shape.batchSrc != "" {
			c.addNode(n, c.extraPath(n))
			return
		}
	}
	k, ok := c.foldNode(n)
	if !ok {
		c.poison(n)
		return
	}
	if k.hasBatch() && k.batchSrc == "" {
		for _, in := range n.Inputs {
			if kc := c.consts[in]; kc != nil && kc.batchSrc != "" {
				k.batchSrc = kc.batchSrc
			}
		}
	}
	c.consts[n.Outputs[0]] = k
	for i, o := range n.Outputs[1:] {
		if o != "" && c.used[o] {
			c.problem(n, "output %d (%q) is used; only the first output is supported", i+1, o)
		}
		c.poisoned[o] = true
	}
}

func (c *converter) foldNode(n *nodeProto) (*constant, bool) {
	fail := func(format string, args ...any) (*constant, bool) {
		c.problem(n, format, args...)
		return nil, false
	}
	switch n.OpType {
	case "Constant":
		a := newAttrs(n)
		k, err := constantValue(a)
		if err == nil {
			if errs := a.check(); len(errs) > 0 {
				err = errors.New(strings.Join(errs, "; "))
			}
		}
		if err != nil {
			return fail("%v", err)
		}
		return k, true
	case "Shape", "Size":
		a := newAttrs(n)
		name := input(n, 0)
		k := &constant{isInt: true}
		var s1, s2 []int
		if r := c.rt[name]; r != nil {
			s1, s2 = r.s1, r.s2
		} else if kc := c.consts[name]; kc != nil {
			s1, s2 = kc.shape, kc.shape
		} else {
			return fail("input 0 is missing")
		}
		if n.OpType == "Size" {
			p1, _ := shapeSize(s1)
			p2, _ := shapeSize(s2)
			if p1 != p2 {
				return fail("Size depends on the batch size")
			}
			k.i, k.shape = []int64{int64(p1)}, []int{}
		} else {
			r := int64(len(s1))
			start, end := a.int("start", 0), a.int("end", r)
			if start < 0 {
				start += r
			}
			if end < 0 {
				end += r
			}
			start, end = min(max(start, 0), r), min(max(end, 0), r)
			for d := start; d < end; d++ {
				switch {
				case s1[d] == s2[d]:
					k.i = append(k.i, int64(s1[d]))
					k.batch = append(k.batch, false)
				case s1[d] == batch1 && s2[d] == batch2:
					k.i = append(k.i, -1)
					k.batch = append(k.batch, true)
				default:
					return fail("dimension %d of %q depends on the batch size", d, name)
				}
			}
			k.shape = []int{len(k.i)}
			if k.i == nil {
				k.i = []int64{}
			}
			if !k.hasBatch() {
				k.batch = nil
			} else if c.rt[name] != nil {
				k.batchSrc = name
			}
		}
		if errs := a.check(); len(errs) > 0 {
			return fail("%s", strings.Join(errs, "; "))
		}
		return k, true
	case "ConstantOfShape":
		a := newAttrs(n)
		shp, err := c.intsIn(n, 0, "shape", false)
		if err != nil {
			return fail("%v", err)
		}
		val := &constant{f: []float32{0}}
		if t := a.tensor("value"); t != nil {
			if val, err = decodeTensor(t, c.src); err != nil {
				return fail("value: %v", err)
			}
			if val.size() != 1 {
				return fail("value must have one element")
			}
		}
		if errs := a.check(); len(errs) > 0 {
			return fail("%s", strings.Join(errs, "; "))
		}
		sz, err := numel(shp)
		if err != nil || sz > 1<<24 {
			return fail("shape %v: too large or invalid", shp)
		}
		k := &constant{isInt: val.isInt, shape: make([]int, len(shp))}
		for i, d := range shp {
			k.shape[i] = int(d)
		}
		if val.isInt {
			k.i = make([]int64, sz)
			for i := range k.i {
				k.i[i] = val.i[0]
			}
		} else {
			k.f = make([]float32, sz)
			for i := range k.f {
				k.f[i] = val.f[0]
			}
		}
		return k, true
	}
	if _, ok := converters[n.OpType]; !ok {
		return fail("operator %s is not supported", n.OpType)
	}
	switch n.OpType {
	case "Add", "Sub", "Mul", "Div":
		for _, in := range n.Inputs {
			if k := c.consts[in]; k != nil && k.isInt {
				k, err := c.foldIntArith(n)
				if err != nil {
					return fail("%v", err)
				}
				return k, true
			}
		}
	case "Equal", "Where":
		k, err := c.foldSelect(n)
		if err != nil {
			return fail("%v", err)
		}
		return k, true
	case "Cast":
		a := newAttrs(n)
		to := int32(a.int("to", 0))
		a.ignore("saturate")
		if errs := a.check(); len(errs) > 0 {
			return fail("%s", strings.Join(errs, "; "))
		}
		src := c.consts[input(n, 0)]
		if src == nil {
			return fail("input 0 is missing")
		}
		k := &constant{isInt: !isFloatType(to), shape: clone(src.shape)}
		switch {
		case src.isInt && !k.isInt:
			if src.hasBatch() {
				return fail("cast of a batch-size-dependent value to float is not supported")
			}
			k.f = make([]float32, len(src.i))
			for i, v := range src.i {
				k.f[i] = float32(v)
			}
		case src.isInt:
			k.i, k.batch = append([]int64{}, src.i...), append([]bool(nil), src.batch...)
		case k.isInt:
			k.i = make([]int64, len(src.f))
			for i, v := range src.f {
				if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 1<<62 {
					return fail("cast of %v to an integer", v)
				}
				k.i[i] = int64(v)
			}
		default:
			k.f = append([]float32{}, src.f...)
		}
		return k, true
	}
	for _, in := range n.Inputs {
		if k := c.consts[in]; k != nil && k.hasBatch() && !dataMovement[n.OpType] && n.OpType != "Reshape" {
			return fail("a value computed at load time would depend on the batch size")
		}
	}
	c.folding = true
	layer, data, ok := c.layerFor(n)
	c.folding = false
	if !ok {
		return nil, false
	}
	// Run the layer on the constant inputs; integer inputs are replaced by the
	// indices of their elements, and the result mapped back.
	anyInt := false
	for _, d := range data {
		if k := c.consts[d]; k != nil && k.isInt {
			anyInt = true
		}
	}
	if anyInt && !dataMovement[n.OpType] {
		return fail("%s of integer tensors is not supported", n.OpType)
	}
	var ins []*nn.Tensor
	type src struct {
		k   *constant
		off int
	}
	var srcs []src
	off := 0
	for _, d := range data {
		k := c.consts[d]
		if k == nil {
			return fail("input %q is not known at load time", d)
		}
		if k.isInt != anyInt {
			return fail("mixed integer and float inputs")
		}
		if !anyInt {
			ins = append(ins, &nn.Tensor{Shape: clone(k.shape), Data: k.f})
			continue
		}
		if off+len(k.i) > 1<<24 {
			return fail("integer tensors too large to fold")
		}
		idx := make([]float32, len(k.i))
		for j := range idx {
			idx[j] = float32(off + j)
		}
		ins = append(ins, &nn.Tensor{Shape: clone(k.shape), Data: idx})
		srcs = append(srcs, src{k, off})
		off += len(k.i)
	}
	var shapes [][]int
	for _, t := range ins {
		shapes = append(shapes, t.Shape)
	}
	outShape, err := layer.OutputShape(shapes...)
	if err != nil {
		return fail("%v", err)
	}
	if sz, err := shapeSize(outShape); err != nil || sz > maxFoldElements {
		return fail("load-time result of shape %v is too large (limit %d elements)", outShape, maxFoldElements)
	}
	out, err := layer.Forward(ins...)
	if err != nil {
		return fail("%v", err)
	}
	if !anyInt {
		return &constant{shape: clone(out.Shape), f: out.Data}, true
	}
	k := &constant{isInt: true, shape: clone(out.Shape), i: make([]int64, len(out.Data)), batch: make([]bool, len(out.Data))}
	for j, v := range out.Data {
		p := int(v)
		for _, s := range srcs {
			if p >= s.off && p < s.off+len(s.k.i) {
				k.i[j] = s.k.i[p-s.off]
				if s.k.batch != nil {
					k.batch[j] = s.k.batch[p-s.off]
				}
			}
		}
	}
	if !k.hasBatch() {
		k.batch = nil
	}
	return k, true
}

func constantValue(a *attrs) (*constant, error) {
	switch {
	case a.has("value"):
		t := a.tensor("value")
		if t == nil {
			return nil, errors.New("value is not a tensor")
		}
		return decodeTensor(t, nil)
	case a.has("value_float"):
		return &constant{shape: []int{}, f: []float32{a.float("value_float", 0)}}, nil
	case a.has("value_floats"):
		v := a.floats("value_floats")
		return &constant{shape: []int{len(v)}, f: append([]float32{}, v...)}, nil
	case a.has("value_int"):
		return &constant{isInt: true, shape: []int{}, i: []int64{a.int("value_int", 0)}}, nil
	case a.has("value_ints"):
		v := a.ints("value_ints")
		return &constant{isInt: true, shape: []int{len(v)}, i: append([]int64{}, v...)}, nil
	}
	return nil, errors.New("no supported value attribute (value, value_float(s), value_int(s))")
}

// foldIntArith evaluates Add/Sub/Mul/Div of integer constants (shape arithmetic).
func (c *converter) foldIntArith(n *nodeProto) (*constant, error) {
	if len(n.Inputs) != 2 {
		return nil, fmt.Errorf("got %d inputs, want 2", len(n.Inputs))
	}
	x, y := c.consts[input(n, 0)], c.consts[input(n, 1)]
	if x == nil || y == nil || !x.isInt || !y.isInt {
		return nil, errors.New("mixed integer and float operands")
	}
	if x.hasBatch() || y.hasBatch() {
		return nil, errors.New("arithmetic on the batch size is not supported")
	}
	if len(n.Attrs) > 0 {
		return nil, fmt.Errorf("attribute %q is not supported", n.Attrs[0].Name)
	}
	s, ok := nn.BroadcastShape(x.shape, y.shape)
	if !ok {
		return nil, fmt.Errorf("shapes %v and %v do not broadcast", x.shape, y.shape)
	}
	sz, err := shapeSize(s)
	if err != nil || sz > 1<<24 {
		return nil, fmt.Errorf("shape %v too large", s)
	}
	// Broadcast indices with the float kernel on index tensors.
	xi, yi := make([]float32, len(x.i)), make([]float32, len(y.i))
	for i := range xi {
		xi[i] = float32(i)
	}
	for i := range yi {
		yi[i] = float32(i)
	}
	zero := make([]float32, 1)
	ix, iy := make([]float32, sz), make([]float32, sz)
	broadcast(opAdd, ix, s, xi, x.shape, zero, nil)
	broadcast(opAdd, iy, s, yi, y.shape, zero, nil)
	k := &constant{isInt: true, shape: s, i: make([]int64, sz)}
	for j := range k.i {
		a, b := x.i[int(ix[j])], y.i[int(iy[j])]
		switch n.OpType {
		case "Add":
			k.i[j] = a + b
		case "Sub":
			k.i[j] = a - b
		case "Mul":
			k.i[j] = a * b
		case "Div":
			if b == 0 {
				return nil, errors.New("integer division by zero")
			}
			k.i[j] = a / b
		}
	}
	return k, nil
}

// foldSelect evaluates Equal and Where on integer constants (the exporters'
// handling of -1 in Expand shapes). Batch-size elements may be selected by
// Where but not compared.
func (c *converter) foldSelect(n *nodeProto) (*constant, error) {
	want := 2
	if n.OpType == "Where" {
		want = 3
	}
	if len(n.Inputs) != want || len(n.Attrs) > 0 {
		return nil, fmt.Errorf("want %d inputs and no attributes", want)
	}
	ks := make([]*constant, want)
	for i := range ks {
		ks[i] = c.consts[input(n, i)]
		if ks[i] == nil {
			return nil, fmt.Errorf("input %d is not a constant", i)
		}
		if !ks[i].isInt {
			return nil, fmt.Errorf("%s of float tensors is not supported", n.OpType)
		}
	}
	if n.OpType == "Where" && ks[0].hasBatch() {
		return nil, errors.New("a condition on the batch size is not supported")
	}
	s := ks[0].shape
	for _, k := range ks[1:] {
		var ok bool
		if s, ok = nn.BroadcastShape(s, k.shape); !ok {
			return nil, fmt.Errorf("shapes do not broadcast")
		}
	}
	sz, err := shapeSize(s)
	if err != nil || sz > 1<<24 {
		return nil, fmt.Errorf("shape %v too large", s)
	}
	idx := make([][]float32, want)
	zero := make([]float32, 1)
	for i, k := range ks {
		src := make([]float32, len(k.i))
		for j := range src {
			src[j] = float32(j)
		}
		idx[i] = make([]float32, sz)
		broadcast(opAdd, idx[i], s, src, k.shape, zero, nil)
	}
	out := &constant{isInt: true, shape: s, i: make([]int64, sz), batch: make([]bool, sz)}
	at := func(k int, j int) (int64, bool) {
		p := int(idx[k][j])
		return ks[k].i[p], ks[k].batch != nil && ks[k].batch[p]
	}
	for j := range out.i {
		if n.OpType == "Equal" {
			a, ba := at(0, j)
			b, bb := at(1, j)
			switch {
			case ba && bb:
				out.i[j] = 1
			case ba && b <= 0, bb && a <= 0:
				// The batch size is positive: it differs from 0 and -1.
			case ba || bb:
				return nil, errors.New("comparison of the batch size with a positive number is not supported")
			case a == b:
				out.i[j] = 1
			}
			continue
		}
		cond, _ := at(0, j)
		pick := 2
		if cond != 0 {
			pick = 1
		}
		out.i[j], out.batch[j] = at(pick, j)
	}
	if !out.hasBatch() {
		out.batch = nil
	}
	return out, nil
}
