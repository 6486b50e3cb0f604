package query

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/actrec/actrec/store"
)

// Run is one row of ListRuns (JSON schema: see doc.go).
type Run struct {
	Name         string            `json:"name"`
	Model        string            `json:"model"`
	ModelVersion string            `json:"model_version"`
	State        string            `json:"state"`
	Batches      int               `json:"batches"`
	Layers       int               `json:"layers"`
	Entries      int               `json:"entries"`
	Bytes        int64             `json:"bytes"`
	Created      time.Time         `json:"created"`
	Finished     *time.Time        `json:"finished,omitempty"`
	WeightsHash  string            `json:"weights_hash,omitempty"`
	Input        string            `json:"input,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
	Meta         map[string]string `json:"meta,omitempty"`
}

func runFromSummary(r store.RunSummary) Run {
	out := Run{
		Name: r.Name, Model: r.Model, ModelVersion: r.ModelVersion, State: string(r.State),
		Batches: r.Batches, Layers: r.Layers, Entries: r.Entries, Bytes: r.Bytes,
		Created: r.Created.UTC(), WeightsHash: r.WeightsHash, Input: r.Input, Tags: r.Tags, Meta: r.Meta,
	}
	if !r.Finished.IsZero() {
		f := r.Finished.UTC()
		out.Finished = &f
	}
	return out
}

// ListRuns returns every run of the store, in the store's order (by creation
// time, then name).
func ListRuns(s *store.Store) ([]Run, error) {
	runs, err := s.Runs()
	if err != nil {
		return nil, err
	}
	out := make([]Run, len(runs))
	for i, r := range runs {
		out[i] = runFromSummary(r)
	}
	return out, nil
}

// GetRun returns one run; an unknown name gives a *NotFoundError listing
// the closest names.
func GetRun(s *store.Store, name string) (Run, error) {
	r, err := s.Run(name)
	if errors.Is(err, store.ErrNotFound) {
		return Run{}, runNotFound(s, name)
	}
	if err != nil {
		return Run{}, err
	}
	return runFromSummary(r), nil
}

// Layer is one row of Layers (JSON schema: see doc.go).
type Layer struct {
	Path          string `json:"path"`
	Op            string `json:"op"`
	Order         int    `json:"order"`
	Shape         []int  `json:"shape"`
	Recorded      string `json:"recorded"` // "stats", "tensors", "stats+tensors" or "none"
	StatsBatches  int    `json:"stats_batches"`
	TensorBatches int    `json:"tensor_batches"`
	Bytes         int64  `json:"bytes"`
}

func recorded(l store.LayerSummary) string {
	var parts []string
	if l.StatsBatches > 0 {
		parts = append(parts, "stats")
	}
	if l.TensorBatches > 0 {
		parts = append(parts, "tensors")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// Layers returns the layers of run in execution order.
func Layers(s *store.Store, run string) ([]Layer, error) {
	ls, err := layerSummaries(s, run)
	if err != nil {
		return nil, err
	}
	out := make([]Layer, len(ls))
	for i, l := range ls {
		shape := l.Shape
		if shape == nil {
			shape = []int{}
		}
		out[i] = Layer{
			Path: l.Path, Op: l.Op, Order: l.Order, Shape: shape, Recorded: recorded(l),
			StatsBatches: l.StatsBatches, TensorBatches: l.TensorBatches, Bytes: l.Bytes,
		}
	}
	return out, nil
}

// layerSummaries is store.Layers with a NotFoundError for an unknown run.
func layerSummaries(s *store.Store, run string) ([]store.LayerSummary, error) {
	ls, err := s.Layers(run)
	if errors.Is(err, store.ErrNotFound) {
		if _, rerr := s.Run(run); errors.Is(rerr, store.ErrNotFound) {
			return nil, runNotFound(s, run)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("layers of run %q: %w", run, err)
	}
	return ls, nil
}
