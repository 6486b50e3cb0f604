package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
)

// ExportOptions are the options of "actquery export".
type ExportOptions struct {
	StoreDir string
	Format   string
	Out      string
	Layers   []string
	Batches  string
	Force    bool
	JSON     bool
	// Progress receives a progress bar (nil: none).
	Progress io.Writer
}

func newExportCommand(g *globalOptions) *cli.Command {
	var opts ExportOptions
	var layers cli.StringSlice
	return &cli.Command{
		Name:  "export",
		Usage: "export a run's tensors (arrow, parquet, npz, npy) or stats (csv, jsonl)",
		Description: "arrow:   Arrow IPC file (--out X.arrow, one layer) or a directory of <layer>.arrow;\n" +
			"         tensors keep the arrow.fixed_shape_tensor type\n" +
			"parquet: one file (--out X.parquet, one layer) or a Hive-partitioned dataset directory\n" +
			"         DIR/run=<run>/layer=<layer>/part-0.parquet (other runs in DIR are kept)\n" +
			"npz:     per layer <layer> (n, *shape) float32, <layer>.batch, <layer>.sample, <layer>.dataset_index\n" +
			"npy:     one layer as (n, *shape) float32\n" +
			"csv, jsonl: the stats rows of the layers\n" +
			"An existing output is refused without --force; an output inside the store is refused.\n" +
			"--out - writes csv or jsonl to stdout (refused for the tensor formats).\n" +
			"A selection without data of the format's kind (e.g. --batches beyond the run, csv of a\n" +
			"tensors-only run) is an error naming what the run has (exit status 3); nothing is written.",
		ArgsUsage: "RUN",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Usage: "arrow|parquet|npz|npy|csv|jsonl (required)", Destination: &opts.Format},
			&cli.StringFlag{Name: "out", Usage: "output path (required; - = stdout, csv and jsonl only)", Destination: &opts.Out},
			&cli.StringSliceFlag{Name: "layer", Usage: "layer to export (repeatable; default all)", Destination: &layers},
			&cli.StringFlag{Name: "batches", Usage: "batch range A:B", Destination: &opts.Batches},
			&cli.BoolFlag{Name: "force", Usage: "overwrite an existing output", Destination: &opts.Force},
			&cli.BoolFlag{Name: "json", Usage: "print what was written as JSON (schema actquery.export/v1)", Destination: &opts.JSON},
		},
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			opts.Layers = layers.Value()
			opts.Progress = g.Progress
			return runExport(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

type exportJSON struct {
	Schema string `json:"schema"`
	*query.ExportResult
}

func runExport(ctx context.Context, opts ExportOptions, args []string, out io.Writer) (err error) {
	defer func() { err = forceHint(err) }()
	if len(args) != 1 {
		return usagef("export takes one argument, the run")
	}
	if opts.Format == "" || opts.Out == "" {
		return usagef("export needs --format (%s) and --out", strings.Join(query.Formats, "|"))
	}
	known := false
	for _, f := range query.Formats {
		known = known || f == opts.Format
	}
	if !known {
		return usagef("unknown --format %q (want %s)", opts.Format, strings.Join(query.Formats, "|"))
	}
	stdout := opts.Out == "-"
	if stdout && opts.Format != query.FormatCSV && opts.Format != query.FormatJSONL {
		return usagef("--out - (stdout) is for csv and jsonl only; give a file or directory for %s", opts.Format)
	}
	if stdout && opts.JSON {
		return usagef("--json and --out - both write to stdout; choose one")
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
	eo := query.ExportOptions{Format: opts.Format, Out: opts.Out, Layers: opts.Layers, Batches: br, Force: opts.Force}
	if stdout {
		_, err := query.WriteStats(ctx, s, args[0], eo, out)
		return err
	}
	var bar *progressbar.ProgressBar
	if opts.Progress != nil {
		eo.Progress = func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(opts.Progress),
					progressbar.OptionShowBytes(true), progressbar.OptionSetDescription("export "+opts.Format),
					progressbar.OptionThrottle(100e6), progressbar.OptionClearOnFinish())
			}
			bar.Set64(done)
		}
	}
	res, err := query.Export(ctx, s, args[0], eo)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(out, exportJSON{Schema: schemaExport, ExportResult: res})
	}
	what := fmt.Sprintf("%d tensor rows (%s)", res.Rows, humanBytes(res.Bytes))
	if opts.Format == query.FormatCSV || opts.Format == query.FormatJSONL {
		what = fmt.Sprintf("%d stats rows", res.Rows)
	}
	fmt.Fprintf(out, "exported %s of %d %s of run %s to %s (%s)\n", what, len(res.Layers), plural(len(res.Layers), "layer"),
		res.Run, res.Out, opts.Format)
	return nil
}
