package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func modelsCommand() *cli.Command {
	return &cli.Command{
		Name:   "models",
		Usage:  "list the built-in models (any .onnx file works too)",
		Action: func(c *cli.Context) error { return runModels(c.App.Writer) },
	}
}

func runModels(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tINPUT\tDEFAULT WEIGHTS\tDESCRIPTION")
	for _, b := range builtins() {
		w := b.Weights
		if w == "" {
			w = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Name, shapeString(b.Input), w, b.Description)
	}
	return tw.Flush()
}

func shapeString(s []int) string {
	p := make([]string, len(s))
	for i, v := range s {
		p[i] = fmt.Sprint(v)
	}
	return strings.Join(p, "x")
}
