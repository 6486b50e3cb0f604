package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/recorder"
	"github.com/actrec/actrec/store"
)

// recordOptions are the flags of `actrec record`.
type recordOptions struct {
	Store        string
	Run          string
	Model        string
	Weights      string
	Input        string
	BatchSize    int
	Limit        int
	Layers       []string
	TensorLayers []string // layers whose sampled tensors are kept on top of --mode
	Mode         string
	Every        int64
	Samples      string
	SampleCount  int
	Seed         uint64
	MaxBytes     int64
	Compression  string
	QueueMem     int64
	Drop         bool
	Tags         []string
	ChannelStats bool
	Progress     string // auto, bar, plain, none
	Threads      int    // nn.SetThreads; 0: GOMAXPROCS
	StatsIn      string // auto, hooks, workers
}

func recordCommand() *cli.Command {
	return &cli.Command{
		Name:      "record",
		Usage:     "run a model over an input data set and record its activations into a store",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			storeFlag(),
			&cli.StringFlag{Name: "run", Usage: "run name (default: <model>-<version>-<time>-<random>)"},
			&cli.StringFlag{Name: "model", Value: "recipe-cnn", Usage: "built-in model name (list: actrec models) or an .onnx file"},
			&cli.StringFlag{Name: "weights", Usage: "safetensors weights file, or a shipped version of recipe-cnn: v1 (default), v2, v1-int8"},
			&cli.StringFlag{Name: "input", Usage: "input data: MNIST-format IDX file (.gz ok), .npy, .npz[:array], or a directory of PNG/JPEG images (default: the shipped Fashion-MNIST test set)"},
			&cli.IntFlag{Name: "batch-size", Value: 64, Usage: "samples per forward pass"},
			&cli.IntFlag{Name: "limit", Usage: "record at most this many batches (0: the whole input)"},
			&cli.StringSliceFlag{Name: "layers", Usage: "layers to record: paths, globs (relu*, layer1.*), op:<Op>, or all (default all; repeatable or comma-separated)"},
			&cli.StringSliceFlag{Name: "tensor-layers", Usage: "also keep the sampled tensors of these layers (stats and tensors), e.g. relu1,maxpool2,fc1"},
			&cli.StringFlag{Name: "mode", Value: "stats", Usage: "what to keep per layer: stats, tensors or both"},
			&cli.Int64Flag{Name: "every", Usage: "record every Nth batch only (0 or 1: every batch)"},
			&cli.StringFlag{Name: "samples", Usage: "indices of the samples of each batch whose tensors are kept, e.g. 0,2 (default: all)"},
			&cli.IntFlag{Name: "sample-count", Usage: "keep the tensors of k samples per batch chosen at random (see --seed)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of --sample-count"},
			&cli.StringFlag{Name: "max-bytes", Usage: "tensor storage budget of the run, e.g. 500MB; when reached tensors stop, stats go on (default: unlimited)"},
			&cli.StringFlag{Name: "compression", Value: "none", Usage: "segment compression: none (zero-copy reads), lz4 or zstd"},
			&cli.StringFlag{Name: "queue-mem", Value: "256MB", Usage: "memory cap of the recording queue; the store buffers about 4 x queue-mem/4 more per tensor layer"},
			&cli.BoolFlag{Name: "drop", Usage: "when the queue is full, skip the batch (counted in the run) instead of making inference wait"},
			&cli.StringSliceFlag{Name: "tag", Usage: "free-form k=v tag of the run (repeatable)"},
			&cli.BoolFlag{Name: "channel-stats", Usage: "also keep per-channel mean and max of conv outputs"},
			&cli.StringFlag{Name: "progress", Value: "auto", Usage: "auto (a bar on a terminal, silence otherwise), bar, plain or none"},
			&cli.IntFlag{Name: "threads", Usage: "goroutines one forward pass uses (like torch.set_num_threads; 0: all cores)"},
			&cli.StringFlag{Name: "stats-in", Value: "auto", Usage: "where statistics are computed: hooks (on the inference threads, least CPU), workers (a copy of each output goes to a recorder goroutine, off the inference threads) or auto (workers when --threads leaves a core free)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("record takes no arguments, got %q", c.Args().Slice())
			}
			maxBytes, err := parseBytes(c.String("max-bytes"))
			if err != nil {
				return usagef("--max-bytes: %v", err)
			}
			queue, err := parseBytes(c.String("queue-mem"))
			if err != nil {
				return usagef("--queue-mem: %v", err)
			}
			o := recordOptions{
				Store: c.String("store"), Run: c.String("run"), Model: c.String("model"), Weights: c.String("weights"),
				Input: c.String("input"), BatchSize: c.Int("batch-size"), Limit: c.Int("limit"),
				Layers: splitList(c.StringSlice("layers")), TensorLayers: splitList(c.StringSlice("tensor-layers")), Mode: c.String("mode"), Every: c.Int64("every"),
				Samples: c.String("samples"), SampleCount: c.Int("sample-count"), Seed: c.Uint64("seed"),
				MaxBytes: maxBytes, Compression: c.String("compression"), QueueMem: queue, Drop: c.Bool("drop"),
				Tags: c.StringSlice("tag"), ChannelStats: c.Bool("channel-stats"), Progress: c.String("progress"),
				Threads: c.Int("threads"), StatsIn: c.String("stats-in"),
			}
			ctx, stop := interruptContext(c.Context, c.App.ErrWriter)
			defer stop()
			_, err = runRecord(ctx, o, c.App.Writer, c.App.ErrWriter)
			return err
		},
	}
}

// recordResult is what runRecord did.
type recordResult struct {
	Run         string
	Batches     int64
	Samples     int64
	Layers      int
	Counters    recorder.Counters
	Bytes       int64
	Interrupted bool
	PlainMs     float64 // mean forward time per batch with recording disabled (calibration)
	RecordMs    float64 // mean forward time per batch while recording
}

// buildConfig turns the flags into a recorder configuration.
func buildConfig(o recordOptions) (recorder.Config, error) {
	cfg := recorder.DefaultConfig()
	cfg.Layers = o.Layers
	mode, err := recorder.ParseMode(o.Mode)
	if err != nil {
		return cfg, usagef("--mode: %v", err)
	}
	cfg.Mode = mode
	for _, l := range o.TensorLayers {
		cfg.Overrides = append(cfg.Overrides, recorder.LayerMode{Select: l, Mode: mode | recorder.ModeTensors})
	}
	if o.Every < 0 {
		return cfg, usagef("--every %d: must be >= 0", o.Every)
	}
	cfg.Batches.Every = o.Every
	if o.Samples != "" && o.SampleCount > 0 {
		return cfg, usagef("--samples and --sample-count exclude each other")
	}
	if o.Samples != "" {
		for _, s := range strings.Split(o.Samples, ",") {
			i, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || i < 0 {
				return cfg, usagef("--samples %q: want comma-separated sample indices like 0,2", o.Samples)
			}
			cfg.Samples.Indices = append(cfg.Samples.Indices, i)
		}
	}
	if o.SampleCount < 0 {
		return cfg, usagef("--sample-count %d: must be >= 0", o.SampleCount)
	}
	if o.SampleCount > 0 {
		cfg.Samples.Random = o.SampleCount
		cfg.Samples.Seed = o.Seed
	}
	cfg.TensorBudget = o.MaxBytes
	if o.QueueMem <= 0 {
		return cfg, usagef("--queue-mem must be > 0")
	}
	cfg.QueueBytes = o.QueueMem
	if o.Drop {
		cfg.Policy = recorder.Drop
	}
	cfg.ChannelStats = o.ChannelStats
	if o.Threads < 0 {
		return cfg, usagef("--threads %d: must be >= 0", o.Threads)
	}
	switch o.StatsIn {
	case "", "auto":
		cfg.StatsInWorkers = o.Threads > 0 && o.Threads < runtime.GOMAXPROCS(0)
	case "hooks":
	case "workers":
		cfg.StatsInWorkers = true
	default:
		return cfg, usagef("--stats-in %q: want auto, hooks or workers", o.StatsIn)
	}
	return cfg, nil
}

func parseTags(tags []string) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, usagef("--tag %q: want k=v", t)
		}
		m[k] = v
	}
	return m, nil
}

// runRecord records one run; it is the whole `actrec record` command minus flag parsing.
// Progress goes to errw; the summary to out.
func runRecord(ctx context.Context, o recordOptions, out, errw io.Writer) (*recordResult, error) {
	if o.BatchSize <= 0 {
		return nil, usagef("--batch-size %d: must be > 0", o.BatchSize)
	}
	if o.Limit < 0 {
		return nil, usagef("--limit %d: must be >= 0", o.Limit)
	}
	switch o.Progress {
	case "auto", "bar", "plain", "none":
	default:
		return nil, usagef("--progress %q: want auto, bar, plain or none", o.Progress)
	}
	if o.SampleCount > o.BatchSize {
		return nil, usagef("--sample-count %d: larger than --batch-size %d", o.SampleCount, o.BatchSize)
	}
	comp, ok := store.ParseCompression(o.Compression)
	if !ok {
		return nil, usagef("--compression %q: want none, lz4 or zstd", o.Compression)
	}
	tags, err := parseTags(o.Tags)
	if err != nil {
		return nil, err
	}
	cfg, err := buildConfig(o)
	if err != nil {
		return nil, err
	}
	defer nn.SetThreads(nn.SetThreads(o.Threads))
	for _, i := range cfg.Samples.Indices {
		if i >= o.BatchSize {
			return nil, usagef("--samples %d: a batch has samples 0..%d (--batch-size %d)", i, o.BatchSize-1, o.BatchSize)
		}
	}
	lm, err := loadModel(o.Model, o.Weights)
	if err != nil {
		return nil, err
	}
	inPath := o.Input
	if inPath == "" {
		if lm.Dataset == "" {
			return nil, usagef("model %s has no shipped input: pass --input", lm.Name)
		}
		inPath = lm.Dataset
	}
	ds, err := openDataset(inPath, lm.Input, lm.Norm)
	if err != nil {
		return nil, inputError{err}
	}
	nb := (ds.Len() + o.BatchSize - 1) / o.BatchSize
	if o.Limit > 0 && o.Limit < nb {
		nb = o.Limit
	}
	if nb == 0 {
		return nil, inputError{fmt.Errorf("input %s: no samples", inPath)}
	}

	opts := store.DefaultOptions()
	opts.Compression = comp
	// The store buffers up to about 4x MaxBufferBytes per tensor layer; tie it to --queue-mem so
	// that one flag bounds the recording's memory (recorder/doc.go, "Memory").
	opts.MaxBufferBytes = max(1<<20, cfg.QueueBytes/4)
	st, err := store.Open(o.Store, opts)
	if err != nil {
		return nil, storeError{err}
	}
	defer st.Close()

	name := o.Run
	if name == "" {
		name = fmt.Sprintf("%s-%s-%s-%04x", lm.Name, lm.Version, time.Now().UTC().Format("20060102-150405"), time.Now().UnixNano()&0xffff)
	}
	rec, err := recorder.New(st, store.RunInfo{
		Name: name, Model: lm.Name, ModelVersion: lm.Version, WeightsHash: lm.WeightsHash,
		Input: ds.Describe(), Tags: tags,
	}, cfg)
	if err != nil {
		return nil, err
	}
	full := append([]int{o.BatchSize}, lm.Input...)
	if err := rec.Attach(lm.Model, full); err != nil {
		return nil, err
	}
	res := &recordResult{Run: name}

	// Calibration: a few forward passes with recording disabled, to report the overhead.
	per := prod(lm.Input)
	x := nn.NewTensor(full...)
	if err := ds.Fill(x.Data, 0, min(o.BatchSize, ds.Len())); err != nil {
		rec.Close()
		return nil, inputError{err}
	}
	if n := min(ds.Len(), o.BatchSize); n < o.BatchSize {
		x = &nn.Tensor{Shape: append([]int{n}, lm.Input...), Data: x.Data[:n*per]}
	}
	// An interrupt stops the loop between batches; a batch in flight completes, so that
	// everything recorded so far is whole.
	fctx := context.WithoutCancel(ctx)
	rec.SetEnabled(false)
	const calib = 3
	var plain time.Duration
	for i := 0; i < calib+1; i++ {
		t0 := time.Now()
		if _, err := lm.Model.Forward(fctx, x); err != nil {
			rec.CloseAs(store.StateInterrupted)
			return nil, err
		}
		if i > 0 { // the first pass warms up buffers
			plain += time.Since(t0)
		}
	}
	res.PlainMs = float64(plain.Microseconds()) / 1e3 / calib
	rec.SetEnabled(true)

	bar := newProgress(o.Progress, errw, nb)
	var fwd time.Duration
	buf := make([]float32, o.BatchSize*per)
	for b := 0; b < nb; b++ {
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
		start := b * o.BatchSize
		n := min(o.BatchSize, ds.Len()-start)
		if err := ds.Fill(buf[:n*per], start, n); err != nil {
			rec.CloseAs(store.StateInterrupted)
			return nil, inputError{err}
		}
		xb := &nn.Tensor{Shape: append([]int{n}, lm.Input...), Data: buf[:n*per]}
		bctx := recorder.WithBatch(fctx, recorder.Batch{Index: int64(b), DatasetIndex: int64(start)})
		t0 := time.Now()
		if _, err := lm.Model.Forward(bctx, xb); err != nil {
			rec.CloseAs(store.StateInterrupted)
			return nil, err
		}
		fwd += time.Since(t0)
		res.Batches++
		res.Samples += int64(n)
		if err := rec.Err(); err != nil {
			bar.finish()
			rec.Close()
			return nil, fmt.Errorf("recording %s: %w", name, err)
		}
		bar.update(res.Batches, rec.Stats())
	}
	bar.finish()
	if res.Batches > 0 {
		res.RecordMs = float64(fwd.Microseconds()) / 1e3 / float64(res.Batches)
	}
	var cerr error
	if res.Interrupted {
		cerr = rec.CloseAs(store.StateInterrupted)
	} else {
		cerr = rec.Close()
	}
	res.Counters = rec.Stats()
	if sum, err := st.Run(name); err == nil {
		res.Bytes, res.Layers = sum.Bytes, sum.Layers
	}
	printSummary(out, res, lm, inPath, st.Dir())
	if cerr != nil {
		return res, fmt.Errorf("recording %s: %w", name, cerr)
	}
	if res.Interrupted {
		return res, errInterrupted
	}
	return res, nil
}

func printSummary(w io.Writer, r *recordResult, lm *loadedModel, input, dir string) {
	state := "complete"
	if r.Interrupted {
		state = "interrupted; everything recorded so far is flushed"
	}
	fmt.Fprintf(w, "run        %s (%s)\n", r.Run, state)
	fmt.Fprintf(w, "model      %s %s, weights %s\n", lm.Name, lm.Version, shortHash(lm.WeightsHash))
	fmt.Fprintf(w, "input      %s: %d batches, %d samples\n", input, r.Batches, r.Samples)
	fmt.Fprintf(w, "recorded   %d layers: %d stats rows, %d tensor rows (%s of tensors)", r.Layers, r.Counters.StatsRows, r.Counters.TensorRows, humanBytes(r.Counters.TensorBytes))
	if r.Counters.Dropped > 0 {
		fmt.Fprintf(w, ", %d batches dropped", r.Counters.Dropped)
	}
	if r.Counters.BudgetReached >= 0 {
		fmt.Fprintf(w, ", tensor budget reached at batch %d", r.Counters.BudgetReached)
	}
	fmt.Fprintln(w)
	if r.PlainMs > 0 && r.RecordMs > 0 {
		pct := fmt.Sprintf("%+.1f%%", 100*(r.RecordMs-r.PlainMs)/r.PlainMs)
		if r.RecordMs <= r.PlainMs {
			pct = "no measurable overhead"
		}
		fmt.Fprintf(w, "overhead   %.2f ms/batch recording vs %.2f ms/batch plain (%s; a rough estimate from %d plain passes, see BENCHMARKS.md)\n",
			r.RecordMs, r.PlainMs, pct, 3)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	fmt.Fprintf(w, "store      %s (%s on disk for this run)\n", abs, humanBytes(r.Bytes))
	fmt.Fprintf(w, "next       actquery --store %s layers %s\n", dir, r.Run)
}

func shortHash(h string) string {
	if len(h) > 19 {
		return h[:19]
	}
	return h
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parseBytes parses "256MB", "1GiB", "500k", "1000" (bytes); "" is 0.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size like 256MB", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
		"mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (use B, KB, MB, GB, TB)", s, unit)
	}
	// int64(v * mult) would silently wrap (to a negative size) from 2^63 up.
	if b := v * mult; math.IsNaN(b) || b >= 1<<63 {
		return 0, fmt.Errorf("%q is too large (at most 8 EiB)", s)
	}
	return int64(v * mult), nil
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// interruptContext is cancelled by the first SIGINT/SIGTERM (recording stops cleanly and the run
// is marked interrupted); a second one exits at once with status 130.
func interruptContext(parent context.Context, errw io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			fmt.Fprintln(errw, "\nactrec: stopping: flushing what was recorded (press Ctrl-C again to exit at once)")
			cancel()
		case <-ctx.Done():
			return
		}
		if _, ok := <-ch; ok {
			fmt.Fprintln(errw, "actrec: exiting at once; the run will show as crashed, its flushed batches stay readable")
			os.Exit(exitInterrupted)
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// progress reports recording progress on a terminal (a bar), as plain lines, or not at all.
type progress struct {
	bar   *progressbar.ProgressBar
	plain io.Writer
	last  time.Time
	start time.Time
	total int
}

func newProgress(mode string, w io.Writer, total int) *progress {
	p := &progress{start: time.Now(), total: total}
	if mode == "auto" {
		mode = "none"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	switch mode {
	case "bar":
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("recording"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("batches"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	case "plain":
		p.plain = w
	}
	return p
}

func (p *progress) update(done int64, c recorder.Counters) {
	extra := fmt.Sprintf("%s tensors, %d dropped", humanBytes(c.TensorBytes), c.Dropped)
	switch {
	case p.bar != nil:
		p.bar.Describe("recording (" + extra + ")")
		p.bar.Set(int(done))
	case p.plain != nil && (time.Since(p.last) > 2*time.Second || int(done) == p.total):
		p.last = time.Now()
		rate := float64(done) / time.Since(p.start).Seconds()
		fmt.Fprintf(p.plain, "actrec: %d/%d batches, %.1f batches/s, %s\n", done, p.total, rate, extra)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// storeError marks a store that cannot be opened or used (exit code 4).
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// inputError marks an unreadable input (exit code 3).
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }
