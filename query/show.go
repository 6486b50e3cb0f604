package query

import (
	"errors"
	"fmt"

	"github.com/actrec/actrec/store"
)

// ShowOptions select the tensor Show prints.
type ShowOptions struct {
	Layer  string
	Batch  int64
	Sample int // index of the sample in the batch; default 0
	// Values is how many leading values of the tensor to return; default 16,
	// negative for all.
	Values int
}

// Tensor is the result of Show (JSON schema: see doc.go).
type Tensor struct {
	Run   string `json:"run"`
	Layer string `json:"layer"`
	Op    string `json:"op"`
	Shape []int  `json:"shape"` // per-sample shape
	Batch int64  `json:"batch"`
	// Samples is the number of samples of the batch recorded as tensors
	// (0 if the batch has stats only).
	Samples      int   `json:"samples"`
	Sample       int   `json:"sample"`
	DatasetIndex int64 `json:"dataset_index"`
	// Stats is the layer's statistics row of the batch (all samples), nil
	// if none was recorded.
	Stats *StatsRow `json:"stats"`
	// Elements is the number of values of the sample's tensor; Values are
	// its first values in row-major order (nil if the batch has no tensor).
	Elements int       `json:"elements"`
	Values   []float32 `json:"values"`
	// StatsError and TensorError hold the error of reading the stats or
	// the tensors when that part is unreadable (damaged store) and the
	// other part was shown; nil otherwise.
	StatsError  *string `json:"stats_error"`
	TensorError *string `json:"tensor_error"`
}

// Show returns the shape, the batch's stats and the first values of the
// tensor of one sample of one batch of one layer.
//
// When one of the two parts (stats, tensor) cannot be read, Show returns
// the other with the failure in StatsError or TensorError, together with a
// non-nil error wrapping the read error (a *store.CorruptionError for a
// damaged store): callers print the partial result and report the error.
// When nothing can be shown the result is nil.
func Show(s *store.Store, run string, opts ShowOptions) (*Tensor, error) {
	layers, err := layerSummaries(s, run)
	if err != nil {
		return nil, err
	}
	ls, err := findLayers(layers, run, []string{opts.Layer})
	if err != nil {
		return nil, err
	}
	l := ls[0]
	n := opts.Values
	if n == 0 {
		n = 16
	}
	shape := l.Shape
	if shape == nil {
		shape = []int{}
	}
	t := &Tensor{Run: run, Layer: l.Path, Op: l.Op, Shape: shape, Batch: opts.Batch, Sample: opts.Sample, DatasetIndex: -1}
	r := store.BatchRange{From: opts.Batch, To: opts.Batch + 1}
	var statsErr, tensorErr error
	if l.StatsBatches > 0 {
		rows, err := s.Stats(run, l.Path, r)
		if err != nil {
			statsErr = fmt.Errorf("stats of %s/%s batch %d: %w", run, l.Path, opts.Batch, err)
		}
		for _, row := range rows {
			if row.Batch == opts.Batch {
				sr := statsRow(l.Path, row, 1)
				t.Stats = &sr
			}
		}
	}
	found := false
	if l.TensorBatches > 0 {
		err := s.Tensors(run, l.Path, r, func(row store.TensorRow) error {
			if row.Batch != opts.Batch {
				return nil
			}
			t.Samples++
			if int(row.Sample) == opts.Sample && !found {
				found = true
				t.DatasetIndex = row.DatasetIndex
				t.Elements = len(row.Data)
				k := len(row.Data)
				if n >= 0 {
					k = min(k, n)
				}
				t.Values = append([]float32{}, row.Data[:k]...)
			}
			return nil
		})
		if err != nil {
			tensorErr = fmt.Errorf("tensors of %s/%s batch %d: %w", run, l.Path, opts.Batch, err)
			t.Samples, t.Values, t.Elements, t.DatasetIndex, found = 0, nil, 0, -1, false
		}
	}
	switch {
	case t.Samples > 0 && !found:
		return nil, fmt.Errorf("run %q layer %q batch %d has no sample %d (%d samples recorded): %w",
			run, l.Path, opts.Batch, opts.Sample, t.Samples, store.ErrNotFound)
	case statsErr != nil && (tensorErr != nil || t.Samples == 0):
		return nil, errors.Join(statsErr, tensorErr)
	case tensorErr != nil && t.Stats == nil:
		return nil, tensorErr
	case statsErr != nil:
		msg := statsErr.Error()
		t.StatsError = &msg
		return t, statsErr
	case tensorErr != nil:
		msg := tensorErr.Error()
		t.TensorError = &msg
		return t, tensorErr
	case t.Stats == nil && t.Samples == 0:
		have, err := recordedBatches(s, run, []store.LayerSummary{l}, store.BatchRange{})
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("run %q layer %q has no data for batch %d (recorded: %s): %w", run, l.Path, opts.Batch, have, store.ErrNotFound)
	}
	return t, nil
}
