package recorder

import (
	"encoding/json"
	"fmt"
	"time"
)

// Mode says what is kept of a recorded layer output.
type Mode uint8

const (
	// ModeStats keeps one statistics row per (batch, layer).
	ModeStats Mode = 1
	// ModeTensors keeps the selected samples' tensors.
	ModeTensors Mode = 2
	// ModeBoth keeps both.
	ModeBoth = ModeStats | ModeTensors
)

func (m Mode) String() string {
	switch m {
	case ModeStats:
		return "stats"
	case ModeTensors:
		return "tensors"
	case ModeBoth:
		return "both"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses "stats", "tensors" or "both".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "stats":
		return ModeStats, nil
	case "tensors":
		return ModeTensors, nil
	case "both":
		return ModeBoth, nil
	}
	return 0, fmt.Errorf("recorder: unknown mode %q (want stats, tensors or both)", s)
}

func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// QueuePolicy says what a hook does when the queue is full.
type QueuePolicy uint8

const (
	// Block makes the forward pass wait until the queue has room (lossless).
	Block QueuePolicy = iota
	// Drop skips the whole batch and counts it in the run's metadata
	// ("dropped_batches"): a Forward call reserves the queue bytes of all
	// it records at its first recorded layer, and if there is no room, no
	// layer of that batch is recorded. (Record, the framework-free entry
	// point, decides per layer: once a layer of a batch finds the queue
	// full, the batch's later layers and its items still queued are
	// skipped, but rows already written stay.)
	Drop
)

func (p QueuePolicy) String() string {
	if p == Drop {
		return "drop"
	}
	return "block"
}

func (p QueuePolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

func (p *QueuePolicy) UnmarshalText(b []byte) error {
	switch string(b) {
	case "block":
		*p = Block
	case "drop":
		*p = Drop
	default:
		return fmt.Errorf("recorder: unknown queue policy %q (want block or drop)", b)
	}
	return nil
}

// LayerMode overrides the mode of the layers matched by Select.
type LayerMode struct {
	Select string `json:"select"` // a layer selector, see Config.Layers
	Mode   Mode   `json:"mode"`
}

// BatchPolicy selects batches by their batch index. All set conditions
// must hold (they are combined with AND); the zero value keeps every batch.
type BatchPolicy struct {
	// Every keeps batch indices divisible by Every. 0 or 1: all.
	Every int64 `json:"every,omitempty"`
	// First keeps batch indices < First. 0: no limit.
	First int64 `json:"first,omitempty"`
	// Ranges keeps the listed indices and ranges, e.g. "0-9,20,50-"
	// (inclusive; "50-" is open-ended). Empty: all.
	Ranges string `json:"ranges,omitempty"`
	// Probability keeps a batch with this probability, decided by a hash of
	// (Seed, batch index): the same seed selects the same batches. 0: all.
	Probability float64 `json:"probability,omitempty"`
	Seed        uint64  `json:"seed,omitempty"`
	// MinInterval keeps at most one batch per interval of wall-clock time
	// (the first batch that passes the other conditions after the interval
	// has elapsed). 0: no limit.
	MinInterval time.Duration `json:"min_interval,omitempty"`
}

// SamplePolicy selects samples (indices along dim 0) of a batch whose
// tensors are kept. The zero value keeps all samples. At most one of
// Indices, First and Random may be set.
type SamplePolicy struct {
	// Indices lists sample indices; indices >= the batch size are skipped.
	// Empty (nil or not) is unset, as in the run's provenance JSON.
	Indices []int `json:"indices,omitempty"`
	// First keeps samples 0..First-1.
	First int `json:"first,omitempty"`
	// Random keeps Random samples chosen uniformly without replacement,
	// deterministic per (Seed, batch index).
	Random int    `json:"random,omitempty"`
	Seed   uint64 `json:"seed,omitempty"`
}

// Config configures a Recorder. The zero value is not valid; start from
// DefaultConfig. A Config is encoded as JSON into the run's provenance.
type Config struct {
	// Layers selects the recorded modules. Each entry is an exact module
	// path ("layer1.0.conv2"), a glob with path.Match semantics on the dotted
	// path ("relu*", "layer1.*": '*' does not cross a dot), "op:<Op>"
	// ("op:Conv2d"), or "all" (every leaf). Empty: every leaf. A selector
	// that matches nothing is an error listing the valid names.
	Layers []string `json:"layers,omitempty"`
	// Mode is what is kept for every selected layer. Default ModeStats.
	Mode Mode `json:"mode"`
	// Overrides set the mode of some selected layers; later entries win.
	// An override may also select layers not in Layers.
	Overrides []LayerMode `json:"overrides,omitempty"`
	// Batches selects the recorded batches (stats and tensors).
	Batches BatchPolicy `json:"batches"`
	// TensorBatches further restricts the batches whose tensors are kept.
	// Its Probability draws independently of Batches', even with the same
	// Seed: 0.5 of 0.5 keeps tensors of a quarter of the batches.
	TensorBatches BatchPolicy `json:"tensor_batches"`
	// Samples selects the samples whose tensors are kept.
	Samples SamplePolicy `json:"samples"`
	// Histogram stores the bfloat16 histogram with each stats row.
	// Default true. Percentiles are computed either way.
	Histogram bool `json:"histogram"`
	// MomentsOnly skips the histogram and the percentiles (stored as NaN):
	// count, mean, std, min, max, L2, zero fraction, NaN and Inf only, for
	// about half the CPU. Default false.
	MomentsOnly bool `json:"moments_only,omitempty"`
	// ChannelStats adds per-channel mean and max for outputs of rank >= 3
	// (N, C, ...). Default false.
	ChannelStats bool `json:"channel_stats"`
	// TensorBudget is the most tensor bytes (4 per element, uncompressed)
	// a run hands to the store; when the next batch would exceed it, tensor
	// recording stops for the rest of the run (stats continue) and the run
	// metadata gets "tensor_budget_reached_at_batch". A batch's tensors
	// are charged for all its layers at once (at its Forward call's first
	// recorded layer, or at its first Record), so that batch has no
	// tensors at all. 0: unlimited.
	TensorBudget int64 `json:"tensor_budget,omitempty"`
	// QueueBytes caps the memory the recorder holds for recorded data, in
	// bytes as allocated: stats rows, sampled tensor copies (reserved by a
	// Forward call before its hooks fill them), output copies with
	// StatsInWorkers, queued items and items being written. A call whose
	// records exceed the cap is admitted alone, when nothing else is held,
	// so the bound is max(QueueBytes, one call's records). Not counted (see
	// the package doc, Memory): the store Writer's buffers
	// (store.Options.MaxBufferBytes, set by whoever opens the store), the
	// statistics accumulators, and GC headroom. Default 256 MiB.
	QueueBytes int64 `json:"queue_bytes"`
	// Policy is what happens when the queue is full. Default Block.
	Policy QueuePolicy `json:"policy"`
	// Workers is the number of goroutines writing to the store. Default 1.
	Workers int `json:"workers"`
	// StatsInWorkers moves the statistics off the inference goroutines:
	// hooks keep each recorded output whole (a fused convolution and its
	// pool compute their outputs directly into the recorder's memory,
	// nn.ChunkDest and nn.OutputDest; other outputs are copied) and a
	// worker computes the statistics, deriving
	// those of ReLU, Flatten and Dropout layers from their input's copy.
	// Use it when inference leaves a core free (nn.SetThreads below
	// GOMAXPROCS; actrec --threads): the forward pass then pays for the
	// copies only. It costs more CPU in all (the worker reads the outputs
	// from memory rather than cache), so with every core busy with
	// inference the default (statistics in the hooks, on cache-hot chunks)
	// is faster; see the package doc, Cost. The queue then also holds the
	// output copies (counted in QueueBytes).
	StatsInWorkers bool `json:"stats_in_workers,omitempty"`

	// Now is the clock for BatchPolicy.MinInterval and the run's times.
	// Default time.Now. Not part of the provenance JSON.
	Now func() time.Time `json:"-"`
}

// DefaultConfig returns the default configuration: stats of every leaf for
// every batch, histograms on, a 256 MiB blocking queue, one worker.
func DefaultConfig() Config {
	return Config{
		Mode:       ModeStats,
		Histogram:  true,
		QueueBytes: 256 << 20,
		Policy:     Block,
		Workers:    1,
	}
}

// JSON returns the configuration as recorded in the run's provenance.
func (c Config) JSON() json.RawMessage {
	b, err := json.Marshal(c)
	if err != nil {
		return nil
	}
	return b
}

func (c *Config) validate() error {
	if c.Mode == 0 {
		c.Mode = ModeStats
	}
	if c.Mode > ModeBoth {
		return fmt.Errorf("recorder: invalid mode %d", c.Mode)
	}
	for _, o := range c.Overrides {
		if o.Mode == 0 || o.Mode > ModeBoth {
			return fmt.Errorf("recorder: override %q: invalid mode %d", o.Select, o.Mode)
		}
	}
	if c.Policy > Drop {
		return fmt.Errorf("recorder: invalid queue policy %d (want Block or Drop)", c.Policy)
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 256 << 20
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.TensorBudget < 0 {
		return fmt.Errorf("recorder: negative tensor budget %d", c.TensorBudget)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	for _, p := range []*BatchPolicy{&c.Batches, &c.TensorBatches} {
		if p.Every < 0 || p.First < 0 || p.MinInterval < 0 {
			return fmt.Errorf("recorder: negative batch policy value in %+v", *p)
		}
		if !(p.Probability >= 0 && p.Probability <= 1) {
			return fmt.Errorf("recorder: batch probability %v outside [0, 1]", p.Probability)
		}
		if _, err := parseRanges(p.Ranges); err != nil {
			return err
		}
	}
	s := c.Samples
	set := 0
	if len(s.Indices) > 0 {
		set++
	}
	if s.First != 0 {
		set++
	}
	if s.Random != 0 {
		set++
	}
	if set > 1 {
		return fmt.Errorf("recorder: sample policy: set only one of indices, first, random")
	}
	if s.First < 0 || s.Random < 0 {
		return fmt.Errorf("recorder: sample policy: negative count")
	}
	for _, i := range s.Indices {
		if i < 0 {
			return fmt.Errorf("recorder: sample policy: negative index %d", i)
		}
	}
	return nil
}
