package nn

import (
	"fmt"
	"strings"
)

// Layer is a leaf computation of a model: a convolution, an activation, a
// pooling step... Layers are built with the New* constructors of this package
// (or by other packages implementing the interface) and wired into a Model
// with a Builder.
//
// Implementations must be safe for concurrent use by multiple goroutines and
// must never modify their input tensors. Forward must return an error, never
// panic, on input of the wrong shape.
type Layer interface {
	// Op is the PyTorch class name of the layer: "Conv2d", "ReLU", "Linear"...
	Op() string
	// OutputShape returns the full output shape (including the batch
	// dimension) for the given full input shapes, or a *ShapeError.
	OutputShape(in ...[]int) ([]int, error)
	// Forward computes the layer's output. The result is a new tensor that
	// does not alias any input.
	Forward(in ...*Tensor) (*Tensor, error)
}

// Param is a named parameter or buffer of a layer, with its PyTorch
// state_dict name relative to the layer ("weight", "bias", "running_mean",
// "running_var"). T is the layer's own storage, not a copy.
type Param struct {
	Name string
	T    *Tensor
}

// paramLayer is implemented by layers with parameters or buffers.
type paramLayer interface {
	Params() []Param
}

// ShapeError reports input tensors whose shapes a module cannot accept.
// Model.Forward and Model.Shapes return it (wrapped or not) with Path and Op
// set to the module that rejected its input.
type ShapeError struct {
	Path string  // module path ("" if the error comes from a bare Layer)
	Op   string  // module op, e.g. "Conv2d"
	Got  [][]int // the shapes the module was given
	Want string  // what it accepts, e.g. "[N 1 H W]"
}

func (e *ShapeError) Error() string {
	var b strings.Builder
	b.WriteString("nn: ")
	if e.Path != "" {
		fmt.Fprintf(&b, "%s (%s): ", e.Path, e.Op)
	} else {
		fmt.Fprintf(&b, "%s: ", e.Op)
	}
	switch len(e.Got) {
	case 1:
		fmt.Fprintf(&b, "input shape %v", fmtShape(e.Got[0]))
	default:
		b.WriteString("input shapes ")
		for i, s := range e.Got {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(fmtShape(s))
		}
	}
	fmt.Fprintf(&b, ", want %s", e.Want)
	return b.String()
}

func fmtShape(s []int) string { return fmt.Sprint(s) }

// shapeErr builds a *ShapeError for op given its input shapes.
func shapeErr(op, want string, in ...[]int) error {
	got := make([][]int, len(in))
	for i, s := range in {
		got[i] = cloneShape(s)
	}
	return &ShapeError{Op: op, Got: got, Want: want}
}

// inputShapes returns the shapes of in, or an error if a tensor is nil or
// inconsistent.
func inputShapes(op string, n int, in []*Tensor) ([][]int, error) {
	if len(in) != n {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want %d", op, len(in), n)
	}
	s := make([][]int, len(in))
	for i, t := range in {
		if err := t.check(); err != nil {
			return nil, fmt.Errorf("nn: %s: input %d: %v", op, i, err)
		}
		s[i] = t.Shape
	}
	return s, nil
}

// oneInput checks that a unary layer got exactly one consistent tensor.
func oneInput(op string, in []*Tensor) (*Tensor, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want 1", op, len(in))
	}
	if err := in[0].check(); err != nil {
		return nil, fmt.Errorf("nn: %s: %v", op, err)
	}
	return in[0], nil
}

// oneShape checks that a unary layer got exactly one shape.
func oneShape(op string, in [][]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want 1", op, len(in))
	}
	return in[0], nil
}
