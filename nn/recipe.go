package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// RecipeCNN returns the recipe's CNN for inChannels×28×28 input and the
// given number of classes, with PyTorch's module names:
//
//	conv1    Conv2d(inChannels, 32, 3)      relu1 ReLU   maxpool1 MaxPool2d(2, 2)
//	conv2    Conv2d(32, 64, 3)              relu2 ReLU   maxpool2 MaxPool2d(2, 2)
//	flatten  Flatten                        fc1   Linear(1600, 128)
//	relu3    ReLU                           fc2   Linear(128, classes)
//
// The model is called "recipe-cnn" (root op "RecipeCNN"); its input "input"
// has shape [N C H W] (conv1 rejects C != inChannels, fc1 another spatial
// size than 28×28). Weights are initialised with a fixed
// seed like PyTorch's defaults (uniform ±1/sqrt(fan_in)); load trained ones
// with LoadStateDict.
func RecipeCNN(inChannels, classes int) (*Model, error) {
	if inChannels <= 0 || classes <= 0 {
		return nil, fmt.Errorf("nn: RecipeCNN: in_channels %d and classes %d must be positive", inChannels, classes)
	}
	b := NewBuilder("recipe-cnn")
	b.Container("", "RecipeCNN")
	var errs []error
	must := func(l Layer, err error) Layer {
		if err != nil {
			errs = append(errs, err)
		}
		return l
	}
	x := b.Input("input", -1, -1, -1, -1)
	x = b.Add("conv1", must(NewConv2d(Conv2dOptions{InChannels: inChannels, OutChannels: 32, KernelSize: [2]int{3, 3}})), x)
	x = b.Add("relu1", NewReLU(), x)
	x = b.Add("maxpool1", must(NewMaxPool2d(PoolOptions{KernelSize: [2]int{2, 2}, Stride: [2]int{2, 2}})), x)
	x = b.Add("conv2", must(NewConv2d(Conv2dOptions{InChannels: 32, OutChannels: 64, KernelSize: [2]int{3, 3}})), x)
	x = b.Add("relu2", NewReLU(), x)
	x = b.Add("maxpool2", must(NewMaxPool2d(PoolOptions{KernelSize: [2]int{2, 2}, Stride: [2]int{2, 2}})), x)
	x = b.Add("flatten", NewFlatten(1, -1), x)
	x = b.Add("fc1", must(NewLinear(LinearOptions{InFeatures: 64 * 5 * 5, OutFeatures: 128})), x)
	x = b.Add("relu3", NewReLU(), x)
	x = b.Add("fc2", must(NewLinear(LinearOptions{InFeatures: 128, OutFeatures: classes})), x)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	m, err := b.Build(x)
	if err != nil {
		return nil, err
	}
	initDefault(m, 0)
	return m, nil
}

// initDefault fills the weights and biases of Conv2d and Linear layers with
// uniform values in ±1/sqrt(fan_in) (PyTorch's default bounds) from a
// generator seeded with seed. Other parameters keep their constructor values.
func initDefault(m *Model, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x6e6e))
	fill := func(t *Tensor, fanIn int) {
		bound := 1 / math.Sqrt(float64(fanIn))
		for i := range t.Data {
			t.Data[i] = float32((2*r.Float64() - 1) * bound)
		}
	}
	for _, mi := range m.mods {
		if !mi.Leaf {
			continue
		}
		switch l := m.leaves[mi.Order].layer.(type) {
		case *Conv2d:
			fanIn := l.Weight.Numel() / l.Options.OutChannels
			fill(l.Weight, fanIn)
			if l.Bias != nil {
				fill(l.Bias, fanIn)
			}
		case *Linear:
			fill(l.Weight, l.Options.InFeatures)
			if l.Bias != nil {
				fill(l.Bias, l.Options.InFeatures)
			}
		}
	}
}

// ParityNet returns the second parity model (see notes/PARITYNET.md): every
// layer type of the package with non-default parameters, for 3-channel
// input. The model is called "paritynet" (root op "ParityNet"); "block" is
// a residual container of op "BasicBlock". Weights are initialised like
// RecipeCNN's.
func ParityNet() (*Model, error) {
	b := NewBuilder("paritynet")
	b.Container("", "ParityNet")
	var errs []error
	must := func(l Layer, err error) Layer {
		if err != nil {
			errs = append(errs, err)
		}
		return l
	}
	k3 := [2]int{3, 3}
	x := b.Input("input", -1, -1, -1, -1)
	x = b.Add("stem", must(NewConv2d(Conv2dOptions{InChannels: 3, OutChannels: 8, KernelSize: k3, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}, NoBias: true})), x)
	x = b.Add("stem_bn", must(NewBatchNorm2d(BatchNorm2dOptions{NumFeatures: 8})), x)
	x = b.Add("stem_act", must(NewGELU("none")), x)
	b.Container("block", "BasicBlock")
	h := b.Add("block.conv1", must(NewConv2d(Conv2dOptions{InChannels: 8, OutChannels: 8, KernelSize: k3, Padding: [2]int{2, 2}, Dilation: [2]int{2, 2}, Groups: 2, NoBias: true})), x)
	h = b.Add("block.bn1", must(NewBatchNorm2d(BatchNorm2dOptions{NumFeatures: 8, Eps: 1e-3})), h)
	h = b.Add("block.relu", NewReLU(), h)
	h = b.Add("block.conv2", must(NewConv2d(Conv2dOptions{InChannels: 8, OutChannels: 8, KernelSize: k3, Padding: [2]int{1, 1}, Groups: 8})), h)
	h = b.Add("block.add", NewAdd(), h, x)
	x = b.Add("block.tanh", NewTanh(), h)
	x = b.Add("avgpool", must(NewAvgPool2d(PoolOptions{KernelSize: k3, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}})), x)
	x = b.Add("maxpool", must(NewMaxPool2d(PoolOptions{KernelSize: k3, Stride: [2]int{1, 1}, Padding: [2]int{1, 1}})), x)
	x = b.Add("gap", must(NewAdaptiveAvgPool2d([2]int{1, 1})), x)
	x = b.Add("flatten", NewFlatten(1, -1), x)
	x = b.Add("fc1", must(NewLinear(LinearOptions{InFeatures: 8, OutFeatures: 16})), x)
	x = b.Add("sigmoid", NewSigmoid(), x)
	x = b.Add("dropout", NewDropout(0.3), x)
	x = b.Add("fc2", must(NewLinear(LinearOptions{InFeatures: 16, OutFeatures: 5})), x)
	x = b.Add("softmax", NewSoftmax(1), x)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	m, err := b.Build(x)
	if err != nil {
		return nil, err
	}
	initDefault(m, 1)
	return m, nil
}
