package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "onnx", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseModel_RecipeCNN(t *testing.T) {
	m, err := parseModel(readFixture(t, "recipe_cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if m.IRVersion < 3 || len(m.Opsets) != 1 || m.Opsets[0].Version != 13 || m.Opsets[0].Domain != "" {
		t.Errorf("ir_version %d, opsets %+v", m.IRVersion, m.Opsets)
	}
	if m.ProducerName != "pytorch" {
		t.Errorf("producer %q", m.ProducerName)
	}
	g := m.Graph
	var ops []string
	for _, n := range g.Nodes {
		ops = append(ops, n.OpType)
	}
	want := "Conv Relu MaxPool Conv Relu MaxPool Flatten Gemm Relu Gemm"
	if got := strings.Join(ops, " "); got != want {
		t.Errorf("ops %q, want %q", got, want)
	}
	if g.Nodes[0].Name != "/conv1/Conv" || strings.Join(g.Nodes[0].Inputs, ",") != "input,conv1.weight,conv1.bias" {
		t.Errorf("node 0: %+v", g.Nodes[0])
	}
	if len(g.Inputs) != 1 || g.Inputs[0].Name != "input" || g.Inputs[0].ElemType != dtFloat || len(g.Inputs[0].Dims) != 4 {
		t.Fatalf("inputs %+v", g.Inputs)
	}
	if d := g.Inputs[0].Dims; d[0].HasValue || d[0].Param != "batch" || d[1].Value != 1 || d[3].Value != 28 {
		t.Errorf("input dims %+v", d)
	}
	byName := map[string]*tensorProto{}
	for _, in := range g.Initializers {
		byName[in.Name] = in
	}
	w := byName["conv1.weight"]
	if w == nil {
		t.Fatal("no conv1.weight")
	}
	c, err := decodeTensor(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.isInt || len(c.f) != 32*9 || fmt.Sprint(c.shape) != "[32 1 3 3]" {
		t.Errorf("conv1.weight: shape %v, %d values", c.shape, len(c.f))
	}
	for _, a := range g.Nodes[0].Attrs {
		if a.Name == "kernel_shape" && (a.Type != attrInts || len(a.Ints) != 2 || a.Ints[0] != 3) {
			t.Errorf("kernel_shape %+v", a)
		}
	}
}

func TestParseModel_Errors(t *testing.T) {
	good := readFixture(t, "opsnet_opset13.onnx")
	// A node whose name field claims more bytes than remain.
	trunc := protowire.AppendTag(nil, 7, protowire.BytesType)
	trunc = protowire.AppendVarint(trunc, 1000)
	trunc = append(trunc, 1, 2, 3)
	// The graph field encoded as a varint.
	wrongType := protowire.AppendTag(nil, 7, protowire.VarintType)
	wrongType = protowire.AppendVarint(wrongType, 5)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no graph"},
		{"truncated file", good[:len(good)/2], "truncated"},
		{"length past end", trunc, "truncated"},
		{"wrong wire type", wrongType, "wire type"},
		{"garbage", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseModel(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeTensor_Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    tensorProto
		want string
	}{
		{"negative dim", tensorProto{Dims: []int64{-1}, DataType: dtFloat}, "negative dimension"},
		{"huge dims", tensorProto{Dims: []int64{1 << 40, 1 << 40}, DataType: dtFloat}, "more than"},
		{"raw size", tensorProto{Dims: []int64{3}, DataType: dtFloat, RawData: make([]byte, 8), HasRaw: true}, "raw_data has 8 bytes, want 12"},
		{"float_data count", tensorProto{Dims: []int64{3}, DataType: dtFloat, FloatData: []float32{1}}, "has 1 values, want 3"},
		{"string", tensorProto{Dims: []int64{1}, DataType: dtString}, "unsupported tensor data type STRING"},
		{"external escapes", tensorProto{Dims: []int64{1}, DataType: dtFloat, DataLocation: 1,
			External: []keyValue{{"location", "../secret"}}}, "not inside the model's directory"},
		{"external absolute", tensorProto{Dims: []int64{1}, DataType: dtFloat, DataLocation: 1,
			External: []keyValue{{"location", "/etc/passwd"}}}, "not inside the model's directory"},
		{"external negative offset", tensorProto{Dims: []int64{1}, DataType: dtFloat, DataLocation: 1,
			External: []keyValue{{"location", "x"}, {"offset", "-4"}}}, "negative"},
		{"external length", tensorProto{Dims: []int64{2}, DataType: dtFloat, DataLocation: 1,
			External: []keyValue{{"location", "x"}, {"length", "4"}}}, "length 4, want 8"},
		{"external without file", tensorProto{Dims: []int64{2}, DataType: dtFloat, DataLocation: 1,
			External: []keyValue{{"location", "x"}}}, "not loaded from a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeTensor(&tc.t, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeTensor_ExternalPastEnd(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "w.data"), make([]byte, 10), 0o644); err != nil {
		t.Fatal(err)
	}
	src := &dataSource{dir: dir}
	defer src.close()
	tp := &tensorProto{Dims: []int64{2}, DataType: dtFloat, DataLocation: 1,
		External: []keyValue{{"location", "w.data"}, {"offset", "4"}}}
	if _, err := decodeTensor(tp, src); err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("err %v", err)
	}
	tp.External[1].Value = "2"
	c, err := decodeTensor(tp, src)
	if err != nil || len(c.f) != 2 {
		t.Fatalf("c %+v err %v", c, err)
	}
	tp.External[0].Value = "missing.data"
	if _, err := decodeTensor(tp, src); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v", err)
	}
}

func TestDecodeTensor_Types(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    tensorProto
		f    []float32
		i    []int64
	}{
		{"float16 raw", tensorProto{Dims: []int64{3}, DataType: dtFloat16, RawData: []byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00}, HasRaw: true}, []float32{1, -2, 5.9604645e-08}, nil},
		{"bfloat16 int32_data", tensorProto{Dims: []int64{1}, DataType: dtBfloat16, Int32Data: []int32{0x3f80}}, []float32{1}, nil},
		{"double", tensorProto{Dims: []int64{2}, DataType: dtDouble, DoubleData: []float64{0.5, -3}}, []float32{0.5, -3}, nil},
		{"int64 raw", tensorProto{Dims: []int64{2}, DataType: dtInt64, RawData: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0, 0, 0}, HasRaw: true}, nil, []int64{-1, 7}},
		{"int32", tensorProto{Dims: []int64{2}, DataType: dtInt32, Int32Data: []int32{-5, 9}}, nil, []int64{-5, 9}},
		{"bool raw", tensorProto{Dims: []int64{2}, DataType: dtBool, RawData: []byte{0, 1}, HasRaw: true}, nil, []int64{0, 1}},
		{"scalar", tensorProto{DataType: dtFloat, FloatData: []float32{2.5}}, []float32{2.5}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeTensor(&tc.t, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.f) != len(tc.f) || len(c.i) != len(tc.i) {
				t.Fatalf("got f %v i %v", c.f, c.i)
			}
			for k := range tc.f {
				if c.f[k] != tc.f[k] {
					t.Errorf("f[%d] = %v, want %v", k, c.f[k], tc.f[k])
				}
			}
			for k := range tc.i {
				if c.i[k] != tc.i[k] {
					t.Errorf("i[%d] = %v, want %v", k, c.i[k], tc.i[k])
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"opsnet_opset11.onnx", "opsnet_opset13.onnx", "opsnet_opset17.onnx", "opsnet_external.onnx"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseModel(data)
		if err != nil {
			return
		}
		for _, in := range m.Graph.Initializers {
			decodeTensor(in, nil)
		}
		for _, n := range m.Graph.Nodes {
			for _, a := range n.Attrs {
				if a.T != nil {
					decodeTensor(a.T, nil)
				}
			}
		}
	})
}
