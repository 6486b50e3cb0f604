package recorder

import (
	"context"
	"testing"
	"time"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

func twoLinear(t *testing.T) *nn.Model {
	t.Helper()
	b := nn.NewBuilder("two")
	x := b.Input("input", -1, 4)
	la, err := nn.NewLinear(nn.LinearOptions{InFeatures: 4, OutFeatures: 4})
	if err != nil {
		t.Fatal(err)
	}
	lb, _ := nn.NewLinear(nn.LinearOptions{InFeatures: 4, OutFeatures: 4})
	a := b.Add("a", la, x)
	y := b.Add("b", lb, a)
	m, err := b.Build(y)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A Forward call whose context is cancelled while it runs (here: just before
// layer b, when the call's unspent tensor charge is refunded) records no
// tensors of the layers after that: tensorBytes equals the bytes handed to
// the store, within the TensorBudget (layer b's tensors were once recorded
// after their refund).
func TestTensorBudgetCancelledCall(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	cfg.Samples = SamplePolicy{First: 1}
	const perBatch = 2 * 4 * 4 // 2 layers x 1 sample x 4 floats x 4 bytes = 32
	cfg.TensorBudget = perBatch + perBatch/2
	st := openStore(t)
	m := twoLinear(t)
	r, err := New(st, store.RunInfo{Name: "drift"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 4}); err != nil {
		t.Fatal(err)
	}
	var cancelB context.CancelFunc
	h, err := m.RegisterForwardPreHook("b", func(ctx context.Context, _ nn.ModuleInfo, _ []*nn.Tensor) {
		if cancelB != nil {
			cancelB()
			time.Sleep(100 * time.Millisecond) // the AfterFunc runs endReservation
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	x := nn.NewTensor(2, 4)
	for i := range x.Data {
		x.Data[i] = float32(i)
	}
	// batch 0: cancelled while running (the call still completes: b is the last leaf)
	ctx, cancel := context.WithCancel(context.Background())
	cancelB = cancel
	_, err0 := m.Forward(WithBatch(ctx, Batch{Index: 0}), x)
	cancelB = nil
	t.Logf("batch 0 Forward: err=%v, tensorBytes after = %d", err0, r.tensorBytes.Load())
	// batches 1, 2: normal
	for b := int64(1); b < 3; b++ {
		if _, err := m.Forward(WithBatch(context.Background(), Batch{Index: b, DatasetIndex: 2 * b}), x); err != nil {
			t.Fatal(err)
		}
	}
	charged := r.tensorBytes.Load()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var written int64
	for _, l := range []string{"a", "b"} {
		for _, row := range readTensors(t, st, "drift", l) {
			written += int64(4 * len(row.Data))
		}
	}
	t.Logf("tensorBytes=%d, tensor bytes in the store=%d, budget=%d", charged, written, cfg.TensorBudget)
	if charged != written {
		t.Errorf("tensorBytes %d != tensor bytes written %d", charged, written)
	}
	if written > cfg.TensorBudget {
		t.Errorf("%d tensor bytes written, TensorBudget %d", written, cfg.TensorBudget)
	}
}

func declareAB(t *testing.T, cfg Config, name string) (*Recorder, *store.Store) {
	t.Helper()
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: name}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Declare([]store.LayerInfo{{Path: "a", Op: "Identity", Shape: []int{4}}, {Path: "b", Op: "Identity", Shape: []int{4}, Order: 1}}); err != nil {
		t.Fatal(err)
	}
	return r, st
}

func tensorBytesWritten(t *testing.T, st *store.Store, run string) (n int64) {
	for _, l := range []string{"a", "b"} {
		for _, row := range readTensors(t, st, run, l) {
			n += int64(4 * len(row.Data))
		}
	}
	return n
}

// Record, Policy Drop: a batch dropped at its first Record refunds the
// whole-batch charge (chargeSamples charges all layers at once), so the
// budget is not reached early (only that layer's share was refunded).
func TestTensorBudgetRecordDrop(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	cfg.Samples = SamplePolicy{First: 1}
	cfg.Policy = Drop
	cfg.QueueBytes = 1                 // a reservation is admitted only into an empty queue
	cfg.TensorBudget = 2 * (2 * 4 * 4) // two whole batches
	r, st := declareAB(t, cfg, "dropleak")
	x := nn.NewTensor(1, 4)
	ctx := context.Background()
	block, entered := make(chan struct{}), make(chan struct{}, 10)
	r.beforeWrite = func(*item) error { entered <- struct{}{}; <-block; return nil }
	if err := r.Record(ctx, "a", Batch{Index: 1}, x); err != nil {
		t.Fatal(err)
	}
	<-entered                                                      // the worker holds batch 1's item: the queue is not empty
	if err := r.Record(ctx, "a", Batch{Index: 2}, x); err != nil { // dropped
		t.Fatal(err)
	}
	close(block)
	r.q.waitEmpty()
	for _, rec := range []struct {
		l string
		b int64
	}{{"b", 1}, {"b", 2}, {"a", 3}, {"b", 3}} {
		if err := r.Record(ctx, rec.l, Batch{Index: rec.b}, x); err != nil {
			t.Fatal(err)
		}
		r.q.waitEmpty()
	}
	charged := r.tensorBytes.Load()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	run, _ := st.Run("dropleak")
	written := tensorBytesWritten(t, st, "dropleak")
	t.Logf("dropped batches %d; tensorBytes %d, written %d, budget %d, reached at %q", r.dropped.Load(), charged, written, cfg.TensorBudget, run.Meta["tensor_budget_reached_at_batch"])
	if charged != written {
		t.Errorf("tensorBytes %d, tensor bytes written %d", charged, written)
	}
	if written+2*4*4 <= cfg.TensorBudget && run.Meta["tensor_budget_reached_at_batch"] != "" {
		t.Errorf("budget reached at batch %s with %d of %d bytes written", run.Meta["tensor_budget_reached_at_batch"], written, cfg.TensorBudget)
	}
}

// Record, Policy Block: a Record that gave up on its context keeps its
// layer's share of the batch's charge, which a retry then spends: the
// budget holds (the share was refunded, and the retry recorded it free).
func TestTensorBudgetRecordRetry(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	cfg.Samples = SamplePolicy{First: 1}
	cfg.QueueBytes = 1
	cfg.TensorBudget = 2*(2*4*4) + 16 // two whole batches and a half
	r, st := declareAB(t, cfg, "retry")
	x := nn.NewTensor(1, 4)
	bg := context.Background()
	block, entered := make(chan struct{}), make(chan struct{}, 10)
	r.beforeWrite = func(*item) error { entered <- struct{}{}; <-block; return nil }
	if err := r.Record(bg, "a", Batch{Index: 0}, x); err != nil {
		t.Fatal(err)
	}
	<-entered
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	err := r.Record(ctx, "a", Batch{Index: 1}, x)
	t.Logf("Record with a short deadline: %v", err)
	close(block)
	r.q.waitEmpty()
	for _, rec := range []struct {
		l string
		b int64
	}{{"b", 0}, {"a", 1}, {"b", 1}, {"a", 2}, {"b", 2}} {
		if err := r.Record(bg, rec.l, Batch{Index: rec.b}, x); err != nil {
			t.Fatal(err)
		}
		r.q.waitEmpty()
	}
	charged := r.tensorBytes.Load()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	written := tensorBytesWritten(t, st, "retry")
	t.Logf("tensorBytes %d, written %d, budget %d", charged, written, cfg.TensorBudget)
	if charged != written {
		t.Errorf("tensorBytes %d, tensor bytes written %d", charged, written)
	}
	if written > cfg.TensorBudget {
		t.Errorf("%d tensor bytes written, TensorBudget %d", written, cfg.TensorBudget)
	}
}
