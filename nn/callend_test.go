package nn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// failLayer is an identity layer that fails when its input's first element
// is negative.
type failLayer struct{}

var errFail = errors.New("negative input")

func (failLayer) Op() string { return "Fail" }

func (failLayer) OutputShape(in ...[]int) ([]int, error) { return cloneShape(in[0]), nil }

func (failLayer) Forward(in ...*Tensor) (*Tensor, error) {
	if len(in[0].Data) > 0 && in[0].Data[0] < 0 {
		return nil, errFail
	}
	out := NewTensor(in[0].Shape...)
	copy(out.Data, in[0].Data)
	return out, nil
}

// failModel is x -> fc (Linear, identity weights) -> fail -> act (ReLU).
func failModel(t *testing.T) *Model {
	t.Helper()
	b := NewBuilder("failing")
	x := b.Input("x", -1, 4)
	fc, err := NewLinear(LinearOptions{InFeatures: 4, OutFeatures: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		fc.Weight.Data[i*4+i] = 1
	}
	h := b.Add("fc", fc, x)
	h = b.Add("fail", failLayer{}, h)
	y := b.Add("act", NewReLU(), h)
	m, err := b.Build(y)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type nopChunks struct{}

func (nopChunks) Chunk(context.Context, ModuleInfo, *Tensor, int, int) {}
func (nopChunks) Done(context.Context, ModuleInfo, int)                {}

type callSlot struct{}

// The call-end hook fires exactly once per hooked Forward call, with the
// error Forward returns (nil on success, a layer's error, cancellation),
// with the call's CallID, concurrent calls kept apart; not for calls that
// fail the input check before any hook, and not after Remove.
func TestCallEndHook(t *testing.T) {
	m := failModel(t)
	if _, err := m.RegisterChunkHook("fc", nopChunks{}); err != nil {
		t.Fatal(err)
	}
	const goroutines, calls = 4, 50
	type end struct {
		n    int
		err  error
		call uint64
	}
	var mu sync.Mutex
	ends := make([]end, goroutines*calls)
	started := map[uint64]int{} // CallID -> slot, from the root's pre-hook
	var order []string
	if _, err := m.RegisterForwardPreHook("", func(ctx context.Context, _ ModuleInfo, _ []*Tensor) {
		mu.Lock()
		started[CallID(ctx)] = ctx.Value(callSlot{}).(int)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RegisterForwardHook("", func(ctx context.Context, _ ModuleInfo, _ []*Tensor, _ *Tensor) {
		if ctx.Value(callSlot{}).(int) == 0 {
			mu.Lock()
			order = append(order, "root")
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	h := m.RegisterCallEndHook(func(ctx context.Context, err error) {
		slot := ctx.Value(callSlot{}).(int)
		mu.Lock()
		defer mu.Unlock()
		e := &ends[slot]
		e.n++
		e.err = err
		e.call = CallID(ctx)
		if slot == 0 {
			order = append(order, "end")
		}
	})
	got := make([]error, len(ends))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				slot := g*calls + i
				x := NewTensor(2, 4)
				for j := range x.Data {
					x.Data[j] = float32(j + 1)
				}
				if slot%3 == 1 {
					x.Data[0] = -1 // fail fails
				}
				ctx := context.WithValue(context.Background(), callSlot{}, slot)
				if slot%3 == 2 && slot%2 == 0 {
					c, cancel := context.WithCancel(ctx)
					cancel()
					ctx = c
				}
				_, got[slot] = m.Forward(ctx, x)
			}
		})
	}
	wg.Wait()
	ids := map[uint64]bool{}
	for slot, e := range ends {
		want := got[slot]
		switch {
		case slot%3 == 1 && !errors.Is(want, errFail):
			t.Errorf("call %d: Forward = %v, want the layer's error", slot, want)
		case slot%3 == 2 && slot%2 == 0 && !errors.Is(want, context.Canceled):
			t.Errorf("call %d: Forward = %v, want cancellation", slot, want)
		case slot%3 == 0 && want != nil:
			t.Errorf("call %d: Forward = %v", slot, want)
		}
		if e.n != 1 {
			t.Errorf("call %d: call-end hook ran %d times, want 1", slot, e.n)
			continue
		}
		if e.err != want {
			t.Errorf("call %d: call-end hook got %v, Forward returned %v", slot, e.err, want)
		}
		if e.call == 0 || ids[e.call] || started[e.call] != slot {
			t.Errorf("call %d: call-end hook has CallID %d (pre-hook's slot %d, repeated %v)", slot, e.call, started[e.call], ids[e.call])
		}
		ids[e.call] = true
	}
	if fmt.Sprint(order) != "[root end]" {
		t.Errorf("call 0: hooks ran in order %v, want the root's forward hook before the call-end hook", order)
	}

	// A bad input shape fails before any hook: no call-end.
	before := ends[0].n
	ctx := context.WithValue(context.Background(), callSlot{}, 0)
	if _, err := m.Forward(ctx, NewTensor(2, 5)); err == nil {
		t.Fatal("Forward accepted a bad shape")
	}
	if ends[0].n != before {
		t.Errorf("call-end hook ran for a call rejected by the input check")
	}
	h.Remove()
	if _, err := m.Forward(ctx, NewTensor(2, 4)); err != nil {
		t.Fatal(err)
	}
	if ends[0].n != before {
		t.Errorf("call-end hook ran after Remove")
	}
}

// A call-end hook alone makes Forward hooked; a hook panicking through
// Forward ends the call with ErrCallAborted and the panic goes on.
func TestCallEndHookAloneAndPanic(t *testing.T) {
	m := failModel(t)
	var errs []error
	m.RegisterCallEndHook(func(ctx context.Context, err error) {
		if CallID(ctx) == 0 {
			t.Error("call-end hook without CallID")
		}
		errs = append(errs, err)
	})
	m.RegisterCallEndHook(nil) // ignored
	x := NewTensor(1, 4)
	if _, err := m.Forward(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || errs[0] != nil {
		t.Fatalf("call-end hook saw %v, want one nil", errs)
	}
	if _, err := m.RegisterForwardHook("act", func(context.Context, ModuleInfo, []*Tensor, *Tensor) { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the hook's panic", p)
			}
		}()
		m.Forward(context.Background(), x)
		t.Error("Forward returned despite a panicking hook")
	}()
	if len(errs) != 2 || !errors.Is(errs[1], ErrCallAborted) {
		t.Errorf("call-end hook saw %v, want ErrCallAborted second", errs)
	}
}
