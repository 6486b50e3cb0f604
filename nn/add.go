package nn

import "fmt"

// Add is the element-wise sum of two tensors, for residual connections
// (op "Add"). Shapes broadcast as in PyTorch/NumPy: trailing dimensions are
// aligned and a dimension of size 1 stretches to the other's size.
type Add struct{}

// NewAdd returns an Add layer.
func NewAdd() *Add { return &Add{} }

func (*Add) Op() string { return "Add" }

// BroadcastShape is the NumPy/PyTorch broadcast of shapes a and b; false if they do not broadcast.
func BroadcastShape(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, false
		}
	}
	return out, true
}

func (*Add) OutputShape(in ...[]int) ([]int, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("nn: Add: got %d inputs, want 2", len(in))
	}
	s, ok := BroadcastShape(in[0], in[1])
	if !ok {
		return nil, shapeErr("Add", "equal or broadcastable shapes", in...)
	}
	return s, nil
}

// broadcastStrides returns the strides of a tensor of shape s viewed with
// the n-dimensional broadcast shape (0 for stretched dimensions).
func broadcastStrides(s []int, n int) []int {
	st := make([]int, n)
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		j := n - len(s) + i
		if s[i] != 1 {
			st[j] = acc
		}
		acc *= s[i]
	}
	return st
}

func (a *Add) Forward(in ...*Tensor) (*Tensor, error) {
	shapes, err := inputShapes("Add", 2, in)
	if err != nil {
		return nil, err
	}
	s, err := a.OutputShape(shapes...)
	if err != nil {
		return nil, err
	}
	x, y := in[0], in[1]
	n, _ := numel(s)
	out := &Tensor{Shape: s, Data: make([]float32, n)}
	if sameShape(x.Shape, y.Shape) {
		parallel(len(x.Data), elementwiseGrain, func(lo, hi int) {
			d, xs, ys := out.Data[lo:hi], x.Data[lo:hi], y.Data[lo:hi]
			for i := range d {
				d[i] = xs[i] + ys[i]
			}
		})
		return out, nil
	}
	sx, sy := broadcastStrides(x.Shape, len(s)), broadcastStrides(y.Shape, len(s))
	idx := make([]int, len(s))
	ix, iy := 0, 0
	for k := 0; k < n; k++ {
		out.Data[k] = x.Data[ix] + y.Data[iy]
		for d := len(s) - 1; d >= 0; d-- {
			idx[d]++
			ix += sx[d]
			iy += sy[d]
			if idx[d] < s[d] {
				break
			}
			ix -= sx[d] * s[d]
			iy -= sy[d] * s[d]
			idx[d] = 0
		}
	}
	return out, nil
}
