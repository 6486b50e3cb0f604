package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// maxElements bounds the element count of one tensor (2^31-1), so a hostile
// dims field cannot make the loader allocate without limit before reading data.
const maxElements = math.MaxInt32

// constant is a tensor whose value is known at load time: an initializer, a
// Constant node, or the folded result of nodes whose inputs are all constant.
// Float tensors (FLOAT, DOUBLE, FLOAT16, BFLOAT16) are held as float32,
// integer and bool tensors as int64.
type constant struct {
	shape []int
	isInt bool
	f     []float32
	i     []int64
	// batch marks int elements that stand for the model's batch size N (a
	// Shape of a tensor whose first dimension is the dynamic batch); nil if none.
	batch []bool
	// batchSrc names a runtime value whose dimension 0 is the batch size,
	// when batch marks some element.
	batchSrc string
}

func (c *constant) size() int {
	if c.isInt {
		return len(c.i)
	}
	return len(c.f)
}

func (c *constant) hasBatch() bool {
	for _, b := range c.batch {
		if b {
			return true
		}
	}
	return false
}

// numel returns the product of dims, or an error if a dim is negative or the
// product exceeds maxElements.
func numel(dims []int64) (int, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in %v", d, dims)
		}
		if d > 0 && n > maxElements/d {
			return 0, fmt.Errorf("dimensions %v: more than %d elements", dims, maxElements)
		}
		n *= d
	}
	if len(dims) > 0 {
		for _, d := range dims {
			if d == 0 {
				return 0, nil
			}
		}
	}
	return int(n), nil
}

// elemSize is the byte width of a data type in raw_data (0: unsupported).
func elemSize(dt int32) int {
	switch dt {
	case dtFloat, dtInt32, dtUint32:
		return 4
	case dtDouble, dtInt64, dtUint64:
		return 8
	case dtFloat16, dtBfloat16, dtInt16, dtUint16:
		return 2
	case dtInt8, dtUint8, dtBool:
		return 1
	}
	return 0
}

func isFloatType(dt int32) bool {
	return dt == dtFloat || dt == dtDouble || dt == dtFloat16 || dt == dtBfloat16
}

// dataSource reads external tensor data for a model; nil when the model was
// not loaded from a file.
type dataSource struct {
	dir  string
	root *os.Root
}

func (s *dataSource) close() {
	if s != nil && s.root != nil {
		s.root.Close()
	}
}

// readExternal returns size bytes of the external data described by kv.
func (s *dataSource) readExternal(kv []keyValue, size int) ([]byte, error) {
	var location string
	offset, length := int64(0), int64(-1)
	for _, e := range kv {
		var err error
		switch e.Key {
		case "location":
			location = e.Value
		case "offset":
			offset, err = strconv.ParseInt(e.Value, 10, 64)
			if err == nil && offset < 0 {
				err = errors.New("negative")
			}
		case "length":
			length, err = strconv.ParseInt(e.Value, 10, 64)
			if err == nil && length < 0 {
				err = errors.New("negative")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("external data %s %q: %v", e.Key, e.Value, err)
		}
	}
	if location == "" {
		return nil, errors.New("external data without location")
	}
	if !filepath.IsLocal(location) {
		return nil, fmt.Errorf("external data location %q is not inside the model's directory", location)
	}
	if length >= 0 && length != int64(size) {
		return nil, fmt.Errorf("external data %q: length %d, want %d bytes for the tensor's dims and type", location, length, size)
	}
	if s == nil {
		return nil, fmt.Errorf("external data %q: the model was not loaded from a file", location)
	}
	if s.root == nil {
		r, err := os.OpenRoot(s.dir)
		if err != nil {
			return nil, fmt.Errorf("external data: %w", err)
		}
		s.root = r
	}
	f, err := s.root.Open(location)
	if err != nil {
		return nil, fmt.Errorf("external data: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("external data: %w", err)
	}
	if offset > st.Size() || int64(size) > st.Size()-offset {
		return nil, fmt.Errorf("external data %q: %d bytes at offset %d past the end of the file (%d bytes)", location, size, offset, st.Size())
	}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, offset); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		return nil, fmt.Errorf("external data %q: %w", location, err)
	}
	return buf, nil
}

// decodeTensor converts a TensorProto into a constant.
func decodeTensor(t *tensorProto, src *dataSource) (*constant, error) {
	n, err := numel(t.Dims)
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		shape[i] = int(d)
	}
	es := elemSize(t.DataType)
	if es == 0 {
		return nil, fmt.Errorf("unsupported tensor data type %s", dataTypeName(t.DataType))
	}
	if t.HasSegment {
		return nil, errors.New("segmented tensors are not supported")
	}
	c := &constant{shape: shape, isInt: !isFloatType(t.DataType)}
	raw, hasRaw := t.RawData, t.HasRaw
	switch t.DataLocation {
	case 0:
	case 1:
		if n > maxElements/es {
			return nil, fmt.Errorf("tensor too large")
		}
		raw, err = src.readExternal(t.External, n*es)
		if err != nil {
			return nil, err
		}
		hasRaw = true
	default:
		return nil, fmt.Errorf("unknown data_location %d", t.DataLocation)
	}
	if hasRaw {
		if len(raw) != n*es || (es > 0 && len(raw)/es != n) {
			return nil, fmt.Errorf("raw_data has %d bytes, want %d (%d x %s)", len(raw), n*es, n, dataTypeName(t.DataType))
		}
		if c.isInt {
			c.i = make([]int64, n)
		} else {
			c.f = make([]float32, n)
		}
		le := binary.LittleEndian
		for k := 0; k < n; k++ {
			b := raw[k*es : (k+1)*es]
			switch t.DataType {
			case dtFloat:
				c.f[k] = math.Float32frombits(le.Uint32(b))
			case dtDouble:
				c.f[k] = float32(math.Float64frombits(le.Uint64(b)))
			case dtFloat16:
				c.f[k] = f16(le.Uint16(b))
			case dtBfloat16:
				c.f[k] = math.Float32frombits(uint32(le.Uint16(b)) << 16)
			case dtInt64:
				c.i[k] = int64(le.Uint64(b))
			case dtUint64:
				c.i[k] = int64(le.Uint64(b))
			case dtInt32:
				c.i[k] = int64(int32(le.Uint32(b)))
			case dtUint32:
				c.i[k] = int64(le.Uint32(b))
			case dtInt16:
				c.i[k] = int64(int16(le.Uint16(b)))
			case dtUint16:
				c.i[k] = int64(le.Uint16(b))
			case dtInt8:
				c.i[k] = int64(int8(b[0]))
			case dtUint8:
				c.i[k] = int64(b[0])
			case dtBool:
				if b[0] != 0 {
					c.i[k] = 1
				}
			}
		}
		return c, nil
	}
	var have int
	switch t.DataType {
	case dtFloat:
		have = len(t.FloatData)
		if have == n {
			c.f = append([]float32(nil), t.FloatData...)
		}
	case dtDouble:
		have = len(t.DoubleData)
		if have == n {
			c.f = make([]float32, n)
			for k, v := range t.DoubleData {
				c.f[k] = float32(v)
			}
		}
	case dtInt64:
		have = len(t.Int64Data)
		if have == n {
			c.i = append([]int64(nil), t.Int64Data...)
		}
	case dtUint32, dtUint64:
		have = len(t.Uint64Data)
		if have == n {
			c.i = make([]int64, n)
			for k, v := range t.Uint64Data {
				c.i[k] = int64(v)
			}
		}
	default: // int32_data holds INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16
		have = len(t.Int32Data)
		if have == n {
			if c.isInt {
				c.i = make([]int64, n)
				for k, v := range t.Int32Data {
					c.i[k] = int64(v)
				}
			} else {
				c.f = make([]float32, n)
				for k, v := range t.Int32Data {
					if t.DataType == dtFloat16 {
						c.f[k] = f16(uint16(v))
					} else {
						c.f[k] = math.Float32frombits(uint32(uint16(v)) << 16)
					}
				}
			}
		}
	}
	if have != n {
		return nil, fmt.Errorf("%s tensor with dims %v has %d values, want %d", dataTypeName(t.DataType), t.Dims, have, n)
	}
	if c.isInt && c.i == nil {
		c.i = []int64{}
	}
	if !c.isInt && c.f == nil {
		c.f = []float32{}
	}
	return c, nil
}

// f16 converts an IEEE-754 half-precision bit pattern to float32.
func f16(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		v := float32(mant) / 1024 / 16384 // mant * 2^-24
		if sign != 0 {
			return -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}
