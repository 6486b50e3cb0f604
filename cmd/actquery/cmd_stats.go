package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
)

// StatsOptions are the options of "actquery stats".
type StatsOptions struct {
	StoreDir  string
	Layers    []string
	Batches   string // "A:B"
	Aggregate bool
	JSON      bool
}

func newStatsCommand(g *globalOptions) *cli.Command {
	var opts StatsOptions
	var layers cli.StringSlice
	return &cli.Command{
		Name:      "stats",
		Usage:     "print the per-batch statistics of a run's layers, or aggregate them with --agg",
		ArgsUsage: "RUN",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "layer", Usage: "layer to include (repeatable; default all)", Destination: &layers},
			&cli.StringFlag{Name: "batches", Usage: "batch range A:B (A <= batch < B), A:, :B or N", Destination: &opts.Batches},
			&cli.BoolFlag{Name: "agg", Usage: "one row per layer over the batches (merged histograms; percentiles from them)", Destination: &opts.Aggregate},
			&cli.BoolFlag{Name: "json", Usage: "JSON output (schema actquery.stats/v1)", Destination: &opts.JSON},
		},
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			opts.Layers = layers.Value()
			return runStats(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

type statsJSON struct {
	Schema     string           `json:"schema"`
	Run        string           `json:"run"`
	Aggregated bool             `json:"aggregated"`
	Rows       []query.StatsRow `json:"rows"`
}

func runStats(ctx context.Context, opts StatsOptions, args []string, out io.Writer) error {
	if len(args) != 1 {
		return usagef("stats takes one argument, the run")
	}
	br, err := query.ParseBatchRange(opts.Batches)
	if err != nil {
		return usageError{err}
	}
	s, err := openStore(opts.StoreDir)
	if err != nil {
		return err
	}
	defer s.Close()
	rows, err := query.Stats(ctx, s, args[0], query.StatsOptions{Layers: opts.Layers, Batches: br, Aggregate: opts.Aggregate})
	if err != nil {
		return err
	}
	if opts.JSON {
		if rows == nil {
			rows = []query.StatsRow{}
		}
		return writeJSON(out, statsJSON{Schema: schemaStats, Run: args[0], Aggregated: opts.Aggregate, Rows: rows})
	}
	tw := newTable(out)
	first := "BATCH"
	if opts.Aggregate {
		first = "BATCHES"
	}
	fmt.Fprintf(tw, "LAYER\t%s\tCOUNT\tMEAN\tSTD\tMIN\tMAX\tP01\tP50\tP99\tZERO\tNAN\tINF\n", first)
	for _, r := range rows {
		b := fmt.Sprint(r.Batch)
		if opts.Aggregate {
			b = fmt.Sprint(r.Batches)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%d\t%d\n", r.Layer, b, r.Count,
			r.Mean, r.Std, r.Min, r.Max, r.P01, r.P50, r.P99, r.ZeroFrac, r.NaN, r.Inf)
	}
	return tw.Flush()
}
