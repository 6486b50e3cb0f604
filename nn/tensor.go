package nn

import (
	"fmt"
	"math"
)

// Tensor is a dense float32 tensor in row-major order (NCHW for images).
//
// Shape holds the size of every dimension; Data holds prod(Shape) values.
// A Tensor is a plain value: it is not safe for concurrent modification, but
// any number of goroutines may read it at once.
type Tensor struct {
	Shape []int
	Data  []float32
}

// NewTensor returns a zero-filled tensor of the given shape. Negative
// dimensions are treated as zero.
func NewTensor(shape ...int) *Tensor {
	s := make([]int, len(shape))
	n := 1
	for i, d := range shape {
		if d < 0 {
			d = 0
		}
		s[i] = d
		n *= d
	}
	return &Tensor{Shape: s, Data: make([]float32, n)}
}

// FromSlice returns a tensor of the given shape backed by data (not copied).
// It returns an error if len(data) does not match the shape.
func FromSlice(data []float32, shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("nn: shape %v needs %d values, got %d", shape, n, len(data))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}, nil
}

// Numel returns the number of elements implied by t.Shape.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Clone returns a deep copy of t.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// String returns a short description: shape and the first few values.
func (t *Tensor) String() string {
	if t == nil {
		return "Tensor(nil)"
	}
	const show = 6
	if len(t.Data) <= show {
		return fmt.Sprintf("Tensor%v%v", t.Shape, t.Data)
	}
	return fmt.Sprintf("Tensor%v%v...", t.Shape, t.Data[:show])
}

// numel returns the number of elements of shape, or an error if a dimension
// is negative or the product overflows.
func numel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("nn: negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt32*16/d {
			return 0, fmt.Errorf("nn: shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

// check reports whether t is a consistent tensor (non-nil, non-negative
// dimensions, len(Data) == prod(Shape)).
func (t *Tensor) check() error {
	if t == nil {
		return fmt.Errorf("nil tensor")
	}
	n, err := numel(t.Shape)
	if err != nil {
		return err
	}
	if n != len(t.Data) {
		return fmt.Errorf("tensor of shape %v has %d values, want %d", t.Shape, len(t.Data), n)
	}
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func cloneShape(s []int) []int { return append([]int(nil), s...) }
