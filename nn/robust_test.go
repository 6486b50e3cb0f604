package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// allLayers returns one layer of every type, with non-default options.
func allLayers(t testing.TB) []Layer {
	t.Helper()
	must := func(l Layer, err error) Layer {
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	gelu, _ := NewGELU("none")
	return []Layer{
		must(NewConv2d(Conv2dOptions{InChannels: 2, OutChannels: 4, KernelSize: [2]int{3, 2}, Stride: [2]int{2, 1}, Padding: [2]int{1, 0}, Dilation: [2]int{1, 2}, Groups: 2})),
		must(NewConv2d(Conv2dOptions{InChannels: 3, OutChannels: 3, KernelSize: [2]int{1, 1}})),
		must(NewMaxPool2d(PoolOptions{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}, CeilMode: true})),
		must(NewMaxPool2d(PoolOptions{KernelSize: [2]int{2, 2}})),
		must(NewAvgPool2d(PoolOptions{KernelSize: [2]int{2, 3}, Padding: [2]int{1, 1}, CeilMode: true})),
		must(NewAdaptiveAvgPool2d([2]int{2, 1})),
		must(NewLinear(LinearOptions{InFeatures: 3, OutFeatures: 2})),
		must(NewBatchNorm2d(BatchNorm2dOptions{NumFeatures: 3})),
		NewReLU(), NewSigmoid(), NewTanh(), gelu, NewDropout(0.1), NewSoftmax(-1), NewSoftmax(1),
		NewFlatten(1, -1), NewFlatten(0, 1), NewAdd(),
	}
}

// TestLayersNeverPanic feeds every layer tensors of random ranks and
// dimensions (including zero sizes), inconsistent tensors and wrong input
// counts: each call must return an error or an output of the shape that
// OutputShape announces.
func TestLayersNeverPanic(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	randShape := func() []int {
		s := make([]int, r.IntN(6))
		for i := range s {
			s[i] = r.IntN(5)
		}
		return s
	}
	for _, l := range allLayers(t) {
		for range 400 {
			nin := 1
			if l.Op() == "Add" {
				nin = 2
			}
			if r.IntN(10) == 0 {
				nin = r.IntN(3)
			}
			in := make([]*Tensor, nin)
			shapes := make([][]int, nin)
			for i := range in {
				in[i] = NewTensor(randShape()...)
				fillRand(r, in[i])
				shapes[i] = in[i].Shape
			}
			if nin > 0 && r.IntN(20) == 0 {
				in[0] = &Tensor{Shape: []int{2, 3}, Data: make([]float32, 5)}
			}
			name := fmt.Sprintf("%s%v", l.Op(), shapes)
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("%s: panic: %v", name, p)
					}
				}()
				out, err := l.Forward(in...)
				ws, serr := l.OutputShape(shapes...)
				if err != nil {
					return
				}
				if serr != nil {
					t.Fatalf("%s: Forward works but OutputShape fails: %v", name, serr)
				}
				if fmt.Sprint(out.Shape) != fmt.Sprint(ws) || out.check() != nil {
					t.Fatalf("%s: output shape %v with %d values, OutputShape %v", name, out.Shape, len(out.Data), ws)
				}
			}()
		}
	}
}
