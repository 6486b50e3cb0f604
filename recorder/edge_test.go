package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// Declare after Close is ErrClosed and creates no run (it created one that was never closed).
func TestDeclareAfterClose(t *testing.T) {
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: "late"}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	err = r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{4}}})
	if err == nil {
		run, rerr := st.Run("late")
		t.Errorf("Declare after Close = nil (want ErrClosed); run %q created in state %q (err %v), never closed", "late", run.State, rerr)
	}
}

// Close returns while a Record waits for queue room that a paused Forward call holds (Record waited holding closeMu: deadlock).
func TestCloseWhileRecordWaitsAndForwardHoldsRoom(t *testing.T) {
	st := openStore(t)
	m := recipe(t)
	cfg := DefaultConfig()
	cfg.Layers = []string{"conv1", "fc2"}
	cfg.QueueBytes = 1 // a reservation is admitted only into an empty queue
	r, err := New(st, store.RunInfo{Name: "dl"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
		t.Fatal(err)
	}
	// a first call teaches the recorder the size of conv1's rows, so that
	// the second call's reservation covers them and keeps fc2's share
	if _, err := m.Forward(WithBatch(context.Background(), Batch{Index: 10}), input(2, 0)); err != nil {
		t.Fatal(err)
	}
	r.q.waitEmpty()
	paused, resume := make(chan struct{}), make(chan struct{})
	h, err := m.RegisterForwardPreHook("fc2", func(context.Context, nn.ModuleInfo, []*nn.Tensor) {
		close(paused)
		<-resume
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	fwdDone := make(chan error, 1)
	go func() {
		_, err := m.Forward(WithBatch(context.Background(), Batch{Index: 0}), input(2, 0))
		fwdDone <- err
	}()
	<-paused // conv1's row is queued; the call still holds fc2's reservation
	recDone := make(chan error, 1)
	go func() {
		recDone <- r.Record(context.Background(), "conv1", Batch{Index: 1}, nn.NewTensor(1, 32, 26, 26))
	}()
	time.Sleep(200 * time.Millisecond) // Record waits for room
	select {
	case err := <-recDone:
		t.Logf("Record returned early: %v", err)
	default:
		t.Logf("Record blocked; used %d", func() int64 { r.q.mu.Lock(); defer r.q.mu.Unlock(); return r.q.used }())
	}
	closeDone := make(chan error, 1)
	go func() { closeDone <- r.Close() }()
	time.Sleep(200 * time.Millisecond) // Close waits for closeMu
	close(resume)
	select {
	case err := <-closeDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		r.q.close() // unblock Record so the test can end
		t.Fatal("deadlock: Close, Record and Forward all blocked for 30 s")
	}
}

// Record: the batch at which the tensor budget is reached has no tensors at all, not those of its first layers.
func TestTensorBudgetWholeBatchRecord(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	cfg.Samples = SamplePolicy{First: 1}
	cfg.TensorBudget = 48 // one batch = 2 layers x 1 sample x 4 floats = 32 bytes
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: "budget2"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Declare([]store.LayerInfo{{Path: "a", Op: "Identity", Shape: []int{4}}, {Path: "b", Op: "Identity", Shape: []int{4}, Order: 1}}); err != nil {
		t.Fatal(err)
	}
	x := nn.NewTensor(2, 4)
	for b := int64(0); b < 3; b++ {
		for _, l := range []string{"a", "b"} {
			if err := r.Record(context.Background(), l, Batch{Index: b}, x); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	run, _ := st.Run("budget2")
	at := run.Meta["tensor_budget_reached_at_batch"]
	ta, tb := readTensors(t, st, "budget2", "a"), readTensors(t, st, "budget2", "b")
	_, aHas1 := ta[tensorKey{1, 0}]
	_, bHas1 := tb[tensorKey{1, 0}]
	if aHas1 != bHas1 {
		t.Errorf("tensor_budget_reached_at_batch=%s, but batch 1 has tensors of layer a (%v) and not of layer b (%v)", at, aHas1, bHas1)
	}
}

// Hooks: the batch at which the tensor budget is reached has no tensors at all, not those of its first layers.
func TestTensorBudgetWholeBatchHooks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Layers = []string{"relu1", "fc2"}
	cfg.Mode = ModeBoth
	cfg.Samples = SamplePolicy{First: 1}
	relu1, fc2 := int64(4*32*26*26), int64(4*10)
	cfg.TensorBudget = (relu1 + fc2) + relu1 // batch 0 whole, then relu1 of batch 1 only
	st := openStore(t)
	m := recipe(t)
	r, err := New(st, store.RunInfo{Name: "budget3"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
		t.Fatal(err)
	}
	for b := int64(0); b < 3; b++ {
		if _, err := m.Forward(WithBatch(context.Background(), Batch{Index: b}), input(2, float32(b))); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	run, _ := st.Run("budget3")
	at := run.Meta["tensor_budget_reached_at_batch"]
	_, aHas1 := readTensors(t, st, "budget3", "relu1")[tensorKey{1, 0}]
	_, bHas1 := readTensors(t, st, "budget3", "fc2")[tensorKey{1, 0}]
	if aHas1 != bHas1 {
		t.Errorf("tensor_budget_reached_at_batch=%s, but batch 1 has tensors of relu1 (%v) and not of fc2 (%v)", at, aHas1, bHas1)
	}
}

// StatsInWorkers records a layer whose first dimension is not the batch (Flatten(0, -1)) like the hooks do.
func TestWorkersOutputNotBatchMajor(t *testing.T) {
	build := func() *nn.Model {
		b := nn.NewBuilder("flat0")
		x := b.Input("input", -1, 4)
		y := b.Add("flat0", nn.NewFlatten(0, -1), x)
		m, err := b.Build(y)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	in := sinInput(3, 4)
	for _, workers := range []bool{false, true} {
		st, err := recordOnce(t, build(), in, []int{1, 4}, workers, nil)
		if err != nil {
			t.Errorf("StatsInWorkers=%v: Close = %v", workers, err)
			continue
		}
		if rows := readStats(t, st, "w", "flat0"); len(rows) != 1 || rows[0].Count != 12 {
			t.Errorf("StatsInWorkers=%v: rows %+v, want one row of 12 elements", workers, rows)
		}
	}
}

// An out-of-range QueuePolicy is a configuration error.
func TestConfigRejectsUnknownPolicy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Policy = QueuePolicy(2)
	if _, err := New(openStore(t), store.RunInfo{Name: "p"}, cfg); err == nil {
		t.Errorf("New with Policy %d = nil error; provenance says %s", cfg.Policy, cfg.JSON())
	}
}

// Record of an unknown layer wraps ErrUnknownLayer and lists the recorded layers.
func TestRecordUnknownLayerListsLayers(t *testing.T) {
	r, err := New(openStore(t), store.RunInfo{Name: "u"}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Declare([]store.LayerInfo{{Path: "enc.0", Op: "Identity", Shape: []int{4}}, {Path: "enc.1", Op: "Identity", Shape: []int{4}, Order: 1}}); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.Record(context.Background(), "enc.2", Batch{}, nn.NewTensor(1, 4))
	if err == nil || !errors.Is(err, ErrUnknownLayer) || !strings.Contains(err.Error(), "enc.0") {
		t.Errorf("Record of an unknown layer = %v; want ErrUnknownLayer listing enc.0, enc.1", err)
	}
}

// Forward calls made while disabled still take their batch index and dataset positions.
func TestDisabledCallsKeepIndices(t *testing.T) {
	st := openStore(t)
	m := recipe(t)
	cfg := DefaultConfig()
	cfg.Layers = []string{"fc2"}
	cfg.Mode = ModeBoth
	r, err := New(st, store.RunInfo{Name: "ds"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
		t.Fatal(err)
	}
	for call := 0; call < 3; call++ {
		r.SetEnabled(call != 1) // skip the middle call
		if _, err := m.Forward(context.Background(), input(2, float32(call))); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for k, row := range readTensors(t, st, "ds", "fc2") {
		t.Logf("batch %d sample %d dataset_index %d", k.batch, k.sample, row.DatasetIndex)
	}
	rows := readTensors(t, st, "ds", "fc2")
	if row, ok := rows[tensorKey{2, 0}]; !ok || row.DatasetIndex != 4 {
		t.Errorf("third call (samples 4, 5 of the data set): stored as batch 2 = %v, dataset index %d; want batch 2, dataset index 4 (it got batch 1, dataset index %d)",
			ok, row.DatasetIndex, rows[tensorKey{1, 0}].DatasetIndex)
	}
}

// A blocked reservation gives up when its context is done (Record with a
// stuck writer waited forever, whatever its context).
func TestReserveHonoursContext(t *testing.T) {
	q := newQueue(10)
	if !q.reserve(context.Background(), 10, true) {
		t.Fatal("first reservation refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan bool, 1)
	go func() { got <- q.reserve(ctx, 5, true) }()
	cancel()
	if <-got {
		t.Fatal("reservation granted without room")
	}
	q.done(10)
	if !q.reserve(ctx, 5, false) {
		t.Fatal("a reservation with room is granted even after ctx is done")
	}
}

// An empty, non-nil Indices selects what its provenance JSON (which omits
// it) reads back as: every sample.
func TestEmptySampleIndicesIsUnset(t *testing.T) {
	p := SamplePolicy{Indices: []int{}}
	var back SamplePolicy
	b, _ := json.Marshal(p)
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, want := p.samples(3, 4), back.samples(3, 4)
	if !slices.Equal(got, want) || len(got) != 4 {
		t.Fatalf("Indices []int{} keeps %v, its JSON %s keeps %v", got, b, want)
	}
}

// A second, concurrent Close returns only once the run is written (it
// returned at once, so a program could exit with the run half written).
func TestConcurrentCloseWaits(t *testing.T) {
	for i := 0; i < 20; i++ {
		st := openStore(t)
		m := recipe(t)
		r, err := New(st, store.RunInfo{Name: "cc"}, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
			t.Fatal(err)
		}
		for b := 0; b < 3; b++ {
			if _, err := m.Forward(context.Background(), input(8, float32(b))); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error, 2)
		go func() { done <- r.Close() }()
		go func() { done <- r.Close() }()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		run, err := st.Run("cc")
		if err != nil || run.State != store.StateComplete {
			t.Fatalf("after the first Close returned: run state %q (%v), want complete", run.State, err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
