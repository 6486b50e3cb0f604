package onnx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/actrec/actrec/nn"
)

func fixture(name string) string { return filepath.Join("..", "..", "testdata", "onnx", name) }

// maxErr returns max |got-want| and the tolerance 1e-4*max(1, max|want|).
func maxErr(got, want *nn.Tensor) (float64, float64) {
	var e, m float64
	for i := range want.Data {
		e = math.Max(e, math.Abs(float64(got.Data[i])-float64(want.Data[i])))
		m = math.Max(m, math.Abs(float64(want.Data[i])))
	}
	return e, 1e-4 * math.Max(1, m)
}

// checkParity runs model on io["input"] and compares the output and every
// module output present in io (keyed by module path).
func checkParity(t *testing.T, m *nn.Model, io map[string]*nn.Tensor) (worst, tol float64) {
	t.Helper()
	var mu sync.Mutex
	got := map[string]*nn.Tensor{}
	h := m.RegisterGlobalHook(func(ctx context.Context, mod nn.ModuleInfo, in []*nn.Tensor, out *nn.Tensor) {
		if _, ok := io[mod.Path]; ok && mod.Path != "" {
			mu.Lock()
			got[mod.Path] = out.Clone()
			mu.Unlock()
		}
	})
	defer h.Remove()
	out, err := m.Forward(context.Background(), io["input"])
	if err != nil {
		t.Fatal(err)
	}
	got["output"] = out
	var keys []string
	for k := range io {
		if k != "input" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, ok := got[k]
		if !ok {
			mi, exists := m.Module(k)
			t.Errorf("%s: no output captured (module exists: %v, %+v)", k, exists, mi)
			continue
		}
		w := io[k]
		if !equalShape(g.Shape, w.Shape) {
			t.Errorf("%s: shape %v, want %v", k, g.Shape, w.Shape)
			continue
		}
		e, tl := maxErr(g, w)
		if e > tl || math.IsNaN(e) {
			t.Errorf("%s: max abs error %g > %g", k, e, tl)
		}
		if k == "output" {
			worst, tol = e, tl
		}
	}
	return worst, tol
}

func equalShape(a, b []int) bool {
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

func TestLoad_Parity(t *testing.T) {
	for _, name := range []string{"recipe_cnn", "opsnet_opset11", "opsnet_opset13", "opsnet_opset17", "opsnet_external", "tinyformer_opset13", "tinyformer_opset17", "upnet_opset11", "upnet_opset13", "upnet_opset17", "actnet_opset12", "actnet_opset13", "actnet_opset17"} {
		t.Run(name, func(t *testing.T) {
			m, err := Load(fixture(name + ".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			ioName := name
			if name == "opsnet_external" {
				ioName = "opsnet_opset13"
			}
			io, err := nn.LoadSafetensors(fixture(ioName + ".io.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			e, tol := checkParity(t, m, io)
			t.Logf("%s: output max abs error %.3g (tolerance %.3g; %d reference tensors)", name, e, tol, len(io)-1)
		})
	}
}

func TestLoad_RecipeCNNModules(t *testing.T) {
	m, err := Load(fixture("recipe_cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mi := range m.Modules() {
		got = append(got, mi.Path+":"+mi.Op)
	}
	want := ":recipe_cnn conv1:Conv2d relu1:ReLU maxpool1:MaxPool2d conv2:Conv2d relu2:ReLU maxpool2:MaxPool2d flatten:Flatten fc1:Linear relu3:ReLU fc2:Linear"
	if strings.Join(got, " ") != want {
		t.Errorf("modules\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	keys := m.StateDictKeys()
	sort.Strings(keys)
	if strings.Join(keys, ",") != "conv1.bias,conv1.weight,conv2.bias,conv2.weight,fc1.bias,fc1.weight,fc2.bias,fc2.weight" {
		t.Errorf("state dict keys %v", keys)
	}
	// Any batch size.
	for _, n := range []int{1, 5} {
		x := nn.NewTensor(n, 1, 28, 28)
		y, err := m.Forward(context.Background(), x)
		if err != nil || !equalShape(y.Shape, []int{n, 10}) {
			t.Errorf("batch %d: %v %v", n, y, err)
		}
	}
}

func TestLoad_OpsNetModules(t *testing.T) {
	m, err := Load(fixture("opsnet_opset13.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mi := range m.Modules() {
		if mi.Leaf {
			got = append(got, mi.Path+":"+mi.Op)
		}
	}
	want := "conv:Conv2d relu:ReLU bn:BatchNorm2d leaky:LeakyReLU avgpool.Pad:Pad avgpool.AveragePool:AvgPool2d " +
		"gelu.Div:Div gelu.Erf:Erf gelu.Add:Add gelu.Mul:Mul gelu.Mul_1:Mul gap:AdaptiveAvgPool2d flatten:Flatten " +
		"Reshape:Reshape fc:Linear MatMul:MatMul Transpose:Transpose Reshape_1:Reshape Slice:Slice Sub:Sub sigmoid:Sigmoid " +
		"Mul:Mul tanh:Tanh Add:Add Div:Div hardtanh:Clip Add_1:Add Concat_2:Concat identity:Identity dropout:Dropout fc2:Linear softmax:Softmax"
	if strings.Join(got, " ") != want {
		t.Errorf("leaves\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestLoad_Errors(t *testing.T) {
	_, err := Load(fixture("missing.onnx"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	_, err = Decode([]byte("not a model"), LoadOptions{})
	if !errors.Is(err, ErrNotONNX) {
		t.Errorf("garbage: %v", err)
	}
	data, err := os.ReadFile(fixture("opsnet_external.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Decode(data, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "not loaded from a file") {
		t.Errorf("external data via Decode: %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	for _, name := range []string{"opsnet_opset11.onnx", "opsnet_opset13.onnx", "opsnet_opset17.onnx", "tinyformer_opset13.onnx", "tinyformer_opset17.onnx", "upnet_opset11.onnx", "upnet_opset13.onnx", "actnet_opset13.onnx"} {
		data, err := os.ReadFile(fixture(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, LoadOptions{})
		if err != nil {
			return
		}
		// A model that loads must run (or fail with an error) on its input shape.
		shapes := m.InputShapes()
		var in []*nn.Tensor
		for _, s := range shapes {
			s = clone(s)
			total := 1
			for i := range s {
				if s[i] < 0 {
					s[i] = 2
				}
				total *= s[i]
			}
			if total > 1<<16 {
				return
			}
			in = append(in, nn.NewTensor(s...))
		}
		ls, err := m.Shapes(shapesOf(in)...)
		if err != nil {
			return
		}
		for _, l := range ls {
			if n, err := shapeSize(l.Shape); err != nil || n > 1<<20 {
				return
			}
		}
		m.Forward(context.Background(), in...)
	})
}

// The exported RecipeCNN must compute what nn.RecipeCNN computes with the
// same weights, and its state dict must load into it.
func TestLoad_RecipeCNNMatchesGoModel(t *testing.T) {
	weights := filepath.Join("..", "..", "testdata", "models", "recipe-cnn-v1.safetensors")
	sd, err := nn.LoadSafetensors(weights)
	if err != nil {
		t.Skipf("no shipped weights: %v", err)
	}
	om, err := Load(fixture("recipe_cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	gm, err := nn.RecipeCNN(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := gm.LoadStateDict(om.StateDict()); err != nil {
		t.Fatalf("ONNX state dict into nn.RecipeCNN: %v", err)
	}
	for k, v := range sd {
		e, tol := maxErr(om.StateDict()[k], v)
		if e != 0 {
			t.Skipf("recipe_cnn.onnx was not exported from %s (%s differs by %g, tol %g); rerun scripts/onnx_export.py", weights, k, e, tol)
		}
	}
	io, err := nn.LoadSafetensors(fixture("recipe_cnn.io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := gm.Forward(context.Background(), io["input"])
	if err != nil {
		t.Fatal(err)
	}
	got, err := om.Forward(context.Background(), io["input"])
	if err != nil {
		t.Fatal(err)
	}
	if e, tol := maxErr(got, want); e > tol {
		t.Errorf("ONNX vs nn.RecipeCNN: max abs error %g > %g", e, tol)
	}
}

func TestLoad_ConcurrentForward(t *testing.T) {
	m, err := Load(fixture("opsnet_opset17.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	io, err := nn.LoadSafetensors(fixture("opsnet_opset17.io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				y, err := m.Forward(context.Background(), io["input"])
				if err != nil {
					errs <- err
					return
				}
				if e, tol := maxErr(y, io["output"]); e > tol {
					errs <- fmt.Errorf("max abs error %g > %g", e, tol)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func Example() {
	m, err := Load(filepath.Join("..", "..", "testdata", "onnx", "recipe_cnn.onnx"))
	if err != nil {
		fmt.Println(err)
		return
	}
	shapes, err := m.Shapes([]int{8, 1, 28, 28})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range shapes {
		fmt.Printf("%-9s %-9s %v\n", s.Path, s.Op, s.Shape)
	}
	// Output:
	//           recipe_cnn [8 10]
	// conv1     Conv2d    [8 32 26 26]
	// relu1     ReLU      [8 32 26 26]
	// maxpool1  MaxPool2d [8 32 13 13]
	// conv2     Conv2d    [8 64 11 11]
	// relu2     ReLU      [8 64 11 11]
	// maxpool2  MaxPool2d [8 64 5 5]
	// flatten   Flatten   [8 1600]
	// fc1       Linear    [8 128]
	// relu3     ReLU      [8 128]
	// fc2       Linear    [8 10]
}

// mutated parses a fixture, applies fn and re-encodes it.
func mutated(t *testing.T, name string, fn func(m *modelProto)) []byte {
	t.Helper()
	m, err := parseModel(readFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	fn(m)
	return encodeModel(m)
}

func TestDecode_CorruptionMatrix(t *testing.T) {
	find := func(m *modelProto, name string) *nodeProto {
		for _, n := range m.Graph.Nodes {
			if n.Name == name {
				return n
			}
		}
		t.Fatalf("no node %q", name)
		return nil
	}
	init := func(m *modelProto, name string) *tensorProto {
		for _, in := range m.Graph.Initializers {
			if in.Name == name {
				return in
			}
		}
		t.Fatalf("no initializer %q", name)
		return nil
	}
	for _, tc := range []struct {
		name        string
		fn          func(m *modelProto)
		notONNX     bool // errors.Is(err, ErrNotONNX)
		unsupported bool // errors.As(err, *UnsupportedError)
		want        string
	}{
		{"round trip", func(m *modelProto) {}, false, false, ""},
		{"truncated raw data", func(m *modelProto) { w := init(m, "conv.weight"); w.RawData = w.RawData[:len(w.RawData)-4] }, true, false, `initializer "conv.weight": raw_data has`},
		{"negative dims", func(m *modelProto) { init(m, "conv.bias").Dims = []int64{-8} }, true, false, "negative dimension"},
		{"undefined input", func(m *modelProto) { find(m, "/relu/Relu").Inputs[0] = "nowhere" }, true, false, `input "nowhere" is not defined before use`},
		{"not sorted", func(m *modelProto) { n := m.Graph.Nodes; n[0], n[1] = n[1], n[0] }, true, false, "not defined before use"},
		{"duplicate output", func(m *modelProto) { find(m, "/relu/Relu").Outputs[0] = "/conv/Conv_output_0" }, true, false, "defined twice"},
		{"no inputs", func(m *modelProto) { m.Graph.Inputs = nil }, true, false, "no inputs"},
		{"wrong weight shape", func(m *modelProto) { init(m, "bn.running_mean").Dims = []int64{2, 4} }, false, true, `node "/bn/BatchNormalization"`},
		{"string input", func(m *modelProto) { m.Graph.Inputs[0].ElemType = dtString }, false, true, "only FLOAT inputs"},
		{"foreign domain", func(m *modelProto) { find(m, "/relu/Relu").Domain = "com.example" }, false, true, `domain "com.example"`},
		{"output not produced", func(m *modelProto) { m.Graph.Outputs[0].Name = "conv.weight" }, false, false, "does not depend on the model's inputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(mutated(t, "opsnet_opset13.onnx", tc.fn), LoadOptions{})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ue *UnsupportedError
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrNotONNX) != tc.notONNX || errors.As(err, &ue) != tc.unsupported {
				t.Fatalf("err %v\nwant containing %q, ErrNotONNX %v, UnsupportedError %v", err, tc.want, tc.notONNX, tc.unsupported)
			}
		})
	}
}

// FuzzLoadExternal: a model file whose initializers live in an external
// data file (opsnet_external.onnx, fuzzed, next to its real .data file)
// loads or fails with an error; never a panic, and never a read outside
// the model's directory (a bait file the model could name from there has
// other contents: a model that loads must have the fixture's initializers
// or none that differ from them).
func FuzzLoadExternal(f *testing.F) {
	model, err := os.ReadFile(fixture("opsnet_external.onnx"))
	if err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(fixture("opsnet_external.data"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(model)
	f.Fuzz(func(t *testing.T, model []byte) {
		dir := t.TempDir()
		sub := filepath.Join(dir, "m")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "opsnet_external.onnx"), model, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "opsnet_external.data"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		bait := make([]byte, len(data))
		for i := range bait {
			bait[i] = 0x7f // NaN bytes
		}
		if err := os.WriteFile(filepath.Join(dir, "opsnet_external.data"), bait, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(filepath.Join(sub, "opsnet_external.onnx"))
		if err != nil {
			return
		}
		for k, v := range m.StateDict() {
			for _, x := range v.Data {
				if math.Float32bits(x) == 0x7f7f7f7f {
					t.Fatalf("%s holds the bait file's bytes", k)
				}
			}
		}
	})
}
