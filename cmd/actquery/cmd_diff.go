package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
)

// DiffOptions are the options of "actquery diff".
type DiffOptions struct {
	StoreDir string
	DiffFlags
	Layers  []string
	Batches string
	JSON    bool
}

func newDiffCommand(g *globalOptions) *cli.Command {
	var opts DiffOptions
	var maps, layers cli.StringSlice
	var minSQNR, minCos float64
	return &cli.Command{
		Name:  "diff",
		Usage: "compare two runs layer by layer and name the first diverging layer",
		Description: "RUN_A is the candidate, RUN_B the reference (relative errors are relative to B).\n" +
			"Layers are matched by path (or --map), samples by dataset index (else batch and sample);\n" +
			"stats-only layers are compared as aggregates over each run's batches (compare runs over the\n" +
			"same samples). With no threshold flags any difference fails a layer (stats: beyond 1e-9\n" +
			"relative, or any histogram difference). --min-sqnr/--min-cosine alone gate on\n" +
			"those metrics only; with --atol/--rtol too, elements outside atol + rtol*|b| also fail.\n" +
			"NaN/Inf in one run where the other has another value fails a layer under every gate\n" +
			"(MAX_ABS shows NaN); the same NaN or Inf in both runs counts as equal.\n" +
			"Exit status 1 when a layer fails or has a shape mismatch, or when nothing was compared (no\n" +
			"common layer had data of the same kind for common batches). Layers, batches or samples present\n" +
			"in one run only are reported (no_common_data with the reason), not failed by themselves.\n" +
			"A layer whose data cannot be read (damaged store) is reported \"unreadable\" with the error and\n" +
			"the others are still compared; the exit status is then 4.",
		ArgsUsage: "RUN_A RUN_B",
		Flags: append(diffFlagList(&opts.DiffFlags, &maps, &minSQNR, &minCos),
			&cli.StringSliceFlag{Name: "layer", Usage: "compare only this layer of RUN_A (repeatable)", Destination: &layers},
			&cli.StringFlag{Name: "batches", Usage: "batch range A:B of both runs", Destination: &opts.Batches},
			&cli.BoolFlag{Name: "json", Usage: "JSON output (schema actquery.diff/v1)", Destination: &opts.JSON},
		),
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			opts.DiffFlags.setFrom(c, &maps, &minSQNR, &minCos)
			opts.Layers = layers.Value()
			return runDiff(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

type diffJSON struct {
	Schema string `json:"schema"`
	*query.DiffReport
}

func runDiff(ctx context.Context, opts DiffOptions, args []string, out io.Writer) error {
	if len(args) != 2 {
		return usagef("diff takes two arguments, RUN_A and RUN_B")
	}
	qo, err := opts.DiffFlags.queryOptions()
	if err != nil {
		return err
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
	qo.Batches, qo.Layers = br, opts.Layers
	rep, err := query.Diff(ctx, s, args[0], args[1], qo)
	if err != nil {
		return err
	}
	if opts.JSON {
		err = writeJSON(out, diffJSON{Schema: schemaDiff, DiffReport: rep})
	} else {
		err = printDiff(out, rep)
	}
	if err != nil {
		return err
	}
	switch {
	case len(rep.Unreadable) > 0:
		// Report the store damage first (exit status 4): the error names
		// the file and offset; the other layers were compared and printed.
		var first error
		for _, l := range rep.Layers {
			if l.Err() != nil {
				first = l.Err()
				break
			}
		}
		return fmt.Errorf("%s vs %s: %d %s unreadable (%s): %w", rep.RunA, rep.RunB, len(rep.Unreadable),
			plural(len(rep.Unreadable), "layer"), strings.Join(rep.Unreadable, ", "), first)
	case len(rep.Failed) > 0:
		return fmt.Errorf("%s vs %s: %d %s (%s): %w", rep.RunA, rep.RunB, len(rep.Failed),
			plural(len(rep.Failed), "layer"), strings.Join(rep.Failed, ", "), errThresholds)
	case !rep.Pass:
		why := strings.Join(rep.Reasons, "; ")
		return fmt.Errorf("%s vs %s: %w: %s", rep.RunA, rep.RunB, errNothingCompared, strings.TrimPrefix(why, "nothing compared: "))
	}
	return nil
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

func printDiff(out io.Writer, rep *query.DiffReport) error {
	fmt.Fprintf(out, "diff %s (A) vs %s (B, reference)  atol %v rtol %v", rep.RunA, rep.RunB, rep.Thresholds.Atol, rep.Thresholds.Rtol)
	if t := rep.Thresholds.MinSQNR; t != nil {
		fmt.Fprintf(out, " min-sqnr %v", *t)
	}
	if t := rep.Thresholds.MinCosine; t != nil {
		fmt.Fprintf(out, " min-cosine %v", *t)
	}
	fmt.Fprintln(out)
	tw := newTable(out)
	fmt.Fprintln(tw, "LAYER\tOP\tSTATUS\tCOMPARED\tMAX_ABS\tMEAN_ABS\tRMSE\tREL_L2\tCOSINE\tSQNR_DB\tOUTSIDE\tD_MEAN\tD_STD\tHIST_W1")
	for _, l := range rep.Layers {
		name := l.Layer
		if l.LayerB != "" && l.LayerB != l.Layer {
			if name == "" {
				name = "(B) " + l.LayerB
			} else {
				name += " -> " + l.LayerB
			}
		}
		cols := []string{"-", "-", "-", "-", "-", "-", "-"}
		compared := "-"
		if t := l.Tensor; t != nil && t.Samples > 0 {
			compared = fmt.Sprintf("%d samples", t.Samples)
			cols = []string{t.MaxAbsErr.String(), t.MeanAbsErr.String(), t.RMSE.String(), t.RelL2.String(),
				t.Cosine.String(), t.SQNRdB.String(), t.OutsideFrac.String()}
		} else if l.Stats != nil {
			compared = "stats"
		}
		dm, ds, w1 := "-", "-", "-"
		if st := l.Stats; st != nil {
			dm, ds, w1 = st.DMean.String(), st.DStd.String(), st.HistW1.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, l.Op, l.Status, compared, strings.Join(cols, "\t"), dm, ds, w1)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range rep.Layers {
		for _, r := range l.Reasons {
			fmt.Fprintf(out, "  %s: %s\n", l.Layer, r)
		}
		if l.Status == query.StatusFailed {
			if t := l.Tensor; t != nil && t.FirstOutsideBatch != nil {
				fmt.Fprintf(out, "  %s: first batch with elements outside the tolerance: %d\n", l.Layer, *t.FirstOutsideBatch)
			} else if st := l.Stats; st != nil && st.FirstDivergingBatch != nil {
				fmt.Fprintf(out, "  %s: first batch whose stats diverge: %d\n", l.Layer, *st.FirstDivergingBatch)
			}
		}
		if t := l.Tensor; t != nil && (t.SamplesOnlyA > 0 || t.SamplesOnlyB > 0) {
			fmt.Fprintf(out, "  %s: samples only in A: %d, only in B: %d (matched by %s)\n", l.Layer, t.SamplesOnlyA, t.SamplesOnlyB, t.MatchedBy)
		}
	}
	if len(rep.LayersOnlyA) > 0 {
		fmt.Fprintf(out, "layers only in %s: %s\n", rep.RunA, strings.Join(rep.LayersOnlyA, ", "))
	}
	if len(rep.LayersOnlyB) > 0 {
		fmt.Fprintf(out, "layers only in %s: %s\n", rep.RunB, strings.Join(rep.LayersOnlyB, ", "))
	}
	if rep.BatchesOnlyACount > 0 {
		fmt.Fprintf(out, "batches only in %s: %d %v\n", rep.RunA, rep.BatchesOnlyACount, rep.BatchesOnlyA)
	}
	if rep.BatchesOnlyBCount > 0 {
		fmt.Fprintf(out, "batches only in %s: %d %v\n", rep.RunB, rep.BatchesOnlyBCount, rep.BatchesOnlyB)
	}
	if rep.FirstDiverging != nil {
		fmt.Fprintf(out, "first diverging layer: %s\n", *rep.FirstDiverging)
	} else {
		fmt.Fprintln(out, "first diverging layer: none")
	}
	if rep.Pass {
		fmt.Fprintln(out, "PASS")
		return nil
	}
	var why []string
	if len(rep.Failed) > 0 {
		why = append(why, strings.Join(rep.Failed, ", "))
	}
	if len(rep.Unreadable) > 0 {
		why = append(why, "unreadable: "+strings.Join(rep.Unreadable, ", "))
	}
	fmt.Fprintf(out, "FAIL: %s\n", strings.Join(append(why, rep.Reasons...), "; "))
	return nil
}
