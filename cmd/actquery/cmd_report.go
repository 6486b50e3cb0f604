package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
	"github.com/actrec/actrec/query/plot"
	"github.com/actrec/actrec/query/report"
)

// ReportOptions are the options of "actquery report".
type ReportOptions struct {
	StoreDir  string
	Out       string
	Layers    []string
	Batches   string
	Metric    string
	MaxLayers int
	Force     bool
	DiffFlags
}

func newReportCommand(g *globalOptions) *cli.Command {
	var opts ReportOptions
	var layers, maps cli.StringSlice
	var minSQNR, minCos float64
	flags := []cli.Flag{
		&cli.StringFlag{Name: "out", Usage: "output HTML file (required)", Destination: &opts.Out},
		&cli.StringSliceFlag{Name: "layer", Usage: "report only this layer (repeatable; default all)", Destination: &layers},
		&cli.StringFlag{Name: "batches", Usage: "batch range A:B for the charts", Destination: &opts.Batches},
		&cli.StringFlag{Name: "metric", Usage: "diff chart metric: sqnr|cosine|rel_l2|w1", DefaultText: "sqnr, or w1 for stats-only runs", Destination: &opts.Metric},
		&cli.IntFlag{Name: "max-layers", Usage: "draw charts for at most this many layers", DefaultText: "48", Destination: &opts.MaxLayers},
		&cli.BoolFlag{Name: "force", Usage: "overwrite an existing output", Destination: &opts.Force},
	}
	flags = append(flags, diffFlagList(&opts.DiffFlags, &maps, &minSQNR, &minCos)...)
	return &cli.Command{
		Name:  "report",
		Usage: "write a self-contained HTML report of a run, or of two runs and their diff",
		Description: "One HTML file with inline CSS and inline SVG charts; no scripts, fonts or links to\n" +
			"anything outside it, so it opens offline and can be mailed or attached to a ticket.\n" +
			"It holds the run's provenance, the table of layers, per-layer statistics over batches\n" +
			"and histogram heat maps, and with RUN_B the diff table and chart (RUN = candidate,\n" +
			"RUN_B = reference, as in diff). An existing output is refused without --force; an\n" +
			"output inside the store is refused.",
		ArgsUsage: "RUN [RUN_B]",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			opts.Layers = layers.Value()
			opts.DiffFlags.setFrom(c, &maps, &minSQNR, &minCos)
			return runReport(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

func runReport(ctx context.Context, opts ReportOptions, args []string, out io.Writer) (err error) {
	defer func() { err = forceHint(err) }()
	if len(args) < 1 || len(args) > 2 {
		return usagef("report takes RUN and optionally RUN_B")
	}
	if opts.Out == "" {
		return usagef("report needs --out FILE.html")
	}
	br, err := query.ParseBatchRange(opts.Batches)
	if err != nil {
		return usageError{err}
	}
	ro := report.Options{Layers: opts.Layers, Batches: br, MaxLayerCharts: opts.MaxLayers}
	if opts.MaxLayers < 0 {
		return usagef("--max-layers must not be negative")
	}
	if opts.Metric != "" {
		if len(args) != 2 {
			return usagef("--metric needs two runs")
		}
		if ro.Metric, err = plot.ParseMetric(opts.Metric); err != nil {
			return usageError{err}
		}
	}
	if len(args) == 2 {
		ro.RunB = args[1]
		if ro.Diff, err = opts.DiffFlags.queryOptions(); err != nil {
			return err
		}
		ro.Diff.Batches = br
	}
	s, err := openStore(opts.StoreDir)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := query.CheckOutput(opts.StoreDir, opts.Out, opts.Force); err != nil {
		return err
	}
	var buf bytes.Buffer
	werr := report.Write(ctx, &buf, s, args[0], ro)
	if werr != nil && !errors.Is(werr, report.ErrUnreadableLayers) {
		return werr
	}
	// a damaged layer: the page is whole (the layer shows its error); write
	// it, then exit as for a damaged store
	if err := query.WriteFile(opts.Out, opts.Force, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s (%s)\n", opts.Out, humanBytes(int64(buf.Len())))
	return werr
}
