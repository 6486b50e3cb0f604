package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
)

// DiffOptions are the options of "actquery diff".
type DiffOptions struct {
	StoreDir  string
	Map       []string // old=new
	MapFile   string
	Atol      float64
	Rtol      float64
	MinSQNR   *float64
	MinCosine *float64
	Layers    []string
	Batches   string
	JSON      bool
}

func newDiffCommand(g *globalOptions) *cli.Command {
	var opts DiffOptions
	var maps, layers cli.StringSlice
	var minSQNR, minCos float64
	return &cli.Command{
		Name:  "diff",
		Usage: "compare two runs layer by layer and name the first diverging layer",
		Description: "RUN_A is the candidate, RUN_B the reference (relative errors are relative to B).\n" +
			"Layers are matched by path (or --map), samples by dataset index (else batch and sample).\n" +
			"With no threshold flags any difference fails a layer; exit status 1 when a layer fails\n" +
			"or has a shape mismatch. Layers or batches present in one run only are reported, not failed.",
		ArgsUsage: "RUN_A RUN_B",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "map", Usage: "layer renamed from A to B, as old=new (repeatable)", Destination: &maps},
			&cli.StringFlag{Name: "map-file", Usage: "file of old=new lines (# comments)", Destination: &opts.MapFile},
			&cli.Float64Flag{Name: "atol", Usage: "absolute tolerance: an element fails when |a-b| > atol + rtol*|b|", Destination: &opts.Atol},
			&cli.Float64Flag{Name: "rtol", Usage: "relative tolerance (see --atol)", Destination: &opts.Rtol},
			&cli.Float64Flag{Name: "min-sqnr", Usage: "fail a layer whose SQNR (dB) is below this", DefaultText: "none", Destination: &minSQNR},
			&cli.Float64Flag{Name: "min-cosine", Usage: "fail a layer whose cosine similarity is below this", DefaultText: "none", Destination: &minCos},
			&cli.StringSliceFlag{Name: "layer", Usage: "compare only this layer of RUN_A (repeatable)", Destination: &layers},
			&cli.StringFlag{Name: "batches", Usage: "batch range A:B of both runs", Destination: &opts.Batches},
			&cli.BoolFlag{Name: "json", Usage: "JSON output (schema actquery.diff/v1)", Destination: &opts.JSON},
		},
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			opts.Map = maps.Value()
			opts.Layers = layers.Value()
			if c.IsSet("min-sqnr") {
				opts.MinSQNR = &minSQNR
			}
			if c.IsSet("min-cosine") {
				opts.MinCosine = &minCos
			}
			return runDiff(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

type diffJSON struct {
	Schema string `json:"schema"`
	*query.DiffReport
}

func runDiff(_ context.Context, opts DiffOptions, args []string, out io.Writer) error {
	if len(args) != 2 {
		return usagef("diff takes two arguments, RUN_A and RUN_B")
	}
	m, err := query.ParseMap(opts.Map)
	if err != nil {
		return usageError{err}
	}
	if opts.MapFile != "" {
		f, err := os.Open(opts.MapFile)
		if err != nil {
			return usageError{err}
		}
		fm, err := query.ReadMapFile(f)
		f.Close()
		if err != nil {
			return usageError{fmt.Errorf("%s: %w", opts.MapFile, err)}
		}
		for k, v := range m { // --map wins over the file
			fm[k] = v
		}
		m = fm
	}
	if opts.Atol < 0 || opts.Rtol < 0 {
		return usagef("--atol and --rtol must not be negative")
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
	rep, err := query.Diff(s, args[0], args[1], query.DiffOptions{
		Map: m, Tol: query.Tolerance{Atol: opts.Atol, Rtol: opts.Rtol},
		MinSQNR: opts.MinSQNR, MinCosine: opts.MinCosine, Batches: br, Layers: opts.Layers,
	})
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
	if !rep.Pass {
		return fmt.Errorf("%s vs %s: %d %s (%s): %w", rep.RunA, rep.RunB, len(rep.Failed),
			plural(len(rep.Failed), "layer"), strings.Join(rep.Failed, ", "), errThresholds)
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
	} else {
		fmt.Fprintf(out, "FAIL: %s\n", strings.Join(rep.Failed, ", "))
	}
	return nil
}
