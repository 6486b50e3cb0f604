package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/actrec/actrec/store"
)

// The exports read by readers that share no code with arrow-go: DuckDB,
// hyparquet and apache-arrow (JS), through examples/js/check_exports.mjs.
// Needs node and `npm ci --prefix examples/js`; skipped without them.

const jsDir = "../examples/js"

// jsTable is one table of check_exports.mjs output.
type jsTable struct {
	Reader   string          `json:"reader"`
	Source   string          `json:"source"`
	Path     string          `json:"path"`
	Metadata json.RawMessage `json:"metadata"`
	Fields   []jsField       `json:"fields"`
	Rows     []jsRow         `json:"rows"`
	Stats    *int            `json:"stats_rows"`
}

type jsField struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Metadata map[string]string `json:"metadata"`
}

type jsRow struct {
	Run          string    `json:"run"`
	Layer        string    `json:"layer"`
	Batch        int64     `json:"batch"`
	Sample       int32     `json:"sample"`
	DatasetIndex int64     `json:"dataset_index"`
	Shape        []int     `json:"shape"`
	Values       []jsFloat `json:"values"`
}

// jsFloat is a JSON number or "NaN", "Infinity", "-Infinity".
type jsFloat float64

func (f *jsFloat) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = jsFloat(math.NaN())
	case `"Infinity"`:
		*f = jsFloat(math.Inf(1))
	case `"-Infinity"`:
		*f = jsFloat(math.Inf(-1))
	default:
		var v float64
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*f = jsFloat(v)
	}
	return nil
}

type jsOutput struct {
	Readers map[string]string `json:"readers"`
	Tables  []jsTable         `json:"tables"`
	Errors  []string          `json:"errors"`
}

// jsVal gives the values of the JS check: baseVal with values a reader
// could get wrong (NaN, ±Inf, the largest and smallest float32, a
// subnormal, a value that is not exact in float64's shortest form).
func jsVal(layer string, ds, e int) float32 {
	if layer == "conv1" {
		switch {
		case ds == 1 && e == 0:
			return float32(math.NaN())
		case ds == 2 && e == 1:
			return float32(math.Inf(1))
		case ds == 2 && e == 2:
			return float32(math.Inf(-1))
		case ds == 3 && e == 0:
			return math.MaxFloat32
		case ds == 3 && e == 1:
			return -math.SmallestNonzeroFloat32
		case ds == 3 && e == 2:
			return 0.1
		}
	}
	return baseVal(layer, ds, e)
}

const jsOddRun = "exp 1/a=b%c"

// jsWant lists what the runs hold per tensor layer: 5 samples in batches of 2.
func jsWant(runs []string) map[string][]jsRow {
	want := map[string][]jsRow{}
	for _, run := range runs {
		for _, l := range baseLayers() {
			if !l.tensors {
				continue
			}
			for ds := range 5 {
				r := jsRow{Run: run, Layer: l.path, Batch: int64(ds / 2), Sample: int32(ds % 2), DatasetIndex: int64(ds), Shape: l.shape}
				for e := range 6 {
					r.Values = append(r.Values, jsFloat(jsVal(l.path, ds, e)))
				}
				want[run+"\x00"+l.path] = append(want[run+"\x00"+l.path], r)
			}
		}
	}
	return want
}

// checkJSRows compares the rows a reader read with want (the rows of the
// run/layer pairs of keys, in order).
func checkJSRows(t *testing.T, tb jsTable, want map[string][]jsRow, keys ...string) {
	t.Helper()
	var w []jsRow
	for _, k := range keys {
		w = append(w, want[k]...)
	}
	name := tb.Reader + " " + tb.Source + " " + filepath.Base(tb.Path)
	if len(tb.Rows) != len(w) {
		t.Errorf("%s: %d rows, want %d", name, len(tb.Rows), len(w))
		return
	}
	for i, g := range tb.Rows {
		x := w[i]
		if g.Run != x.Run || g.Layer != x.Layer || g.Batch != x.Batch || g.Sample != x.Sample || g.DatasetIndex != x.DatasetIndex {
			t.Errorf("%s row %d: run %q layer %q batch %d sample %d dataset_index %d, want %q %q %d %d %d",
				name, i, g.Run, g.Layer, g.Batch, g.Sample, g.DatasetIndex, x.Run, x.Layer, x.Batch, x.Sample, x.DatasetIndex)
			continue
		}
		if !slices.Equal(g.Shape, x.Shape) {
			t.Errorf("%s row %d: shape %v, want %v", name, i, g.Shape, x.Shape)
		}
		if len(g.Values) != len(x.Values) {
			t.Errorf("%s row %d: %d values, want %d", name, i, len(g.Values), len(x.Values))
			continue
		}
		for e, v := range g.Values {
			// The readers give float32 values as doubles: converted back,
			// they must be the very float32 written.
			gv, xv := float32(v), float32(x.Values[e])
			nan := math.IsNaN(float64(v)) && math.IsNaN(float64(xv))
			if !nan && (float64(gv) != float64(v) || gv != xv) {
				t.Errorf("%s row %d (batch %d sample %d) value %d: %v, want %v", name, i, g.Batch, g.Sample, e, float64(v), xv)
			}
		}
	}
}

func jsSetup(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed; needs node and `npm ci --prefix examples/js`")
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules")); err != nil {
		t.Skip("examples/js/node_modules missing; run `npm ci --prefix examples/js`")
	}
	return node
}

// recordJS writes the runs with the real store.Writer (tensor segments
// compressed with c; stats segments are always compressed).
func recordJS(t *testing.T, dir string, c store.Compression, runs ...string) {
	t.Helper()
	opts := store.DefaultOptions()
	opts.NoSync = true
	opts.FlushInterval = -1
	opts.Compression = c
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var infos []store.LayerInfo
	for i, l := range baseLayers() {
		infos = append(infos, store.LayerInfo{Path: l.path, Op: l.op, Shape: l.shape, Order: i})
	}
	for _, run := range runs {
		w, err := s.CreateRun(store.RunInfo{Name: run, Created: fixCreated, Model: "synthetic", State: store.StateRecording}, infos)
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b*2 < 5; b++ {
			for _, l := range baseLayers() {
				var rows []store.TensorRow
				var data [][]float32
				for ds := b * 2; ds < min(5, b*2+2); ds++ {
					v := make([]float32, 6)
					if l.path == "fc" {
						v = make([]float32, 4)
					}
					for e := range v {
						v[e] = jsVal(l.path, ds, e)
					}
					rows = append(rows, store.TensorRow{Batch: int64(b), Sample: int32(ds % 2), DatasetIndex: int64(ds), Data: v})
					data = append(data, v)
				}
				if err := w.AppendStats(l.path, statsOf(int64(b), data)); err != nil {
					t.Fatal(err)
				}
				if l.tensors {
					if err := w.AppendTensors(l.path, rows...); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := w.Close(store.StateComplete); err != nil {
			t.Fatal(err)
		}
	}
}

func runCheckExports(t *testing.T, node string, args ...string) jsOutput {
	t.Helper()
	cmd := exec.Command(node, append([]string{filepath.Join(jsDir, "check_exports.mjs")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var out jsOutput
	if jerr := json.Unmarshal(stdout.Bytes(), &out); jerr != nil {
		t.Fatalf("check_exports.mjs: %v (%v)\nstderr: %s\nstdout: %.2000s", err, jerr, stderr.String(), stdout.String())
	}
	for _, e := range out.Errors {
		t.Errorf("check_exports.mjs: %s", e)
	}
	if err != nil && len(out.Errors) == 0 {
		t.Errorf("check_exports.mjs: %v\nstderr: %s", err, stderr.String())
	}
	t.Logf("readers: %v", out.Readers)
	return out
}

func TestExport_JSReaders(t *testing.T) {
	node := jsSetup(t)
	dir := filepath.Join(t.TempDir(), "store")
	runs := []string{"base", jsOddRun}
	recordJS(t, dir, store.None, runs...)
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := t.TempDir()
	arrowDir := filepath.Join(out, "arrow")
	file := filepath.Join(out, "relu1.parquet")
	ds := filepath.Join(out, "dataset")
	for _, o := range []ExportOptions{
		{Format: FormatArrow, Out: arrowDir},
		{Format: FormatParquet, Out: file, Layers: []string{"relu1"}},
		{Format: FormatParquet, Out: ds},
	} {
		if _, err := Export(t.Context(), s, "base", o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Export(t.Context(), s, jsOddRun, ExportOptions{Format: FormatParquet, Out: ds}); err != nil {
		t.Fatal(err)
	}
	segs, err := filepath.Glob(filepath.Join(dir, "segments", "*", "*.arrow"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments under %s: %v", dir, err)
	}
	args := []string{"--parquet", file, "--dataset", ds,
		"--arrow", filepath.Join(arrowDir, "conv1.arrow"), "--arrow", filepath.Join(arrowDir, "relu1.arrow")}
	for _, p := range segs {
		args = append(args, "--segment", p)
	}
	res := runCheckExports(t, node, args...)

	want := jsWant(runs)
	key := func(run, layer string) string { return run + "\x00" + layer }
	seen := map[string]int{}
	var tensorSegs, statsSegs int
	for _, tb := range res.Tables {
		seen[tb.Reader+" "+tb.Source]++
		switch tb.Source {
		case "parquet":
			checkJSRows(t, tb, want, key("base", "relu1"))
			checkParquetKV(t, tb, "relu1")
		case "dataset":
			// Sorted by run, then layer: "base" < "exp 1/a=b%c"; the odd
			// name came back through the Hive path escaping.
			checkJSRows(t, tb, want, key("base", "conv1"), key("base", "relu1"), key(jsOddRun, "conv1"), key(jsOddRun, "relu1"))
		case "arrow":
			layer := strings.TrimSuffix(filepath.Base(tb.Path), ".arrow")
			checkJSRows(t, tb, want, key("base", layer))
			checkTensorField(t, tb)
		case "segment":
			if tb.Stats != nil {
				statsSegs++
				continue
			}
			tensorSegs++
			checkTensorField(t, tb)
			if len(tb.Rows) == 0 {
				t.Errorf("tensor segment %s: no rows", tb.Path)
				continue
			}
			// A tensor segment holds batches of one run's layer: each row
			// must be a recorded one.
			rows := want[key(tb.Rows[0].Run, tb.Rows[0].Layer)]
			for _, r := range tb.Rows {
				i := slices.IndexFunc(rows, func(x jsRow) bool { return x.Batch == r.Batch && x.Sample == r.Sample })
				if i < 0 {
					t.Errorf("segment %s: unexpected row %+v", tb.Path, r)
					continue
				}
				checkJSRows(t, jsTable{Reader: tb.Reader, Source: "segment", Path: tb.Path, Rows: []jsRow{r}}, map[string][]jsRow{"": {rows[i]}}, "")
			}
		}
	}
	for _, k := range []string{"duckdb parquet", "hyparquet parquet", "duckdb dataset", "hyparquet dataset", "apache-arrow arrow"} {
		if seen[k] == 0 {
			t.Errorf("no %s table read", k)
		}
	}
	if tensorSegs == 0 || statsSegs == 0 {
		t.Errorf("segments read: %d tensor, %d stats (want both: stats segments are LZ4-compressed)", tensorSegs, statsSegs)
	}
}

// checkTensorField checks that the tensor field kept the canonical
// extension: name and shape in its field metadata.
func checkTensorField(t *testing.T, tb jsTable) {
	t.Helper()
	i := slices.IndexFunc(tb.Fields, func(f jsField) bool { return f.Name == "tensor" })
	if i < 0 {
		t.Errorf("%s: no tensor field in %+v", tb.Path, tb.Fields)
		return
	}
	f := tb.Fields[i]
	if got := f.Metadata["ARROW:extension:name"]; got != "arrow.fixed_shape_tensor" {
		t.Errorf("%s: ARROW:extension:name = %q", tb.Path, got)
	}
	if got := f.Metadata["ARROW:extension:metadata"]; got != `{"shape":[2,3]}` {
		t.Errorf("%s: ARROW:extension:metadata = %q", tb.Path, got)
	}
	if f.Type != "FixedSizeList[6]<Float32>" {
		t.Errorf("%s: tensor storage type %s, want FixedSizeList[6]<Float32>", tb.Path, f.Type)
	}
}

// checkParquetKV checks the file's key-value metadata as a reader sees it.
func checkParquetKV(t *testing.T, tb jsTable, layer string) {
	t.Helper()
	var md map[string]any
	if err := json.Unmarshal(tb.Metadata, &md); err != nil {
		t.Errorf("%s %s metadata: %v", tb.Reader, tb.Path, err)
		return
	}
	for k, v := range map[string]string{"actrec.run": "base", "actrec.layer": layer, "actrec.shape": "[2,3]"} {
		if md[k] != v {
			t.Errorf("%s %s: key-value metadata %s = %v, want %q", tb.Reader, tb.Path, k, md[k], v)
		}
	}
	// Each key once: pqarrow copies the schema metadata, exportParquet must not append it again.
	if d, ok := md["duplicate keys"]; ok {
		t.Errorf("%s %s: key-value metadata keys given twice: %v", tb.Reader, tb.Path, d)
	}
}

// TestExport_JSReadersCompressed reads the segments of a zstd store.
func TestExport_JSReadersCompressed(t *testing.T) {
	node := jsSetup(t)
	dir := filepath.Join(t.TempDir(), "store")
	recordJS(t, dir, store.Zstd, "z")
	segs, err := filepath.Glob(filepath.Join(dir, "segments", "*", "*.arrow"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments under %s: %v", dir, err)
	}
	var args []string
	for _, p := range segs {
		args = append(args, "--segment", p)
	}
	res := runCheckExports(t, node, args...)
	want := jsWant([]string{"z"})
	got := map[string][]jsRow{}
	for _, tb := range res.Tables {
		for _, r := range tb.Rows {
			got[r.Run+"\x00"+r.Layer] = append(got[r.Run+"\x00"+r.Layer], r)
		}
	}
	for k := range want {
		rows := got[k]
		slices.SortFunc(rows, func(a, b jsRow) int {
			return int(a.Batch-b.Batch)*1000 + int(a.Sample-b.Sample)
		})
		checkJSRows(t, jsTable{Reader: "apache-arrow", Source: "segment", Path: fmt.Sprintf("zstd %q", k), Rows: rows}, want, k)
	}
}
