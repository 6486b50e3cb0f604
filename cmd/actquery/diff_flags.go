package main

import (
	"fmt"
	"math"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/actrec/actrec/query"
)

// DiffFlags are the comparison flags shared by diff, plot --diff and report.
type DiffFlags struct {
	Map       []string
	MapFile   string
	Atol      float64
	Rtol      float64
	MinSQNR   *float64
	MinCosine *float64
	// MetricsOnly: only MinSQNR/MinCosine gate (see query.DiffOptions); set when
	// --min-sqnr or --min-cosine is given without --atol or --rtol.
	MetricsOnly bool
}

func diffFlagList(d *DiffFlags, maps *cli.StringSlice, minSQNR, minCos *float64) []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "map", Usage: "layer renamed from A to B, as old=new (repeatable)", Destination: maps},
		&cli.StringFlag{Name: "map-file", Usage: "file of old=new lines (# comments)", Destination: &d.MapFile},
		&cli.Float64Flag{Name: "atol", Usage: "absolute tolerance: an element fails when |a-b| > atol + rtol*|b|", Destination: &d.Atol},
		&cli.Float64Flag{Name: "rtol", Usage: "relative tolerance (see --atol)", Destination: &d.Rtol},
		&cli.Float64Flag{Name: "min-sqnr", Usage: "fail a layer whose SQNR (dB) is below this (drawn as a line)", DefaultText: "none", Destination: minSQNR},
		&cli.Float64Flag{Name: "min-cosine", Usage: "fail a layer whose cosine similarity is below this (drawn as a line)", DefaultText: "none", Destination: minCos},
	}
}

func (d *DiffFlags) setFrom(c *cli.Context, maps *cli.StringSlice, minSQNR, minCos *float64) {
	d.Map = maps.Value()
	if c.IsSet("min-sqnr") {
		d.MinSQNR = minSQNR
	}
	if c.IsSet("min-cosine") {
		d.MinCosine = minCos
	}
	d.MetricsOnly = (c.IsSet("min-sqnr") || c.IsSet("min-cosine")) && !c.IsSet("atol") && !c.IsSet("rtol")
}

// queryOptions turns the flags into query.DiffOptions.
func (d DiffFlags) queryOptions() (query.DiffOptions, error) {
	m, err := query.ParseMap(d.Map)
	if err != nil {
		return query.DiffOptions{}, usageError{err}
	}
	if d.MapFile != "" {
		f, err := os.Open(d.MapFile)
		if err != nil {
			return query.DiffOptions{}, usageError{err}
		}
		fm, err := query.ReadMapFile(f)
		f.Close()
		if err != nil {
			return query.DiffOptions{}, usageError{fmt.Errorf("%s: %w", d.MapFile, err)}
		}
		for k, v := range m { // --map wins over the file
			fm[k] = v
		}
		m = fm
	}
	if !(d.Atol >= 0) || !(d.Rtol >= 0) { // NaN too: |a-b| > NaN never fails
		return query.DiffOptions{}, usagef("--atol and --rtol must be numbers >= 0")
	}
	if (d.MinSQNR != nil && math.IsNaN(*d.MinSQNR)) || (d.MinCosine != nil && math.IsNaN(*d.MinCosine)) {
		return query.DiffOptions{}, usagef("--min-sqnr and --min-cosine must be numbers")
	}
	return query.DiffOptions{Map: m, Tol: query.Tolerance{Atol: d.Atol, Rtol: d.Rtol},
		MinSQNR: d.MinSQNR, MinCosine: d.MinCosine, MetricsOnly: d.MetricsOnly}, nil
}
