package store

import (
	"bytes"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestFixedShapeTensorType_Metadata(t *testing.T) {
	tt, err := NewFixedShapeTensorType(arrow.PrimitiveTypes.Float32, []int{2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if tt.ExtensionName() != "arrow.fixed_shape_tensor" || tt.Serialize() != `{"shape":[2,3,4]}` {
		t.Fatalf("name %q metadata %q", tt.ExtensionName(), tt.Serialize())
	}
	if l := tt.StorageType().(*arrow.FixedSizeListType); l.Len() != 24 || !arrow.TypeEqual(l.Elem(), arrow.PrimitiveTypes.Float32) {
		t.Fatalf("storage %s", tt.StorageType())
	}
	scalar, _ := NewFixedShapeTensorType(arrow.PrimitiveTypes.Float32, nil)
	if scalar.Serialize() != `{"shape":[]}` {
		t.Fatalf("scalar metadata %q", scalar.Serialize())
	}
	cases := []struct {
		name, meta string
		n          int32
		ok         bool
	}{
		{"canonical", `{"shape":[2,3,4]}`, 24, true},
		{"with_dim_names_and_permutation", `{"shape":[2,12],"dim_names":["C","W"],"permutation":[1,0]}`, 24, true},
		{"size_mismatch", `{"shape":[2,3]}`, 24, false},
		{"no_shape", `{}`, 24, false},
		{"negative_dim", `{"shape":[-24,-1]}`, 24, false},
		{"bad_json", `{"shape":`, 24, false},
		{"bad_permutation", `{"shape":[2,12],"permutation":[0,0]}`, 24, false},
		{"overflow", `{"shape":[65536,65536,65536]}`, 24, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tt.Deserialize(arrow.FixedSizeListOf(c.n, arrow.PrimitiveTypes.Float32), c.meta)
			if (err == nil) != c.ok {
				t.Fatalf("Deserialize: %v, ok want %v", err, c.ok)
			}
			if c.ok && !strings.HasPrefix(got.String(), "extension<arrow.fixed_shape_tensor") {
				t.Fatalf("%s", got)
			}
		})
	}
	if _, err := tt.Deserialize(arrow.PrimitiveTypes.Int32, `{"shape":[1]}`); err == nil {
		t.Fatal("non-list storage accepted")
	}
}

// TestFixedShapeTensorType_IPC: a tensor column written to an IPC file reads back as the
// extension type with its shape (registered), and its field carries the canonical keys.
func TestFixedShapeTensorType_IPC(t *testing.T) {
	registerExtensions()
	sch, err := tensorSchema("run", "layer", []int{2, 2})
	if err != nil {
		t.Fatal(err)
	}
	var tb tensorBuffer
	tb.n = 4
	tb.add(TensorRow{Batch: 1, Sample: 0, DatasetIndex: 7, Data: []float32{1, 2, 3, 4}})
	tb.add(TensorRow{Batch: 1, Sample: 1, DatasetIndex: 8, Data: []float32{5, 6, 7, 8}})
	rec := tb.record(sch, "layer", 0, 2)
	defer rec.Release()
	var buf bytes.Buffer
	fw, err := ipc.NewFileWriter(&buf, ipc.WithSchema(sch))
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	fr, err := ipc.NewFileReader(bytes.NewReader(buf.Bytes()), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	f := fr.Schema().Field(tcTensor)
	ext, ok := f.Type.(*FixedShapeTensorType)
	if !ok {
		t.Fatalf("tensor field read as %T %s", f.Type, f.Type)
	}
	if s := ext.Shape(); len(s) != 2 || s[0] != 2 || s[1] != 2 {
		t.Fatalf("shape %v", s)
	}
	got, err := fr.RecordBatch(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Column(tcTensor).(*FixedShapeTensorArray); !ok {
		t.Fatalf("column is %T", got.Column(tcTensor))
	}
	vals, n, err := tensorValues(got.Column(tcTensor))
	if err != nil || n != 4 || vals[7] != 8 {
		t.Fatalf("values %v n %d err %v", vals, n, err)
	}
	if v := got.Column(tcDatasetIndex).(*array.Int64).Value(1); v != 8 {
		t.Fatalf("dataset_index %d", v)
	}
	// the field also reads without the registration, through its storage and metadata
	plain := arrow.Field{Name: "tensor", Type: ext.StorageType(), Metadata: arrow.NewMetadata(
		[]string{"ARROW:extension:name", "ARROW:extension:metadata"}, []string{FixedShapeTensorName, ext.Serialize()})}
	if _, err := tensorStorageType(plain); err != nil {
		t.Fatalf("unregistered field: %v", err)
	}
}

// TestTensorBufferGrowth: a tensor buffer filled row by row (relu1-sized
// rows of 2 x 21632 values, as the recorder appends them) reallocates its
// data about log2 times, at least doubling, keeps every row intact, and
// keeps its capacity across reset.
func TestTensorBufferGrowth(t *testing.T) {
	const per, rows = 21632, 400
	var tb tensorBuffer
	tb.n = per
	row := make([]float32, per)
	grows := 0
	for i := range rows {
		row[0], row[per-1] = float32(i), float32(-i)
		before := cap(tb.data)
		tb.add(TensorRow{Batch: int64(i), Sample: int32(i % 2), DatasetIndex: int64(10 * i), Data: row})
		if c := cap(tb.data); c != before {
			grows++
			if before > 0 && c < 2*before {
				t.Fatalf("row %d: data capacity grew %d -> %d, less than doubling", i, before, c)
			}
		}
	}
	// log2(400) ~ 8.6: 10 reallocations at most; append's 1.25x growth needs ~25.
	if grows > 10 {
		t.Fatalf("%d reallocations of the data for %d rows", grows, rows)
	}
	if tb.len() != rows || len(tb.data) != rows*per {
		t.Fatalf("len %d, data %d", tb.len(), len(tb.data))
	}
	for i := range rows {
		d := tb.data[i*per : (i+1)*per]
		if d[0] != float32(i) || d[per-1] != float32(-i) || tb.batch[i] != int64(i) || tb.sample[i] != int32(i%2) || tb.dsIndex[i] != int64(10*i) {
			t.Fatalf("row %d corrupted: %v %v batch %d sample %d ds %d", i, d[0], d[per-1], tb.batch[i], tb.sample[i], tb.dsIndex[i])
		}
	}
	c := cap(tb.data)
	tb.reset()
	if tb.len() != 0 || cap(tb.data) != c {
		t.Fatalf("after reset: len %d, cap %d (was %d)", tb.len(), cap(tb.data), c)
	}
}
