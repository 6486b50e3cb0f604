package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
	"github.com/actrec/actrec/store"
)

// CheckOptions are the options of "actquery check".
type CheckOptions struct {
	StoreDir string
	JSON     bool
}

func newCheckCommand(g *globalOptions) *cli.Command {
	var opts CheckOptions
	return &cli.Command{
		Name:      "check",
		Usage:     "verify the index against the segment files (one run, or all)",
		ArgsUsage: "[RUN]",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "JSON output (schema actquery.check/v1)", Destination: &opts.JSON}},
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			return runCheck(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

// check runs s.Check(run) and returns early with ctx.Err() once ctx is
// done. store.Check takes no context: the scan goes on in the background
// until it ends (it only reads), which is harmless in a process about to
// exit.
func check(ctx context.Context, s *store.Store, run string) ([]store.Problem, error) {
	type result struct {
		problems []store.Problem
		err      error
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	done := make(chan result, 1)
	go func() {
		p, err := s.Check(run)
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		return r.problems, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// problemRow turns a store problem into a row. When the error is a
// *store.CorruptionError its file and offset (those of the damaged
// structure, which its message states) replace the entry's, so that the
// FILE and OFFSET columns agree with the message.
func problemRow(p store.Problem) checkProblem {
	row := checkProblem{Run: p.Run, Layer: p.Layer, Batch: p.Batch, File: p.File, Offset: p.Offset}
	if p.Err != nil {
		row.Error = p.Err.Error()
	}
	var ce *store.CorruptionError
	if errors.As(p.Err, &ce) && ce.File != "" {
		row.File = ce.File
		if ce.Offset >= 0 {
			row.Offset = ce.Offset
		}
	}
	return row
}

// checkProblem is one problem in the --json document of check.
type checkProblem struct {
	Run    string `json:"run"`
	Layer  string `json:"layer"`
	Batch  int64  `json:"batch"`
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Error  string `json:"error"`
}

type checkJSON struct {
	Schema   string         `json:"schema"`
	Run      string         `json:"run"` // "" = all runs
	OK       bool           `json:"ok"`
	Problems []checkProblem `json:"problems"`
}

func runCheck(ctx context.Context, opts CheckOptions, args []string, out io.Writer) error {
	if len(args) > 1 {
		return usagef("check takes at most one argument, the run")
	}
	run := ""
	if len(args) == 1 {
		run = args[0]
	}
	s, err := openStore(opts.StoreDir)
	if err != nil {
		return err
	}
	defer s.Close()
	if run != "" {
		if _, err := query.GetRun(s, run); err != nil {
			return err
		}
	}
	problems, err := check(ctx, s, run)
	if errors.Is(err, store.ErrNotFound) && run != "" {
		_, err = query.GetRun(s, run)
	}
	if err != nil {
		return err
	}
	doc := checkJSON{Schema: schemaCheck, Run: run, OK: len(problems) == 0, Problems: []checkProblem{}}
	for _, p := range problems {
		doc.Problems = append(doc.Problems, problemRow(p))
	}
	if opts.JSON {
		err = writeJSON(out, doc)
	} else {
		what := "all runs"
		if run != "" {
			what = "run " + run
		}
		if len(problems) == 0 {
			fmt.Fprintf(out, "%s: ok\n", what)
		} else {
			fmt.Fprintf(out, "%s: %d %s\n", what, len(problems), plural(len(problems), "problem"))
			tw := newTable(out)
			fmt.Fprintln(tw, "RUN\tLAYER\tBATCH\tFILE\tOFFSET\tERROR")
			for _, p := range doc.Problems {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", p.Run, dash(p.Layer), p.Batch, dash(p.File), p.Offset, p.Error)
			}
			err = tw.Flush()
		}
	}
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("check: %d %s: %w", len(problems), plural(len(problems), "problem"), errProblems)
	}
	return nil
}
