package store

import (
	"encoding/json"
	"time"
)

// RunState is the life-cycle state of a run.
type RunState string

const (
	// StateRecording: a writer is (or was, until the next Open notices otherwise) writing the run.
	StateRecording RunState = "recording"
	// StateComplete: the writer closed the run after recording everything it meant to.
	StateComplete RunState = "complete"
	// StateInterrupted: the writer closed the run early (signal, error, budget).
	StateInterrupted RunState = "interrupted"
	// StateCrashed: the writer died without closing; every committed batch is readable.
	StateCrashed RunState = "crashed"
)

// RunInfo describes a run: its identity and provenance.
type RunInfo struct {
	Name         string            `json:"name"`
	Created      time.Time         `json:"created"`
	Finished     time.Time         `json:"finished,omitzero"`
	State        RunState          `json:"state"`
	Model        string            `json:"model,omitempty"`
	ModelVersion string            `json:"model_version,omitempty"`
	WeightsHash  string            `json:"weights_hash,omitempty"`
	Input        string            `json:"input,omitempty"`
	Config       json.RawMessage   `json:"config,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
	Host         string            `json:"host,omitempty"`
	GoVersion    string            `json:"go_version,omitempty"`
	// Meta holds free-form facts written by the recorder or the store, e.g.
	// "dropped_batches", "tensor_budget_reached_at_batch", "salvaged_batches".
	Meta map[string]string `json:"meta,omitempty"`
}

// LayerInfo describes one recorded layer (module) of a run.
type LayerInfo struct {
	Path  string `json:"path"`
	Op    string `json:"op"`
	Shape []int  `json:"shape"` // per-sample output shape (no batch dimension)
	Order int    `json:"order"` // execution order
}

// RunSummary is a run with its counters.
type RunSummary struct {
	RunInfo
	Batches int   `json:"batches"` // distinct batch numbers with any data
	Layers  int   `json:"layers"`
	Entries int   `json:"entries"` // index entries (stats rows + tensor row groups)
	Bytes   int64 `json:"bytes"`   // bytes of segment data referenced
}

// LayerSummary is a layer with its counters.
type LayerSummary struct {
	LayerInfo
	StatsBatches  int   `json:"stats_batches"`
	TensorBatches int   `json:"tensor_batches"`
	Bytes         int64 `json:"bytes"`
}

// TensorRow is the output of one layer for one sample.
type TensorRow struct {
	Batch        int64
	Sample       int32 // index of the sample within its batch
	DatasetIndex int64 // index of the sample in the input data set, -1 if unknown
	Data         []float32
}

// BatchRange selects batches From <= b < To. The zero value selects all batches; To == 0
// with From > 0 means "to the end" (use To = math.MaxInt64 for an open end after a
// negative or zero From: {From: -2, To: 0} is batches -2 and -1).
type BatchRange struct {
	From, To int64
}

func (r BatchRange) bounds() (lo, hi int64, all bool) {
	if r.From == 0 && r.To == 0 {
		return 0, 0, true
	}
	hi = r.To
	if hi == 0 && r.From > 0 {
		hi = 1<<63 - 1
	}
	return r.From, hi, false
}

// Contains reports whether r selects batch b.
func (r BatchRange) Contains(b int64) bool {
	lo, hi, all := r.bounds()
	return all || (b >= lo && b < hi)
}
