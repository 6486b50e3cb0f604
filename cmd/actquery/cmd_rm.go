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

// RmOptions are the options of "actquery rm".
type RmOptions struct {
	StoreDir string
}

func newRmCommand(g *globalOptions) *cli.Command {
	var opts RmOptions
	return &cli.Command{
		Name:      "rm",
		Usage:     "delete a run and reclaim its space (opens the store read-write)",
		ArgsUsage: "RUN",
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			return runRm(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

func runRm(_ context.Context, opts RmOptions, args []string, out io.Writer) error {
	if len(args) != 1 {
		return usagef("rm takes one argument, the run")
	}
	ro, err := openStore(opts.StoreDir)
	if err != nil {
		return err
	}
	_, err = query.GetRun(ro, args[0])
	ro.Close()
	if err != nil {
		return err
	}
	s, err := store.Open(opts.StoreDir, store.DefaultOptions())
	if err != nil {
		return fmt.Errorf("open store %s: %w", opts.StoreDir, err)
	}
	defer s.Close()
	freed, err := s.RemoveRun(args[0])
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return err
		}
		return fmt.Errorf("rm %s: %w", args[0], err)
	}
	more, err := s.Reclaim()
	if err != nil {
		return fmt.Errorf("rm %s: reclaim: %w", args[0], err)
	}
	freed += more
	fmt.Fprintf(out, "removed run %s (%s freed)\n", args[0], humanBytes(freed))
	return nil
}
