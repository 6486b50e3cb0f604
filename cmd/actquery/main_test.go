package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/actrec/actrec/query"
	"github.com/actrec/actrec/store"
)

// finishedRE matches the finish time of a run, set by the store at Close.
var finishedRE = regexp.MustCompile(`"finished": "[^"]*"`)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/<name>.golden (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

func TestCommandsGolden(t *testing.T) {
	dir := testStore(t)
	out := t.TempDir()
	mapFile := filepath.Join(out, "map.txt")
	if err := os.WriteFile(mapFile, []byte("# v2 names\nconv1=features.conv1\nrelu1 features.relu1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sqnr := 60.0
	ctx := context.Background()
	tests := []struct {
		name     string
		run      func(out *bytes.Buffer) error
		wantCode int
	}{
		{"runs", func(w *bytes.Buffer) error { return runRuns(ctx, RunsOptions{StoreDir: dir}, nil, w) }, 0},
		{"runs_json", func(w *bytes.Buffer) error { return runRuns(ctx, RunsOptions{StoreDir: dir, JSON: true}, nil, w) }, 0},
		{"layers", func(w *bytes.Buffer) error { return runLayers(ctx, LayersOptions{StoreDir: dir}, []string{"base"}, w) }, 0},
		{"layers_json", func(w *bytes.Buffer) error {
			return runLayers(ctx, LayersOptions{StoreDir: dir, JSON: true}, []string{"base"}, w)
		}, 0},
		{"layers_unknown_run", func(w *bytes.Buffer) error {
			return runLayers(ctx, LayersOptions{StoreDir: dir}, []string{"bsae"}, w)
		}, exitNotFound},
		{"stats_conv1", func(w *bytes.Buffer) error {
			return runStats(ctx, StatsOptions{StoreDir: dir, Layers: []string{"conv1"}, Batches: "1:3"}, []string{"base"}, w)
		}, 0},
		{"stats_agg", func(w *bytes.Buffer) error {
			return runStats(ctx, StatsOptions{StoreDir: dir, Aggregate: true}, []string{"base"}, w)
		}, 0},
		{"stats_agg_json", func(w *bytes.Buffer) error {
			return runStats(ctx, StatsOptions{StoreDir: dir, Aggregate: true, Layers: []string{"fc"}, JSON: true}, []string{"base"}, w)
		}, 0},
		{"stats_unknown_layer", func(w *bytes.Buffer) error {
			return runStats(ctx, StatsOptions{StoreDir: dir, Layers: []string{"conv"}}, []string{"base"}, w)
		}, exitNotFound},
		{"show", func(w *bytes.Buffer) error {
			return runShow(ctx, ShowOptions{StoreDir: dir, Layer: "relu1", Batch: 1, Sample: 1}, []string{"base"}, w)
		}, 0},
		{"show_json", func(w *bytes.Buffer) error {
			return runShow(ctx, ShowOptions{StoreDir: dir, Layer: "conv1", Batch: 3, Values: 4, JSON: true}, []string{"base"}, w)
		}, 0},
		{"show_stats_only", func(w *bytes.Buffer) error {
			return runShow(ctx, ShowOptions{StoreDir: dir, Layer: "fc", Batch: 0}, []string{"base"}, w)
		}, 0},
		{"show_no_sample", func(w *bytes.Buffer) error {
			return runShow(ctx, ShowOptions{StoreDir: dir, Layer: "conv1", Batch: 0, Sample: 5}, []string{"base"}, w)
		}, exitNotFound},
		{"diff_self", func(w *bytes.Buffer) error {
			return runDiff(ctx, DiffOptions{StoreDir: dir}, []string{"base", "base"}, w)
		}, 0},
		{"diff_perturbed", func(w *bytes.Buffer) error {
			return runDiff(ctx, DiffOptions{StoreDir: dir, DiffFlags: DiffFlags{MinSQNR: &sqnr}}, []string{"perturbed", "base"}, w)
		}, exitFound},
		{"diff_perturbed_json", func(w *bytes.Buffer) error {
			return runDiff(ctx, DiffOptions{StoreDir: dir, DiffFlags: DiffFlags{Atol: 0.5}, JSON: true}, []string{"perturbed", "base"}, w)
		}, 0},
		{"diff_batch_sizes", func(w *bytes.Buffer) error {
			return runDiff(ctx, DiffOptions{StoreDir: dir}, []string{"bs4", "base"}, w)
		}, 0},
		{"diff_renamed", func(w *bytes.Buffer) error {
			return runDiff(ctx, DiffOptions{StoreDir: dir, DiffFlags: DiffFlags{MapFile: mapFile, Map: []string{"fc=features.fc"}}}, []string{"base", "renamed"}, w)
		}, 0},
		{"diff_unmapped", func(w *bytes.Buffer) error {
			return runDiff(ctx, DiffOptions{StoreDir: dir}, []string{"base", "renamed"}, w)
		}, exitFound}, // nothing compared

		{"check", func(w *bytes.Buffer) error { return runCheck(ctx, CheckOptions{StoreDir: dir}, nil, w) }, 0},
		{"check_json", func(w *bytes.Buffer) error {
			return runCheck(ctx, CheckOptions{StoreDir: dir, JSON: true}, []string{"base"}, w)
		}, 0},
		{"export_csv", func(w *bytes.Buffer) error {
			return runExport(ctx, ExportOptions{StoreDir: dir, Format: "csv", Out: filepath.Join(out, "s.csv")}, []string{"base"}, w)
		}, 0},
		{"export_csv_exists", func(w *bytes.Buffer) error {
			return runExport(ctx, ExportOptions{StoreDir: dir, Format: "csv", Out: filepath.Join(out, "s.csv")}, []string{"base"}, w)
		}, exitOutput},
		{"export_in_store", func(w *bytes.Buffer) error {
			return runExport(ctx, ExportOptions{StoreDir: dir, Format: "npz", Out: filepath.Join(dir, "x.npz")}, []string{"base"}, w)
		}, exitOutput},
		{"export_npz_json", func(w *bytes.Buffer) error {
			return runExport(ctx, ExportOptions{StoreDir: dir, Format: "npz", Out: filepath.Join(out, "a.npz"), JSON: true}, []string{"base"}, w)
		}, 0},
		{"export_npy_two_layers", func(w *bytes.Buffer) error {
			return runExport(ctx, ExportOptions{StoreDir: dir, Format: "npy", Out: filepath.Join(out, "a.npy")}, []string{"base"}, w)
		}, exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := tc.run(&buf)
			if code := exitCode(err); code != tc.wantCode {
				t.Fatalf("exit code %d (%v), want %d", code, err, tc.wantCode)
			}
			if err != nil {
				buf.WriteString("error: " + err.Error() + "\n")
			}
			got := strings.ReplaceAll(buf.String(), dir, "$STORE")
			got = strings.ReplaceAll(got, out, "$OUT")
			got = finishedRE.ReplaceAllString(got, `"finished": "$$TIME"`)
			golden(t, tc.name, []byte(got))
		})
	}
}

// TestJSONSchemas checks that every --json document parses and carries
// its schema name (the golden files pin the fields).
func TestJSONSchemas(t *testing.T) {
	dir := testStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		schema string
		run    func(w *bytes.Buffer) error
	}{
		{schemaRuns, func(w *bytes.Buffer) error { return runRuns(ctx, RunsOptions{StoreDir: dir, JSON: true}, nil, w) }},
		{schemaLayers, func(w *bytes.Buffer) error {
			return runLayers(ctx, LayersOptions{StoreDir: dir, JSON: true}, []string{"base"}, w)
		}},
		{schemaStats, func(w *bytes.Buffer) error {
			return runStats(ctx, StatsOptions{StoreDir: dir, JSON: true}, []string{"base"}, w)
		}},
		{schemaShow, func(w *bytes.Buffer) error {
			return runShow(ctx, ShowOptions{StoreDir: dir, Layer: "conv1", JSON: true}, []string{"base"}, w)
		}},
		{schemaDiff, func(w *bytes.Buffer) error {
			return runDiff(ctx, DiffOptions{StoreDir: dir, JSON: true}, []string{"base", "base"}, w)
		}},
		{schemaCheck, func(w *bytes.Buffer) error { return runCheck(ctx, CheckOptions{StoreDir: dir, JSON: true}, nil, w) }},
	} {
		var buf bytes.Buffer
		if err := tc.run(&buf); err != nil {
			t.Fatalf("%s: %v", tc.schema, err)
		}
		var doc map[string]any
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatalf("%s: %v\n%s", tc.schema, err, buf.Bytes())
		}
		if doc["schema"] != tc.schema {
			t.Errorf("schema = %v, want %s", doc["schema"], tc.schema)
		}
	}
}

// TestRun_ExitCodesAndFlagOrder runs the whole app: flags after positional
// arguments, the global --store and $ACTREC_STORE, and the exit status.
func TestRun_ExitCodesAndFlagOrder(t *testing.T) {
	dir := testStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want int
		out  string // substring of stdout+stderr
	}{
		{"flags_after_args", []string{"--store", dir, "diff", "perturbed", "base", "--atol", "0.5", "--min-cosine", "0.9"}, "", 0, "PASS"},
		{"flags_before_args", []string{"--store", dir, "diff", "--atol=0.1", "perturbed", "base"}, "", 1, "first diverging layer: relu1"},
		{"env_store", []string{"runs"}, dir, 0, "perturbed"},
		{"global_flag_after_command", []string{"layers", "base", "--store", dir, "--json"}, "", 0, `"recorded"`},
		{"no_store", []string{"--store", filepath.Join(dir, "nope"), "runs"}, "", 3, "no store at"},
		{"unknown_flag", []string{"--store", dir, "runs", "--bogus"}, "", 2, "bogus"},
		{"missing_args", []string{"--store", dir, "diff", "base"}, "", 2, "two arguments"},
		{"unknown_command", []string{"--store", dir, "frobnicate"}, "", 2, "frobnicate"},
		{"bad_batches", []string{"--store", dir, "stats", "base", "--batches", "5:2"}, "", 2, "batch range"},
		{"nan_atol", []string{"--store", dir, "diff", "perturbed", "base", "--atol", "nan"}, "", 2, "--atol and --rtol must be numbers >= 0"},
		{"nan_min_sqnr", []string{"--store", dir, "diff", "perturbed", "base", "--min-sqnr", "NaN"}, "", 2, "--min-sqnr"},
		{"bad_map", []string{"--store", dir, "diff", "base", "renamed", "--map", "conv1"}, "", 2, "old=new"},
		{"show_missing_layer_flag", []string{"--store", dir, "show", "base", "--batch", "0"}, "", 2, "--layer"},
		{"help_lists_exit_codes", []string{"--help"}, "", 0, "EXIT CODES"},
		{"help_lists_interrupt", []string{"--help"}, "", 0, "130  interrupted"},
		{"store_is_a_file", []string{"--store", filepath.Join(dir, "index.db"), "runs"}, "", exitStore, "not a store directory"},
		{"show_batch_out_of_range", []string{"--store", dir, "show", "base", "--layer", "conv1", "--batch", "99"}, "", exitNotFound, "recorded: batches 0..3"},
		{"stats_empty_range", []string{"--store", dir, "stats", "base", "--batches", "100:200"}, "", exitNotFound, "no stats in batches 100:200"},
		{"export_csv_empty_range", []string{"--store", dir, "export", "base", "--format", "csv", "--out", filepath.Join(dir, "..", "e.csv"), "--batches", "100:"}, "", exitNotFound, "no stats in batches 100:"},
		{"export_npz_empty_range", []string{"--store", dir, "export", "base", "--format", "npz", "--out", filepath.Join(dir, "..", "e.npz"), "--batches", "100:"}, "", exitNotFound, "no tensors in batches 100:"},
		{"export_npz_stats_only_layer", []string{"--store", dir, "export", "base", "--format", "npz", "--layer", "fc", "--out", filepath.Join(dir, "..", "e.npz")}, "", exitNotFound, "no tensors"},
		{"export_csv_stdout", []string{"--store", dir, "export", "base", "--format", "csv", "--out", "-", "--layer", "fc"}, "", 0, "run,layer,batch,count,mean"},
		{"export_npz_stdout_refused", []string{"--store", dir, "export", "base", "--format", "npz", "--out", "-"}, "", exitUsage, "csv and jsonl only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ACTREC_STORE", tc.env)
			if tc.env == "" {
				os.Unsetenv("ACTREC_STORE")
			}
			var stdout, stderr bytes.Buffer
			code := run(ctx, append([]string{"actquery"}, tc.args...), &stdout, &stderr, nil)
			all := stdout.String() + stderr.String()
			if code != tc.want {
				t.Errorf("exit %d, want %d\n%s", code, tc.want, all)
			}
			if !strings.Contains(all, tc.out) {
				t.Errorf("output lacks %q:\n%s", tc.out, all)
			}
		})
	}
}

func TestRm(t *testing.T) {
	dir := testStore(t)
	ctx := context.Background()
	var buf bytes.Buffer
	if err := runRm(ctx, RmOptions{StoreDir: dir}, []string{"bs4"}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "removed run bs4") || strings.Contains(buf.String(), "(0 B freed)") {
		t.Errorf("rm printed %q, want the bytes freed", buf.String())
	}
	err := runRm(ctx, RmOptions{StoreDir: dir}, []string{"bs4"}, &buf)
	if exitCode(err) != exitNotFound {
		t.Errorf("second rm: %v", err)
	}
	buf.Reset()
	if err := runRuns(ctx, RunsOptions{StoreDir: dir}, nil, &buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "bs4") {
		t.Errorf("bs4 still listed:\n%s", buf.String())
	}
}

// TestExportProgress: with a progress writer (main passes stderr when it
// is a terminal) a bar is drawn there and nothing extra goes to stdout.
func TestExportProgress(t *testing.T) {
	dir := testStore(t)
	var out, bar bytes.Buffer
	err := runExport(context.Background(), ExportOptions{StoreDir: dir, Format: "npz", Out: filepath.Join(t.TempDir(), "a.npz"), Progress: &bar},
		[]string{"base"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(bar.String(), "export npz") {
		t.Errorf("no progress bar drawn: %q", bar.String())
	}
	if strings.Contains(out.String(), "export npz") || !strings.HasPrefix(out.String(), "exported ") {
		t.Errorf("stdout = %q", out.String())
	}
}

// TestInterrupted: a canceled context (Ctrl-C in main) stops export, diff,
// stats, check, plot and report with exit status 130 and leaves no output.
func TestInterrupted(t *testing.T) {
	dir := testStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"export_npz", []string{"export", "base", "--format", "npz", "--out", "OUT/a.npz"}},
		{"export_arrow_dir", []string{"export", "base", "--format", "arrow", "--out", "OUT/arrow"}},
		{"export_parquet_dataset", []string{"export", "base", "--format", "parquet", "--out", "OUT/ds"}},
		{"export_csv", []string{"export", "base", "--format", "csv", "--out", "OUT/a.csv"}},
		{"diff", []string{"diff", "perturbed", "base"}},
		{"stats", []string{"stats", "base"}},
		{"check", []string{"check"}},
		{"plot_diff", []string{"plot", "--diff", "perturbed", "base", "--out", "OUT/d.svg"}},
		{"report", []string{"report", "perturbed", "base", "--out", "OUT/r.html"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			args := []string{"actquery", "--store", dir}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "OUT", out))
			}
			var stdout, stderr bytes.Buffer
			if code := run(ctx, args, &stdout, &stderr, nil); code != exitSignal {
				t.Errorf("exit %d, want %d\n%s%s", code, exitSignal, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), "interrupted") {
				t.Errorf("stderr %q does not say interrupted", stderr.String())
			}
			ents, _ := os.ReadDir(out)
			for _, e := range ents {
				t.Errorf("left behind: %s", e.Name())
			}
		})
	}
}

// TestCheckRowOffsets: the FILE and OFFSET columns of check are those the
// message states when the error is a CorruptionError.
func TestCheckRowOffsets(t *testing.T) {
	ce := &store.CorruptionError{File: "segments/1/00000001.arrow", Offset: 8, Err: errors.New("malformed message metadata")}
	row := problemRow(store.Problem{Run: "r", Layer: "conv1", File: "segments/1/00000001.arrow", Offset: 808, Err: fmt.Errorf("read: %w", ce)})
	if row.Offset != 8 || row.File != ce.File || !strings.Contains(row.Error, "at offset 8") {
		t.Errorf("row %+v disagrees with its message", row)
	}
	row = problemRow(store.Problem{Run: "r", File: "segments/1/x.arrow", Offset: 808, Err: errors.New("missing")})
	if row.Offset != 808 || row.File != "segments/1/x.arrow" {
		t.Errorf("row without a CorruptionError: %+v", row)
	}
}

// TestExitCodeMapping: errors map by type through any wrapping.
func TestExitCodeMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("open store x: %w", &store.CorruptionError{File: "index.db", Offset: -1, Err: errors.New("0 bytes")}), exitStore},
		{fmt.Errorf("open store x: %w", store.ErrVersion), exitStore},
		{fmt.Errorf("open store x: %w", store.ErrLocked), exitStore},
		{fmt.Errorf("x: %w", errNotStore), exitStore},
		{fmt.Errorf("x: %w", store.ErrNotFound), exitNotFound},
		{fmt.Errorf("tensors of a/b: %w", context.Canceled), exitSignal},
		{fmt.Errorf("x: %w", query.ErrOutputExists), exitOutput},
		{errors.New("disk full"), exitOther},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
