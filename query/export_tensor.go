package query

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/actrec/actrec/query/npy"
	"github.com/actrec/actrec/store"
)

// chunkBytes is the target size of the tensor data of one exported record
// batch (Arrow) or row group (Parquet).
const chunkBytes = 32 << 20

// tensorSchema is the schema of exported tensor rows: batch, sample,
// dataset_index and the tensor as arrow.fixed_shape_tensor.
func tensorSchema(run string, l store.LayerSummary) (*arrow.Schema, *store.FixedShapeTensorType, error) {
	shape := l.Shape
	if shape == nil {
		shape = []int{}
	}
	tt, err := store.NewFixedShapeTensorType(arrow.PrimitiveTypes.Float32, shape)
	if err != nil {
		return nil, nil, fmt.Errorf("layer %q: %w", l.Path, err)
	}
	md := arrow.NewMetadata([]string{"actrec.run", "actrec.layer", "actrec.op"}, []string{run, l.Path, l.Op})
	return arrow.NewSchema([]arrow.Field{
		{Name: "batch", Type: arrow.PrimitiveTypes.Int64},
		{Name: "sample", Type: arrow.PrimitiveTypes.Int32},
		{Name: "dataset_index", Type: arrow.PrimitiveTypes.Int64},
		{Name: "tensor", Type: tt},
	}, &md), tt, nil
}

// byteView returns the bytes of a slice of fixed-size numbers without
// copying (Arrow buffers are little-endian, as is every platform Go's
// arrow-go supports).
func byteView[T float32 | int32 | int64](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0])))
}

func primitive[T float32 | int32 | int64](t arrow.DataType, v []T) arrow.Array {
	d := array.NewData(t, len(v), []*memory.Buffer{nil, memory.NewBufferBytes(byteView(v))}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

// parquetSchema is tensorSchema with the tensor as list<float32>:
// pqarrow writes no fixed-size lists (and Parquet has none). The per-sample
// shape is in the schema metadata (actrec.shape, JSON).
func parquetSchema(run string, l store.LayerSummary) (*arrow.Schema, error) {
	shape := l.Shape
	if shape == nil {
		shape = []int{}
	}
	js, err := json.Marshal(shape)
	if err != nil {
		return nil, err
	}
	md := arrow.NewMetadata([]string{"actrec.run", "actrec.layer", "actrec.op", "actrec.shape"}, []string{run, l.Path, l.Op, string(js)})
	return arrow.NewSchema([]arrow.Field{
		{Name: "batch", Type: arrow.PrimitiveTypes.Int64},
		{Name: "sample", Type: arrow.PrimitiveTypes.Int32},
		{Name: "dataset_index", Type: arrow.PrimitiveTypes.Int64},
		{Name: "tensor", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32)},
	}, &md), nil
}

// tensorChunks streams the tensor rows of a layer in record batches of
// about chunkBytes, calling emit with each. The record is only valid
// during emit (its buffers are reused). With asList the tensor column is
// a list<float32> (parquetSchema), else arrow.fixed_shape_tensor.
func tensorChunks(ctx context.Context, s *store.Store, run string, p tensorPlan, r store.BatchRange, asList bool, pr *progress, emit func(arrow.RecordBatch) error) error {
	schema, tt, err := tensorSchema(run, p.layer)
	if err != nil {
		return err
	}
	if asList {
		if schema, err = parquetSchema(run, p.layer); err != nil {
			return err
		}
	}
	var offsets []int32
	rowsPer := max(1, chunkBytes/max(1, p.elems*4))
	var (
		batches []int64
		samples []int32
		dsIdx   []int64
		values  = make([]float32, 0, rowsPer*p.elems)
	)
	flush := func() error {
		if len(batches) == 0 {
			return nil
		}
		n := len(batches)
		vals := primitive(arrow.PrimitiveTypes.Float32, values)
		var ld arrow.ArrayData
		var storage, ext arrow.Array
		if asList {
			offsets = offsets[:0]
			for i := 0; i <= n; i++ {
				offsets = append(offsets, int32(i*p.elems))
			}
			ld = array.NewData(schema.Field(3).Type, n, []*memory.Buffer{nil, memory.NewBufferBytes(byteView(offsets))}, []arrow.ArrayData{vals.Data()}, 0, 0)
			storage = array.MakeFromData(ld)
			ext = storage
			storage.Retain()
		} else {
			ld = array.NewData(tt.StorageType(), n, []*memory.Buffer{nil}, []arrow.ArrayData{vals.Data()}, 0, 0)
			storage = array.MakeFromData(ld)
			ext = array.NewExtensionArrayWithStorage(tt, storage)
		}
		cols := []arrow.Array{
			primitive(arrow.PrimitiveTypes.Int64, batches),
			primitive(arrow.PrimitiveTypes.Int32, samples),
			primitive(arrow.PrimitiveTypes.Int64, dsIdx),
			ext,
		}
		rec := array.NewRecordBatch(schema, cols, int64(n))
		err := emit(rec)
		rec.Release()
		for _, c := range cols {
			c.Release()
		}
		vals.Release()
		ld.Release()
		storage.Release()
		pr.add(int64(n), int64(len(values))*4)
		batches, samples, dsIdx, values = batches[:0], samples[:0], dsIdx[:0], values[:0]
		return err
	}
	err = tensors(ctx, s, run, p.layer.Path, r, func(row store.TensorRow) error {
		if len(row.Data) != p.elems {
			return fmt.Errorf("run %q layer %q batch %d sample %d: %d values, shape %v wants %d",
				run, p.layer.Path, row.Batch, row.Sample, len(row.Data), p.layer.Shape, p.elems)
		}
		batches = append(batches, row.Batch)
		samples = append(samples, row.Sample)
		dsIdx = append(dsIdx, row.DatasetIndex)
		values = append(values, row.Data...)
		if len(batches) >= rowsPer {
			return flush()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tensors of %s/%s: %w", run, p.layer.Path, err)
	}
	return flush()
}

// exportArrow writes one layer as an Arrow IPC file.
func exportArrow(ctx context.Context, s *store.Store, run string, p tensorPlan, r store.BatchRange, w io.Writer, pr *progress) error {
	schema, _, err := tensorSchema(run, p.layer)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	fw, err := ipc.NewFileWriter(bw, ipc.WithSchema(schema))
	if err != nil {
		return err
	}
	if err := tensorChunks(ctx, s, run, p, r, false, pr, fw.Write); err != nil {
		fw.Close()
		return err
	}
	if err := fw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// exportParquet writes one layer as a Parquet file: uncompressed, without
// dictionary encoding (float tensors neither compress nor repeat), the
// tensor as list<float> (the shape in the actrec.shape metadata).
func exportParquet(ctx context.Context, s *store.Store, run string, p tensorPlan, r store.BatchRange, w io.Writer, pr *progress) error {
	schema, err := parquetSchema(run, p.layer)
	if err != nil {
		return err
	}
	props := parquet.NewWriterProperties(
		parquet.WithDictionaryDefault(false),
		parquet.WithMaxRowGroupLength(1<<30),
		parquet.WithCreatedBy("actrec actquery"),
	)
	bw := bufio.NewWriterSize(w, 1<<20)
	fw, err := pqarrow.NewFileWriter(schema, bw, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return err
	}
	// pqarrow.NewFileWriter already copies the schema metadata (actrec.run, actrec.layer,
	// actrec.op, actrec.shape) into the file's key-value metadata: appending it again doubled it.
	if err := tensorChunks(ctx, s, run, p, r, true, pr, fw.Write); err != nil {
		fw.Close()
		return err
	}
	if err := fw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// writeLayerData streams the tensor values of a layer into an npy writer,
// checking that the rows are those counted in the plan.
func writeLayerData(ctx context.Context, s *store.Store, run string, p tensorPlan, r store.BatchRange, w *npy.Writer, pr *progress) error {
	i := 0
	err := tensors(ctx, s, run, p.layer.Path, r, func(row store.TensorRow) error {
		if i >= len(p.keys) {
			return nil // committed by a live writer after the rows were counted
		}
		if p.keys[i].loc.batch != row.Batch || p.keys[i].loc.sample != row.Sample {
			return fmt.Errorf("run %q layer %q changed while exporting (batch %d sample %d not listed)", run, p.layer.Path, row.Batch, row.Sample)
		}
		i++
		if len(row.Data) != p.elems {
			return fmt.Errorf("run %q layer %q batch %d sample %d: %d values, shape %v wants %d",
				run, p.layer.Path, row.Batch, row.Sample, len(row.Data), p.layer.Shape, p.elems)
		}
		if err := w.WriteFloat32(row.Data); err != nil {
			return err
		}
		pr.add(1, int64(len(row.Data))*4)
		return nil
	})
	if err != nil {
		return fmt.Errorf("tensors of %s/%s: %w", run, p.layer.Path, err)
	}
	if i != len(p.keys) {
		return fmt.Errorf("run %q layer %q: %d rows listed, %d read", run, p.layer.Path, len(p.keys), i)
	}
	return w.Close()
}

func dataShape(p tensorPlan) []int {
	return append([]int{len(p.keys)}, p.layer.Shape...)
}

// exportNPY writes one layer as one (n, *shape) float32 array.
func exportNPY(ctx context.Context, s *store.Store, run string, p tensorPlan, r store.BatchRange, w io.Writer, pr *progress) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	nw, err := npy.NewWriter(bw, npy.Float32, dataShape(p))
	if err != nil {
		return err
	}
	if err := writeLayerData(ctx, s, run, p, r, nw, pr); err != nil {
		return err
	}
	return bw.Flush()
}

// exportNPZ writes, per layer, the arrays "<layer>.batch", "<layer>.sample"
// and "<layer>.dataset_index" (int64, (n,)) and "<layer>" (float32,
// (n, *shape)), row i of each describing the same sample.
func exportNPZ(ctx context.Context, s *store.Store, run string, plans []tensorPlan, r store.BatchRange, w io.Writer, pr *progress) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	z := npy.NewNPZWriter(bw)
	for _, p := range plans {
		n := len(p.keys)
		idx := make([]int64, n)
		for _, col := range []struct {
			name string
			get  func(k keyRow) int64
		}{
			{".batch", func(k keyRow) int64 { return k.loc.batch }},
			{".sample", func(k keyRow) int64 { return int64(k.loc.sample) }},
			{".dataset_index", func(k keyRow) int64 { return k.ds }},
		} {
			for i, k := range p.keys {
				idx[i] = col.get(k)
			}
			aw, err := z.Create(p.layer.Path+col.name, npy.Int64, []int{n})
			if err != nil {
				return err
			}
			if err := aw.WriteInt64(idx); err != nil {
				return err
			}
		}
		aw, err := z.Create(p.layer.Path, npy.Float32, dataShape(p))
		if err != nil {
			return err
		}
		if err := writeLayerData(ctx, s, run, p, r, aw, pr); err != nil {
			return err
		}
	}
	if err := z.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
