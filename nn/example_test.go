package nn_test

import (
	"context"
	"fmt"

	"github.com/actrec/actrec/nn"
)

func Example() {
	b := nn.NewBuilder("tiny")
	x := b.Input("x", -1, 3)
	fc, err := nn.NewLinear(nn.LinearOptions{InFeatures: 3, OutFeatures: 2})
	if err != nil {
		panic(err)
	}
	copy(fc.Weight.Data, []float32{1, 0, -1, 0.5, 0.5, 0.5})
	copy(fc.Bias.Data, []float32{0, -1})
	h := b.Add("head.fc", fc, x)
	y := b.Add("head.relu", nn.NewReLU(), h)
	m, err := b.Build(y)
	if err != nil {
		panic(err)
	}
	for _, mod := range m.Modules() {
		fmt.Printf("%q %s\n", mod.Path, mod.Op)
	}
	hook, _ := m.RegisterForwardHook("head.fc", func(ctx context.Context, mod nn.ModuleInfo, in []*nn.Tensor, out *nn.Tensor) {
		fmt.Println(mod.Path, "output", out.Data) // copy out.Data to keep it
	})
	defer hook.Remove()
	in, _ := nn.FromSlice([]float32{1, 2, 3}, 1, 3)
	out, err := m.Forward(context.Background(), in)
	fmt.Println(out.Data, err)
	// Output:
	// "" tiny
	// "head" Sequential
	// "head.fc" Linear
	// "head.relu" ReLU
	// head.fc output [-2 2]
	// [0 2] <nil>
}

func ExampleModel_Shapes() {
	m, _ := nn.RecipeCNN(1, 10)
	shapes, _ := m.Shapes([]int{64, 1, 28, 28})
	for _, s := range shapes[1:4] {
		fmt.Println(s.Path, s.Shape)
	}
	_, err := m.Shapes([]int{64, 3, 28, 28})
	fmt.Println(err)
	// Output:
	// conv1 [64 32 26 26]
	// relu1 [64 32 26 26]
	// maxpool1 [64 32 13 13]
	// nn: conv1 (Conv2d): input shape [64 3 28 28], want [N 1 H W]
}
