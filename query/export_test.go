package query

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/actrec/actrec/query/npy"
	"github.com/actrec/actrec/store"
)

// wantRows is what the base run holds for a tensor layer: 8 samples in 4
// batches of 2, dataset index = sample number.
func wantTensor(layer string) (batches, samples, ds []int64, values []float32) {
	for d := range 8 {
		batches = append(batches, int64(d/2))
		samples = append(samples, int64(d%2))
		ds = append(ds, int64(d))
		for e := range 6 {
			values = append(values, baseVal(layer, d, e))
		}
	}
	return
}

// checkTensorRecord checks a record of the exported tensor schema against
// the base run and that the tensor column kept its extension type.
func checkTensorTable(t *testing.T, layer string, schema *arrow.Schema, recs []arrow.RecordBatch) {
	t.Helper()
	f, ok := schema.FieldsByName("tensor")
	if !ok {
		t.Fatalf("no tensor field in %s", schema)
	}
	isList := false
	if ext, ok := f[0].Type.(arrow.ExtensionType); ok && ext.ExtensionName() == "arrow.fixed_shape_tensor" {
		if got := ext.Serialize(); got != `{"shape":[2,3]}` {
			t.Errorf("tensor metadata %s", got)
		}
	} else if _, ok := f[0].Type.(*arrow.ListType); ok {
		isList = true // parquet
		if v, _ := schema.Metadata().GetValue("actrec.shape"); v != "[2,3]" {
			t.Errorf("actrec.shape = %q", v)
		}
	} else {
		t.Fatalf("tensor type %s, want arrow.fixed_shape_tensor or list<float>", f[0].Type)
	}
	var batches, samples, ds []int64
	var values []float32
	for _, rec := range recs {
		for i := range int(rec.NumRows()) {
			batches = append(batches, rec.Column(0).(*array.Int64).Value(i))
			samples = append(samples, int64(rec.Column(1).(*array.Int32).Value(i)))
			ds = append(ds, rec.Column(2).(*array.Int64).Value(i))
		}
		if isList {
			l := rec.Column(3).(*array.List)
			for i := range l.Len() {
				a, b := l.ValueOffsets(i)
				if b-a != 6 {
					t.Fatalf("row %d has %d values", i, b-a)
				}
				values = append(values, l.ListValues().(*array.Float32).Float32Values()[a:b]...)
			}
			continue
		}
		storage := rec.Column(3).(array.ExtensionArray).Storage().(*array.FixedSizeList)
		vals := storage.ListValues().(*array.Float32).Float32Values()
		off := storage.Offset() * 6
		values = append(values, vals[off:off+int(rec.NumRows())*6]...)
	}
	wb, ws, wd, wv := wantTensor(layer)
	if !slices.Equal(batches, wb) || !slices.Equal(samples, ws) || !slices.Equal(ds, wd) || !slices.Equal(values, wv) {
		t.Errorf("%s: read back batches %v samples %v ds %v values %v", layer, batches, samples, ds, values)
	}
}

func TestExport_Arrow(t *testing.T) {
	s, _ := testStore(t)
	out := filepath.Join(t.TempDir(), "x")
	res, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatArrow, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Files, []string{"conv1.arrow", "relu1.arrow"}) {
		t.Errorf("files %v", res.Files)
	}
	for _, layer := range []string{"conv1", "relu1"} {
		f, err := os.Open(filepath.Join(out, layer+".arrow"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := ipc.NewFileReader(f)
		if err != nil {
			t.Fatal(err)
		}
		var recs []arrow.RecordBatch
		for i := range r.NumRecords() {
			rec, err := r.RecordBatch(i)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		checkTensorTable(t, layer, r.Schema(), recs)
		if v, _ := r.Schema().Metadata().GetValue("actrec.layer"); v != layer {
			t.Errorf("schema metadata actrec.layer = %q", v)
		}
		r.Close()
		f.Close()
	}
}

func readParquet(t *testing.T, path string) (*arrow.Schema, []arrow.RecordBatch) {
	t.Helper()
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdr.Close() })
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1 << 20}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []arrow.RecordBatch
	for rr.Next() {
		rec := rr.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	// The actrec.* keys are the file's key-value metadata.
	var keys, vals []string
	for _, k := range []string{"actrec.run", "actrec.layer", "actrec.shape"} {
		if v := rdr.MetaData().KeyValueMetadata().FindValue(k); v != nil {
			keys, vals = append(keys, k), append(vals, *v)
		}
	}
	md := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema(rr.Schema().Fields(), &md), recs
}

func TestExport_Parquet(t *testing.T) {
	s, _ := testStore(t)
	dir := t.TempDir()
	one := filepath.Join(dir, "relu1.parquet")
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatParquet, Out: one, Layers: []string{"relu1"}}); err != nil {
		t.Fatal(err)
	}
	schema, recs := readParquet(t, one)
	checkTensorTable(t, "relu1", schema, recs)

	// A dataset directory shared by two runs.
	ds := filepath.Join(dir, "dataset")
	for _, run := range []string{"base", "perturbed"} {
		if _, err := Export(t.Context(), s, run, ExportOptions{Format: FormatParquet, Out: ds}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"run=base/layer=conv1/part-0.parquet", "run=base/layer=relu1/part-0.parquet",
		"run=perturbed/layer=relu1/part-0.parquet"} {
		if _, err := os.Stat(filepath.Join(ds, p)); err != nil {
			t.Error(err)
		}
	}
	schema, recs = readParquet(t, filepath.Join(ds, "run=base/layer=conv1/part-0.parquet"))
	checkTensorTable(t, "conv1", schema, recs)
	// The run's partition exists: refused, then replaced with Force.
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatParquet, Out: ds}); !errors.Is(err, ErrOutputExists) {
		t.Errorf("re-export without force: %v", err)
	}
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatParquet, Out: ds, Force: true, Layers: []string{"conv1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ds, "run=base/layer=relu1")); !os.IsNotExist(err) {
		t.Errorf("forced re-export kept the old partition: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ds, "run=perturbed/layer=relu1/part-0.parquet")); err != nil {
		t.Errorf("other run's partition lost: %v", err)
	}
}

func TestExport_NPZAndNPY(t *testing.T) {
	s, _ := testStore(t)
	dir := t.TempDir()
	z := filepath.Join(dir, "base.npz")
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatNPZ, Out: z}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(z)
	if err != nil {
		t.Fatal(err)
	}
	arrs, err := npy.ReadNPZ(bytesReaderAt(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, layer := range []string{"conv1", "relu1"} {
		wb, ws, wd, wv := wantTensor(layer)
		a := arrs[layer]
		if a == nil || !slices.Equal(a.Shape, []int{8, 2, 3}) || !slices.Equal(a.Float32, wv) {
			t.Errorf("%s = %+v", layer, a)
		}
		for name, want := range map[string][]int64{".batch": wb, ".sample": ws, ".dataset_index": wd} {
			if got := arrs[layer+name]; got == nil || !slices.Equal(got.Int64, want) {
				t.Errorf("%s%s = %+v, want %v", layer, name, got, want)
			}
		}
	}
	if _, ok := arrs["fc"]; ok {
		t.Error("stats-only layer fc exported as a tensor")
	}
	one := filepath.Join(dir, "conv1.npy")
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatNPY, Out: one, Layers: []string{"conv1"}, Batches: store.BatchRange{From: 1, To: 3}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(one)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := npy.Read(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, wv := wantTensor("conv1")
	if !slices.Equal(a.Shape, []int{4, 2, 3}) || !slices.Equal(a.Float32, wv[2*6:6*6]) {
		t.Errorf("npy batches 1:3 = %v %v", a.Shape, a.Float32)
	}
	// A stats-only layer asked for by name.
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatNPY, Out: filepath.Join(dir, "fc.npy"), Layers: []string{"fc"}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("npy of stats-only layer: %v", err)
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, errors.New("EOF")
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, errors.New("EOF")
	}
	return n, nil
}

func TestExport_Stats(t *testing.T) {
	s, _ := testStore(t)
	dir := t.TempDir()
	c := filepath.Join(dir, "s.csv")
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatCSV, Out: c}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 13 || !reflect.DeepEqual(recs[0], statsColumns) {
		t.Fatalf("csv: %d records, header %v", len(recs), recs[0])
	}
	rows, _ := s.Stats("base", "conv1", store.BatchRange{})
	if got, _ := strconv.ParseFloat(recs[1][4], 64); got != rows[0].Mean || recs[1][1] != "conv1" || recs[1][0] != "base" {
		t.Errorf("csv row 1 = %v, want mean %v", recs[1], rows[0].Mean)
	}
	j := filepath.Join(dir, "s.jsonl")
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatJSONL, Out: j, Layers: []string{"fc"}}); err != nil {
		t.Fatal(err)
	}
	f, err = os.Open(j)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var l StatsLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.Run != "base" || l.Layer != "fc" || l.Batch != int64(n) || l.Count != 8 {
			t.Errorf("jsonl line %d = %+v", n, l)
		}
		n++
	}
	if n != 4 {
		t.Errorf("%d jsonl lines, want 4", n)
	}
}

func TestExport_RefusedOutputs(t *testing.T) {
	s, storeDir := testStore(t)
	dir := t.TempDir()
	exists := filepath.Join(dir, "x.csv")
	if err := os.WriteFile(exists, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(storeDir, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		out  string
		want error
	}{
		{"exists", exists, ErrOutputExists},
		{"in_store", filepath.Join(storeDir, "segments", "x.csv"), ErrOutputInStore},
		{"store_itself", storeDir, ErrOutputInStore},
		{"via_symlink", filepath.Join(link, "new", "x.csv"), ErrOutputInStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatCSV, Out: tc.out}); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if b, _ := os.ReadFile(exists); string(b) != "keep" {
		t.Errorf("refused export modified the file: %q", b)
	}
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatCSV, Out: exists, Force: true}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(exists); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("exported file mode %v, %v; want 0644", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "x.csv" && e.Name() != "link" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: "xlsx", Out: exists}); err == nil {
		t.Error("unknown format accepted")
	}
	var nf *NotFoundError
	if _, err := Export(t.Context(), s, "base", ExportOptions{Format: FormatNPZ, Out: filepath.Join(dir, "y.npz"), Layers: []string{"relu"}}); !errors.As(err, &nf) || nf.Closest[0] != "relu1" {
		t.Errorf("unknown layer: %v", err)
	}
}

func TestAggregate(t *testing.T) {
	s, _ := testStore(t)
	rows, err := s.Stats("base", "conv1", store.BatchRange{})
	if err != nil {
		t.Fatal(err)
	}
	got := Aggregate(rows)
	var all [][]float32
	for d := range 8 {
		v := make([]float32, 6)
		for e := range v {
			v[e] = baseVal("conv1", d, e)
		}
		all = append(all, v)
	}
	want := statsOf(0, all)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"mean", got.Mean, want.Mean}, {"std", got.Std, want.Std}, {"min", got.Min, want.Min},
		{"max", got.Max, want.Max}, {"l2", got.L2, want.L2}, {"zero_frac", got.ZeroFrac, want.ZeroFrac},
	} {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if got.Count != 48 || !reflect.DeepEqual(got.Hist, want.Hist) || got.Percentiles != want.Percentiles {
		t.Errorf("count %d hist %v percentiles %v; want hist %v percentiles %v", got.Count, got.Hist, got.Percentiles, want.Hist, want.Percentiles)
	}
	// Percentiles come from the merged histogram, not from averaging.
	var avgP50 float64
	for _, r := range rows {
		avgP50 += r.Percentiles[3] / float64(len(rows))
	}
	if got.Percentiles[3] == avgP50 && rows[0].Percentiles[3] != rows[3].Percentiles[3] {
		t.Errorf("median %v equals the average of medians", got.Percentiles[3])
	}
}

func TestParseBatchRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want store.BatchRange
		err  bool
	}{
		{"", store.BatchRange{}, false},
		{"2:5", store.BatchRange{From: 2, To: 5}, false},
		{"3:", store.BatchRange{From: 3, To: math.MaxInt64}, false},
		{":4", store.BatchRange{From: math.MinInt64, To: 4}, false},
		{"7", store.BatchRange{From: 7, To: 8}, false},
		{"0:", store.BatchRange{From: 0, To: math.MaxInt64}, false},
		{"-1", store.BatchRange{From: -1, To: 0}, false},
		{"-2:0", store.BatchRange{From: -2, To: 0}, false},
		{"-2:", store.BatchRange{From: -2, To: math.MaxInt64}, false},
		{"5:2", store.BatchRange{}, true},
		{"a:b", store.BatchRange{}, true},
		{"x", store.BatchRange{}, true},
	} {
		got, err := ParseBatchRange(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: %+v, %v", tc.in, got, err)
		}
		if err == nil {
			if back, err := ParseBatchRange(strings.TrimSuffix(FormatBatchRange(got), "all")); err != nil || back != got {
				t.Errorf("%q: FormatBatchRange %q parses back to %+v, %v", tc.in, FormatBatchRange(got), back, err)
			}
		}
	}
}

// Ranges over negative batches select exactly those batches, in the store
// and in the query package's own filtering ("-1" once selected -1, 0, 1...).
func TestBatchRangeNegative(t *testing.T) {
	_, s := openEdgeStore(t)
	defer s.Close()
	w, err := s.CreateRun(store.RunInfo{Name: "neg"}, []store.LayerInfo{{Path: "l", Op: "Id", Shape: []int{2}}})
	if err != nil {
		t.Fatal(err)
	}
	for b := int64(-2); b <= 1; b++ {
		data := []float32{float32(b), 1}
		if err := w.AppendStats("l", store.StatsRow{Batch: b, Count: 2, Mean: float64(b+1) / 2}); err != nil {
			t.Fatal(err)
		}
		if err := w.AppendTensors("l", store.TensorRow{Batch: b, DatasetIndex: b + 2, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want []int64
	}{
		{"-1", []int64{-1}},
		{"-2:0", []int64{-2, -1}},
		{":0", []int64{-2, -1}},
		{"0:", []int64{0, 1}},
		{"-1:", []int64{-1, 0, 1}},
		{"", []int64{-2, -1, 0, 1}},
	} {
		r, err := ParseBatchRange(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := Stats(context.Background(), s, "neg", StatsOptions{Batches: r})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, x := range rows {
			got = append(got, x.Batch)
		}
		var tens []int64
		if err := s.Tensors("neg", "l", r, func(row store.TensorRow) error { tens = append(tens, row.Batch); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) || !slices.Equal(tens, tc.want) {
			t.Errorf("--batches %q (%+v): stats of %v, tensors of %v, want %v", tc.in, r, got, tens, tc.want)
		}
		for b := int64(-2); b <= 1; b++ {
			if inRange(r, b) != slices.Contains(tc.want, b) {
				t.Errorf("--batches %q: inRange(%d) = %v", tc.in, b, inRange(r, b))
			}
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "fc"}
	if got := closest("layer1.0.conv", names, 2); !slices.Equal(got, []string{"layer1.0.conv1", "layer1.0.conv2"}) {
		t.Errorf("closest = %v", got)
	}
	if d := levenshtein("kitten", "sitting"); d != 3 {
		t.Errorf("levenshtein = %d", d)
	}
}
