package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// FixedShapeTensorName is the canonical Arrow extension name of fixed-shape tensors.
const FixedShapeTensorName = "arrow.fixed_shape_tensor"

// FixedShapeTensorType is the canonical Arrow extension type arrow.fixed_shape_tensor
// (https://arrow.apache.org/docs/format/CanonicalExtensions.html#fixed-shape-tensor):
// storage fixed_size_list<T>[product(shape)], metadata {"shape":[...]} in row-major order.
// arrow-go v18.8.0 does not ship it (its arrow/extensions has bool8, json, opaque, uuid,
// variant, timestamp_with_offset), so the store defines it. It is safe for concurrent use.
type FixedShapeTensorType struct {
	arrow.ExtensionBase
	shape    []int
	dimNames []string
	perm     []int
}

type fixedShapeTensorMeta struct {
	Shape       []int    `json:"shape"`
	DimNames    []string `json:"dim_names,omitempty"`
	Permutation []int    `json:"permutation,omitempty"`
}

// NewFixedShapeTensorType returns the tensor type of shape over value type elem.
func NewFixedShapeTensorType(elem arrow.DataType, shape []int) (*FixedShapeTensorType, error) {
	n, err := shapeSize(shape)
	if err != nil {
		return nil, err
	}
	return &FixedShapeTensorType{
		ExtensionBase: arrow.ExtensionBase{Storage: arrow.FixedSizeListOf(int32(n), elem)},
		shape:         append([]int{}, shape...),
	}, nil
}

// shapeSize returns the product of the dims, refusing negative dims, a
// product of 0 and overflow past 2^31-1.
func shapeSize(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: negative dimension in shape %v", ErrShape, shape)
		}
		if d != 0 && n > (1<<31-1)/d {
			return 0, fmt.Errorf("%w: shape %v has more than 2^31-1 elements", ErrShape, shape)
		}
		n *= d
	}
	if n == 0 {
		// Arrow has no fixed-size list of 0 values (arrow-go panics on one).
		return 0, fmt.Errorf("%w: shape %v has no elements", ErrShape, shape)
	}
	return n, nil
}

// Shape returns the per-row tensor shape.
func (t *FixedShapeTensorType) Shape() []int { return append([]int{}, t.shape...) }

// ExtensionName returns "arrow.fixed_shape_tensor".
func (*FixedShapeTensorType) ExtensionName() string { return FixedShapeTensorName }

func (t *FixedShapeTensorType) String() string {
	return fmt.Sprintf("extension<%s[value_type=%s, shape=%v]>", FixedShapeTensorName, t.valueType(), t.shape)
}

func (t *FixedShapeTensorType) valueType() arrow.DataType {
	if l, ok := t.Storage.(*arrow.FixedSizeListType); ok {
		return l.Elem()
	}
	return nil
}

// Serialize returns the JSON metadata {"shape":[...]}.
func (t *FixedShapeTensorType) Serialize() string {
	shape := t.shape
	if shape == nil {
		shape = []int{}
	}
	b, _ := json.Marshal(fixedShapeTensorMeta{Shape: shape, DimNames: t.dimNames, Permutation: t.perm})
	return string(b)
}

// Deserialize parses the metadata and checks it against the storage type.
func (*FixedShapeTensorType) Deserialize(storage arrow.DataType, data string) (arrow.ExtensionType, error) {
	l, ok := storage.(*arrow.FixedSizeListType)
	if !ok {
		return nil, fmt.Errorf("%s: storage must be fixed_size_list, got %s", FixedShapeTensorName, storage)
	}
	var m fixedShapeTensorMeta
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		return nil, fmt.Errorf("%s: metadata: %w", FixedShapeTensorName, err)
	}
	if m.Shape == nil {
		return nil, errors.New(FixedShapeTensorName + ": metadata has no shape")
	}
	n, err := shapeSize(m.Shape)
	if err != nil {
		return nil, err
	}
	if int64(n) != int64(l.Len()) {
		return nil, fmt.Errorf("%s: shape %v has %d elements, storage list size %d", FixedShapeTensorName, m.Shape, n, l.Len())
	}
	if m.DimNames != nil && len(m.DimNames) != len(m.Shape) {
		return nil, fmt.Errorf("%s: %d dim_names for %d dims", FixedShapeTensorName, len(m.DimNames), len(m.Shape))
	}
	if m.Permutation != nil {
		if len(m.Permutation) != len(m.Shape) {
			return nil, fmt.Errorf("%s: permutation of %d dims for %d dims", FixedShapeTensorName, len(m.Permutation), len(m.Shape))
		}
		seen := make([]bool, len(m.Shape))
		for _, p := range m.Permutation {
			if p < 0 || p >= len(seen) || seen[p] {
				return nil, fmt.Errorf("%s: invalid permutation %v", FixedShapeTensorName, m.Permutation)
			}
			seen[p] = true
		}
	}
	return &FixedShapeTensorType{
		ExtensionBase: arrow.ExtensionBase{Storage: storage},
		shape:         m.Shape,
		dimNames:      m.DimNames,
		perm:          m.Permutation,
	}, nil
}

// ExtensionEquals reports whether other is a tensor type of the same storage and shape.
func (t *FixedShapeTensorType) ExtensionEquals(other arrow.ExtensionType) bool {
	o, ok := other.(*FixedShapeTensorType)
	if !ok || !arrow.TypeEqual(t.Storage, o.Storage) || len(t.shape) != len(o.shape) {
		return false
	}
	for i := range t.shape {
		if t.shape[i] != o.shape[i] {
			return false
		}
	}
	return reflect.DeepEqual(t.dimNames, o.dimNames) && reflect.DeepEqual(t.perm, o.perm)
}

// ArrayType returns the Go type of arrays of this type.
func (*FixedShapeTensorType) ArrayType() reflect.Type { return reflect.TypeOf(FixedShapeTensorArray{}) }

// FixedShapeTensorArray is an array of arrow.fixed_shape_tensor values.
type FixedShapeTensorArray struct {
	array.ExtensionArrayBase
}

var registerOnce sync.Once

// registerExtensions registers FixedShapeTensorType with arrow's global extension registry,
// once per process. It is called by Open and OpenReadOnly, not by init. If another package
// already registered the name, that registration is kept and the store still reads the tensor
// column through its fixed_size_list storage.
func registerExtensions() {
	registerOnce.Do(func() {
		proto, _ := NewFixedShapeTensorType(arrow.PrimitiveTypes.Float32, []int{1})
		_ = arrow.RegisterExtensionType(proto)
	})
}
