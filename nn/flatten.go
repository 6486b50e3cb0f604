package nn

import "fmt"

// Flatten merges dimensions StartDim..EndDim into one (PyTorch nn.Flatten,
// whose defaults are StartDim 1, EndDim -1). Negative dims count from the end.
type Flatten struct {
	StartDim, EndDim int
}

// NewFlatten returns a Flatten layer; PyTorch's default is NewFlatten(1, -1).
func NewFlatten(startDim, endDim int) *Flatten { return &Flatten{StartDim: startDim, EndDim: endDim} }

func (*Flatten) Op() string { return "Flatten" }

func (f *Flatten) OutputShape(in ...[]int) ([]int, error) {
	x, err := oneShape("Flatten", in)
	if err != nil {
		return nil, err
	}
	s, e := f.StartDim, f.EndDim
	if s < 0 {
		s += len(x)
	}
	if e < 0 {
		e += len(x)
	}
	if len(x) == 0 || s < 0 || e >= len(x) || s > e {
		return nil, shapeErr("Flatten", fmt.Sprintf("a tensor with dimensions %d..%d", f.StartDim, f.EndDim), x)
	}
	out := append([]int(nil), x[:s]...)
	n := 1
	for _, d := range x[s : e+1] {
		n *= d
	}
	out = append(out, n)
	return append(out, x[e+1:]...), nil
}

func (f *Flatten) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("Flatten", in)
	if err != nil {
		return nil, err
	}
	s, err := f.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	return &Tensor{Shape: s, Data: append([]float32(nil), x.Data...)}, nil
}

func (f *Flatten) forwardInPlace(x *Tensor) (*Tensor, error) {
	s, err := f.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	return &Tensor{Shape: s, Data: x.Data}, nil
}
