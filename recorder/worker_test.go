package recorder

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// recordOnce records one Forward call of m on in (Attach shape attach) with
// the configuration DefaultConfig + StatsInWorkers (as workers says) +
// mut, and returns the store and Close's error.
func recordOnce(t *testing.T, m *nn.Model, in *nn.Tensor, attach []int, workers bool, mut func(*Config)) (*store.Store, error) {
	t.Helper()
	st := openStore(t)
	cfg := DefaultConfig()
	cfg.StatsInWorkers = workers
	if mut != nil {
		mut(&cfg)
	}
	r, err := New(st, store.RunInfo{Name: "w"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, attach); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Forward(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	return st, r.Close()
}

// leafOutputs returns every module's output of one unfused Forward call.
func leafOutputs(t *testing.T, m *nn.Model, in *nn.Tensor) map[string][]float32 {
	t.Helper()
	outs := map[string][]float32{}
	h := m.RegisterGlobalHook(func(_ context.Context, mi nn.ModuleInfo, _ []*nn.Tensor, out *nn.Tensor) {
		outs[mi.Path] = slices.Clone(out.Data)
	})
	defer h.Remove()
	if _, err := m.Forward(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	return outs
}

func sinInput(shape ...int) *nn.Tensor {
	in := nn.NewTensor(shape...)
	for i := range in.Data {
		in.Data[i] = float32(math.Sin(float64(i)))
	}
	return in
}

// Two Flatten/Dropout branches of one convolution, a ReLU under the first
// whose output the worker must write (NaN in the input): the second
// branch's sampled tensors are still the convolution's values, not the
// ReLU's (found in review: the ReLU was applied in place in the shared
// copy).
func TestWorkersSiblingSeesInputData(t *testing.T) {
	b := nn.NewBuilder("sib")
	x := b.Input("input", -1, 3, 4, 5)
	c := b.Add("conv", mustConv(t), x)
	f := b.Add("flat", nn.NewFlatten(1, -1), c)
	rf := b.Add("relu_f", nn.NewReLU(), f)
	d := b.Add("drop", nn.NewDropout(0.5), c)
	fd := b.Add("flat_d", nn.NewFlatten(1, -1), d)
	y := b.Add("sum", nn.NewAdd(), rf, fd)
	m, err := b.Build(y)
	if err != nil {
		t.Fatal(err)
	}
	in := sinInput(3, 3, 4, 5)
	in.Data[0] = float32(math.NaN())
	outs := leafOutputs(t, m, in)
	st, err := recordOnce(t, m, in, []int{1, 3, 4, 5}, true, func(c *Config) {
		c.Mode = ModeBoth
		c.Samples = SamplePolicy{Indices: []int{1}}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"conv", "flat", "relu_f", "drop", "flat_d"} {
		tr := readTensors(t, st, "w", p)
		per := len(outs[p]) / 3
		if len(tr) != 1 {
			t.Errorf("%s: %d tensor rows, want 1", p, len(tr))
		}
		for k, row := range tr {
			if !sameBits32(row.Data, outs[p][int(k.sample)*per:int(k.sample+1)*per]) {
				t.Errorf("%s sample %d: stored %v..., want %v...", p, k.sample, row.Data[:4], outs[p][int(k.sample)*per:int(k.sample)*per+4])
			}
		}
		rows := readStats(t, st, "w", p)
		want := computeStats(outs[p])
		if len(rows) != 1 || rows[0].Count != want.Count || rows[0].NaN != want.NaN || rows[0].Max != want.Max || !slices.Equal(rows[0].Hist.Counts, want.Hist.Counts) {
			t.Errorf("%s: rows %+v, want %+v", p, rows, want)
		}
	}
}

// A ReLU after a Flatten has a 2-D output: no per-channel statistics, with
// the statistics in hooks or in workers (found in review: the worker used
// the convolution's shape).
func TestReLUAfterFlattenHasNoChannelStats(t *testing.T) {
	b := nn.NewBuilder("ch")
	x := b.Input("input", -1, 3, 4, 5)
	c := b.Add("conv", mustConv(t), x)
	f := b.Add("flat", nn.NewFlatten(1, -1), c)
	y := b.Add("relu", nn.NewReLU(), f)
	m, err := b.Build(y)
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []bool{false, true} {
		st, err := recordOnce(t, m, sinInput(3, 3, 4, 5), []int{1, 3, 4, 5}, workers, func(c *Config) { c.ChannelStats = true })
		if err != nil {
			t.Fatal(err)
		}
		if rows := readStats(t, st, "w", "relu"); len(rows) != 1 || len(rows[0].ChannelMean) != 0 || len(rows[0].ChannelMax) != 0 {
			t.Errorf("workers %v: relu rows %+v, want one without channel stats", workers, rows)
		}
		if rows := readStats(t, st, "w", "conv"); len(rows) != 1 || len(rows[0].ChannelMean) != 2 {
			t.Errorf("workers %v: conv rows %+v, want one with 2 channel means", workers, rows)
		}
	}
}

// A model with a variable spatial size, attached with one size and called
// with another: the statistics are those of the call's outputs, in hooks
// and in workers (found in review: the worker's buffer was sized by the
// Attach shape and the recording failed); sampled tensors of such a call
// fail in both modes (the run's tensor shape is fixed).
func TestWorkersVariableInputSize(t *testing.T) {
	b := nn.NewBuilder("var")
	x := b.Input("input", -1, 3, -1, -1)
	c := b.Add("conv", mustConv(t), x)
	y := b.Add("relu", nn.NewReLU(), c)
	m, err := b.Build(y)
	if err != nil {
		t.Fatal(err)
	}
	in := sinInput(2, 3, 6, 6)
	in.Data[5] = float32(math.Inf(1))
	outs := leafOutputs(t, m, in)
	for _, workers := range []bool{false, true} {
		st, err := recordOnce(t, m, in, []int{1, 3, 4, 5}, workers, func(c *Config) { c.ChannelStats = true })
		if err != nil {
			t.Fatalf("workers %v: %v", workers, err)
		}
		for _, p := range []string{"conv", "relu"} {
			rows := readStats(t, st, "w", p)
			want := computeStats(outs[p])
			if len(rows) != 1 || rows[0].Count != want.Count || rows[0].Inf != want.Inf || rows[0].Min != want.Min || rows[0].Max != want.Max ||
				!closeRel(rows[0].Mean, want.Mean, 1e-9, 1e-12) || !slices.Equal(rows[0].Hist.Counts, want.Hist.Counts) || len(rows[0].ChannelMean) != 2 {
				t.Errorf("workers %v: %s rows %+v, want %+v", workers, p, rows, want)
			}
		}
		_, err = recordOnce(t, m, in, []int{1, 3, 4, 5}, workers, func(c *Config) {
			c.Mode = ModeBoth
			c.Samples = SamplePolicy{Indices: []int{0}}
		})
		if err == nil {
			t.Errorf("workers %v: sampled tensors of another shape than the run's recorded without error", workers)
		}
	}
}

// A call with no rows still gets a row on every recorded layer, also on a
// ReLU whose moments its input's chunks count (none arrive) — found in
// review — in hooks and in workers.
func TestRecorderEmptyBatchEveryLayer(t *testing.T) {
	for _, workers := range []bool{false, true} {
		m := recipe(t)
		st, err := recordOnce(t, m, nn.NewTensor(0, 3, 28, 28), []int{1, 3, 28, 28}, workers, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"conv1", "relu1", "maxpool1", "conv2", "relu2", "maxpool2", "flatten", "fc1", "relu3", "fc2"} {
			if rows := readStats(t, st, "w", p); len(rows) != 1 || rows[0].Count != 0 {
				t.Errorf("workers %v: %s: rows %+v, want one empty row", workers, p, rows)
			}
		}
	}
}
