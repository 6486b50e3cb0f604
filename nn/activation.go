package nn

import (
	"fmt"
	"math"
)

// elementwiseGrain is the minimum number of elements per goroutine for
// element-wise layers.
const elementwiseGrain = 1 << 15

// unary applies f element-wise to x into a new tensor.
func unary(x *Tensor, f func(dst, src []float32)) *Tensor {
	y := &Tensor{Shape: cloneShape(x.Shape), Data: make([]float32, len(x.Data))}
	parallel(len(x.Data), elementwiseGrain, func(lo, hi int) { f(y.Data[lo:hi], x.Data[lo:hi]) })
	return y
}

func sameOutputShape(op string, in [][]int) ([]int, error) {
	s, err := oneShape(op, in)
	if err != nil {
		return nil, err
	}
	return cloneShape(s), nil
}

// inPlaceLayer is implemented by layers that can compute their output in
// the storage of their single input. Model uses it when nothing can observe
// the input any more (its last reader, no hook on the layer).
type inPlaceLayer interface {
	forwardInPlace(x *Tensor) (*Tensor, error)
}

// inPlace applies f element-wise to x in place.
func inPlace(x *Tensor, f func(dst, src []float32)) *Tensor {
	parallel(len(x.Data), elementwiseGrain, func(lo, hi int) { f(x.Data[lo:hi], x.Data[lo:hi]) })
	return x
}

// ReLU is max(x, 0) element-wise (PyTorch nn.ReLU). NaN stays NaN.
type ReLU struct{}

// NewReLU returns a ReLU layer.
func NewReLU() *ReLU { return &ReLU{} }

func (*ReLU) Op() string                             { return "ReLU" }
func (*ReLU) OutputShape(in ...[]int) ([]int, error) { return sameOutputShape("ReLU", in) }
func (r *ReLU) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("ReLU", in)
	if err != nil {
		return nil, err
	}
	return unary(x, reluSlice), nil
}

func (r *ReLU) forwardInPlace(x *Tensor) (*Tensor, error) { return inPlace(x, reluSlice), nil }

// ReLUSlice sets dst[i] = max(src[i], 0) for every i with the kernel ReLU
// layers use (the fused Conv2d→ReLU chains give the same values), on the
// calling goroutine; dst and src may be the same slice. len(dst) must be
// at least len(src).
func ReLUSlice(dst, src []float32) { reluSlice(dst, src) }

// reluSliceGo is the portable reluSlice (relu_amd64.go, relu_other.go).
func reluSliceGo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = max(v, 0) // branch-free; NaN stays NaN
	}
}

// Sigmoid is 1/(1+exp(-x)) element-wise (PyTorch nn.Sigmoid).
type Sigmoid struct{}

// NewSigmoid returns a Sigmoid layer.
func NewSigmoid() *Sigmoid { return &Sigmoid{} }

func (*Sigmoid) Op() string                             { return "Sigmoid" }
func (*Sigmoid) OutputShape(in ...[]int) ([]int, error) { return sameOutputShape("Sigmoid", in) }
func (*Sigmoid) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("Sigmoid", in)
	if err != nil {
		return nil, err
	}
	return unary(x, sigmoidSlice), nil
}

func (*Sigmoid) forwardInPlace(x *Tensor) (*Tensor, error) { return inPlace(x, sigmoidSlice), nil }

func sigmoidSlice(dst, src []float32) {
	for i, v := range src {
		dst[i] = float32(1 / (1 + math.Exp(-float64(v))))
	}
}

// Tanh is the hyperbolic tangent element-wise (PyTorch nn.Tanh).
type Tanh struct{}

// NewTanh returns a Tanh layer.
func NewTanh() *Tanh { return &Tanh{} }

func (*Tanh) Op() string                             { return "Tanh" }
func (*Tanh) OutputShape(in ...[]int) ([]int, error) { return sameOutputShape("Tanh", in) }
func (*Tanh) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("Tanh", in)
	if err != nil {
		return nil, err
	}
	return unary(x, tanhSlice), nil
}

func (*Tanh) forwardInPlace(x *Tensor) (*Tensor, error) { return inPlace(x, tanhSlice), nil }

func tanhSlice(dst, src []float32) {
	for i, v := range src {
		dst[i] = float32(math.Tanh(float64(v)))
	}
}

// GELU is the Gaussian error linear unit (PyTorch nn.GELU):
// x*Φ(x) = 0.5*x*(1+erf(x/√2)), or with Approximate "tanh"
// 0.5*x*(1+tanh(√(2/π)*(x+0.044715x³))).
type GELU struct {
	Approximate string // "none" (or "") for the exact erf form, "tanh"
}

// NewGELU returns a GELU layer; approximate is "none" (or "") or "tanh".
func NewGELU(approximate string) (*GELU, error) {
	switch approximate {
	case "", "none", "tanh":
		return &GELU{Approximate: approximate}, nil
	}
	return nil, fmt.Errorf("nn: GELU: approximate %q, want \"none\" or \"tanh\"", approximate)
}

func (*GELU) Op() string                             { return "GELU" }
func (*GELU) OutputShape(in ...[]int) ([]int, error) { return sameOutputShape("GELU", in) }
func (g *GELU) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("GELU", in)
	if err != nil {
		return nil, err
	}
	return unary(x, g.slice), nil
}

func (g *GELU) forwardInPlace(x *Tensor) (*Tensor, error) { return inPlace(x, g.slice), nil }

func (g *GELU) slice(dst, src []float32) {
	if g.Approximate == "tanh" {
		c := math.Sqrt(2 / math.Pi)
		for i, v := range src {
			x := float64(v)
			dst[i] = float32(0.5 * x * (1 + math.Tanh(c*(x+0.044715*x*x*x))))
		}
		return
	}
	for i, v := range src {
		x := float64(v)
		dst[i] = float32(0.5 * x * (1 + math.Erf(x/math.Sqrt2)))
	}
}

// Dropout is the identity at inference (PyTorch nn.Dropout in eval mode).
type Dropout struct {
	P float64 // drop probability during training; unused
}

// NewDropout returns a Dropout layer with drop probability p (unused at
// inference).
func NewDropout(p float64) *Dropout { return &Dropout{P: p} }

func (*Dropout) Op() string                             { return "Dropout" }
func (*Dropout) OutputShape(in ...[]int) ([]int, error) { return sameOutputShape("Dropout", in) }
func (*Dropout) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("Dropout", in)
	if err != nil {
		return nil, err
	}
	return x.Clone(), nil
}

func (*Dropout) forwardInPlace(x *Tensor) (*Tensor, error) { return x, nil }

// Softmax is exp(x)/sum(exp(x)) along dimension Dim (PyTorch nn.Softmax).
type Softmax struct {
	Dim int // negative values count from the end
}

// NewSoftmax returns a Softmax layer over dimension dim (negative: from the
// end).
func NewSoftmax(dim int) *Softmax { return &Softmax{Dim: dim} }

func (*Softmax) Op() string { return "Softmax" }

func (s *Softmax) dim(shape []int) (int, bool) {
	d := s.Dim
	if d < 0 {
		d += len(shape)
	}
	return d, d >= 0 && d < len(shape)
}

func (s *Softmax) OutputShape(in ...[]int) ([]int, error) {
	x, err := oneShape("Softmax", in)
	if err != nil {
		return nil, err
	}
	if _, ok := s.dim(x); !ok {
		return nil, shapeErr("Softmax", fmt.Sprintf("a tensor with dimension %d", s.Dim), x)
	}
	return cloneShape(x), nil
}

func (s *Softmax) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("Softmax", in)
	if err != nil {
		return nil, err
	}
	d, ok := s.dim(x.Shape)
	if !ok {
		return nil, shapeErr("Softmax", fmt.Sprintf("a tensor with dimension %d", s.Dim), x.Shape)
	}
	outer, n, inner := 1, x.Shape[d], 1
	for _, v := range x.Shape[:d] {
		outer *= v
	}
	for _, v := range x.Shape[d+1:] {
		inner *= v
	}
	y := &Tensor{Shape: cloneShape(x.Shape), Data: make([]float32, len(x.Data))}
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*n*inner + i
			mx := math.Inf(-1)
			for k := 0; k < n; k++ {
				mx = math.Max(mx, float64(x.Data[base+k*inner]))
			}
			var sum float64
			for k := 0; k < n; k++ {
				sum += math.Exp(float64(x.Data[base+k*inner]) - mx)
			}
			for k := 0; k < n; k++ {
				y.Data[base+k*inner] = float32(math.Exp(float64(x.Data[base+k*inner])-mx) / sum)
			}
		}
	}
	return y, nil
}
