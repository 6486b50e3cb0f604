package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
)

// ShowOptions are the options of "actquery show".
type ShowOptions struct {
	StoreDir string
	Layer    string
	Batch    int64
	Sample   int
	Values   int
	JSON     bool
}

func newShowCommand(g *globalOptions) *cli.Command {
	var opts ShowOptions
	return &cli.Command{
		Name:  "show",
		Usage: "print the shape, the batch's stats and the first values of one tensor",
		Description: "When the stats or the tensor of the batch cannot be read (damaged store), the other part is\n" +
			"printed with \"stats unreadable: ...\" or \"tensor unreadable: ...\" and the exit status is 4.",
		ArgsUsage: "RUN",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "layer", Usage: "layer path (required)", Destination: &opts.Layer},
			&cli.Int64Flag{Name: "batch", Usage: "batch number (required)", Destination: &opts.Batch},
			&cli.IntFlag{Name: "sample", Usage: "sample index in the batch", Destination: &opts.Sample},
			&cli.IntFlag{Name: "values", Value: 16, Usage: "how many leading values to print (-1: all)", Destination: &opts.Values},
			&cli.BoolFlag{Name: "json", Usage: "JSON output (schema actquery.show/v1)", Destination: &opts.JSON},
		},
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			if !c.IsSet("layer") || !c.IsSet("batch") {
				return usagef("show needs --layer and --batch")
			}
			return runShow(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

type showJSON struct {
	Schema string `json:"schema"`
	*query.Tensor
}

// formatValues prints float32 values in their shortest exact form.
func formatValues(v []float32) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(float64(x), 'g', -1, 32)
	}
	return strings.Join(parts, " ")
}

func runShow(_ context.Context, opts ShowOptions, args []string, out io.Writer) error {
	if len(args) != 1 {
		return usagef("show takes one argument, the run")
	}
	if opts.Values == 0 {
		opts.Values = 16
	}
	s, err := openStore(opts.StoreDir)
	if err != nil {
		return err
	}
	defer s.Close()
	t, readErr := query.Show(s, args[0], query.ShowOptions{Layer: opts.Layer, Batch: opts.Batch, Sample: opts.Sample, Values: opts.Values})
	if t == nil {
		return readErr
	}
	// A part that could not be read is reported in the output; the read
	// error is returned after it (exit status 4 for a damaged store).
	if opts.JSON {
		if t.Values == nil {
			t.Values = []float32{}
		}
		if err := writeJSON(out, showJSON{Schema: schemaShow, Tensor: t}); err != nil {
			return err
		}
		return readErr
	}
	printShow(out, t)
	return readErr
}

func printShow(out io.Writer, t *query.Tensor) {
	fmt.Fprintf(out, "run %s  layer %s (%s)  batch %d\n", t.Run, t.Layer, t.Op, t.Batch)
	fmt.Fprintf(out, "shape %v per sample\n", t.Shape)
	if t.StatsError != nil {
		fmt.Fprintf(out, "batch stats: stats unreadable: %s\n", *t.StatsError)
	} else if st := t.Stats; st != nil {
		fmt.Fprintf(out, "batch stats: count %d  mean %v  std %v  min %v  max %v  p50 %v  zero %v  nan %d  inf %d\n",
			st.Count, st.Mean, st.Std, st.Min, st.Max, st.P50, st.ZeroFrac, st.NaN, st.Inf)
	} else {
		fmt.Fprintln(out, "batch stats: not recorded")
	}
	if t.TensorError != nil {
		fmt.Fprintf(out, "tensors: tensor unreadable: %s\n", *t.TensorError)
		return
	}
	if t.Samples == 0 {
		fmt.Fprintln(out, "tensors: not recorded for this batch")
		return
	}
	fmt.Fprintf(out, "sample %d of %d  dataset_index %d  %d values\n", t.Sample, t.Samples, t.DatasetIndex, t.Elements)
	fmt.Fprintf(out, "values[0:%d]: %s\n", len(t.Values), formatValues(t.Values))
}
