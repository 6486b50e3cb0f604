package recorder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// batchSets returns, per recorded layer of run, the sorted batch indices of
// its stats rows and of its tensor rows.
func batchSets(t *testing.T, st *store.Store, run string) (stats, tensors map[string][]int64) {
	t.Helper()
	layers, err := st.Layers(run)
	if err != nil {
		t.Fatal(err)
	}
	stats, tensors = map[string][]int64{}, map[string][]int64{}
	for _, l := range layers {
		var s []int64
		for _, row := range readStats(t, st, run, l.Path) {
			s = append(s, row.Batch)
		}
		stats[l.Path] = s
		var b []int64
		for k := range readTensors(t, st, run, l.Path) {
			if !slices.Contains(b, k.batch) {
				b = append(b, k.batch)
			}
		}
		slices.Sort(b)
		tensors[l.Path] = b
	}
	return stats, tensors
}

// With Policy Drop, a Forward call for which the queue has no room is
// skipped as a whole: no layer of the batch is recorded, dropped_batches
// counts exactly the skipped batches, and every layer of the run has the
// same batches (stats and tensors). The writer is blocked on batch 0 (the
// first call is admitted into the empty queue), or slow.
func TestRecorderDropSkipsWholeBatches(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capBytes int64
		batches  int
		blocked  bool
		delay    time.Duration
	}{
		{name: "blocked writer", capBytes: 1, batches: 10, blocked: true},
		{name: "slow writer", capBytes: 2 << 20, batches: 40, delay: 300 * time.Microsecond},
	} {
		for _, workers := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/workers=%v", tc.name, workers), func(t *testing.T) {
				m := recipe(t)
				st := openStore(t)
				cfg := DefaultConfig()
				cfg.Mode = ModeBoth
				cfg.Samples = SamplePolicy{Indices: []int{0, 2}}
				cfg.Policy = Drop
				cfg.StatsInWorkers = workers
				cfg.QueueBytes = tc.capBytes
				r, err := New(st, store.RunInfo{Name: "d"}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				release := make(chan struct{})
				r.beforeWrite = func(*item) error {
					if tc.blocked {
						<-release
					}
					time.Sleep(tc.delay)
					return nil
				}
				if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
					t.Fatal(err)
				}
				for b := 0; b < tc.batches; b++ {
					ctx := WithBatch(context.Background(), Batch{Index: int64(b), DatasetIndex: int64(4 * b)})
					if _, err := m.Forward(ctx, input(4, float32(b))); err != nil {
						t.Fatal(err)
					}
				}
				close(release)
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				stats, tensors := batchSets(t, st, "d")
				want := stats["conv1"]
				for _, l := range []string{"conv1", "relu1", "maxpool1", "conv2", "relu2", "maxpool2", "flatten", "fc1", "relu3", "fc2"} {
					if !slices.Equal(stats[l], want) {
						t.Errorf("%s: stats batches %v, conv1 has %v", l, stats[l], want)
					}
					if !slices.Equal(tensors[l], want) {
						t.Errorf("%s: tensor batches %v, stats have %v", l, tensors[l], want)
					}
				}
				c := r.Stats()
				if int(c.Dropped)+len(want) != tc.batches {
					t.Errorf("%d batches recorded + %d dropped, want %d", len(want), c.Dropped, tc.batches)
				}
				if tc.blocked && (!slices.Equal(want, []int64{0}) || c.Dropped != int64(tc.batches-1)) {
					t.Errorf("recorded batches %v, %d dropped; want [0], %d dropped", want, c.Dropped, tc.batches-1)
				}
				run, err := st.Run("d")
				if err != nil {
					t.Fatal(err)
				}
				if got := run.Meta["dropped_batches"]; got != fmt.Sprint(c.Dropped) {
					t.Errorf("dropped_batches = %q, counters say %d", got, c.Dropped)
				}
				// one call of 4 samples holds < 1 MiB of records (< 2 MiB with
				// the workers' output copies)
				if c.QueuePeak > max(tc.capBytes, 1<<20<<b2i(workers)) {
					t.Errorf("queue peak %d bytes", c.QueuePeak)
				}
				t.Logf("%d recorded, %d dropped, queue peak %d", len(want), c.Dropped, c.QueuePeak)
			})
		}
	}
}

// A Forward call cancelled midway returns without the root's forward hook;
// its unused reservation is released all the same (context.AfterFunc), so
// that with Policy Block and a tiny queue the next call is not left waiting
// for it forever (before the fix this test hangs).
func TestRecorderCancelledCallReleasesReservation(t *testing.T) {
	m := recipe(t)
	st := openStore(t)
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	cfg.Samples = SamplePolicy{Indices: []int{0}}
	cfg.QueueBytes = 1
	r, err := New(st, store.RunInfo{Name: "c"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := m.RegisterForwardPreHook("conv2", func(c context.Context, _ nn.ModuleInfo, _ []*nn.Tensor) {
		if c.Value(cancelKey{}) != nil {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	c0 := WithBatch(context.WithValue(ctx, cancelKey{}, true), Batch{Index: 0})
	if _, err := m.Forward(c0, input(4, 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Forward: %v", err)
	}
	if _, err := m.Forward(WithBatch(context.Background(), Batch{Index: 1, DatasetIndex: 4}), input(4, 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	stats, _ := batchSets(t, st, "c")
	for _, l := range []string{"conv1", "fc2"} {
		if !slices.Contains(stats[l], 1) {
			t.Errorf("%s: batches %v, want batch 1 among them", l, stats[l])
		}
	}
}

type cancelKey struct{}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
