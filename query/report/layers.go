package report

import (
	"errors"
	"fmt"
	"strings"

	"github.com/actrec/actrec/query"
	"github.com/actrec/actrec/query/plot"
	"github.com/actrec/actrec/store"
)

// ErrUnknownLayer is returned (wrapped, also matching store.ErrNotFound) by ResolveLayers
// for a layer the run does not have.
var ErrUnknownLayer = errors.New("unknown layer")

// LayerError names a layer a run does not have and lists the ones it has.
type LayerError struct {
	Run, Layer string
	Valid      []string // the run's layers in execution order
}

func (e *LayerError) Error() string {
	valid := e.Valid
	more := ""
	if len(valid) > 40 {
		more = fmt.Sprintf(", ... (%d more)", len(valid)-40)
		valid = valid[:40]
	}
	if len(valid) == 0 {
		return fmt.Sprintf("run %q has no layer %q (it has no layers)", e.Run, e.Layer)
	}
	return fmt.Sprintf("run %q has no layer %q; valid layers: %s%s", e.Run, e.Layer, strings.Join(valid, ", "), more)
}

func (e *LayerError) Is(target error) bool {
	return target == ErrUnknownLayer || target == store.ErrNotFound
}

// ResolveLayers returns the layers of run named in want, in the order of want (all layers
// in execution order when want is empty). An unknown name gives a *LayerError listing the
// valid names; an unknown run gives query's error listing the closest runs.
func ResolveLayers(s *store.Store, run string, want []string) ([]store.LayerSummary, error) {
	if _, err := query.GetRun(s, run); err != nil {
		return nil, err
	}
	layers, err := s.Layers(run)
	if err != nil {
		return nil, fmt.Errorf("layers of run %q: %w", run, err)
	}
	if len(want) == 0 {
		return layers, nil
	}
	byPath := make(map[string]store.LayerSummary, len(layers))
	for _, l := range layers {
		byPath[l.Path] = l
	}
	out := make([]store.LayerSummary, 0, len(want))
	for _, w := range want {
		l, ok := byPath[w]
		if !ok {
			valid := make([]string, len(layers))
			for i, l := range layers {
				valid[i] = l.Path
			}
			return nil, &LayerError{Run: run, Layer: w, Valid: valid}
		}
		out = append(out, l)
	}
	return out, nil
}

// ErrNoStats is returned (wrapped) by LoadSeries for a layer recorded without statistics.
var ErrNoStats = plot.ErrNoStats

// LoadSeries reads the stats rows of one layer of a run for plotting. A layer without
// stats gives an error that says so and what was recorded instead.
func LoadSeries(s *store.Store, run string, l store.LayerSummary, r store.BatchRange) (plot.Series, error) {
	rows, err := s.Stats(run, l.Path, r)
	if err != nil {
		return plot.Series{}, fmt.Errorf("stats of run %q layer %q: %w", run, l.Path, err)
	}
	if len(rows) == 0 {
		what := "nothing"
		if l.TensorBatches > 0 {
			what = fmt.Sprintf("tensors only (%d batches)", l.TensorBatches)
		}
		if l.StatsBatches > 0 && r != (store.BatchRange{}) {
			return plot.Series{}, fmt.Errorf("run %q layer %q: %w in batches %d:%d (it has stats for %d batches)",
				run, l.Path, ErrNoStats, r.From, r.To, l.StatsBatches)
		}
		return plot.Series{}, fmt.Errorf("run %q layer %q: %w (recorded: %s)", run, l.Path, ErrNoStats, what)
	}
	return plot.Series{Run: run, Layer: l.Path, Rows: rows}, nil
}
