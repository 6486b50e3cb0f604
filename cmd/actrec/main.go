// Command actrec records activations of a model during inference into an actrec store.
//
//	actrec record   record a run (default: the recipe CNN, shipped v1 weights, Fashion-MNIST test set)
//	actrec models   list the built-in models
//	actrec layers   print a model's module tree with op types and output shapes
//
// Exit codes are listed in exitCodesHelp and mapped in exitCode, in one place.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/recorder"
	"github.com/actrec/actrec/store"
)

const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInput       = 3
	exitStore       = 4
	exitDiskFull    = 5
	exitInterrupted = 130
)

const exitCodesHelp = `EXIT CODES:
   0    success
   1    recording failed (the error says why; the run is marked interrupted, or after a write
        error left for salvage: listed as crashed until the next actrec record on the store
        recovers every batch written whole)
   2    usage: unknown command, flag, model, layer, invalid run name, missing model or weights file, bad flag value
   3    the input data cannot be read
   4    the store cannot be used: locked by another process, run exists, unknown format version, corrupt
   5    disk full (what was committed stays readable; the run is listed as crashed until the
        next actrec record on the store salvages the batches written whole)
   130  interrupted by Ctrl-C/SIGTERM (recorded batches are flushed; the run is marked interrupted)
`

func storeFlag() cli.Flag {
	return &cli.StringFlag{Name: "store", Value: "./actrec-data", EnvVars: []string{"ACTREC_STORE"}, Usage: "store directory"}
}

func newApp(out, errw io.Writer) *cli.App {
	app := &cli.App{
		Name:  "actrec",
		Usage: "a flight recorder for neural-network inference: record activations and per-layer statistics",
		Description: "Records sampled activations and per-layer statistics of a model during inference into a store\n" +
			"(Arrow IPC segments indexed in bbolt). Query them with actquery.",
		CustomAppHelpTemplate: cli.AppHelpTemplate + "\n" + exitCodesHelp,
		Writer:                out,
		ErrWriter:             errw,
		HideHelpCommand:       true,
		Commands:              []*cli.Command{recordCommand(), modelsCommand(), layersCommand()},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{err}
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "actrec: unknown command %q (commands: record, models, layers)\n", name)
			os.Exit(exitUsage)
		},
		ExitErrHandler: func(*cli.Context, error) {}, // errors are mapped in main
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
		c.CustomHelpTemplate = cli.CommandHelpTemplate + "\n" + exitCodesHelp
	}
	return app
}

func main() {
	err := newApp(os.Stdout, os.Stderr).Run(os.Args)
	if err != nil && !errors.Is(err, errInterrupted) {
		fmt.Fprintf(os.Stderr, "actrec: %v\n", err)
	}
	os.Exit(exitCode(err))
}

// exitCode maps an error to the process exit status; see exitCodesHelp.
func exitCode(err error) int {
	var ue usageError
	var ie inputError
	var se storeError
	var ce *store.CorruptionError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errInterrupted):
		return exitInterrupted
	case errors.As(err, &ue), errors.Is(err, store.ErrInvalidName), errors.Is(err, recorder.ErrUnknownLayer):
		return exitUsage
	case errors.Is(err, syscall.ENOSPC):
		return exitDiskFull
	case errors.As(err, &ie):
		return exitInput
	case errors.As(err, &se), errors.Is(err, store.ErrLocked), errors.Is(err, store.ErrVersion), errors.Is(err, store.ErrRunExists),
		errors.As(err, &ce):
		return exitStore
	}
	return exitFailure
}
