package onnx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/actrec/actrec/nn"
)

func seq(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)*scale - 1
	}
	return v
}

func run(t *testing.T, data []byte, x *nn.Tensor) *nn.Tensor {
	t.Helper()
	m, err := Decode(data, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	y, err := m.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func near(t *testing.T, got *nn.Tensor, shape []int, want []float32) {
	t.Helper()
	if !equalShape(got.Shape, shape) {
		t.Fatalf("shape %v, want %v", got.Shape, shape)
	}
	for i := range want {
		if d := math.Abs(float64(got.Data[i] - want[i])); d > 1e-5*math.Max(1, math.Abs(float64(want[i]))) || math.IsNaN(float64(got.Data[i])) {
			t.Fatalf("data %v\nwant %v", got.Data, want)
		}
	}
}

func softmax(v []float32) []float32 {
	out := make([]float32, len(v))
	var s float64
	for i, x := range v {
		out[i] = float32(math.Exp(float64(x)))
		s += float64(out[i])
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / s)
	}
	return out
}

func TestOps_OpsetSemantics(t *testing.T) {
	x := &nn.Tensor{Shape: []int{2, 2, 3}, Data: seq(12, 0.25)}
	in := []*valueInfo{vinfo("x", -1, 2, 3)}
	t.Run("Softmax opset 11 coerces to 2-D", func(t *testing.T) {
		y := run(t, model(11, in, "y", nil, node("sm", "Softmax", []string{"x"}, []string{"y"}, aInt("axis", 1))), x)
		near(t, y, []int{2, 2, 3}, append(softmax(x.Data[:6]), softmax(x.Data[6:])...))
	})
	t.Run("Softmax opset 13 is per axis", func(t *testing.T) {
		y := run(t, model(13, in, "y", nil, node("sm", "Softmax", []string{"x"}, []string{"y"}, aInt("axis", 1))), x)
		p := softmax([]float32{x.Data[0], x.Data[3]})
		if math.Abs(float64(y.Data[0]-p[0])) > 1e-6 || math.Abs(float64(y.Data[3]-p[1])) > 1e-6 {
			t.Fatalf("got %v", y.Data)
		}
	})
	t.Run("Softmax opset 13 default axis is last", func(t *testing.T) {
		y := run(t, model(13, in, "y", nil, node("sm", "Softmax", []string{"x"}, []string{"y"})), x)
		near(t, y, []int{2, 2, 3}, softmax(x.Data[:3]))
	})
	t.Run("Unsqueeze axes attribute (opset 11)", func(t *testing.T) {
		y := run(t, model(11, in, "y", nil, node("u", "Unsqueeze", []string{"x"}, []string{"y"}, aInts("axes", 1, -1))), x)
		near(t, y, []int{2, 1, 2, 3, 1}, x.Data)
	})
	t.Run("Unsqueeze axes input (opset 13)", func(t *testing.T) {
		y := run(t, model(13, in, "y", []*tensorProto{intInit("axes", []int64{1}, 2)},
			node("u", "Unsqueeze", []string{"x", "axes"}, []string{"y"})), x)
		near(t, y, []int{2, 2, 1, 3}, x.Data)
	})
	t.Run("Clip attributes (opset 11 inputs, max absent)", func(t *testing.T) {
		y := run(t, model(11, in, "y", []*tensorProto{floatInit("lo", nil, 0.5)},
			node("c", "Clip", []string{"x", "lo"}, []string{"y"})), x)
		want := make([]float32, 12)
		for i, v := range x.Data {
			want[i] = float32(math.Max(float64(v), 0.5))
		}
		near(t, y, []int{2, 2, 3}, want)
	})
	t.Run("Reshape copies 0 and infers -1", func(t *testing.T) {
		y := run(t, model(13, in, "y", []*tensorProto{intInit("s", []int64{2}, 0, -1)},
			node("r", "Reshape", []string{"x", "s"}, []string{"y"})), x)
		near(t, y, []int{2, 6}, x.Data)
	})
	t.Run("Dropout ratio attribute (opset 11) and input (opset 13)", func(t *testing.T) {
		y := run(t, model(11, in, "y", nil, node("d", "Dropout", []string{"x"}, []string{"y", "mask"}, aFloat("ratio", 0.3))), x)
		near(t, y, []int{2, 2, 3}, x.Data)
		y = run(t, model(13, in, "y", []*tensorProto{floatInit("r", nil, 0.3)}, node("d", "Dropout", []string{"x", "r"}, []string{"y"})), x)
		near(t, y, []int{2, 2, 3}, x.Data)
	})
	t.Run("LeakyRelu default alpha", func(t *testing.T) {
		y := run(t, model(13, in, "y", nil, node("l", "LeakyRelu", []string{"x"}, []string{"y"})), x)
		want := make([]float32, 12)
		for i, v := range x.Data {
			want[i] = v
			if v < 0 {
				want[i] = 0.01 * v
			}
		}
		near(t, y, []int{2, 2, 3}, want)
	})
	t.Run("Transpose, Slice with negative step, Pad", func(t *testing.T) {
		y := run(t, model(13, in, "z", []*tensorProto{
			intInit("st", []int64{1}, -1), intInit("en", []int64{1}, math.MinInt64), intInit("ax", []int64{1}, 2), intInit("sp", []int64{1}, -2),
			intInit("pads", []int64{6}, 0, 1, 0, 0, 0, 1)},
			node("t", "Transpose", []string{"x"}, []string{"t"}, aInts("perm", 0, 2, 1)),         // [2,3,2]
			node("s", "Slice", []string{"t", "st", "en", "ax", "sp"}, []string{"s"}),             // [2,3,1]: column 1
			node("p", "Pad", []string{"s", "pads"}, []string{"z"}, aStr("mode", "constant"))), x) // [2,4,2]
		// x[b][c][h] = seq; t[b][h][c] = x[b][c][h]; s[b][h][0] = t[b][h][1] = x[b][1][h]
		want := make([]float32, 0, 16)
		for b := range 2 {
			want = append(want, 0, 0)
			for h := range 3 {
				want = append(want, x.Data[b*6+3+h], 0)
			}
		}
		near(t, y, []int{2, 4, 2}, want)
	})
	t.Run("Gemm transA alpha beta", func(t *testing.T) {
		a := &nn.Tensor{Shape: []int{3, 2}, Data: []float32{1, 2, 3, 4, 5, 6}} // A^T is [2,3]
		y := run(t, model(13, []*valueInfo{vinfo("a", 3, 2)}, "y",
			[]*tensorProto{floatInit("B", []int64{3, 1}, 1, 1, 1), floatInit("C", []int64{1, 1}, 10)},
			node("g", "Gemm", []string{"a", "B", "C"}, []string{"y"}, aInt("transA", 1), aFloat("alpha", 2), aFloat("beta", 0.5))), a)
		// A^T rows: [1 3 5], [2 4 6] -> sums 9, 12
		near(t, y, []int{2, 1}, []float32{2*9 + 5, 2*12 + 5})
	})
	t.Run("MatMul broadcasts a 2-D weight over batches", func(t *testing.T) {
		w := []float32{1, 0, 0, 1, 1, 1}
		y := run(t, model(13, in, "y", []*tensorProto{floatInit("W", []int64{3, 2}, w...)},
			node("m", "MatMul", []string{"x", "W"}, []string{"y"})), x)
		want := make([]float32, 0, 8)
		for r := range 4 {
			v := x.Data[r*3 : r*3+3]
			want = append(want, v[0]+v[2], v[1]+v[2])
		}
		near(t, y, []int{2, 2, 2}, want)
	})
	t.Run("ReduceMax keepdims=0, ReduceSum axes input, GlobalMaxPool", func(t *testing.T) {
		y := run(t, model(13, in, "y", nil, node("r", "ReduceMax", []string{"x"}, []string{"y"}, aInts("axes", 1), aInt("keepdims", 0))), x)
		near(t, y, []int{2, 3}, []float32{x.Data[3], x.Data[4], x.Data[5], x.Data[9], x.Data[10], x.Data[11]})
		y = run(t, model(13, in, "y", []*tensorProto{intInit("ax", []int64{1}, -1)}, node("r", "ReduceSum", []string{"x", "ax"}, []string{"y"})), x)
		near(t, y, []int{2, 2, 1}, []float32{x.Data[0] + x.Data[1] + x.Data[2], x.Data[3] + x.Data[4] + x.Data[5], x.Data[6] + x.Data[7] + x.Data[8], x.Data[9] + x.Data[10] + x.Data[11]})
		y = run(t, model(13, in, "y", nil, node("r", "GlobalMaxPool", []string{"x"}, []string{"y"})), x)
		near(t, y, []int{2, 2, 1}, []float32{x.Data[2], x.Data[5], x.Data[8], x.Data[11]})
	})
	t.Run("Mul broadcasts a per-channel constant", func(t *testing.T) {
		y := run(t, model(13, in, "y", []*tensorProto{floatInit("k", []int64{2, 1}, 2, -1)},
			node("m", "Mul", []string{"k", "x"}, []string{"y"})), x)
		want := make([]float32, 12)
		for i, v := range x.Data {
			want[i] = v * []float32{2, -1}[(i/3)%2]
		}
		near(t, y, []int{2, 2, 3}, want)
	})
}

// x.view(x.size(0), -1) as exported: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
func viewModel(opset int64, target int64) []byte {
	unsq := node("/Unsqueeze", "Unsqueeze", []string{"n", "zero1"}, []string{"n1"})
	if opset < 13 {
		unsq = node("/Unsqueeze", "Unsqueeze", []string{"n"}, []string{"n1"}, aInts("axes", 0))
	}
	return model(opset, []*valueInfo{vinfo("x", -1, 2, 3)}, "y",
		[]*tensorProto{intInit("zero1", []int64{1}, 0), intInit("minus1", []int64{1}, target)},
		node("/Shape", "Shape", []string{"x"}, []string{"s"}),
		node("/Constant", "Constant", nil, []string{"zero"}, &attribute{Name: "value", Type: attrTensor, T: intInit("", nil, 0)}),
		node("/Gather", "Gather", []string{"s", "zero"}, []string{"n"}, aInt("axis", 0)),
		unsq,
		node("/Concat", "Concat", []string{"n1", "minus1"}, []string{"shape"}, aInt("axis", 0)),
		node("/Reshape", "Reshape", []string{"x", "shape"}, []string{"y"}))
}

func TestOps_ShapeChainFoldsWithDynamicBatch(t *testing.T) {
	for _, opset := range []int64{11, 13, 17} {
		t.Run(fmt.Sprint(opset), func(t *testing.T) {
			m, err := Decode(viewModel(opset, -1), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var leaves []string
			for _, mi := range m.Modules() {
				if mi.Leaf {
					leaves = append(leaves, mi.Path)
				}
			}
			if strings.Join(leaves, ",") != "Reshape" {
				t.Errorf("leaves %v, want only the Reshape (shape chain folded)", leaves)
			}
			for _, n := range []int{1, 4} {
				x := &nn.Tensor{Shape: []int{n, 2, 3}, Data: seq(n*6, 1)}
				y, err := m.Forward(context.Background(), x)
				if err != nil {
					t.Fatal(err)
				}
				near(t, y, []int{n, 6}, x.Data)
			}
		})
	}
}

func TestOps_BatchMixingRejected(t *testing.T) {
	// Reshape to [N, 3, 2]... fine; to [2, -1] would mix samples.
	data := model(13, []*valueInfo{vinfo("x", -1, 2, 3)}, "y", []*tensorProto{intInit("s", []int64{2}, 2, -1)},
		node("/r/Reshape", "Reshape", []string{"x", "s"}, []string{"y"}))
	_, err := Decode(data, LoadOptions{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || len(ue.Problems) != 1 || !strings.Contains(ue.Problems[0].Reason, "does not keep the batch") {
		t.Fatalf("err %v", err)
	}
}

func TestOps_StaticBatch(t *testing.T) {
	data := model(13, []*valueInfo{vinfo("x", 2, 3)}, "y", nil, node("r", "Relu", []string{"x"}, []string{"y"}))
	m, err := Decode(data, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Forward(context.Background(), nn.NewTensor(3, 3)); err == nil {
		t.Fatal("batch 3 accepted by a model with static batch 2")
	}
}

func TestOps_UnsupportedListsAll(t *testing.T) {
	data := model(13, []*valueInfo{vinfo("x", -1, 1, 4, 4)}, "y",
		[]*tensorProto{floatInit("w", []int64{1, 1, 1, 1}, 1)},
		node("/a/Relu", "Relu", []string{"x"}, []string{"a"}),
		node("/b/Foo", "Foo", []string{"a"}, []string{"b"}),
		node("/c/Conv", "Conv", []string{"b", "w"}, []string{"c"}, aInts("pads", 0, 0, 1, 1)),
		node("/d/Conv", "Conv", []string{"a", "w"}, []string{"d"}, aInts("pads", 0, 0, 1, 1)),
		node("/e/LeakyRelu", "LeakyRelu", []string{"d"}, []string{"e"}, aFloat("beta", 2)),
		node("/f/Relu", "Relu", []string{"a"}, []string{"f"}, aInt("bogus", 1)),
		node("/g/Add", "Add", []string{"f", "a"}, []string{"y"}))
	_, err := Decode(data, LoadOptions{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("err %v", err)
	}
	want := []string{
		`node "/b/Foo" (Foo): operator Foo is not supported`,
		`node "/d/Conv" (Conv): asymmetric pads [0 0 1 1] are not supported`,
		`node "/e/LeakyRelu" (LeakyRelu): attribute "beta" is not supported`,
		`node "/f/Relu" (Relu): attribute "bogus" is not supported`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if len(ue.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(ue.Problems), len(want), err)
	}
}

func TestOps_OpsetOutOfRange(t *testing.T) {
	data := model(9, []*valueInfo{vinfo("x", -1, 3)}, "y", nil, node("r", "Relu", []string{"x"}, []string{"y"}))
	_, err := Decode(data, LoadOptions{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "opset 9") {
		t.Fatalf("err %v", err)
	}
}

func TestOps_SymbolicDims(t *testing.T) {
	v := vinfo("x", -1, 3)
	v.Dims = append(v.Dims, dimension{Param: "width"})
	data := model(13, []*valueInfo{v}, "y", nil, node("r", "Relu", []string{"x"}, []string{"y"}))
	if _, err := Decode(data, LoadOptions{}); err == nil || !strings.Contains(err.Error(), `"width"`) {
		t.Fatalf("err %v", err)
	}
	m, err := Decode(data, LoadOptions{Dims: map[string]int{"width": 5}})
	if err != nil {
		t.Fatal(err)
	}
	if s := m.InputShapes()[0]; !equalShape(s, []int{-1, 3, 5}) {
		t.Errorf("input shape %v", s)
	}
}

func TestNodePaths(t *testing.T) {
	names := []string{
		"/conv1/Conv", "/layer1/layer1.0/conv1/Conv", "/layer1/layer1.0/relu/Relu", "/layer1/layer1.0/Add",
		"/gelu/Div", "/gelu/Mul", "/gelu/Mul_1", "/Flatten", "Identity_0", "", "weird name:1", "/fc/Gemm", "/fc/Gemm",
	}
	var nodes []*nodeProto
	rt := make([]bool, len(names))
	for i, n := range names {
		nodes = append(nodes, &nodeProto{Name: n, OpType: "Relu", Outputs: []string{fmt.Sprintf("out%d", i)}})
		rt[i] = true
	}
	got := nodePaths(nodes, rt)
	want := []string{
		"conv1", "layer1.0.conv1", "layer1.0.relu", "layer1.0.Add",
		"gelu.Div", "gelu.Mul", "gelu.Mul_1", "Flatten", "Identity_0", "out9", "weird_name_1", "fc.Gemm", "fc.Gemm_2",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("paths\n got %v\nwant %v", got, want)
	}
}

func TestLoad_OutputChoice(t *testing.T) {
	data := encodeModel(&modelProto{
		IRVersion: 8, Opsets: []opsetID{{Version: 13}},
		Graph: &graphProto{
			Inputs:  []*valueInfo{vinfo("x", -1, 3)},
			Outputs: []*valueInfo{{Name: "a"}, {Name: "b"}},
			Nodes: []*nodeProto{
				node("relu", "Relu", []string{"x"}, []string{"a"}),
				node("neg", "Neg", []string{"a"}, []string{"b"}),
			},
		},
	})
	if _, err := Decode(data, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "LoadOptions.Output") {
		t.Fatalf("two outputs without a choice: %v", err)
	}
	if _, err := Decode(data, LoadOptions{Output: "c"}); err == nil || !strings.Contains(err.Error(), `"c" is not a graph output`) {
		t.Fatalf("unknown output: %v", err)
	}
	m, err := Decode(data, LoadOptions{Output: "b", Name: "two"})
	if err != nil {
		t.Fatal(err)
	}
	y, err := m.Forward(context.Background(), &nn.Tensor{Shape: []int{1, 3}, Data: []float32{-1, 0, 2}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, y, []int{1, 3}, []float32{0, 0, -2})
	if m.Name() != "two" {
		t.Errorf("name %q", m.Name())
	}
}

func TestOps_Opset18ReduceAxesInput(t *testing.T) {
	x := &nn.Tensor{Shape: []int{2, 2, 3}, Data: seq(12, 0.25)}
	y := run(t, model(18, []*valueInfo{vinfo("x", -1, 2, 3)}, "y", []*tensorProto{intInit("ax", []int64{1}, 1)},
		node("r", "ReduceMean", []string{"x", "ax"}, []string{"y"}, aInt("keepdims", 0))), x)
	want := make([]float32, 6)
	for b := range 2 {
		for k := range 3 {
			want[b*3+k] = (x.Data[b*6+k] + x.Data[b*6+3+k]) / 2
		}
	}
	near(t, y, []int{2, 3}, want)
}

// Shape inference must not overflow for large per-sample tensors
// (16.7M elements per sample here).
func TestLoad_LargeSampleShapes(t *testing.T) {
	data := model(13, []*valueInfo{vinfo("x", -1, 64, 512, 512)}, "y", nil,
		node("a", "Relu", []string{"x"}, []string{"a"}),
		node("b", "Concat", []string{"a", "a"}, []string{"y"}, aInt("axis", 1)))
	if _, err := Decode(data, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestLoad_DynamicBatchOption(t *testing.T) {
	static := []*valueInfo{vinfo("x", 2, 6)}
	ok := model(13, static, "y", []*tensorProto{intInit("s", []int64{3}, 0, 2, 3)},
		node("relu", "Relu", []string{"x"}, []string{"r"}),
		node("reshape", "Reshape", []string{"r", "s"}, []string{"y"}))
	m, err := Decode(ok, LoadOptions{DynamicBatch: true})
	if err != nil {
		t.Fatal(err)
	}
	y, err := m.Forward(context.Background(), nn.NewTensor(5, 6))
	if err != nil || !equalShape(y.Shape, []int{5, 2, 3}) {
		t.Fatalf("y %v err %v", y, err)
	}
	// The exporter baked the example batch size 2 into the target.
	baked := model(13, static, "y", []*tensorProto{intInit("s", []int64{2}, 2, -1)},
		node("relu", "Relu", []string{"x"}, []string{"r"}),
		node("reshape", "Reshape", []string{"r", "s"}, []string{"y"}))
	if _, err := Decode(baked, LoadOptions{}); err != nil {
		t.Fatalf("fixed batch: %v", err)
	}
	_, err = Decode(baked, LoadOptions{DynamicBatch: true})
	if err == nil || !strings.Contains(err.Error(), `node "reshape" (Reshape): output shape [2 f(N)] does not keep the batch`) {
		t.Fatalf("err %v", err)
	}
}

func TestOps_LoadTimeOnlyOpsAtRuntime(t *testing.T) {
	data := model(13, []*valueInfo{vinfo("x", -1, 3)}, "y", nil,
		node("eq", "Equal", []string{"x", "x"}, []string{"y"}))
	_, err := Decode(data, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "only supported on values known at load time") {
		t.Fatalf("err %v", err)
	}
}

func TestOps_SliceExtremes(t *testing.T) {
	x := &nn.Tensor{Shape: []int{1, 5}, Data: []float32{0, 1, 2, 3, 4}}
	for _, tc := range []struct {
		name             string
		start, end, step int64
		want             []float32
		wantErr          string
	}{
		{"to the end", 1, math.MaxInt64, 1, []float32{1, 2, 3, 4}, ""},
		{"reversed", -1, math.MinInt64, -1, []float32{4, 3, 2, 1, 0}, ""},
		{"huge step", 0, 5, math.MaxInt64, nil, "out of range"},
		{"huge negative step", 4, -10, math.MinInt64 + 1, nil, "out of range"},
		{"empty", 3, 1, 1, []float32{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := model(13, []*valueInfo{vinfo("x", -1, 5)}, "y", []*tensorProto{
				intInit("st", []int64{1}, tc.start), intInit("en", []int64{1}, tc.end),
				intInit("ax", []int64{1}, 1), intInit("sp", []int64{1}, tc.step)},
				node("s", "Slice", []string{"x", "st", "en", "ax", "sp"}, []string{"y"}))
			m, err := Decode(data, LoadOptions{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			y, err := m.Forward(context.Background(), x)
			if err != nil {
				t.Fatal(err)
			}
			near(t, y, []int{1, len(tc.want)}, tc.want)
		})
	}
}

func TestOps_Split(t *testing.T) {
	x := &nn.Tensor{Shape: []int{1, 5}, Data: []float32{0, 1, 2, 3, 4}}
	in := []*valueInfo{vinfo("x", -1, 5)}
	concatBack := node("c", "Concat", []string{"b", "a"}, []string{"y"}, aInt("axis", 1))
	for _, tc := range []struct {
		name string
		data []byte
		want []float32
	}{
		{"opset 11 attribute", model(11, in, "y", nil,
			node("/s/Split", "Split", []string{"x"}, []string{"a", "b"}, aInt("axis", 1), aInts("split", 2, 3)), concatBack),
			[]float32{2, 3, 4, 0, 1}},
		{"opset 13 input", model(13, in, "y", []*tensorProto{intInit("sp", []int64{2}, 4, 1)},
			node("/s/Split", "Split", []string{"x", "sp"}, []string{"a", "b"}, aInt("axis", -1)), concatBack),
			[]float32{4, 0, 1, 2, 3}},
		{"opset 18 uneven num_outputs", model(18, in, "y", nil,
			node("/s/Split", "Split", []string{"x"}, []string{"a", "b"}, aInt("axis", 1), aInt("num_outputs", 2)), concatBack),
			[]float32{3, 4, 0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.data, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var leaves []string
			for _, mi := range m.Modules() {
				leaves = append(leaves, mi.Path)
			}
			if got := strings.Join(leaves, " "); got != " s s.0 s.1 c" {
				t.Errorf("modules %q", got)
			}
			y, err := m.Forward(context.Background(), x)
			if err != nil {
				t.Fatal(err)
			}
			near(t, y, []int{1, 5}, tc.want)
		})
	}
	bad := model(13, in, "y", []*tensorProto{intInit("sp", []int64{2}, 4, 4)},
		node("/s/Split", "Split", []string{"x", "sp"}, []string{"a", "b"}, aInt("axis", 1)), concatBack)
	if _, err := Decode(bad, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "do not add up") {
		t.Errorf("bad sizes: %v", err)
	}
	batch := model(13, in, "y", nil, node("/s/Split", "Split", []string{"x"}, []string{"a", "b"}), concatBack)
	if _, err := Decode(batch, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "batch dimension") {
		t.Errorf("split of the batch: %v", err)
	}
}

// torchvision's ViT: class_token.expand(x.size(0), -1, -1) concatenated with
// the patch embeddings. The expanded constant becomes a module reading the
// batch size from x.
func TestOps_ExpandConstantToBatch(t *testing.T) {
	data := model(13, []*valueInfo{vinfo("x", -1, 3, 2)}, "y", []*tensorProto{
		floatInit("cls", []int64{1, 1, 2}, 7, 8), intInit("zero", nil, 0), intInit("ax0", []int64{1}, 0),
		intInit("rest", []int64{2}, 1, 1)},
		node("/Shape", "Shape", []string{"x"}, []string{"s"}),
		node("/Gather", "Gather", []string{"s", "zero"}, []string{"n"}, aInt("axis", 0)),
		node("/Unsqueeze", "Unsqueeze", []string{"n", "ax0"}, []string{"n1"}),
		node("/Concat", "Concat", []string{"n1", "rest"}, []string{"shape"}, aInt("axis", 0)),
		node("/Expand", "Expand", []string{"cls", "shape"}, []string{"e"}),
		node("/Concat_1", "Concat", []string{"e", "x"}, []string{"y"}, aInt("axis", 1)))
	m, err := Decode(data, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var leaves []string
	for _, mi := range m.Modules() {
		if mi.Leaf {
			leaves = append(leaves, mi.Path+":"+mi.Op)
		}
	}
	if got := strings.Join(leaves, " "); got != "Expand:Expand Concat_1:Concat" {
		t.Errorf("leaves %q", got)
	}
	x := &nn.Tensor{Shape: []int{2, 3, 2}, Data: seq(12, 1)}
	y, err := m.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]float32{7, 8}, x.Data[:6]...), append([]float32{7, 8}, x.Data[6:]...)...)
	near(t, y, []int{2, 4, 2}, want)
}

// Guards that BatchNormalization honours an explicit epsilon=0 (nn's
// BatchNorm2dOptions.Eps zero value means PyTorch's default 1e-5).
func TestOps_BatchNormEpsilonZero(t *testing.T) {
	data := model(13, []*valueInfo{vinfo("x", -1, 1, 1, 1)}, "y",
		[]*tensorProto{
			floatInit("s", []int64{1}, 1), floatInit("b", []int64{1}, 0),
			floatInit("m", []int64{1}, 0), floatInit("v", []int64{1}, 1e-6),
		},
		node("bn", "BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y"}, aFloat("epsilon", 0)))
	x, _ := nn.FromSlice([]float32{1}, 1, 1, 1, 1)
	y := run(t, data, x)
	near(t, y, []int{1, 1, 1, 1}, []float32{1000}) // 1/sqrt(1e-6)
}

// Guards that Gemm rejects a C that does not unidirectionally broadcast to
// [M, N] (C [3 2] with M = 1 used to be accepted, its first row used).
func TestOps_GemmCMustBroadcastToMN(t *testing.T) {
	data := model(13, []*valueInfo{vinfo("x", 1, 2)}, "y",
		[]*tensorProto{
			floatInit("B", []int64{2, 2}, 1, 0, 0, 1),
			floatInit("C", []int64{3, 2}, 10, 20, 30, 40, 50, 60),
		},
		node("g", "Gemm", []string{"x", "B", "C"}, []string{"y"}))
	m, err := Decode(data, LoadOptions{})
	if err == nil {
		x, _ := nn.FromSlice([]float32{1, 2}, 1, 2)
		var y *nn.Tensor
		if y, err = m.Forward(context.Background(), x); err == nil {
			t.Fatalf("Gemm with C [3 2] and A [1 2]: got %v %v, want an error (C does not broadcast to [1 2])", y.Shape, y.Data)
		}
	}
	for _, want := range []string{`"g"`, "C [3 2]", "[1 2]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	}
}
