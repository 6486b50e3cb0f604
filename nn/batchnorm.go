package nn

import (
	"fmt"
	"math"
)

// BatchNorm2dOptions configures a BatchNorm2d layer. The zero value of each
// optional field is PyTorch's default.
type BatchNorm2dOptions struct {
	NumFeatures int     // channels C; required
	Eps         float64 // added to the variance; zero value: 1e-5
	NoAffine    bool    // PyTorch affine=False: no weight and bias
}

// BatchNorm2d normalises NCHW input per channel with its running statistics
// (PyTorch nn.BatchNorm2d in eval mode):
// y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.
// Parameters: "weight", "bias" (unless NoAffine), buffers "running_mean",
// "running_var", all [NumFeatures].
type BatchNorm2d struct {
	Options     BatchNorm2dOptions // normalised
	Weight      *Tensor            // nil with NoAffine
	Bias        *Tensor            // nil with NoAffine
	RunningMean *Tensor
	RunningVar  *Tensor
}

// NewBatchNorm2d returns a BatchNorm2d layer initialised like PyTorch's
// (weight 1, bias 0, running_mean 0, running_var 1).
func NewBatchNorm2d(o BatchNorm2dOptions) (*BatchNorm2d, error) {
	if o.NumFeatures <= 0 {
		return nil, fmt.Errorf("nn: BatchNorm2d: num_features %d must be positive", o.NumFeatures)
	}
	if o.Eps == 0 {
		o.Eps = 1e-5
	}
	if o.Eps < 0 || math.IsNaN(o.Eps) {
		return nil, fmt.Errorf("nn: BatchNorm2d: eps %g must be positive", o.Eps)
	}
	c := o.NumFeatures
	b := &BatchNorm2d{Options: o, RunningMean: NewTensor(c), RunningVar: NewTensor(c)}
	for i := range b.RunningVar.Data {
		b.RunningVar.Data[i] = 1
	}
	if !o.NoAffine {
		b.Weight, b.Bias = NewTensor(c), NewTensor(c)
		for i := range b.Weight.Data {
			b.Weight.Data[i] = 1
		}
	}
	return b, nil
}

func (*BatchNorm2d) Op() string { return "BatchNorm2d" }

// Params returns "weight", "bias" (unless NoAffine), "running_mean" and
// "running_var".
func (b *BatchNorm2d) Params() []Param {
	var ps []Param
	if b.Weight != nil {
		ps = append(ps, Param{"weight", b.Weight}, Param{"bias", b.Bias})
	}
	return append(ps, Param{"running_mean", b.RunningMean}, Param{"running_var", b.RunningVar})
}

func (b *BatchNorm2d) OutputShape(in ...[]int) ([]int, error) {
	x, err := oneShape("BatchNorm2d", in)
	if err != nil {
		return nil, err
	}
	if len(x) != 4 || x[1] != b.Options.NumFeatures {
		return nil, shapeErr("BatchNorm2d", fmt.Sprintf("[N %d H W]", b.Options.NumFeatures), x)
	}
	return cloneShape(x), nil
}

func (b *BatchNorm2d) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("BatchNorm2d", in)
	if err != nil {
		return nil, err
	}
	y := &Tensor{Shape: cloneShape(x.Shape), Data: make([]float32, len(x.Data))}
	return b.apply(x, y)
}

func (b *BatchNorm2d) forwardInPlace(x *Tensor) (*Tensor, error) { return b.apply(x, x) }

// apply writes the normalised x into y (which may be x).
func (b *BatchNorm2d) apply(x, y *Tensor) (*Tensor, error) {
	if _, err := b.OutputShape(x.Shape); err != nil {
		return nil, err
	}
	c := b.Options.NumFeatures
	scale := make([]float32, c)
	shift := make([]float32, c)
	for i := 0; i < c; i++ {
		inv := 1 / math.Sqrt(float64(b.RunningVar.Data[i])+b.Options.Eps)
		w, bi := 1.0, 0.0
		if b.Weight != nil {
			w, bi = float64(b.Weight.Data[i]), float64(b.Bias.Data[i])
		}
		scale[i] = float32(w * inv)
		shift[i] = float32(bi - float64(b.RunningMean.Data[i])*w*inv)
	}
	hw := x.Shape[2] * x.Shape[3]
	parallel(x.Shape[0]*c, max(1, elementwiseGrain/(hw+1)), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			sc, sh := scale[pl%c], shift[pl%c]
			src, dst := x.Data[pl*hw:(pl+1)*hw], y.Data[pl*hw:(pl+1)*hw]
			for i, v := range src {
				dst[i] = v*sc + sh
			}
		}
	})
	return y, nil
}
