package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
)

// RunsOptions are the options of "actquery runs".
type RunsOptions struct {
	StoreDir string
	JSON     bool
}

func newRunsCommand(g *globalOptions) *cli.Command {
	var opts RunsOptions
	return &cli.Command{
		Name:      "runs",
		Usage:     "list the runs of the store",
		ArgsUsage: " ",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "JSON output (schema actquery.runs/v1)", Destination: &opts.JSON}},
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			return runRuns(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

// runsJSON is the --json document of runs.
type runsJSON struct {
	Schema string      `json:"schema"`
	Runs   []query.Run `json:"runs"`
}

func runRuns(_ context.Context, opts RunsOptions, args []string, out io.Writer) error {
	if len(args) != 0 {
		return usagef("runs takes no arguments")
	}
	s, err := openStore(opts.StoreDir)
	if err != nil {
		return err
	}
	defer s.Close()
	runs, err := query.ListRuns(s)
	if err != nil {
		return err
	}
	if opts.JSON {
		if runs == nil {
			runs = []query.Run{}
		}
		return writeJSON(out, runsJSON{Schema: schemaRuns, Runs: runs})
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "RUN\tMODEL\tVERSION\tSTATE\tBATCHES\tLAYERS\tBYTES\tCREATED")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.Name, dash(r.Model), dash(r.ModelVersion), r.State,
			r.Batches, r.Layers, humanBytes(r.Bytes), r.Created.Format(time.RFC3339))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
