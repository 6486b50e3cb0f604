package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

func testOptions(t *testing.T) recordOptions {
	t.Helper()
	return recordOptions{Store: filepath.Join(t.TempDir(), "store"), Model: "recipe-cnn", BatchSize: 16, Limit: 3,
		Mode: "stats", Compression: "none", Progress: "none", Seed: 1, QueueMem: 256 << 20}
}

func TestRecord_Defaults(t *testing.T) {
	o := testOptions(t)
	o.Run = "r1"
	o.Mode = "both"
	o.Samples = "0,2"
	o.Layers = []string{"relu1", "maxpool2", "fc1"}
	o.Tags = []string{"team=a", "exp=1"}
	var out, errw bytes.Buffer
	res, err := runRecord(context.Background(), o, &out, &errw)
	if err != nil {
		t.Fatal(err)
	}
	if res.Batches != 3 || res.Samples != 48 {
		t.Fatalf("batches %d samples %d", res.Batches, res.Samples)
	}
	for _, want := range []string{"run        r1 (complete)", "3 layers: 9 stats rows, 18 tensor rows", "model      recipe-cnn v1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	st, err := store.OpenReadOnly(o.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, err := st.Run("r1")
	if err != nil {
		t.Fatal(err)
	}
	if run.State != store.StateComplete || run.Model != "recipe-cnn" || run.ModelVersion != "v1" ||
		run.Tags["team"] != "a" || !strings.HasPrefix(run.WeightsHash, "sha256:") || !strings.Contains(run.Input, "t10k-images") {
		t.Fatalf("run info %+v", run.RunInfo)
	}
	layers, err := st.Layers("r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 || layers[0].Path != "relu1" || layers[2].Path != "fc1" {
		t.Fatalf("layers %+v", layers)
	}
	var ds []int64
	err = st.Tensors("r1", "maxpool2", store.BatchRange{}, func(r store.TensorRow) error {
		ds = append(ds, r.DatasetIndex)
		if len(r.Data) != 64*5*5 {
			t.Fatalf("tensor of %d values", len(r.Data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{0, 2, 16, 18, 32, 34}
	if len(ds) != len(want) {
		t.Fatalf("dataset indices %v, want %v", ds, want)
	}
	for i := range want {
		if ds[i] != want[i] {
			t.Fatalf("dataset indices %v, want %v", ds, want)
		}
	}
}

// --threads and --stats-in: statistics computed in workers (auto when
// --threads leaves a core free) give the same rows as in hooks, and the run's
// provenance says where they were computed.
func TestRecord_StatsInWorkers(t *testing.T) {
	rows := map[string][]store.StatsRow{}
	for _, v := range []struct{ name, statsIn string }{{"hooks", "hooks"}, {"workers", "workers"}, {"auto", "auto"}} {
		o := testOptions(t)
		o.Run = v.name
		o.StatsIn = v.statsIn
		o.Threads = 1
		if _, err := runRecord(context.Background(), o, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if nn.Threads() != runtime.GOMAXPROCS(0) {
			t.Fatalf("nn.Threads() = %d after the run, want the default restored", nn.Threads())
		}
		st, err := store.OpenReadOnly(o.Store)
		if err != nil {
			t.Fatal(err)
		}
		run, err := st.Run(v.name)
		if err != nil {
			t.Fatal(err)
		}
		if run.Meta["nn_threads"] != "1" {
			t.Errorf("%s: meta %v, want nn_threads 1", v.name, run.Meta)
		}
		wantWorkers := v.statsIn == "workers" || (v.statsIn == "auto" && runtime.GOMAXPROCS(0) > 1)
		if got := strings.Contains(string(run.Config), `"stats_in_workers":true`); got != wantWorkers {
			t.Errorf("%s: config %s, want stats_in_workers %v", v.name, run.Config, wantWorkers)
		}
		for _, l := range []string{"conv1", "relu1", "maxpool2", "flatten", "relu3", "fc2"} {
			rs, err := st.Stats(v.name, l, store.BatchRange{})
			if err != nil {
				t.Fatal(err)
			}
			rows[v.name+"/"+l] = rs
		}
		st.Close()
	}
	for _, l := range []string{"conv1", "relu1", "maxpool2", "flatten", "relu3", "fc2"} {
		h, w := rows["hooks/"+l], rows["workers/"+l]
		if len(h) != 3 || len(w) != 3 {
			t.Fatalf("%s: %d rows in hooks, %d in workers, want 3", l, len(h), len(w))
		}
		for i := range h {
			a, b := h[i], w[i]
			if a.Count != b.Count || a.Min != b.Min || a.Max != b.Max || a.ZeroFrac != b.ZeroFrac || a.Percentiles != b.Percentiles ||
				!slices.Equal(a.Hist.Counts, b.Hist.Counts) || math.Abs(a.Mean-b.Mean) > 1e-9*(1+math.Abs(a.Mean)) || math.Abs(a.Std-b.Std) > 1e-9*a.Std {
				t.Errorf("%s batch %d: hooks %+v\nworkers %+v", l, i, a, b)
			}
		}
	}
}

func TestRecord_Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*recordOptions)
		code int
		want string
	}{
		{"unknown model", func(o *recordOptions) { o.Model = "resnet" }, exitUsage, "unknown model \"resnet\": valid models are recipe-cnn, paritynet"},
		{"unknown layer", func(o *recordOptions) { o.Layers = []string{"relu9"} }, exitUsage, "relu1"},
		{"unknown tensor layer", func(o *recordOptions) { o.TensorLayers = []string{"op:Nope"} }, exitUsage, "Conv2d"},
		{"bad mode", func(o *recordOptions) { o.Mode = "all" }, exitUsage, "--mode"},
		{"bad compression", func(o *recordOptions) { o.Compression = "gzip" }, exitUsage, "want none, lz4 or zstd"},
		{"missing input", func(o *recordOptions) { o.Input = "/nonexistent/x.npy" }, exitInput, "/nonexistent/x.npy"},
		{"bad weights version", func(o *recordOptions) { o.Weights = "v9" }, exitUsage, "shipped versions are v1, v2, v1-int8"},
		{"bad tag", func(o *recordOptions) { o.Tags = []string{"novalue"} }, exitUsage, "want k=v"},
		{"escaping run name", func(o *recordOptions) { o.Run = "a\x00b" }, exitUsage, "invalid name"},
		{"missing model file", func(o *recordOptions) { o.Model = "/nonexistent/m.onnx" }, exitUsage, "/nonexistent/m.onnx"},
		{"missing weights file", func(o *recordOptions) { o.Weights = "/nonexistent/w.safetensors" }, exitUsage, "/nonexistent/w.safetensors"},
		{"store is a file", func(o *recordOptions) { o.Store = "/etc/hostname" }, exitStore, "/etc/hostname"},
		{"bad progress", func(o *recordOptions) { o.Progress = "weird" }, exitUsage, "want auto, bar, plain or none"},
		{"sample out of range", func(o *recordOptions) { o.Samples = "99" }, exitUsage, "a batch has samples 0..15"},
		{"zero queue", func(o *recordOptions) { o.QueueMem = 0 }, exitUsage, "--queue-mem must be > 0"},
		{"negative threads", func(o *recordOptions) { o.Threads = -1 }, exitUsage, "--threads -1: must be >= 0"},
		{"bad stats-in", func(o *recordOptions) { o.StatsIn = "gpu" }, exitUsage, "want auto, hooks or workers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tc.mod(&o)
			_, err := runRecord(context.Background(), o, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if tc.code != exitFailure && exitCode(err) != tc.code {
				t.Fatalf("exit code %d, want %d (err %v)", exitCode(err), tc.code, err)
			}
		})
	}
}

func TestRecord_RunExists(t *testing.T) {
	o := testOptions(t)
	o.Run = "same"
	o.Limit = 1
	if _, err := runRecord(context.Background(), o, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	_, err := runRecord(context.Background(), o, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, store.ErrRunExists) || exitCode(err) != exitStore {
		t.Fatalf("second record: %v (exit %d)", err, exitCode(err))
	}
}

func TestRecord_CancelledMarksInterrupted(t *testing.T) {
	o := testOptions(t)
	o.Run = "cut"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := runRecord(ctx, o, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, errInterrupted) || exitCode(err) != exitInterrupted {
		t.Fatalf("err %v", err)
	}
	if !res.Interrupted {
		t.Fatal("result not interrupted")
	}
	st, _ := store.OpenReadOnly(o.Store)
	defer st.Close()
	run, err := st.Run("cut")
	if err != nil || run.State != store.StateInterrupted {
		t.Fatalf("run %+v, %v", run, err)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "100": 100, "1k": 1024, "256MB": 256 << 20, "1.5GiB": 3 << 29} {
		got, err := parseBytes(in)
		if err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseBytes("12 parsecs"); err == nil {
		t.Error("parseBytes accepted an unknown unit")
	}
}

// Guards that sizes of 2^63 bytes and more (and NaN) are usage errors naming the flag instead of
// wrapping to a negative int64 (which failed later as "negative tensor budget", exit 1).
func TestParseBytes_Overflow(t *testing.T) {
	for _, s := range []string{"1e19", "9e18GB", "10000000TB", "9223372036854775808", "1e400"} {
		if v, err := parseBytes(s); err == nil {
			t.Errorf("parseBytes(%q) = %d, nil; want an error", s, v)
		}
	}
	if v, err := parseBytes("8388607TB"); err != nil || v != 8388607<<40 {
		t.Errorf("parseBytes(8388607TB) = %d, %v; want %d", v, err, int64(8388607)<<40)
	}
	for _, flag := range []string{"--max-bytes", "--queue-mem"} {
		var errw bytes.Buffer
		err := newApp(&bytes.Buffer{}, &errw).Run([]string{"actrec", "record", "--store", filepath.Join(t.TempDir(), "st"),
			"--model", "paritynet", "--progress", "none", flag, "1e19"})
		if code := exitCode(err); code != exitUsage || !strings.Contains(err.Error(), flag) || !strings.Contains(err.Error(), "too large") {
			t.Errorf("%s 1e19: exit code %d (%v), want %d (usage) naming the flag and saying too large", flag, code, err, exitUsage)
		}
	}
}

func TestLayersAndModels(t *testing.T) {
	var b bytes.Buffer
	if err := runLayers(&b, "recipe-cnn", 64); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"conv1     Conv2d     [64 32 26 26]", "maxpool2  MaxPool2d  [64 64 5 5]", "fc2       Linear     [64 10]"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("layers output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := runLayers(&b, "paritynet", 1); err != nil || !strings.Contains(b.String(), "  block.add") {
		t.Fatalf("paritynet layers: %v\n%s", err, b.String())
	}
	b.Reset()
	if err := runModels(&b); err != nil || !strings.Contains(b.String(), "recipe-cnn  1x28x28") {
		t.Fatalf("models: %v\n%s", err, b.String())
	}
}

// TestMain lets the test binary act as the actrec command for subprocess tests.
func TestMain(m *testing.M) {
	if os.Getenv("ACTREC_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestRecord_SIGINT stops a real actrec process with SIGINT mid-run: it exits 130, the run is
// marked interrupted, and every batch it reports is readable.
func TestRecord_SIGINT(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	cmd := exec.Command(os.Args[0], "record", "--store", dir, "--run", "sig", "--batch-size", "8", "--progress", "plain")
	cmd.Env = append(os.Environ(), "ACTREC_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &bytes.Buffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the run has committed some batches, then interrupt.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, err := store.OpenReadOnly(dir); err == nil {
			run, err := st.Run("sig")
			st.Close()
			if err == nil && run.Batches >= 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no batches committed in time; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
	}
	st, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, err := st.Run("sig")
	if err != nil {
		t.Fatal(err)
	}
	if run.State != store.StateInterrupted || run.Batches < 2 || run.Batches >= 1250 {
		t.Fatalf("state %s batches %d", run.State, run.Batches)
	}
	rows, err := st.Stats("sig", "fc2", store.BatchRange{})
	if err != nil || int64(len(rows)) != int64(run.Batches) {
		t.Fatalf("fc2 has %d stats rows for %d batches (%v)", len(rows), run.Batches, err)
	}
}

// TestRecord_ONNX records the ONNX export of the recipe CNN (v1 weights) on the shipped test set
// and checks its stats equal those of the built-in model with the same weights.
func TestRecord_ONNX(t *testing.T) {
	onnxPath, err := shippedPath("testdata/onnx/recipe_cnn.onnx")
	if err != nil {
		t.Skip(err)
	}
	o := testOptions(t)
	o.Run, o.Model, o.Layers = "onnx", onnxPath, []string{"fc2"}
	if _, err := runRecord(context.Background(), o, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	o.Run, o.Model, o.Layers = "builtin", "recipe-cnn", []string{"fc2"}
	if _, err := runRecord(context.Background(), o, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenReadOnly(o.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, errA := st.Stats("onnx", "fc2", store.BatchRange{})
	b, errB := st.Stats("builtin", "fc2", store.BatchRange{})
	if errA != nil || errB != nil || len(a) != 3 || len(b) != 3 {
		t.Fatalf("stats rows: %d (%v), %d (%v)", len(a), errA, len(b), errB)
	}
	for i := range a {
		if d := a[i].Mean - b[i].Mean; d > 1e-5 || d < -1e-5 || a[i].Count != b[i].Count {
			t.Errorf("batch %d: onnx mean %v count %d, built-in mean %v count %d", i, a[i].Mean, a[i].Count, b[i].Mean, b[i].Count)
		}
	}
}
