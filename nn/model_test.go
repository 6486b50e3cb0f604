package nn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func randTensor(r *rand.Rand, shape ...int) *Tensor {
	t := NewTensor(shape...)
	for i := range t.Data {
		t.Data[i] = float32(r.NormFloat64())
	}
	return t
}

func TestRecipeCNNModules(t *testing.T) {
	m, err := RecipeCNN(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != "recipe-cnn" {
		t.Errorf("Name = %q", m.Name())
	}
	want := []ModuleInfo{
		{"", "RecipeCNN", -1, false},
		{"conv1", "Conv2d", 0, true},
		{"relu1", "ReLU", 1, true},
		{"maxpool1", "MaxPool2d", 2, true},
		{"conv2", "Conv2d", 3, true},
		{"relu2", "ReLU", 4, true},
		{"maxpool2", "MaxPool2d", 5, true},
		{"flatten", "Flatten", 6, true},
		{"fc1", "Linear", 7, true},
		{"relu3", "ReLU", 8, true},
		{"fc2", "Linear", 9, true},
	}
	got := m.Modules()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Modules =\n%v\nwant\n%v", got, want)
	}
	shapes, err := m.Shapes([]int{8, 3, 28, 28})
	if err != nil {
		t.Fatal(err)
	}
	wantShapes := map[string]string{
		"": "[8 10]", "conv1": "[8 32 26 26]", "relu1": "[8 32 26 26]", "maxpool1": "[8 32 13 13]",
		"conv2": "[8 64 11 11]", "maxpool2": "[8 64 5 5]", "flatten": "[8 1600]", "fc1": "[8 128]", "fc2": "[8 10]",
	}
	for _, s := range shapes {
		if w, ok := wantShapes[s.Path]; ok && fmt.Sprint(s.Shape) != w {
			t.Errorf("shape of %q = %v, want %s", s.Path, s.Shape, w)
		}
	}
	keys := m.StateDictKeys()
	wantKeys := "[conv1.weight conv1.bias conv2.weight conv2.bias fc1.weight fc1.bias fc2.weight fc2.bias]"
	if fmt.Sprint(keys) != wantKeys {
		t.Errorf("state dict keys %v, want %s", keys, wantKeys)
	}
	sd := m.StateDict()
	if s := sd["fc1.weight"].Shape; fmt.Sprint(s) != "[128 1600]" {
		t.Errorf("fc1.weight shape %v", s)
	}
}

func TestForwardShapeErrors(t *testing.T) {
	m, err := RecipeCNN(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      []*Tensor
		path    string
		wantMsg string
	}{
		{"channels", []*Tensor{NewTensor(8, 3, 28, 28)}, "conv1", "nn: conv1 (Conv2d): input shape [8 3 28 28], want [N 1 H W]"},
		{"spatial", []*Tensor{NewTensor(2, 1, 32, 32)}, "fc1", "nn: fc1 (Linear): input shape [2 2304], want [N 1600]"},
		{"too small", []*Tensor{NewTensor(2, 1, 2, 2)}, "conv1", "nn: conv1 (Conv2d): input shape [2 1 2 2], want [N 1 H W] with H >= 3, W >= 3"},
		{"rank", []*Tensor{NewTensor(28, 28)}, "", `nn: recipe-cnn input "input": input shape [28 28], want [N * * *]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Forward(context.Background(), tc.in...)
			var se *ShapeError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *ShapeError", err)
			}
			if se.Path != tc.path {
				t.Errorf("path %q, want %q", se.Path, tc.path)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want %q", err, tc.wantMsg)
			}
			if _, err := m.Shapes(tc.in[0].Shape); err == nil || err.Error() != se.Error() {
				t.Errorf("Shapes err = %v, want %v", err, se)
			}
		})
	}
	bad := []struct {
		name string
		in   []*Tensor
	}{
		{"nil", []*Tensor{nil}},
		{"inconsistent", []*Tensor{{Shape: []int{1, 1, 28, 28}, Data: make([]float32, 3)}}},
		{"negative", []*Tensor{{Shape: []int{-1, 1, 28, 28}}}},
		{"two inputs", []*Tensor{NewTensor(1, 1, 28, 28), NewTensor(1, 1, 28, 28)}},
		{"none", nil},
	}
	for _, tc := range bad {
		if _, err := m.Forward(context.Background(), tc.in...); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestForwardEmptyBatch(t *testing.T) {
	m, _ := RecipeCNN(1, 10)
	y, err := m.Forward(context.Background(), NewTensor(0, 1, 28, 28))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(y.Shape) != "[0 10]" {
		t.Errorf("shape %v", y.Shape)
	}
}

// residualModel is a small model with a container whose first leaf and
// residual both read the container's input.
func residualModel(t testing.TB) *Model {
	t.Helper()
	b := NewBuilder("res")
	x := b.Input("x", -1, 4)
	b.Container("block", "BasicBlock")
	fc, _ := NewLinear(LinearOptions{InFeatures: 4, OutFeatures: 4})
	for i := range fc.Weight.Data {
		fc.Weight.Data[i] = float32(i%5) - 2
	}
	h := b.Add("block.fc", fc, x)
	h = b.Add("block.relu", NewReLU(), h)
	h = b.Add("block.add", NewAdd(), h, x)
	y := b.Add("head", NewTanh(), h)
	m, err := b.Build(y)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestContainerHooks(t *testing.T) {
	m := residualModel(t)
	want := "[{ res -1 false} {block BasicBlock 0 false} {block.fc Linear 0 true} {block.relu ReLU 1 true} {block.add Add 2 true} {head Tanh 3 true}]"
	if got := fmt.Sprint(m.Modules()); got != want {
		t.Errorf("Modules = %s\nwant %s", got, want)
	}
	var log []string
	var blockIn, blockOut, addOut *Tensor
	h1, err := m.RegisterForwardPreHook("block", func(ctx context.Context, mod ModuleInfo, in []*Tensor) {
		log = append(log, "pre "+mod.Path)
	})
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := m.RegisterForwardHook("block", func(ctx context.Context, mod ModuleInfo, in []*Tensor, out *Tensor) {
		log = append(log, fmt.Sprintf("fwd %s %d", mod.Path, len(in)))
		blockIn, blockOut = in[0].Clone(), out.Clone()
	})
	h3, _ := m.RegisterForwardPreHook("", func(ctx context.Context, mod ModuleInfo, in []*Tensor) {
		log = append(log, "pre root")
	})
	h4 := m.RegisterGlobalHook(func(ctx context.Context, mod ModuleInfo, in []*Tensor, out *Tensor) {
		log = append(log, "global "+mod.Path)
		if mod.Path == "block.add" {
			addOut = out.Clone()
		}
		if CallID(ctx) == 0 {
			t.Error("CallID = 0 inside a hook")
		}
	})
	h5, _ := m.RegisterForwardPreHook("block.fc", func(ctx context.Context, mod ModuleInfo, in []*Tensor) {
		log = append(log, "pre block.fc")
	})
	x, _ := FromSlice([]float32{1, -2, 3, -4, 0.5, 0.25, -1, 2}, 2, 4)
	y, err := m.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	wantLog := "[pre root pre block pre block.fc global block.fc global block.relu global block.add fwd block 1 global block global head global ]"
	if got := fmt.Sprint(log); got != wantLog {
		t.Errorf("hook order %s\nwant %s", got, wantLog)
	}
	if fmt.Sprint(blockIn.Data) != fmt.Sprint(x.Data) {
		t.Errorf("block input %v, want model input %v", blockIn.Data, x.Data)
	}
	if fmt.Sprint(blockOut.Data) != fmt.Sprint(addOut.Data) {
		t.Errorf("block output %v, want block.add output %v", blockOut.Data, addOut.Data)
	}
	for _, h := range []*HookHandle{h1, h2, h3, h4, h5} {
		h.Remove()
		h.Remove() // idempotent
	}
	if m.hooks.Load() != nil {
		t.Error("hook set not empty after removing every hook")
	}
	log = nil
	y2, err := m.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 0 {
		t.Errorf("removed hooks still ran: %v", log)
	}
	if fmt.Sprint(y.Data) != fmt.Sprint(y2.Data) {
		t.Errorf("output with hooks %v differs from without %v", y.Data, y2.Data)
	}
}

func TestRegisterUnknownPath(t *testing.T) {
	m := residualModel(t)
	_, err := m.RegisterForwardHook("block.nope", func(context.Context, ModuleInfo, []*Tensor, *Tensor) {})
	if err == nil || !strings.Contains(err.Error(), `"block.fc"`) {
		t.Errorf("err = %v, want a list of valid paths", err)
	}
	if _, err := m.RegisterForwardPreHook("x", func(context.Context, ModuleInfo, []*Tensor) {}); err == nil {
		t.Error("no error for unknown path")
	}
}

func TestCallIDOutsideForward(t *testing.T) {
	if id := CallID(context.Background()); id != 0 {
		t.Errorf("CallID = %d", id)
	}
}

// TestConcurrentForward runs many Forward calls at once with a hook that
// checks it sees the same call's tensors, while hooks come and go.
func TestConcurrentForward(t *testing.T) {
	m, err := RecipeCNN(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ id uint64 }
	var mu sync.Mutex
	firstPixel := map[uint64]float32{} // CallID -> input[0]
	mismatch := 0
	_, err = m.RegisterForwardPreHook("", func(ctx context.Context, mod ModuleInfo, in []*Tensor) {
		mu.Lock()
		firstPixel[CallID(ctx)] = in[0].Data[0]
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = m.RegisterForwardPreHook("conv1", func(ctx context.Context, mod ModuleInfo, in []*Tensor) {
		mu.Lock()
		if firstPixel[CallID(ctx)] != in[0].Data[0] {
			mismatch++
		}
		mu.Unlock()
	})
	const workers, calls = 4, 10
	var wg sync.WaitGroup
	outs := make([][]float32, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			x := randTensor(r, 2, 1, 28, 28)
			for i := range calls {
				y, err := m.Forward(context.Background(), x)
				if err != nil {
					t.Error(err)
					return
				}
				if i == 0 {
					outs[w] = y.Data
				} else if fmt.Sprint(outs[w]) != fmt.Sprint(y.Data) {
					t.Errorf("worker %d: output changed between calls", w)
				}
				h := m.RegisterGlobalHook(func(context.Context, ModuleInfo, []*Tensor, *Tensor) {})
				h.Remove()
			}
		}()
	}
	wg.Wait()
	if len(firstPixel) != workers*calls {
		t.Errorf("%d distinct call ids, want %d", len(firstPixel), workers*calls)
	}
	if mismatch != 0 {
		t.Errorf("%d hook calls saw another call's input", mismatch)
	}
}

func TestBuilderErrors(t *testing.T) {
	relu := NewReLU()
	tests := []struct {
		name  string
		build func(b *Builder) Value
		want  string
	}{
		{"duplicate", func(b *Builder) Value {
			x := b.Input("x", -1, 2)
			x = b.Add("a", relu, x)
			return b.Add("a", relu, x)
		}, `module "a" defined twice`},
		{"leaf as container", func(b *Builder) Value {
			x := b.Input("x", -1, 2)
			x = b.Add("a", relu, x)
			return b.Add("a.b", relu, x)
		}, `module "a" is a layer`},
		{"empty path", func(b *Builder) Value {
			return b.Add("", relu, b.Input("x", 2))
		}, `invalid module path ""`},
		{"bad dots", func(b *Builder) Value {
			return b.Add("a..b", relu, b.Input("x", 2))
		}, `invalid module path "a..b"`},
		{"foreign value", func(b *Builder) Value {
			other := NewBuilder("other").Input("y", 2)
			return b.Add("a", relu, other)
		}, "not a value of this builder"},
		{"nil layer", func(b *Builder) Value {
			return b.Add("a", nil, b.Input("x", 2))
		}, "nil layer"},
		{"empty container", func(b *Builder) Value {
			b.Container("c", "Sequential")
			return b.Add("a", relu, b.Input("x", 2))
		}, `container "c" has no layers`},
		{"zero value", func(b *Builder) Value {
			b.Input("x", 2)
			return Value{}
		}, "output is not a value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder("m")
			_, err := b.Build(tc.build(b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestForwardCancelled(t *testing.T) {
	m, _ := RecipeCNN(1, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Forward(ctx, NewTensor(1, 1, 28, 28)); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestLoadStateDictErrors(t *testing.T) {
	m, _ := RecipeCNN(1, 10)
	sd := map[string]*Tensor{}
	for k, v := range m.StateDict() {
		sd[k] = v.Clone()
	}
	delete(sd, "fc2.bias")
	sd["fc3.weight"] = NewTensor(1)
	sd["conv1.weight"] = NewTensor(32, 3, 3, 3)
	sd["conv1.num_batches_tracked"] = NewTensor()
	before := m.StateDict()["fc1.weight"].Data[0]
	sd["fc1.weight"].Data[0] = before + 1
	err := m.LoadStateDict(sd)
	var se *StateDictError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *StateDictError", err)
	}
	if fmt.Sprint(se.Missing) != "[fc2.bias]" || fmt.Sprint(se.Unexpected) != "[fc3.weight]" ||
		len(se.Mismatched) != 1 || se.Mismatched[0].Key != "conv1.weight" {
		t.Errorf("got %+v", se)
	}
	if m.StateDict()["fc1.weight"].Data[0] != before {
		t.Error("a failed LoadStateDict changed the model")
	}
	sd["conv1.weight"] = NewTensor(32, 1, 3, 3)
	sd["fc2.bias"] = NewTensor(10)
	delete(sd, "fc3.weight")
	if err := m.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	if m.StateDict()["fc1.weight"].Data[0] != before+1 {
		t.Error("LoadStateDict did not copy the values")
	}
}

// TestContainerHookSeesInputOfInPlaceLayer: a container whose last layer
// could work in place on the container's input must still report that
// input unmodified.
func TestContainerHookSeesInputOfInPlaceLayer(t *testing.T) {
	b := NewBuilder("m")
	x := b.Input("x", -1, 2)
	fc, _ := NewLinear(LinearOptions{InFeatures: 2, OutFeatures: 2})
	copy(fc.Weight.Data, []float32{1, 0, 0, 1})
	h := b.Add("fc", fc, x)
	h = b.Add("block.relu", NewReLU(), h)
	m, err := b.Build(h)
	if err != nil {
		t.Fatal(err)
	}
	var in, out []float32
	if _, err := m.RegisterForwardHook("block", func(_ context.Context, _ ModuleInfo, i []*Tensor, o *Tensor) {
		in, out = append([]float32(nil), i[0].Data...), append([]float32(nil), o.Data...)
	}); err != nil {
		t.Fatal(err)
	}
	x0, _ := FromSlice([]float32{-1, 2}, 1, 2)
	if _, err := m.Forward(context.Background(), x0); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(in) != "[-1 2]" || fmt.Sprint(out) != "[0 2]" {
		t.Errorf("block hook saw in %v out %v, want [-1 2] and [0 2]", in, out)
	}
}

type panicky struct{}

func (panicky) Op() string                             { return "Panicky" }
func (panicky) OutputShape(in ...[]int) ([]int, error) { return in[0], nil }
func (panicky) Forward(in ...*Tensor) (*Tensor, error) { return nil, nil }

type crashy struct{ panicky }

func (crashy) Forward(in ...*Tensor) (*Tensor, error) { panic("index out of range") }

// TestForeignLayerFailures: a layer from another package that panics or
// returns no tensor yields an error naming the module, not a crash.
func TestForeignLayerFailures(t *testing.T) {
	for _, tc := range []struct {
		l    Layer
		want string
	}{
		{panicky{}, "nn: bad (Panicky): layer returned no tensor"},
		{crashy{}, "nn: bad (Panicky): layer panicked: index out of range"},
	} {
		b := NewBuilder("m")
		y := b.Add("bad", tc.l, b.Input("x", -1))
		m, err := b.Build(y)
		if err != nil {
			t.Fatal(err)
		}
		for _, hooked := range []bool{false, true} {
			if hooked {
				m.RegisterGlobalHook(func(context.Context, ModuleInfo, []*Tensor, *Tensor) {})
			}
			_, err = m.Forward(context.Background(), NewTensor(3))
			if err == nil || err.Error() != tc.want {
				t.Errorf("hooked=%v: err = %v, want %q", hooked, err, tc.want)
			}
		}
	}
}
