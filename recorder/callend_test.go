package recorder

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// failBatch3 is an identity layer that fails on batches of 3 samples.
type failBatch3 struct{}

var errBatch3 = errors.New("batch of 3")

func (failBatch3) Op() string { return "Fail" }

func (failBatch3) OutputShape(in ...[]int) ([]int, error) { return append([]int(nil), in[0]...), nil }

func (failBatch3) Forward(in ...*nn.Tensor) (*nn.Tensor, error) {
	if in[0].Shape[0] == 3 {
		return nil, errBatch3
	}
	out := nn.NewTensor(in[0].Shape...)
	copy(out.Data, in[0].Data)
	return out, nil
}

// failingModel is x [N 1 H W] -> conv1 (3x3) -> relu1 -> pool1 (2x2, the
// three run fused) -> fail (fails at batch size 3) -> flatten -> fc. An
// input smaller than 3x3 makes the fused chain fail at conv1, after its
// hooks were asked whether they want the call.
func failingModel(t *testing.T) *nn.Model {
	t.Helper()
	b := nn.NewBuilder("failing")
	x := b.Input("x", -1, 1, -1, -1)
	conv, err := nn.NewConv2d(nn.Conv2dOptions{InChannels: 1, OutChannels: 2, KernelSize: [2]int{3, 3}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range conv.Weight.Data {
		conv.Weight.Data[i] = float32(i%5) - 1.5
	}
	pool, err := nn.NewMaxPool2d(nn.PoolOptions{KernelSize: [2]int{2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	fc, err := nn.NewLinear(nn.LinearOptions{InFeatures: 18, OutFeatures: 2})
	if err != nil {
		t.Fatal(err)
	}
	h := b.Add("conv1", conv, x)
	h = b.Add("relu1", nn.NewReLU(), h)
	h = b.Add("pool1", pool, h)
	h = b.Add("fail", failBatch3{}, h)
	h = b.Add("flatten", nn.NewFlatten(1, -1), h)
	y := b.Add("fc", fc, h)
	m, err := b.Build(y)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Forward calls that fail (a layer's error after recorded layers, or the
// fused chain's error after its hooks reserved the call) release their
// reservation, sample buffers and tensor budget: with a tiny queue and
// Policy Block, later calls do not block, the queue's account returns to
// 0, and every byte charged to the tensor budget was written.
func TestRecorderFailedForwardReleases(t *testing.T) {
	m := failingModel(t)
	st := openStore(t)
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	cfg.Samples = SamplePolicy{Indices: []int{0}}
	cfg.QueueBytes = 1 // every call waits for the queue to be empty
	cfg.Policy = Block
	r, err := New(st, store.RunInfo{Name: "failing"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 1, 8, 8}); err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	finished := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := range rounds {
			if _, err := m.Forward(ctx, input4(3, 8, float32(i))); !errors.Is(err, errBatch3) {
				finished <- err
				return
			}
			if _, err := m.Forward(ctx, input4(2, 2, float32(i))); err == nil {
				finished <- errors.New("a 2x2 input passed a 3x3 convolution")
				return
			}
		}
		if _, err := m.Forward(ctx, input4(2, 8, 1)); err != nil {
			finished <- err
			return
		}
		r.q.waitEmpty()
		finished <- nil
	}()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		r.q.mu.Lock()
		used := r.q.used
		r.q.mu.Unlock()
		r.q.close() // unblock the stuck Forward
		t.Fatalf("Forward calls after failed ones blocked (queue holds %d bytes)", used)
	}
	r.q.mu.Lock()
	used := r.q.used
	r.q.mu.Unlock()
	if used != 0 {
		t.Errorf("queue holds %d bytes after every call ended and every item was written", used)
	}
	r.mu.Lock()
	calls := len(r.calls.m)
	r.mu.Unlock()
	if calls != 0 {
		t.Errorf("recorder still maps %d ended calls", calls)
	}
	c := r.Stats()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	layers, err := st.Layers("failing")
	if err != nil {
		t.Fatal(err)
	}
	var written int64
	rowsOf := map[string]int{}
	for _, l := range layers {
		n := len(readTensors(t, st, "failing", l.Path))
		rowsOf[l.Path] = n
		written += int64(n) * 4 * int64(shapeLen(l.Shape))
	}
	if c.TensorBytes != written {
		t.Errorf("tensor budget charged %d bytes, %d written (rows per layer %v)", c.TensorBytes, written, rowsOf)
	}
	// Layers before the failing one record the calls failing at "fail";
	// the rest only the successful call.
	for path, want := range map[string]int{"conv1": rounds + 1, "relu1": rounds + 1, "pool1": rounds + 1, "fail": 1, "flatten": 1, "fc": 1} {
		if rowsOf[path] != want {
			t.Errorf("%s: %d tensor rows, want %d", path, rowsOf[path], want)
		}
		if n := len(readStats(t, st, "failing", path)); n != want {
			t.Errorf("%s: %d stats rows, want %d", path, n, want)
		}
	}
	if c.Dropped != 0 {
		t.Errorf("Dropped = %d with Policy Block", c.Dropped)
	}
}

// input4 is an [n 1 hw hw] input with values depending on seed.
func input4(n, hw int, seed float32) *nn.Tensor {
	x := nn.NewTensor(n, 1, hw, hw)
	for i := range x.Data {
		x.Data[i] = float32(i%7)*0.25 - 0.5 + seed*0.01
	}
	return x
}
