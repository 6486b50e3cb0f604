// Command actquery lists, shows, diffs and exports the runs recorded in an
// actrec store. It opens the store read-only (except rm) and works while a
// run is being recorded.
//
// Each subcommand lives in cmd_<name>.go: an options struct, a
// run<Name>(ctx, opts, args, out) function that tests call directly, and a
// new<Name>Command constructor listed in commands below. Exit codes are
// mapped from errors in one place, exitCode.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
	"github.com/actrec/actrec/query/plot"
	"github.com/actrec/actrec/store"
)

// Exit codes (documented in --help by exitCodesHelp).
const (
	exitOK       = 0   // success
	exitFound    = 1   // diff beyond thresholds or nothing compared, or check found problems
	exitUsage    = 2   // bad flags or arguments
	exitNotFound = 3   // unknown store, run or layer (or batch, sample)
	exitStore    = 4   // store locked, corrupt, or of an unsupported version
	exitOutput   = 5   // output refused (export, plot, report): exists (no --force) or inside the store
	exitOther    = 6   // any other failure (I/O, ...)
	exitSignal   = 130 // interrupted (Ctrl-C, SIGINT): 128 + 2, as shells report it
)

const exitCodesHelp = `EXIT CODES:
   0  success
   1  diff found layers beyond the thresholds or compared nothing, or check found problems
   2  usage error (bad flag or argument)
   3  store, run, layer, batch or sample not found (the message lists the closest names), or the
      selection holds no data (e.g. stats/show/export --batches beyond the run; the message says
      what it has; diff reports such layers as no_common_data and exits 1 if it compared nothing)
   4  store locked by a writer, corrupt (the message names the file), of an unsupported version,
      or not a store directory; show/diff print what is readable before exiting 4
   5  output refused (export, plot, report): it exists (use --force) or is inside the store
      directory
   6  any other error (I/O, ...)
 130  interrupted (Ctrl-C): stopped promptly; temporary outputs removed, nothing half-written left`

// commands are the subcommands, in help order. A new subcommand adds its
// cmd_<name>.go and one line here.
var commands = []func(g *globalOptions) *cli.Command{
	newRunsCommand,
	newLayersCommand,
	newStatsCommand,
	newShowCommand,
	newDiffCommand,
	newExportCommand,
	newPlotCommand,
	newReportCommand,
	newCheckCommand,
	newRmCommand,
}

// globalOptions are the flags of the app, shared by every subcommand.
type globalOptions struct {
	StoreDir string
	// Progress receives progress bars; nil unless stderr is a terminal.
	Progress io.Writer
}

// usageError marks an error as the user's misuse of flags or arguments.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// errThresholds is returned by diff when a layer is beyond the thresholds,
// errNothingCompared when no layer had comparable data, and errProblems by
// check when it found problems (exit status 1); the
// report has been printed already.
var (
	errThresholds      = errors.New("layers beyond the thresholds")
	errNothingCompared = errors.New("nothing compared")
	errProblems        = errors.New("problems found")
)

// exitCode maps an error to the process exit status.
func exitCode(err error) int {
	var ue usageError
	var ce *store.CorruptionError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitSignal
	case errors.Is(err, errThresholds), errors.Is(err, errNothingCompared), errors.Is(err, errProblems):
		return exitFound
	case errors.As(err, &ue), errors.Is(err, query.ErrOneLayer), errors.Is(err, plot.ErrMixedUnits), errors.Is(err, plot.ErrUnknownStat):
		return exitUsage
	case errors.Is(err, store.ErrNotFound):
		return exitNotFound
	case errors.Is(err, store.ErrLocked), errors.Is(err, store.ErrVersion), errors.As(err, &ce), errors.Is(err, errNotStore):
		return exitStore
	case errors.Is(err, query.ErrOutputExists), errors.Is(err, query.ErrOutputInStore):
		return exitOutput
	}
	return exitOther
}

func newApp(g *globalOptions, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "actquery",
		Usage: "list, show, diff and export runs recorded by actrec",
		Description: "Opens the store read-only (rm excepted); safe while a run is being recorded.\n" +
			"Every listing and diff takes --json (schema: cmd/actquery/JSON.md).\n\n" + exitCodesHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "store", Value: "./actrec-data", EnvVars: []string{"ACTREC_STORE"},
				Usage: "store directory", Destination: &g.StoreDir},
		},
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // main maps errors to exit codes
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usagef("unknown command %q", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	for _, mk := range commands {
		cmd := mk(g)
		cmd.OnUsageError = app.OnUsageError
		app.Commands = append(app.Commands, cmd)
	}
	return app
}

// run runs actquery with args (args[0] is the program name) and returns
// the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, progress io.Writer) int {
	g := &globalOptions{Progress: progress}
	app := newApp(g, stdout, stderr)
	err := app.RunContext(ctx, interspersed(app, args))
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		fmt.Fprintln(stderr, "actquery: interrupted")
	case err != nil:
		fmt.Fprintf(stderr, "actquery: %v\n", err)
	}
	return exitCode(err)
}

// interspersed moves the flags that follow a subcommand's positional
// arguments in front of them ("diff A B --atol 1" as well as "diff --atol 1
// A B"): urfave/cli v2 stops parsing flags at the first argument.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	i := 1
	// Global flags up to the command name.
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		out = append(out, args[i])
		if takesValue(app.Flags, args[i]) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
		i++
	}
	if i >= len(args) {
		return out
	}
	cmd := app.Command(args[i])
	out = append(out, args[i])
	i++
	if cmd == nil {
		return append(out, args[i:]...)
	}
	var global, flags, pos []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			dst := &flags
			fl := cmd.Flags
			if !hasFlag(cmd.Flags, a) && hasFlag(app.Flags, a) { // e.g. "runs --store DIR"
				dst, fl = &global, app.Flags
			}
			*dst = append(*dst, a)
			if takesValue(fl, a) && i+1 < len(args) {
				i++
				*dst = append(*dst, args[i])
			}
			continue
		}
		pos = append(pos, a)
	}
	cmdName := out[len(out)-1]
	out = append(append(out[:len(out)-1], global...), cmdName)
	out = append(out, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// hasFlag reports whether arg ("--name" or "--name=v") names one of flags.
func hasFlag(flags []cli.Flag, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// takesValue reports whether the flag arg (e.g. "--atol" or "--atol=1")
// consumes the next argument.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				tv, ok := f.(interface{ TakesValue() bool })
				return ok && tv.TakesValue()
			}
		}
	}
	return false
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the process at once
	}()
	var progress io.Writer
	if isTerminal(os.Stderr) {
		progress = os.Stderr
	}
	code := run(ctx, os.Args, os.Stdout, os.Stderr, progress)
	stop()
	os.Exit(code)
}
