package store

// Arrow schemas of segments (FORMAT.md §3), building record batches from buffered rows and
// decoding rows from record batches.

import (
	"fmt"
	"strconv"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var statsFields = []arrow.Field{
	{Name: "batch", Type: arrow.PrimitiveTypes.Int64},
	{Name: "layer", Type: arrow.BinaryTypes.String},
	{Name: "count", Type: arrow.PrimitiveTypes.Int64},
	{Name: "mean", Type: arrow.PrimitiveTypes.Float64},
	{Name: "std", Type: arrow.PrimitiveTypes.Float64},
	{Name: "min", Type: arrow.PrimitiveTypes.Float64},
	{Name: "max", Type: arrow.PrimitiveTypes.Float64},
	{Name: "l2", Type: arrow.PrimitiveTypes.Float64},
	{Name: "zero_frac", Type: arrow.PrimitiveTypes.Float64},
	{Name: "nan", Type: arrow.PrimitiveTypes.Int64},
	{Name: "inf", Type: arrow.PrimitiveTypes.Int64},
	{Name: "p01", Type: arrow.PrimitiveTypes.Float64},
	{Name: "p05", Type: arrow.PrimitiveTypes.Float64},
	{Name: "p25", Type: arrow.PrimitiveTypes.Float64},
	{Name: "p50", Type: arrow.PrimitiveTypes.Float64},
	{Name: "p75", Type: arrow.PrimitiveTypes.Float64},
	{Name: "p95", Type: arrow.PrimitiveTypes.Float64},
	{Name: "p99", Type: arrow.PrimitiveTypes.Float64},
	{Name: "hist_keys", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Uint16)},
	{Name: "hist_counts", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Uint64)},
	{Name: "channel_mean", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32), Nullable: true},
	{Name: "channel_max", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32), Nullable: true},
}

// column indexes of the stats schema
const (
	scBatch       = 0
	scLayer       = 1
	scCount       = 2
	scMean        = 3
	scStd         = 4
	scMin         = 5
	scMax         = 6
	scL2          = 7
	scZeroFrac    = 8
	scNaN         = 9
	scInf         = 10
	scP01         = 11 // p01 .. p99 are scP01 .. scP01+6
	scHistKeys    = 18
	scHistCounts  = 19
	scChannelMean = 20
	scChannelMax  = 21
)

func segMetadata(kind, run, layer string) arrow.Metadata {
	keys := []string{"actrec.format", "actrec.kind", "actrec.run"}
	vals := []string{strconv.Itoa(formatVersion), kind, run}
	if layer != "" {
		keys, vals = append(keys, "actrec.layer"), append(vals, layer)
	}
	return arrow.NewMetadata(keys, vals)
}

func statsSchema(run string) *arrow.Schema {
	md := segMetadata("stats", run, "")
	return arrow.NewSchema(statsFields, &md)
}

// tensor segment columns
const (
	tcBatch = iota
	tcLayer
	tcSample
	tcDatasetIndex
	tcTensor
)

func tensorSchema(run, layer string, shape []int) (*arrow.Schema, error) {
	tt, err := NewFixedShapeTensorType(arrow.PrimitiveTypes.Float32, shape)
	if err != nil {
		return nil, err
	}
	md := segMetadata("tensor", run, layer)
	return arrow.NewSchema([]arrow.Field{
		{Name: "batch", Type: arrow.PrimitiveTypes.Int64},
		{Name: "layer", Type: arrow.BinaryTypes.String},
		{Name: "sample", Type: arrow.PrimitiveTypes.Int32},
		{Name: "dataset_index", Type: arrow.PrimitiveTypes.Int64},
		{Name: "tensor", Type: tt},
	}, &md), nil
}

// statsBuffer holds stats rows of one run until the next flush.
type statsBuffer struct {
	layers []uint32
	rows   []StatsRow
	bytes  int64
}

func (b *statsBuffer) add(layer uint32, r StatsRow) {
	b.layers = append(b.layers, layer)
	b.rows = append(b.rows, cloneStats(r))
	b.bytes += int64(200 + 10*len(r.Hist.Keys) + 4*(len(r.ChannelMean)+len(r.ChannelMax)))
}

func (b *statsBuffer) reset() {
	clear(b.rows)
	b.layers, b.rows, b.bytes = b.layers[:0], b.rows[:0], 0
}

func cloneStats(r StatsRow) StatsRow {
	r.Hist.Keys = append([]uint16(nil), r.Hist.Keys...)
	r.Hist.Counts = append([]uint64(nil), r.Hist.Counts...)
	if r.ChannelMean != nil {
		r.ChannelMean = append([]float32{}, r.ChannelMean...)
	}
	if r.ChannelMax != nil {
		r.ChannelMax = append([]float32{}, r.ChannelMax...)
	}
	return r
}

// record builds one record batch of buffered rows [lo, hi); paths maps layer id -> path.
func (b *statsBuffer) record(mem memory.Allocator, schema *arrow.Schema, paths []string, lo, hi int) arrow.RecordBatch {
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	bld.Reserve(hi - lo)
	// Size the histogram value builders once: appended row by row they
	// would reallocate and copy about log2(total buckets) times per flush.
	keys, chans := 0, 0
	for _, r := range b.rows[lo:hi] {
		keys += len(r.Hist.Keys)
		chans += max(len(r.ChannelMean), len(r.ChannelMax))
	}
	bld.Field(scHistKeys).(*array.ListBuilder).ValueBuilder().(*array.Uint16Builder).Reserve(keys)
	bld.Field(scHistCounts).(*array.ListBuilder).ValueBuilder().(*array.Uint64Builder).Reserve(keys)
	if chans > 0 {
		bld.Field(scChannelMean).(*array.ListBuilder).ValueBuilder().(*array.Float32Builder).Reserve(chans)
		bld.Field(scChannelMax).(*array.ListBuilder).ValueBuilder().(*array.Float32Builder).Reserve(chans)
	}
	f64 := func(i int) *array.Float64Builder { return bld.Field(i).(*array.Float64Builder) }
	for i := lo; i < hi; i++ {
		r := b.rows[i]
		bld.Field(scBatch).(*array.Int64Builder).Append(r.Batch)
		bld.Field(scLayer).(*array.StringBuilder).Append(paths[b.layers[i]])
		bld.Field(scCount).(*array.Int64Builder).Append(r.Count)
		f64(scMean).Append(r.Mean)
		f64(scStd).Append(r.Std)
		f64(scMin).Append(r.Min)
		f64(scMax).Append(r.Max)
		f64(scL2).Append(r.L2)
		f64(scZeroFrac).Append(r.ZeroFrac)
		bld.Field(scNaN).(*array.Int64Builder).Append(r.NaN)
		bld.Field(scInf).(*array.Int64Builder).Append(r.Inf)
		for q := range 7 {
			f64(scP01 + q).Append(r.Percentiles[q])
		}
		lk := bld.Field(scHistKeys).(*array.ListBuilder)
		lk.Append(true)
		lk.ValueBuilder().(*array.Uint16Builder).AppendValues(r.Hist.Keys, nil)
		lc := bld.Field(scHistCounts).(*array.ListBuilder)
		lc.Append(true)
		lc.ValueBuilder().(*array.Uint64Builder).AppendValues(r.Hist.Counts, nil)
		for _, c := range []struct {
			col int
			v   []float32
		}{{scChannelMean, r.ChannelMean}, {scChannelMax, r.ChannelMax}} {
			lb := bld.Field(c.col).(*array.ListBuilder)
			if c.v == nil {
				lb.AppendNull()
				continue
			}
			lb.Append(true)
			lb.ValueBuilder().(*array.Float32Builder).AppendValues(c.v, nil)
		}
	}
	return bld.NewRecordBatch()
}

// tensorBuffer holds tensor rows of one layer until the next flush. Data is copied in.
type tensorBuffer struct {
	n       int // elements per row
	batch   []int64
	sample  []int32
	dsIndex []int64
	data    []float32
}

func (b *tensorBuffer) len() int { return len(b.batch) }

func (b *tensorBuffer) bytes() int64 { return int64(len(b.data))*4 + int64(len(b.batch))*20 }

func (b *tensorBuffer) add(r TensorRow) {
	b.batch = append(grow(b.batch, 1), r.Batch)
	b.sample = append(grow(b.sample, 1), r.Sample)
	b.dsIndex = append(grow(b.dsIndex, 1), r.DatasetIndex)
	b.data = append(grow(b.data, len(r.Data)), r.Data...)
}

// grow returns s with room for n more elements, at least doubling its
// capacity when it has to reallocate. append alone grows large slices by
// only 1.25x, so a tensor buffer filling up to tens of MiB between flushes
// was reallocated and copied dozens of times (about 4x its final size in
// copies, plus the fresh memory each time) instead of about log2 times
// with at most its final size copied in all.
func grow[T int32 | int64 | float32](s []T, n int) []T {
	if cap(s)-len(s) >= n {
		return s
	}
	ns := make([]T, len(s), max(2*cap(s), len(s)+n))
	copy(ns, s)
	return ns
}

func (b *tensorBuffer) reset() {
	b.batch, b.sample, b.dsIndex, b.data = b.batch[:0], b.sample[:0], b.dsIndex[:0], b.data[:0]
}

func bytesOf[T int32 | int64 | float32](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(s[0])))
}

// record builds a record batch of rows [lo, hi) whose numeric buffers alias the buffer's
// slices (no copy); it must be written before the buffer is reset.
func (b *tensorBuffer) record(schema *arrow.Schema, layer string, lo, hi int) arrow.RecordBatch {
	n := hi - lo
	prim := func(dt arrow.DataType, buf []byte) arrow.Array {
		d := array.NewData(dt, n, []*memory.Buffer{nil, memory.NewBufferBytes(buf)}, nil, 0, 0)
		defer d.Release()
		return array.MakeFromData(d)
	}
	sb := array.NewStringBuilder(memory.DefaultAllocator)
	defer sb.Release()
	sb.Reserve(n)
	sb.ReserveData(n * len(layer))
	for range n {
		sb.Append(layer)
	}
	tt := schema.Field(tcTensor).Type.(*FixedShapeTensorType)
	vals := array.NewData(arrow.PrimitiveTypes.Float32, (hi-lo)*b.n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(b.data[lo*b.n : hi*b.n]))}, nil, 0, 0)
	defer vals.Release()
	fsl := array.NewData(tt.Storage, n, []*memory.Buffer{nil}, []arrow.ArrayData{vals}, 0, 0)
	defer fsl.Release()
	storage := array.MakeFromData(fsl)
	defer storage.Release()
	cols := []arrow.Array{
		prim(arrow.PrimitiveTypes.Int64, bytesOf(b.batch[lo:hi])),
		sb.NewArray(),
		prim(arrow.PrimitiveTypes.Int32, bytesOf(b.sample[lo:hi])),
		prim(arrow.PrimitiveTypes.Int64, bytesOf(b.dsIndex[lo:hi])),
		array.NewExtensionArrayWithStorage(tt, storage),
	}
	rec := array.NewRecordBatch(schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// checkSchema verifies that a segment's schema is the one FORMAT.md prescribes for its kind.
func checkSchema(s *arrow.Schema, kind byte) error {
	md := s.Metadata()
	if v, _ := md.GetValue("actrec.format"); v != strconv.Itoa(formatVersion) {
		return fmt.Errorf("%w: segment format %q", ErrVersion, v)
	}
	switch kind {
	case kindStats:
		if s.NumFields() != len(statsFields) {
			return fmt.Errorf("stats schema has %d fields, want %d", s.NumFields(), len(statsFields))
		}
		for i, f := range statsFields {
			g := s.Field(i)
			if g.Name != f.Name || !arrow.TypeEqual(g.Type, f.Type) {
				return fmt.Errorf("stats field %d is %s %s, want %s %s", i, g.Name, g.Type, f.Name, f.Type)
			}
		}
	case kindTensor:
		want := []struct {
			name string
			typ  arrow.DataType
		}{{"batch", arrow.PrimitiveTypes.Int64}, {"layer", arrow.BinaryTypes.String}, {"sample", arrow.PrimitiveTypes.Int32}, {"dataset_index", arrow.PrimitiveTypes.Int64}}
		if s.NumFields() != 5 {
			return fmt.Errorf("tensor schema has %d fields, want 5", s.NumFields())
		}
		for i, w := range want {
			if g := s.Field(i); g.Name != w.name || !arrow.TypeEqual(g.Type, w.typ) {
				return fmt.Errorf("tensor field %d is %s %s, want %s %s", i, g.Name, g.Type, w.name, w.typ)
			}
		}
		if _, err := tensorStorageType(s.Field(tcTensor)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("segment kind %d", kind)
	}
	return nil
}

// tensorStorageType returns the fixed_size_list<float32> type of the tensor field, whether or
// not the extension type was registered when the schema was read.
func tensorStorageType(f arrow.Field) (*arrow.FixedSizeListType, error) {
	t := f.Type
	if ext, ok := t.(arrow.ExtensionType); ok {
		if ext.ExtensionName() != FixedShapeTensorName {
			return nil, fmt.Errorf("tensor field has extension %q", ext.ExtensionName())
		}
		t = ext.StorageType()
	} else if name, _ := f.Metadata.GetValue("ARROW:extension:name"); name != FixedShapeTensorName {
		return nil, fmt.Errorf("tensor field is %s without %s extension", t, FixedShapeTensorName)
	}
	l, ok := t.(*arrow.FixedSizeListType)
	if f.Name != "tensor" || !ok || !arrow.TypeEqual(l.Elem(), arrow.PrimitiveTypes.Float32) {
		return nil, fmt.Errorf("tensor field is %s %s, want tensor fixed_size_list<float32>", f.Name, t)
	}
	return l, nil
}

// tensorValues returns the float32 values of the tensor column and the list size.
func tensorValues(col arrow.Array) ([]float32, int, error) {
	if ext, ok := col.(array.ExtensionArray); ok {
		col = ext.Storage()
	}
	fsl, ok := col.(*array.FixedSizeList)
	if !ok {
		return nil, 0, fmt.Errorf("tensor column is %T", col)
	}
	n := int(fsl.DataType().(*arrow.FixedSizeListType).Len())
	vals, ok := fsl.ListValues().(*array.Float32)
	if !ok {
		return nil, 0, fmt.Errorf("tensor values are %T", fsl.ListValues())
	}
	v := vals.Float32Values()
	start := fsl.Data().Offset() * n
	end := start + fsl.Len()*n
	if fsl.NullN() != 0 || start < 0 || end > len(v) {
		return nil, 0, fmt.Errorf("tensor column of %d rows x %d has %d values", fsl.Len(), n, len(v))
	}
	return v[start:end], n, nil
}
