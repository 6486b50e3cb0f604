package nn

import (
	"fmt"

	"github.com/actrec/actrec/nn/internal/gemm"
)

// LinearOptions configures a Linear layer. The zero value of each field is
// PyTorch's default.
type LinearOptions struct {
	InFeatures  int  // size of the last input dimension; required
	OutFeatures int  // size of the last output dimension; required
	NoBias      bool // PyTorch bias=False: no bias parameter
}

// Linear is y = x·Wᵀ + b over the last dimension (PyTorch nn.Linear).
// Parameters: "weight" [OutFeatures, InFeatures], "bias" [OutFeatures].
type Linear struct {
	Options LinearOptions
	Weight  *Tensor
	Bias    *Tensor // nil without bias
}

// NewLinear returns a Linear layer with zero weights.
func NewLinear(o LinearOptions) (*Linear, error) {
	if o.InFeatures <= 0 || o.OutFeatures <= 0 {
		return nil, fmt.Errorf("nn: Linear: in_features %d and out_features %d must be positive", o.InFeatures, o.OutFeatures)
	}
	l := &Linear{Options: o, Weight: NewTensor(o.OutFeatures, o.InFeatures)}
	if !o.NoBias {
		l.Bias = NewTensor(o.OutFeatures)
	}
	return l, nil
}

func (*Linear) Op() string { return "Linear" }

// Params returns "weight" and, with a bias, "bias".
func (l *Linear) Params() []Param {
	ps := []Param{{"weight", l.Weight}}
	if l.Bias != nil {
		ps = append(ps, Param{"bias", l.Bias})
	}
	return ps
}

func (l *Linear) OutputShape(in ...[]int) ([]int, error) {
	x, err := oneShape("Linear", in)
	if err != nil {
		return nil, err
	}
	if len(x) == 0 || x[len(x)-1] != l.Options.InFeatures {
		return nil, shapeErr("Linear", fmt.Sprintf("[N %d]", l.Options.InFeatures), x)
	}
	out := cloneShape(x)
	out[len(out)-1] = l.Options.OutFeatures
	return out, nil
}

func (l *Linear) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("Linear", in)
	if err != nil {
		return nil, err
	}
	s, err := l.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	k, n := l.Options.InFeatures, l.Options.OutFeatures
	m := len(x.Data) / k
	y := &Tensor{Shape: s, Data: make([]float32, m*n)}
	if m == 0 {
		return y, nil
	}
	var beta float32
	if l.Bias != nil {
		for i := 0; i < m; i++ {
			copy(y.Data[i*n:(i+1)*n], l.Bias.Data)
		}
		beta = 1
	}
	gemm.SgemmParallel(0, false, true, m, n, k, 1, x.Data, k, l.Weight.Data, k, beta, y.Data, n)
	return y, nil
}
