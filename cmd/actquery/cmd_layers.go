package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
)

// LayersOptions are the options of "actquery layers".
type LayersOptions struct {
	StoreDir string
	JSON     bool
}

func newLayersCommand(g *globalOptions) *cli.Command {
	var opts LayersOptions
	return &cli.Command{
		Name:      "layers",
		Usage:     "list the layers of a run in execution order",
		ArgsUsage: "RUN",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "JSON output (schema actquery.layers/v1)", Destination: &opts.JSON}},
		Action: func(c *cli.Context) error {
			opts.StoreDir = g.StoreDir
			return runLayers(c.Context, opts, c.Args().Slice(), c.App.Writer)
		},
	}
}

type layersJSON struct {
	Schema string        `json:"schema"`
	Run    string        `json:"run"`
	Layers []query.Layer `json:"layers"`
}

func runLayers(_ context.Context, opts LayersOptions, args []string, out io.Writer) error {
	if len(args) != 1 {
		return usagef("layers takes one argument, the run")
	}
	s, err := openStore(opts.StoreDir)
	if err != nil {
		return err
	}
	defer s.Close()
	layers, err := query.Layers(s, args[0])
	if err != nil {
		return err
	}
	if opts.JSON {
		if layers == nil {
			layers = []query.Layer{}
		}
		return writeJSON(out, layersJSON{Schema: schemaLayers, Run: args[0], Layers: layers})
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "ORDER\tLAYER\tOP\tSHAPE\tRECORDED\tSTATS BATCHES\tTENSOR BATCHES\tBYTES")
	for _, l := range layers {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%s\t%d\t%d\t%s\n", l.Order, l.Path, l.Op, l.Shape, l.Recorded,
			l.StatsBatches, l.TensorBatches, humanBytes(l.Bytes))
	}
	return tw.Flush()
}
