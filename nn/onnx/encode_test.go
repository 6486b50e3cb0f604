package onnx

// A minimal ONNX encoder for tests: builds model files from the decoder's
// structs, so that tests can make graphs the exporters do not emit.

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMsg(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func encodeTensor(t *tensorProto) []byte {
	var b []byte
	for _, d := range t.Dims {
		b = appendInt(b, 1, d)
	}
	b = appendInt(b, 2, int64(t.DataType))
	if t.Name != "" {
		b = appendString(b, 8, t.Name)
	}
	if len(t.FloatData) > 0 {
		var p []byte
		for _, f := range t.FloatData {
			p = protowire.AppendFixed32(p, math.Float32bits(f))
		}
		b = appendMsg(b, 4, p)
	}
	if len(t.Int64Data) > 0 {
		var p []byte
		for _, v := range t.Int64Data {
			p = protowire.AppendVarint(p, uint64(v))
		}
		b = appendMsg(b, 7, p)
	}
	if t.HasRaw {
		b = appendMsg(b, 9, t.RawData)
	}
	return b
}

func encodeAttr(a *attribute) []byte {
	b := appendString(nil, 1, a.Name)
	b = appendInt(b, 20, a.Type)
	switch a.Type {
	case attrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case attrInt:
		b = appendInt(b, 3, a.I)
	case attrString:
		b = appendMsg(b, 4, a.S)
	case attrTensor:
		b = appendMsg(b, 5, encodeTensor(a.T))
	case attrInts:
		for _, v := range a.Ints {
			b = appendInt(b, 8, v)
		}
	case attrFloats:
		for _, v := range a.Floats {
			b = protowire.AppendTag(b, 7, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(v))
		}
	}
	return b
}

func encodeValueInfo(v *valueInfo) []byte {
	var shape []byte
	for _, d := range v.Dims {
		var db []byte
		if d.HasValue {
			db = appendInt(db, 1, d.Value)
		} else {
			db = appendString(db, 2, d.Param)
		}
		shape = appendMsg(shape, 1, db)
	}
	tt := appendInt(nil, 1, int64(v.ElemType))
	tt = appendMsg(tt, 2, shape)
	typ := appendMsg(nil, 1, tt)
	b := appendString(nil, 1, v.Name)
	return appendMsg(b, 2, typ)
}

func encodeModel(m *modelProto) []byte {
	var g []byte
	for _, n := range m.Graph.Nodes {
		var nb []byte
		for _, in := range n.Inputs {
			nb = appendString(nb, 1, in)
		}
		for _, out := range n.Outputs {
			nb = appendString(nb, 2, out)
		}
		nb = appendString(nb, 3, n.Name)
		nb = appendString(nb, 4, n.OpType)
		if n.Domain != "" {
			nb = appendString(nb, 7, n.Domain)
		}
		for _, a := range n.Attrs {
			nb = appendMsg(nb, 5, encodeAttr(a))
		}
		g = appendMsg(g, 1, nb)
	}
	g = appendString(g, 2, m.Graph.Name)
	for _, t := range m.Graph.Initializers {
		g = appendMsg(g, 5, encodeTensor(t))
	}
	for _, v := range m.Graph.Inputs {
		g = appendMsg(g, 11, encodeValueInfo(v))
	}
	for _, v := range m.Graph.Outputs {
		g = appendMsg(g, 12, encodeValueInfo(v))
	}
	b := appendInt(nil, 1, m.IRVersion)
	for _, o := range m.Opsets {
		ob := appendString(nil, 1, o.Domain)
		ob = appendInt(ob, 2, o.Version)
		b = appendMsg(b, 8, ob)
	}
	return appendMsg(b, 7, g)
}

// graph helpers

func node(name, op string, in, out []string, attrs ...*attribute) *nodeProto {
	return &nodeProto{Name: name, OpType: op, Inputs: in, Outputs: out, Attrs: attrs}
}

func aInt(name string, v int64) *attribute { return &attribute{Name: name, Type: attrInt, I: v} }
func aInts(name string, v ...int64) *attribute {
	return &attribute{Name: name, Type: attrInts, Ints: v}
}
func aFloat(name string, v float32) *attribute { return &attribute{Name: name, Type: attrFloat, F: v} }
func aStr(name, v string) *attribute           { return &attribute{Name: name, Type: attrString, S: []byte(v)} }

func floatInit(name string, dims []int64, v ...float32) *tensorProto {
	return &tensorProto{Name: name, Dims: dims, DataType: dtFloat, FloatData: v}
}

func intInit(name string, dims []int64, v ...int64) *tensorProto {
	return &tensorProto{Name: name, Dims: dims, DataType: dtInt64, Int64Data: v}
}

// input declares a FLOAT input; a negative dim is the symbolic batch "N".
func vinfo(name string, dims ...int64) *valueInfo {
	v := &valueInfo{Name: name, HasType: true, ElemType: dtFloat, HasShape: true}
	for _, d := range dims {
		if d < 0 {
			v.Dims = append(v.Dims, dimension{Param: "N"})
		} else {
			v.Dims = append(v.Dims, dimension{Value: d, HasValue: true})
		}
	}
	return v
}

func model(opset int64, in []*valueInfo, out string, inits []*tensorProto, nodes ...*nodeProto) []byte {
	return encodeModel(&modelProto{
		IRVersion: 8,
		Opsets:    []opsetID{{Version: opset}},
		Graph: &graphProto{
			Name: "test", Nodes: nodes, Initializers: inits, Inputs: in,
			Outputs: []*valueInfo{{Name: out}},
		},
	})
}
