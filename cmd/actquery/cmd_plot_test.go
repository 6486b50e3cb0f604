package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/actrec/actrec/store"
)

func TestPlotAndReport(t *testing.T) {
	dir := testStore(t)
	out := t.TempDir()
	exists := filepath.Join(out, "exists.png")
	if err := os.WriteFile(exists, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		args []string
		want int
		msg  string // substring of stdout+stderr
		file string // output that must exist afterwards
	}{
		{"stat_png", []string{"plot", "base", "perturbed", "--layer", "conv1", "--layer", "relu1", "--stat", "p99", "--out", filepath.Join(out, "p99.png")}, 0, "wrote", "p99.png"},
		{"stat_default_mean_svg", []string{"plot", "base", "--layer", "fc", "--out", filepath.Join(out, "mean.svg")}, 0, "svg", "mean.svg"},
		{"hist_svg", []string{"plot", "base", "--layer", "relu1", "--hist", "--out", filepath.Join(out, "hist.svg")}, 0, "wrote", "hist.svg"},
		{"diff_svg", []string{"plot", "--diff", "perturbed", "base", "--min-sqnr", "20", "--out", filepath.Join(out, "diff.svg")}, 0, "wrote", "diff.svg"},
		{"diff_cosine_png", []string{"plot", "--diff", "perturbed", "base", "--metric", "cosine", "--out", filepath.Join(out, "cos.png")}, 0, "wrote", "cos.png"},
		{"report_two_runs", []string{"report", "perturbed", "base", "--min-sqnr", "20", "--out", filepath.Join(out, "r.html")}, 0, "wrote", "r.html"},
		{"report_one_run", []string{"report", "base", "--layer", "relu1", "--out", filepath.Join(out, "one.html")}, 0, "wrote", "one.html"},
		{"unknown_stat_lists_valid", []string{"plot", "base", "--layer", "conv1", "--stat", "avg", "--out", filepath.Join(out, "x.png")}, 2, "valid stats: mean, std, min, max", ""},
		{"unknown_layer_lists_valid", []string{"plot", "base", "--layer", "conv9", "--out", filepath.Join(out, "x.png")}, 3, "valid layers: conv1, relu1, fc", ""},
		{"unknown_run", []string{"plot", "bsae", "--layer", "conv1", "--out", filepath.Join(out, "x.png")}, 3, "base", ""},
		{"exists_refused", []string{"plot", "base", "--layer", "conv1", "--out", exists}, 5, "exists", ""},
		{"exists_forced", []string{"plot", "base", "--layer", "conv1", "--out", exists, "--force"}, 0, "wrote", "exists.png"},
		{"inside_store_refused", []string{"plot", "base", "--layer", "conv1", "--out", filepath.Join(dir, "x.png")}, 5, "inside", ""},
		{"report_inside_store_refused", []string{"report", "base", "--out", filepath.Join(dir, "segments", "r.html")}, 5, "inside", ""},
		{"bad_extension", []string{"plot", "base", "--layer", "conv1", "--out", filepath.Join(out, "x.pdf")}, 2, ".png or .svg", ""},
		{"no_out", []string{"plot", "base", "--layer", "conv1"}, 2, "--out", ""},
		{"hist_two_layers", []string{"plot", "base", "--layer", "conv1", "--layer", "fc", "--hist", "--out", filepath.Join(out, "x.svg")}, 2, "one --layer", ""},
		{"diff_one_run", []string{"plot", "--diff", "base", "--out", filepath.Join(out, "x.svg")}, 2, "two runs", ""},
		{"bad_metric", []string{"plot", "--diff", "perturbed", "base", "--metric", "psnr", "--out", filepath.Join(out, "x.svg")}, 2, "sqnr, cosine, rel_l2, w1", ""},
		{"mixed_units", []string{"plot", "base", "--layer", "conv1", "--stat", "mean", "--stat", "nan", "--out", filepath.Join(out, "x.svg")}, 2, "different units", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(ctx, append([]string{"actquery", "--store", dir}, tc.args...), &stdout, &stderr, nil)
			all := stdout.String() + stderr.String()
			if code != tc.want {
				t.Errorf("exit %d, want %d\n%s", code, tc.want, all)
			}
			if !strings.Contains(all, tc.msg) {
				t.Errorf("output lacks %q:\n%s", tc.msg, all)
			}
			if tc.file == "" {
				return
			}
			b, err := os.ReadFile(filepath.Join(out, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			switch filepath.Ext(tc.file) {
			case ".png":
				if _, err := png.Decode(bytes.NewReader(b)); err != nil {
					t.Errorf("%s: %v", tc.file, err)
				}
			case ".svg":
				if !bytes.HasPrefix(b, []byte("<?xml")) || !bytes.Contains(b, []byte("</svg>")) {
					t.Errorf("%s is not an SVG document", tc.file)
				}
			case ".html":
				if !bytes.Contains(b, []byte("<svg")) || bytes.Contains(b, []byte(`href="http`)) || bytes.Contains(b, []byte("<script")) {
					t.Errorf("%s: no inline chart, or an external reference", tc.file)
				}
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(out, "diff.svg")); !bytes.Contains(b, []byte("first divergence: relu1")) {
		t.Errorf("diff chart does not mark relu1 as the first diverging layer")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 8 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("output directory holds %v; refused or failed commands must not leave files", names)
	}
}

func TestPlotLayerWithoutStats(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	opts := store.DefaultOptions()
	opts.NoSync = true
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.CreateRun(store.RunInfo{Name: "r"}, []store.LayerInfo{{Path: "fc", Op: "Linear", Shape: []int{2}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AppendTensors("fc", store.TensorRow{Batch: 0, Data: []float32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"actquery", "--store", dir, "plot", "r", "--layer", "fc",
		"--out", filepath.Join(t.TempDir(), "x.png")}, &stdout, &stderr, nil)
	if code != exitNotFound || !strings.Contains(stderr.String(), "no stats recorded") || !strings.Contains(stderr.String(), "tensors only") {
		t.Errorf("exit %d, stderr %q; want 3 and a message that the layer has tensors only", code, stderr.String())
	}
}
