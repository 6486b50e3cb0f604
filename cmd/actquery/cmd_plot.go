package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
	"github.com/actrec/actrec/query/plot"
	"github.com/actrec/actrec/query/report"
	"github.com/actrec/actrec/store"
)

// PlotOptions are the options of "actquery plot".
type PlotOptions struct {
	StoreDir string
	Layers   []string
	Stats    []string // default mean
	Hist     bool
	Diff     bool
	Metric   string // diff metric: sqnr|cosine|rel_l2|w1 (default sqnr, or w1 without tensors)
	Batches  string
	Out      string
	Force    bool
	// Bins and Columns tune --hist (0 = defaults: 48..96 value bins, at most 160 columns).
	Bins, Columns int
	DiffFlags
}

func newPlotCommand(g *globalOptions) *cli.Command {
	var opts PlotOptions
	var layers, stats, maps cli.StringSlice
	var minSQNR, minCos float64
	flags := []cli.Flag{
		&cli.StringSliceFlag{Name: "layer", Usage: "layer to plot (repeatable; several are overlaid)", Destination: &layers},
		&cli.StringSliceFlag{Name: "stat", Usage: "statistic over batches: " + strings.Join(plot.StatNames(), "|") +
			" or any pNN (repeatable, same unit)", DefaultText: "mean", Destination: &stats},
		&cli.BoolFlag{Name: "hist", Usage: "histogram heat map over batches and the merged histogram (one run, one layer)", Destination: &opts.Hist},
		&cli.BoolFlag{Name: "diff", Usage: "per-layer comparison of RUN_A (candidate) with RUN_B (reference) as bars", Destination: &opts.Diff},
		&cli.StringFlag{Name: "metric", Usage: "--diff metric: sqnr|cosine|rel_l2|w1", DefaultText: "sqnr, or w1 for stats-only runs", Destination: &opts.Metric},
		&cli.StringFlag{Name: "batches", Usage: "batch range A:B", Destination: &opts.Batches},
		&cli.StringFlag{Name: "out", Usage: "output FILE.png or FILE.svg (required)", Destination: &opts.Out},
		&cli.BoolFlag{Name: "force", Usage: "overwrite an existing output", Destination: &opts.Force},
		&cli.IntFlag{Name: "bins", Usage: "--hist: value bins", DefaultText: "2*sqrt(elements per column) in 48..96", Destination: &opts.Bins},
		&cli.IntFlag{Name: "columns", Usage: "--hist: at most this many batch columns (neighbouring batches merged)", DefaultText: "160", Destination: &opts.Columns},
	}
	flags = append(flags, diffFlagList(&opts.DiffFlags, &maps, &minSQNR, &minCos)...)
	return &cli.Command{
		Name:  "plot",
		Usage: "draw a stat over batches, a histogram heat map, or a per-layer diff (PNG or SVG)",
		Description: "actquery plot RUN [RUN...] --layer L [--layer L2] [--stat S] --out FILE.png|.svg\n" +
			"   a statistic over batches; several runs and layers are overlaid (legend run/layer)\n" +
			"actquery plot RUN --layer L --hist --out FILE\n" +
			"   the layer's activation histogram per batch as a heat map (colour = log10 fraction of\n" +
			"   the batch's elements) above the whole-run merged histogram, in one picture\n" +
			"actquery plot --diff RUN_A RUN_B [--metric sqnr|cosine|rel_l2|w1] --out FILE\n" +
			"   the metric per layer in execution order; the first diverging layer in red,\n" +
			"   --min-sqnr / --min-cosine drawn as dashed lines\n" +
			"The format follows the extension of --out. An existing output is refused without --force;\n" +
			"an output inside the store is refused.",
		ArgsUsage: "RUN [RUN...]",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			opts.Layers = layers.Value()
			opts.Stats = stats.Value()
			opts.DiffFlags.setFrom(c, &maps, &minSQNR, &minCos)
			return runPlot(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

// noStatsError is a layer recorded without statistics; it counts as "not found".
type noStatsError struct{ err error }

func (e noStatsError) Error() string        { return e.err.Error() }
func (e noStatsError) Unwrap() error        { return e.err }
func (e noStatsError) Is(target error) bool { return target == store.ErrNotFound }

func runPlot(ctx context.Context, opts PlotOptions, args []string, out io.Writer) (err error) {
	defer func() { err = forceHint(err) }()
	if opts.Out == "" {
		return usagef("plot needs --out FILE.png or FILE.svg")
	}
	format, err := plot.FormatFromPath(opts.Out)
	if err != nil {
		return usageError{err}
	}
	modes := 0
	for _, m := range []bool{opts.Hist, opts.Diff} {
		if m {
			modes++
		}
	}
	if modes > 1 {
		return usagef("--hist and --diff are exclusive")
	}
	br, err := query.ParseBatchRange(opts.Batches)
	if err != nil {
		return usageError{err}
	}
	switch {
	case opts.Diff:
		if len(args) != 2 {
			return usagef("plot --diff takes two runs, RUN_A and RUN_B")
		}
		if len(opts.Stats) > 0 {
			return usagef("--stat does not apply to --diff")
		}
	case opts.Hist:
		if len(args) != 1 || len(opts.Layers) != 1 {
			return usagef("plot --hist takes one run and one --layer")
		}
		if len(opts.Stats) > 0 {
			return usagef("--stat does not apply to --hist")
		}
	default:
		if len(args) == 0 {
			return usagef("plot takes at least one run")
		}
		if len(opts.Layers) == 0 {
			return usagef("plot needs --layer (repeatable)")
		}
		if len(opts.Stats) == 0 {
			opts.Stats = []string{"mean"}
		}
		for _, st := range opts.Stats {
			if _, err := plot.ParseStat(st); err != nil {
				return usageError{err}
			}
		}
	}
	var metric plot.Metric
	if opts.Metric != "" {
		if !opts.Diff {
			return usagef("--metric applies to --diff only")
		}
		if metric, err = plot.ParseMetric(opts.Metric); err != nil {
			return usageError{err}
		}
	}

	s, err := openStore(opts.StoreDir)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := query.CheckOutput(opts.StoreDir, opts.Out, opts.Force); err != nil {
		return err
	}

	var fig *plot.Figure
	switch {
	case opts.Diff:
		qo, err := opts.DiffFlags.queryOptions()
		if err != nil {
			return err
		}
		qo.Batches, qo.Layers = br, opts.Layers
		rep, err := query.Diff(ctx, s, args[0], args[1], qo)
		if err != nil {
			return err
		}
		if metric == "" {
			metric = report.DefaultMetric(rep)
		}
		if fig, err = plot.Diff(report.DiffChartData(rep, metric)); err != nil {
			return err
		}
	default:
		var series []plot.Series
		for _, run := range args {
			ls, err := report.ResolveLayers(s, run, opts.Layers)
			if err != nil {
				return err
			}
			for _, l := range ls {
				if err := ctx.Err(); err != nil {
					return err
				}
				sr, err := report.LoadSeries(s, run, l, br)
				if errors.Is(err, plot.ErrNoStats) {
					return noStatsError{err}
				}
				if err != nil {
					return err
				}
				series = append(series, sr)
			}
		}
		if opts.Hist {
			fig, err = plot.Hist(series[0], plot.HistOptions{ValueBins: opts.Bins, MaxColumns: opts.Columns})
		} else {
			fig, err = plot.Stats(opts.Stats, series...)
		}
		if err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if err := fig.Render(&buf, format); err != nil {
		return err
	}
	if err := query.WriteFile(opts.Out, opts.Force, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s (%s, %s)\n", opts.Out, format, humanBytes(int64(buf.Len())))
	return nil
}
