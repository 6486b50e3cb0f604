package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNotebookCheck runs examples/load_exports.py (numpy + pandas) on fresh
// exports of every format and checks that the values and stats it prints
// equal what `actquery show` prints. It needs Debian's /usr/bin/python3
// with python3-numpy and python3-pandas (installed by CI) and skips
// otherwise.
func TestNotebookCheck(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s not found: %v", python, err)
	}
	if out, err := exec.Command(python, "-c", "import numpy, pandas").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import numpy and pandas (apt install python3-numpy python3-pandas): %v\n%s", python, err, out)
	}
	dir := testStore(t)
	out := t.TempDir()
	ctx := context.Background()
	files := map[string]string{
		"npz": filepath.Join(out, "base.npz"), "npy": filepath.Join(out, "conv1.npy"),
		"csv": filepath.Join(out, "stats.csv"), "jsonl": filepath.Join(out, "stats.jsonl"),
		"parquet": filepath.Join(out, "dataset"), "arrow": filepath.Join(out, "conv1.arrow"),
	}
	for format, path := range files {
		opts := ExportOptions{StoreDir: dir, Format: format, Out: path}
		if format == "npy" || format == "arrow" {
			opts.Layers = []string{"conv1"}
		}
		if err := runExport(ctx, opts, []string{"base"}, &bytes.Buffer{}); err != nil {
			t.Fatalf("export %s: %v", format, err)
		}
	}
	const batch, sample = 2, 1
	var showOut bytes.Buffer
	if err := runShow(ctx, ShowOptions{StoreDir: dir, Layer: "conv1", Batch: batch, Sample: sample, Values: -1, JSON: true},
		[]string{"base"}, &showOut); err != nil {
		t.Fatal(err)
	}
	var show struct {
		DatasetIndex int64     `json:"dataset_index"`
		Values       []float32 `json:"values"`
		Stats        struct {
			Count               int64
			Mean, Std, Min, Max float64
		} `json:"stats"`
	}
	if err := json.Unmarshal(showOut.Bytes(), &show); err != nil {
		t.Fatal(err)
	}
	args := []string{filepath.Join("..", "..", "examples", "load_exports.py"),
		"--layer", "conv1", "--batch", strconv.Itoa(batch), "--sample", strconv.Itoa(sample), "--values", "-1"}
	for _, f := range []string{"npz", "npy", "csv", "jsonl", "parquet", "arrow"} {
		args = append(args, "--"+f, files[f])
	}
	cmd := exec.Command(python, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("load_exports.py: %v\n%s", err, stderr.Bytes())
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("bad line %q", line)
		}
		src := strings.TrimSuffix(f[1], ":")
		seen[src] = true
		switch f[0] {
		case "VALUES":
			if ds, _ := strconv.ParseInt(f[2], 10, 64); ds != show.DatasetIndex {
				t.Errorf("%s: dataset_index %d, show says %d", src, ds, show.DatasetIndex)
			}
			vals := f[3:]
			if len(vals) != len(show.Values) {
				t.Errorf("%s: %d values, show prints %d", src, len(vals), len(show.Values))
				continue
			}
			for i, v := range vals {
				x, err := strconv.ParseFloat(v, 32)
				if err != nil || float32(x) != show.Values[i] {
					t.Errorf("%s: value %d = %s, show prints %v", src, i, v, show.Values[i])
				}
			}
		case "STATS":
			want := []float64{float64(show.Stats.Count), show.Stats.Mean, show.Stats.Std, show.Stats.Min, show.Stats.Max}
			for i, v := range f[2:] {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil || i >= len(want) || x != want[i] {
					t.Errorf("%s: stats field %d = %s, show says %v", src, i, v, want)
				}
			}
		case "SKIP":
			if src != "parquet" && src != "arrow" {
				t.Errorf("unexpected skip: %s", line)
			}
			t.Log(line)
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
	for _, src := range []string{"npz", "npy", "csv", "jsonl", "parquet", "arrow"} {
		if !seen[src] {
			t.Errorf("script printed nothing for %s:\n%s", src, got)
		}
	}
}
