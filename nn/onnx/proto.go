package onnx

// Decoding of the subset of onnx.proto (ONNX IR versions 3 to 10) the loader uses,
// straight from the protobuf wire format. Field numbers are those of onnx.proto;
// unknown fields are skipped, as protobuf requires. Nothing here trusts a length,
// count or index read from the file: every error is returned, never panicked.

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX TensorProto.DataType values.
const (
	dtUndefined = 0
	dtFloat     = 1
	dtUint8     = 2
	dtInt8      = 3
	dtUint16    = 4
	dtInt16     = 5
	dtInt32     = 6
	dtInt64     = 7
	dtString    = 8
	dtBool      = 9
	dtFloat16   = 10
	dtDouble    = 11
	dtUint32    = 12
	dtUint64    = 13
	dtBfloat16  = 16
)

var dataTypeNames = map[int32]string{
	0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32",
	7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64",
	14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16",
}

func dataTypeName(t int32) string {
	if s, ok := dataTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("data type %d", t)
}

// AttributeProto.AttributeType values.
const (
	attrUndefined = 0
	attrFloat     = 1
	attrInt       = 2
	attrString    = 3
	attrTensor    = 4
	attrGraph     = 5
	attrFloats    = 6
	attrInts      = 7
	attrStrings   = 8
	attrTensors   = 9
	attrGraphs    = 10
)

type modelProto struct {
	IRVersion       int64
	Opsets          []opsetID
	ProducerName    string
	ProducerVersion string
	Graph           *graphProto
	HasFunctions    bool
}

type opsetID struct {
	Domain  string
	Version int64
}

type graphProto struct {
	Name         string
	Nodes        []*nodeProto
	Initializers []*tensorProto
	Inputs       []*valueInfo
	Outputs      []*valueInfo
	ValueInfo    []*valueInfo
	HasSparse    bool
}

type nodeProto struct {
	Inputs  []string
	Outputs []string
	Name    string
	OpType  string
	Domain  string
	Attrs   []*attribute
}

type attribute struct {
	Name        string
	RefAttrName string
	Type        int64
	F           float32
	I           int64
	S           []byte
	T           *tensorProto
	Floats      []float32
	Ints        []int64
	Strings     [][]byte
	Graphs      int // number of graph / sparse / type-proto / tensors values (not decoded)
	seen        map[int]bool
}

type tensorProto struct {
	Dims         []int64
	DataType     int32
	FloatData    []float32
	Int32Data    []int32
	Int64Data    []int64
	DoubleData   []float64
	Uint64Data   []uint64
	StringData   int // number of string_data entries (not decoded)
	RawData      []byte
	HasRaw       bool
	Name         string
	External     []keyValue
	DataLocation int64
	HasSegment   bool
}

type keyValue struct{ Key, Value string }

type valueInfo struct {
	Name      string
	HasType   bool
	NonTensor bool // sequence, map, optional or sparse type
	ElemType  int32
	HasShape  bool
	Dims      []dimension
}

type dimension struct {
	Value    int64
	Param    string
	HasValue bool
}

// errTruncated and friends describe wire-level corruption.
var errTruncated = errors.New("truncated or malformed protobuf")

// fieldFunc handles one field; v holds the raw bytes for BytesType fields and
// the value for varint / fixed fields.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64 // varint, fixed32, fixed64
	b   []byte // bytes
}

// walk calls fn for each field of a message.
func walk(msg []byte, what string, fn func(f field) error) error {
	off := 0
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return fmt.Errorf("%s: byte %d: %w (%v)", what, off, errTruncated, protowire.ParseError(n))
		}
		f := field{num: num, typ: typ}
		rest := msg[n:]
		var m int
		switch typ {
		case protowire.VarintType:
			f.u, m = protowire.ConsumeVarint(rest)
		case protowire.Fixed32Type:
			var v uint32
			v, m = protowire.ConsumeFixed32(rest)
			f.u = uint64(v)
		case protowire.Fixed64Type:
			f.u, m = protowire.ConsumeFixed64(rest)
		case protowire.BytesType:
			f.b, m = protowire.ConsumeBytes(rest)
		default:
			m = protowire.ConsumeFieldValue(num, typ, rest)
		}
		if m < 0 {
			return fmt.Errorf("%s: field %d at byte %d: %w (%v)", what, num, off, errTruncated, protowire.ParseError(m))
		}
		if err := fn(f); err != nil {
			return err
		}
		off += n + m
		msg = rest[m:]
	}
	return nil
}

func (f field) wantType(what string, t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("%s: field %d has wire type %d, want %d: %w", what, f.num, f.typ, t, errTruncated)
	}
	return nil
}

func (f field) str(what string) (string, error) {
	if err := f.wantType(what, protowire.BytesType); err != nil {
		return "", err
	}
	return string(f.b), nil
}

func (f field) msg(what string) ([]byte, error) {
	if err := f.wantType(what, protowire.BytesType); err != nil {
		return nil, err
	}
	return f.b, nil
}

func (f field) varint(what string) (uint64, error) {
	if err := f.wantType(what, protowire.VarintType); err != nil {
		return 0, err
	}
	return f.u, nil
}

// appendVarints decodes a repeated varint field, packed or not.
func appendVarints(dst []int64, f field, what string) ([]int64, error) {
	switch f.typ {
	case protowire.VarintType:
		return append(dst, int64(f.u)), nil
	case protowire.BytesType:
		b := f.b
		for len(b) > 0 {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("%s: packed field %d: %w", what, f.num, errTruncated)
			}
			dst = append(dst, int64(v))
			b = b[n:]
		}
		return dst, nil
	}
	return nil, fmt.Errorf("%s: field %d has wire type %d: %w", what, f.num, f.typ, errTruncated)
}

// appendFixed32 decodes a repeated float field, packed or not.
func appendFloats(dst []float32, f field, what string) ([]float32, error) {
	switch f.typ {
	case protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(f.u))), nil
	case protowire.BytesType:
		if len(f.b)%4 != 0 {
			return nil, fmt.Errorf("%s: packed float field %d has %d bytes: %w", what, f.num, len(f.b), errTruncated)
		}
		for i := 0; i+4 <= len(f.b); i += 4 {
			u := uint32(f.b[i]) | uint32(f.b[i+1])<<8 | uint32(f.b[i+2])<<16 | uint32(f.b[i+3])<<24
			dst = append(dst, math.Float32frombits(u))
		}
		return dst, nil
	}
	return nil, fmt.Errorf("%s: field %d has wire type %d: %w", what, f.num, f.typ, errTruncated)
}

func appendFixed64(dst []uint64, f field, what string) ([]uint64, error) {
	switch f.typ {
	case protowire.Fixed64Type:
		return append(dst, f.u), nil
	case protowire.BytesType:
		if len(f.b)%8 != 0 {
			return nil, fmt.Errorf("%s: packed field %d has %d bytes: %w", what, f.num, len(f.b), errTruncated)
		}
		for i := 0; i+8 <= len(f.b); i += 8 {
			var u uint64
			for j := 7; j >= 0; j-- {
				u = u<<8 | uint64(f.b[i+j])
			}
			dst = append(dst, u)
		}
		return dst, nil
	}
	return nil, fmt.Errorf("%s: field %d has wire type %d: %w", what, f.num, f.typ, errTruncated)
}

func parseModel(b []byte) (*modelProto, error) {
	m := &modelProto{}
	const what = "ModelProto"
	err := walk(b, what, func(f field) error {
		var err error
		switch f.num {
		case 1:
			var u uint64
			u, err = f.varint(what + ".ir_version")
			m.IRVersion = int64(u)
		case 2:
			m.ProducerName, err = f.str(what + ".producer_name")
		case 3:
			m.ProducerVersion, err = f.str(what + ".producer_version")
		case 7:
			if m.Graph != nil {
				return fmt.Errorf("%s: more than one graph: %w", what, errTruncated)
			}
			var mb []byte
			if mb, err = f.msg(what + ".graph"); err == nil {
				m.Graph, err = parseGraph(mb)
			}
		case 8:
			var mb []byte
			if mb, err = f.msg(what + ".opset_import"); err == nil {
				var o opsetID
				o, err = parseOpset(mb)
				m.Opsets = append(m.Opsets, o)
			}
		case 25:
			m.HasFunctions = true
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if m.Graph == nil {
		return nil, fmt.Errorf("%s: no graph (not an ONNX model?)", what)
	}
	return m, nil
}

func parseOpset(b []byte) (opsetID, error) {
	var o opsetID
	const what = "OperatorSetIdProto"
	err := walk(b, what, func(f field) error {
		var err error
		switch f.num {
		case 1:
			o.Domain, err = f.str(what + ".domain")
		case 2:
			var u uint64
			u, err = f.varint(what + ".version")
			o.Version = int64(u)
		}
		return err
	})
	return o, err
}

func parseGraph(b []byte) (*graphProto, error) {
	g := &graphProto{}
	const what = "GraphProto"
	err := walk(b, what, func(f field) error {
		var err error
		var mb []byte
		switch f.num {
		case 1:
			if mb, err = f.msg(what + ".node"); err == nil {
				var n *nodeProto
				n, err = parseNode(mb)
				g.Nodes = append(g.Nodes, n)
			}
		case 2:
			g.Name, err = f.str(what + ".name")
		case 5:
			if mb, err = f.msg(what + ".initializer"); err == nil {
				var t *tensorProto
				t, err = parseTensor(mb)
				g.Initializers = append(g.Initializers, t)
			}
		case 11, 12, 13:
			if mb, err = f.msg(what + ".value_info"); err == nil {
				var v *valueInfo
				v, err = parseValueInfo(mb)
				switch f.num {
				case 11:
					g.Inputs = append(g.Inputs, v)
				case 12:
					g.Outputs = append(g.Outputs, v)
				default:
					g.ValueInfo = append(g.ValueInfo, v)
				}
			}
		case 15:
			g.HasSparse = true
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func parseNode(b []byte) (*nodeProto, error) {
	n := &nodeProto{}
	const what = "NodeProto"
	err := walk(b, what, func(f field) error {
		var err error
		var s string
		switch f.num {
		case 1:
			s, err = f.str(what + ".input")
			n.Inputs = append(n.Inputs, s)
		case 2:
			s, err = f.str(what + ".output")
			n.Outputs = append(n.Outputs, s)
		case 3:
			n.Name, err = f.str(what + ".name")
		case 4:
			n.OpType, err = f.str(what + ".op_type")
		case 7:
			n.Domain, err = f.str(what + ".domain")
		case 5:
			var mb []byte
			if mb, err = f.msg(what + ".attribute"); err == nil {
				var a *attribute
				a, err = parseAttribute(mb)
				n.Attrs = append(n.Attrs, a)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("node %q: %w", n.Name, err)
	}
	return n, nil
}

func parseAttribute(b []byte) (*attribute, error) {
	a := &attribute{seen: map[int]bool{}}
	const what = "AttributeProto"
	err := walk(b, what, func(f field) error {
		var err error
		a.seen[int(f.num)] = true
		switch f.num {
		case 1:
			a.Name, err = f.str(what + ".name")
		case 21:
			a.RefAttrName, err = f.str(what + ".ref_attr_name")
		case 20:
			var u uint64
			u, err = f.varint(what + ".type")
			a.Type = int64(u)
		case 2:
			if err = f.wantType(what+".f", protowire.Fixed32Type); err == nil {
				a.F = math.Float32frombits(uint32(f.u))
			}
		case 3:
			var u uint64
			u, err = f.varint(what + ".i")
			a.I = int64(u)
		case 4:
			err = f.wantType(what+".s", protowire.BytesType)
			a.S = f.b
		case 5:
			var mb []byte
			if mb, err = f.msg(what + ".t"); err == nil {
				a.T, err = parseTensor(mb)
			}
		case 7:
			a.Floats, err = appendFloats(a.Floats, f, what+".floats")
		case 8:
			a.Ints, err = appendVarints(a.Ints, f, what+".ints")
		case 9:
			err = f.wantType(what+".strings", protowire.BytesType)
			a.Strings = append(a.Strings, f.b)
		case 6, 10, 11, 14, 15, 22, 23:
			a.Graphs++
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
	}
	if a.Type == attrUndefined {
		// IR version < 3 files may omit the type: infer it from the field present.
		switch {
		case a.seen[2]:
			a.Type = attrFloat
		case a.seen[3]:
			a.Type = attrInt
		case a.seen[4]:
			a.Type = attrString
		case a.seen[5]:
			a.Type = attrTensor
		case a.seen[7]:
			a.Type = attrFloats
		case a.seen[8]:
			a.Type = attrInts
		case a.seen[9]:
			a.Type = attrStrings
		}
	}
	return a, nil
}

func parseTensor(b []byte) (*tensorProto, error) {
	t := &tensorProto{}
	const what = "TensorProto"
	err := walk(b, what, func(f field) error {
		var err error
		switch f.num {
		case 1:
			t.Dims, err = appendVarints(t.Dims, f, what+".dims")
		case 2:
			var u uint64
			u, err = f.varint(what + ".data_type")
			t.DataType = int32(u)
		case 3:
			t.HasSegment = true
		case 4:
			t.FloatData, err = appendFloats(t.FloatData, f, what+".float_data")
		case 5:
			var v []int64
			v, err = appendVarints(nil, f, what+".int32_data")
			for _, x := range v {
				t.Int32Data = append(t.Int32Data, int32(x))
			}
		case 6:
			t.StringData++
		case 7:
			t.Int64Data, err = appendVarints(t.Int64Data, f, what+".int64_data")
		case 8:
			t.Name, err = f.str(what + ".name")
		case 9:
			err = f.wantType(what+".raw_data", protowire.BytesType)
			t.RawData, t.HasRaw = f.b, true
		case 10:
			var u []uint64
			u, err = appendFixed64(nil, f, what+".double_data")
			for _, x := range u {
				t.DoubleData = append(t.DoubleData, math.Float64frombits(x))
			}
		case 11:
			var v []int64
			v, err = appendVarints(nil, f, what+".uint64_data")
			for _, x := range v {
				t.Uint64Data = append(t.Uint64Data, uint64(x))
			}
		case 13:
			var mb []byte
			if mb, err = f.msg(what + ".external_data"); err == nil {
				var kv keyValue
				kv, err = parseKeyValue(mb)
				t.External = append(t.External, kv)
			}
		case 14:
			var u uint64
			u, err = f.varint(what + ".data_location")
			t.DataLocation = int64(u)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return t, nil
}

func parseKeyValue(b []byte) (keyValue, error) {
	var kv keyValue
	const what = "StringStringEntryProto"
	err := walk(b, what, func(f field) error {
		var err error
		switch f.num {
		case 1:
			kv.Key, err = f.str(what + ".key")
		case 2:
			kv.Value, err = f.str(what + ".value")
		}
		return err
	})
	return kv, err
}

func parseValueInfo(b []byte) (*valueInfo, error) {
	v := &valueInfo{}
	const what = "ValueInfoProto"
	err := walk(b, what, func(f field) error {
		var err error
		switch f.num {
		case 1:
			v.Name, err = f.str(what + ".name")
		case 2:
			var mb []byte
			if mb, err = f.msg(what + ".type"); err == nil {
				v.HasType = true
				err = parseType(mb, v)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("value %q: %w", v.Name, err)
	}
	return v, nil
}

func parseType(b []byte, v *valueInfo) error {
	const what = "TypeProto"
	return walk(b, what, func(f field) error {
		switch f.num {
		case 1:
			mb, err := f.msg(what + ".tensor_type")
			if err != nil {
				return err
			}
			return walk(mb, what+".Tensor", func(f field) error {
				switch f.num {
				case 1:
					u, err := f.varint(what + ".Tensor.elem_type")
					v.ElemType = int32(u)
					return err
				case 2:
					mb, err := f.msg(what + ".Tensor.shape")
					if err != nil {
						return err
					}
					v.HasShape = true
					return walk(mb, "TensorShapeProto", func(f field) error {
						if f.num != 1 {
							return nil
						}
						mb, err := f.msg("TensorShapeProto.dim")
						if err != nil {
							return err
						}
						var d dimension
						err = walk(mb, "TensorShapeProto.Dimension", func(f field) error {
							switch f.num {
							case 1:
								u, err := f.varint("Dimension.dim_value")
								d.Value, d.HasValue = int64(u), true
								return err
							case 2:
								s, err := f.str("Dimension.dim_param")
								d.Param = s
								return err
							}
							return nil
						})
						v.Dims = append(v.Dims, d)
						return err
					})
				}
				return nil
			})
		case 4, 5, 8, 9:
			v.NonTensor = true
		}
		return nil
	})
}
