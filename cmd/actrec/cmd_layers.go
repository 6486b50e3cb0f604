package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func layersCommand() *cli.Command {
	return &cli.Command{
		Name:  "layers",
		Usage: "print a model's module tree with op types and output shapes (the names --layers accepts)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: "recipe-cnn", Usage: "built-in model name or an .onnx file"},
			&cli.IntFlag{Name: "batch-size", Value: 1, Usage: "batch size N of the shapes shown"},
		},
		Action: func(c *cli.Context) error {
			return runLayers(c.App.Writer, c.String("model"), c.Int("batch-size"))
		},
	}
}

func runLayers(out io.Writer, model string, batch int) error {
	if batch <= 0 {
		return usagef("--batch-size %d: must be > 0", batch)
	}
	lm, err := loadModel(model, "")
	if err != nil {
		return err
	}
	in := append([]int{batch}, lm.Input...)
	shapes, err := lm.Model.Shapes(in)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s (input %v)\n", lm.Name, in)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tMODULE\tOP\tOUTPUT SHAPE")
	for _, s := range shapes {
		if s.Path == "" {
			continue
		}
		order := "-"
		if s.Leaf {
			order = fmt.Sprint(s.Order)
		}
		indent := strings.Repeat("  ", strings.Count(s.Path, "."))
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%v\n", order, indent, s.Path, s.Op, s.Shape)
	}
	return tw.Flush()
}
