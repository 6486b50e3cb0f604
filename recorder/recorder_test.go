package recorder

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

func openStore(t testing.TB) *store.Store {
	t.Helper()
	opts := store.DefaultOptions()
	opts.NoSync = true
	st, err := store.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func recipe(t testing.TB) *nn.Model {
	t.Helper()
	m, err := nn.RecipeCNN(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// input returns a [n 3 28 28] tensor whose values depend on seed.
func input(n int, seed float32) *nn.Tensor {
	x := nn.NewTensor(n, 3, 28, 28)
	for i := range x.Data {
		x.Data[i] = float32(math.Sin(float64(i)*0.01+float64(seed))) * (1 + seed/10)
	}
	return x
}

type tensorKey struct {
	batch  int64
	sample int32
}

func readTensors(t *testing.T, st *store.Store, run, layer string) map[tensorKey]store.TensorRow {
	t.Helper()
	out := map[tensorKey]store.TensorRow{}
	err := st.Tensors(run, layer, store.BatchRange{}, func(r store.TensorRow) error {
		r.Data = slices.Clone(r.Data)
		out[tensorKey{r.Batch, r.Sample}] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readStats(t *testing.T, st *store.Store, run, layer string) []store.StatsRow {
	t.Helper()
	rows, err := st.Stats(run, layer, store.BatchRange{})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// capture registers a hook that keeps a copy of every output of path, in
// call order (use with sequential Forward calls only).
func capture(t *testing.T, m *nn.Model, path string) *[][]float32 {
	t.Helper()
	var outs [][]float32
	h, err := m.RegisterForwardHook(path, func(_ context.Context, _ nn.ModuleInfo, _ []*nn.Tensor, out *nn.Tensor) {
		outs = append(outs, slices.Clone(out.Data))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Remove)
	return &outs
}

// The recorded batches and samples are exactly the configured ones, with
// the right data, stats and dataset indices.
func TestRecorderSelection(t *testing.T) {
	st := openStore(t)
	m := recipe(t)
	relu1 := capture(t, m, "relu1")
	fc1 := capture(t, m, "fc1")
	cfg := DefaultConfig()
	cfg.Layers = []string{"relu1", "fc1", "op:Conv2d"}
	cfg.Overrides = []LayerMode{{Select: "relu1", Mode: ModeBoth}, {Select: "fc1", Mode: ModeTensors}}
	cfg.Batches = BatchPolicy{Every: 2}
	cfg.TensorBatches = BatchPolicy{Ranges: "2-"}
	cfg.Samples = SamplePolicy{Indices: []int{0, 2}}
	cfg.ChannelStats = true
	r, err := New(st, store.RunInfo{Name: "sel", Input: "synthetic sin"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
		t.Fatal(err)
	}
	const batches, n = 7, 4
	for b := 0; b < batches; b++ {
		if _, err := m.Forward(context.Background(), input(n, float32(b))); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	layers, err := st.Layers("sel")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, l := range layers {
		paths = append(paths, l.Path)
	}
	if want := []string{"conv1", "relu1", "conv2", "fc1"}; !slices.Equal(paths, want) {
		t.Fatalf("run layers %v, want %v", paths, want)
	}
	if !slices.Equal(layers[1].Shape, []int{32, 26, 26}) {
		t.Errorf("relu1 per-sample shape %v, want [32 26 26]", layers[1].Shape)
	}

	// Stats: relu1, conv1, conv2 at batches 0, 2, 4, 6; fc1 has none (tensors only).
	for _, layer := range []string{"relu1", "conv1", "conv2"} {
		rows := readStats(t, st, "sel", layer)
		var got []int64
		for _, row := range rows {
			got = append(got, row.Batch)
		}
		if !slices.Equal(got, []int64{0, 2, 4, 6}) {
			t.Errorf("%s stats batches %v, want [0 2 4 6]", layer, got)
		}
	}
	if rows := readStats(t, st, "sel", "fc1"); len(rows) != 0 {
		t.Errorf("fc1 has %d stats rows, want 0 (tensors only)", len(rows))
	}
	for _, row := range readStats(t, st, "sel", "conv2") {
		if len(row.ChannelMean) != 64 || len(row.ChannelMax) != 64 {
			t.Fatalf("conv2 batch %d: %d channel means, %d maxima, want 64", row.Batch, len(row.ChannelMean), len(row.ChannelMax))
		}
	}
	// The stored stats are those of the layer output.
	for _, row := range readStats(t, st, "sel", "relu1") {
		mean, mx := channelStats((*relu1)[row.Batch], n, 32, 26*26)
		if !slices.Equal(row.ChannelMean, mean) || !slices.Equal(row.ChannelMax, mx) {
			t.Errorf("relu1 batch %d: channel stats differ", row.Batch)
		}
		want := computeStats((*relu1)[row.Batch])
		if row.Count != want.Count || row.Max != want.Max || row.ZeroFrac != want.ZeroFrac ||
			!closeRel(row.Mean, want.Mean, 1e-12, 0) || !closeRel(row.Std, want.Std, 1e-12, 0) || !closeRel(row.L2, want.L2, 1e-12, 0) ||
			row.Percentiles != want.Percentiles || !slices.Equal(row.Hist.Keys, want.Hist.Keys) || !slices.Equal(row.Hist.Counts, want.Hist.Counts) {
			t.Errorf("relu1 batch %d: stored stats (count %d mean %v std %v max %v zero %v p %v, %d buckets) differ from computed (%d %v %v %v %v %v, %d buckets)",
				row.Batch, row.Count, row.Mean, row.Std, row.Max, row.ZeroFrac, row.Percentiles, len(row.Hist.Keys),
				want.Count, want.Mean, want.Std, want.Max, want.ZeroFrac, want.Percentiles, len(want.Hist.Keys))
		}
	}

	// Tensors: batches 2, 4, 6 (Every 2 and 2-), samples 0 and 2.
	for _, c := range []struct {
		layer string
		outs  *[][]float32
	}{{"relu1", relu1}, {"fc1", fc1}} {
		got := readTensors(t, st, "sel", c.layer)
		var keys []tensorKey
		for k := range got {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b tensorKey) int {
			if a.batch != b.batch {
				return int(a.batch - b.batch)
			}
			return int(a.sample - b.sample)
		})
		want := []tensorKey{{2, 0}, {2, 2}, {4, 0}, {4, 2}, {6, 0}, {6, 2}}
		if !slices.Equal(keys, want) {
			t.Fatalf("%s tensor rows %v, want %v", c.layer, keys, want)
		}
		for k, row := range got {
			full := (*c.outs)[k.batch]
			per := len(full) / n
			if !slices.Equal(row.Data, full[int(k.sample)*per:int(k.sample+1)*per]) {
				t.Errorf("%s batch %d sample %d: data differs from the layer output", c.layer, k.batch, k.sample)
			}
			if row.DatasetIndex != k.batch*n+int64(k.sample) {
				t.Errorf("%s batch %d sample %d: dataset index %d, want %d", c.layer, k.batch, k.sample, row.DatasetIndex, k.batch*n+int64(k.sample))
			}
		}
	}

	run, err := st.Run("sel")
	if err != nil {
		t.Fatal(err)
	}
	if run.State != store.StateComplete || run.Model != "recipe-cnn" || run.Input != "synthetic sin" ||
		run.GoVersion != runtime.Version() || len(run.WeightsHash) != len("sha256:")+64 || len(run.Config) == 0 {
		t.Errorf("run provenance: %+v", run.RunInfo)
	}
	if run.Meta["dropped_batches"] != "0" {
		t.Errorf("dropped_batches = %q, want 0", run.Meta["dropped_batches"])
	}
	if n := r.derived.Load(); n != 4 {
		t.Errorf("relu1 histogram derived from conv1's %d times, want 4", n)
	}
	if c := r.Stats(); c.Batches != batches || c.StatsRows != 12 || c.TensorRows != 12 {
		t.Errorf("counters %+v, want 7 batches, 12 stats rows, 12 tensor rows", c)
	}
}

// recordRun records batches batches of a [8 4] tensor on layer "x" with the
// framework-free entry point and returns the (batch, sample) keys stored.
func recordRun(t *testing.T, cfg Config, batches int) []tensorKey {
	t.Helper()
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: "r"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{4}}}); err != nil {
		t.Fatal(err)
	}
	x := nn.NewTensor(8, 4)
	for b := 0; b < batches; b++ {
		for i := range x.Data {
			x.Data[i] = float32(b*100 + i)
		}
		if err := r.Record(context.Background(), "x", Batch{Index: int64(b), DatasetIndex: int64(b * 8)}, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var keys []tensorKey
	for k, row := range readTensors(t, st, "r", "x") {
		if row.Data[0] != float32(k.batch*100+int64(k.sample)*4) {
			t.Fatalf("batch %d sample %d holds data of another sample: %v", k.batch, k.sample, row.Data)
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b tensorKey) int {
		if a.batch != b.batch {
			return int(a.batch - b.batch)
		}
		return int(a.sample - b.sample)
	})
	return keys
}

func TestRecorderSeededSelectionRepeats(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeTensors
	cfg.Batches = BatchPolicy{Probability: 0.5, Seed: 99}
	cfg.Samples = SamplePolicy{Random: 3, Seed: 5}
	a := recordRun(t, cfg, 40)
	b := recordRun(t, cfg, 40)
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Fatalf("same seeds, different selections:\n%v\n%v", a, b)
	}
	// Every selected batch has exactly 3 distinct samples, and the batches
	// are those of the policy.
	f := newBatchFilter(cfg.Batches, time.Now)
	perBatch := map[int64]int{}
	for _, k := range a {
		perBatch[k.batch]++
	}
	for bi := int64(0); bi < 40; bi++ {
		want := 0
		if f.keep(bi) {
			want = 3
		}
		if perBatch[bi] != want {
			t.Errorf("batch %d: %d samples, want %d", bi, perBatch[bi], want)
		}
	}
	cfg.Samples.Seed = 6
	if c := recordRun(t, cfg, 40); slices.Equal(a, c) {
		t.Error("another sample seed gave the same selection")
	}
}

func TestRecorderTensorBudget(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	cfg.Samples = SamplePolicy{First: 2}
	cfg.TensorBudget = 5 * 2 * 4 * 4 // five batches of 2 samples of 4 floats
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: "budget"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{4}}}); err != nil {
		t.Fatal(err)
	}
	x := nn.NewTensor(8, 4)
	for b := int64(0); b < 9; b++ {
		if err := r.Record(context.Background(), "x", Batch{Index: b}, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(readTensors(t, st, "budget", "x")); n != 10 {
		t.Errorf("%d tensor rows, want 10 (5 batches within budget)", n)
	}
	if n := len(readStats(t, st, "budget", "x")); n != 9 {
		t.Errorf("%d stats rows, want 9 (stats continue)", n)
	}
	run, _ := st.Run("budget")
	if got := run.Meta["tensor_budget_reached_at_batch"]; got != "5" {
		t.Errorf("tensor_budget_reached_at_batch = %q, want 5", got)
	}
}

// With the Drop policy, a full queue drops batches and counts them.
func TestRecorderDropPolicy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Policy = Drop
	cfg.QueueBytes = 1 // any queued item fills the queue
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: "drop"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	r.beforeWrite = func(*item) error { <-release; return nil }
	if err := r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{4}}}); err != nil {
		t.Fatal(err)
	}
	x := nn.NewTensor(2, 4)
	const batches = 20
	for b := int64(0); b < batches; b++ {
		if err := r.Record(context.Background(), "x", Batch{Index: b}, x); err != nil {
			t.Fatal(err)
		}
	}
	close(release) // the writer was stuck on batch 0 all along
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if c := r.Stats(); c.Dropped != batches-1 || c.StatsRows != 1 {
		t.Errorf("counters %+v, want %d dropped, 1 written", c, batches-1)
	}
	if rows := readStats(t, st, "drop", "x"); len(rows) != 1 || rows[0].Batch != 0 {
		t.Errorf("stored stats rows %v, want batch 0 only", rows)
	}
	run, _ := st.Run("drop")
	if got := run.Meta["dropped_batches"]; got != fmt.Sprint(batches-1) {
		t.Errorf("dropped_batches = %q, want %d", got, batches-1)
	}
}

// With the Block policy and a tiny queue, Close loses nothing.
func TestRecorderCloseLosesNothing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	cfg.QueueBytes = 1024
	cfg.Workers = 2
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: "all"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var slow atomic.Int64
	r.beforeWrite = func(*item) error {
		if slow.Add(1)%10 == 0 {
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	if err := r.Declare([]store.LayerInfo{{Path: "a", Op: "Identity", Shape: []int{4}}, {Path: "b", Op: "Identity", Shape: []int{4}, Order: 1}}); err != nil {
		t.Fatal(err)
	}
	const batches = 200
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := nn.NewTensor(3, 4)
			for b := g; b < batches; b += 4 {
				for _, l := range []string{"a", "b"} {
					if err := r.Record(context.Background(), l, Batch{Index: int64(b)}, x); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"a", "b"} {
		if n := len(readStats(t, st, "all", l)); n != batches {
			t.Errorf("layer %s: %d stats rows, want %d", l, n, batches)
		}
		if n := len(readTensors(t, st, "all", l)); n != 3*batches {
			t.Errorf("layer %s: %d tensor rows, want %d", l, n, 3*batches)
		}
	}
	if p := r.Stats().QueuePeak; p > 1024+2*(3*4*4+3*48+256+64*10) {
		t.Errorf("queue peak %d bytes far above the 1024-byte cap", p)
	}
}

// Concurrent Forward calls record each call under its own batch, whether
// the batch comes from WithBatch or is assigned per call.
func TestRecorderConcurrentForward(t *testing.T) {
	for _, explicit := range []bool{true, false} {
		t.Run(fmt.Sprintf("WithBatch=%v", explicit), func(t *testing.T) {
			st := openStore(t)
			m := recipe(t)
			// Expected outputs per input seed, from a plain model.
			plain := recipe(t)
			const calls = 12
			want := map[float32][2][]float32{} // seed -> relu1 sample 0, fc2 sample 0
			outs := map[string][]float32{}
			for _, p := range []string{"relu1", "fc2"} {
				p := p
				h, _ := plain.RegisterForwardHook(p, func(_ context.Context, _ nn.ModuleInfo, _ []*nn.Tensor, out *nn.Tensor) {
					per := len(out.Data) / out.Shape[0]
					outs[p] = slices.Clone(out.Data[:per])
				})
				defer h.Remove()
			}
			for c := 0; c < calls; c++ {
				if _, err := plain.Forward(context.Background(), input(2, float32(c))); err != nil {
					t.Fatal(err)
				}
				want[float32(c)] = [2][]float32{outs["relu1"], outs["fc2"]}
			}

			cfg := DefaultConfig()
			cfg.Layers = []string{"relu1", "fc2"}
			cfg.Mode = ModeBoth
			cfg.Samples = SamplePolicy{Indices: []int{0}}
			r, err := New(st, store.RunInfo{Name: "conc"}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for c := g; c < calls; c += 4 {
						ctx := context.Background()
						if explicit {
							ctx = WithBatch(ctx, Batch{Index: int64(c), DatasetIndex: int64(2 * c)})
						}
						if _, err := m.Forward(ctx, input(2, float32(c))); err != nil {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			relu1 := readTensors(t, st, "conc", "relu1")
			fc2 := readTensors(t, st, "conc", "fc2")
			if len(relu1) != calls || len(fc2) != calls {
				t.Fatalf("%d relu1 and %d fc2 rows, want %d each", len(relu1), len(fc2), calls)
			}
			seen := map[float32]bool{}
			for k, a := range relu1 {
				b, ok := fc2[k]
				if !ok {
					t.Fatalf("batch %d: relu1 row without fc2 row", k.batch)
				}
				// Find the input whose outputs these are; both layers must
				// agree on it.
				found := false
				for seed, w := range want {
					if slices.Equal(a.Data, w[0]) {
						found = true
						seen[seed] = true
						if !slices.Equal(b.Data, w[1]) {
							t.Errorf("batch %d: relu1 from input %v but fc2 from another call", k.batch, seed)
						}
						if explicit && int64(seed) != k.batch {
							t.Errorf("batch %d holds data of call %v", k.batch, seed)
						}
					}
				}
				if !found {
					t.Errorf("batch %d: relu1 data matches no input", k.batch)
				}
			}
			if len(seen) != calls {
				t.Errorf("%d distinct inputs recorded, want %d", len(seen), calls)
			}
		})
	}
}

// A writer error surfaces on the next Record and on Close, and the run is
// closed as interrupted.
func TestRecorderWriterError(t *testing.T) {
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: "err"}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	r.beforeWrite = func(*item) error { return boom }
	if err := r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{4}}}); err != nil {
		t.Fatal(err)
	}
	x := nn.NewTensor(2, 4)
	if err := r.Record(context.Background(), "x", Batch{Index: 0}, x); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := r.Record(context.Background(), "x", Batch{Index: 1}, x); !errors.Is(err, boom) {
		t.Fatalf("Record after writer error = %v, want %v", err, boom)
	}
	if err := r.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close = %v, want %v", err, boom)
	}
	run, _ := st.Run("err")
	if run.State != store.StateInterrupted {
		t.Errorf("run state %q, want interrupted", run.State)
	}
}

func TestRecorderRecordErrors(t *testing.T) {
	st := openStore(t)
	cfg := DefaultConfig()
	cfg.Mode = ModeTensors
	r, err := New(st, store.RunInfo{Name: "e"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	x := nn.NewTensor(2, 4)
	if err := r.Record(context.Background(), "x", Batch{}, x); err == nil {
		t.Error("Record before Declare: no error")
	}
	if err := r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{4}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(context.Background(), "y", Batch{}, x); err == nil {
		t.Error("Record of an undeclared layer: no error")
	}
	if err := r.Record(context.Background(), "x", Batch{}, nn.NewTensor(2, 5)); err == nil {
		t.Error("Record with the wrong per-sample shape: no error")
	}
	r.SetEnabled(false)
	if err := r.Record(context.Background(), "x", Batch{Index: 1}, x); err != nil {
		t.Error(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(context.Background(), "x", Batch{Index: 2}, x); err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v", err)
	}
	if n := len(readTensors(t, st, "e", "x")); n != 0 {
		t.Errorf("%d rows recorded while disabled, failing or closed", n)
	}
}

func TestRecorderAttachErrors(t *testing.T) {
	st := openStore(t)
	cfg := DefaultConfig()
	cfg.Layers = []string{"relu7"}
	r, err := New(st, store.RunInfo{Name: "a"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(recipe(t), []int{1, 3, 28, 28}); err == nil {
		t.Fatal("unknown layer: no error")
	}
	if _, err := New(st, store.RunInfo{}, DefaultConfig()); err == nil {
		t.Error("empty run name: no error")
	}
}

// Detach and SetEnabled stop recording without touching the model.
func TestRecorderDetachAndDisable(t *testing.T) {
	st := openStore(t)
	m := recipe(t)
	cfg := DefaultConfig()
	cfg.Layers = []string{"fc2"}
	r, err := New(st, store.RunInfo{Name: "d"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
		t.Fatal(err)
	}
	fwd := func(b int64) {
		if _, err := m.Forward(WithBatch(context.Background(), Batch{Index: b}), input(1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	fwd(0)
	r.SetEnabled(false)
	fwd(1)
	r.SetEnabled(true)
	fwd(2)
	r.Detach()
	fwd(3)
	if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
		t.Fatal(err)
	}
	fwd(4)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	fwd(5) // Close detached the hooks
	if err := r.Attach(m, []int{1, 3, 28, 28}); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close = %v, want ErrClosed", err)
	}
	var got []int64
	for _, row := range readStats(t, st, "d", "fc2") {
		got = append(got, row.Batch)
	}
	if !slices.Equal(got, []int64{0, 2, 4}) {
		t.Errorf("recorded batches %v, want [0 2 4]", got)
	}
}

// The heap stays within the queue cap plus a constant however long the
// recording: the queue never holds more than its cap, the live heap (after
// GC) over 3000 batches with an 8 MiB queue and a store buffering up to
// 4 MiB stays below cap + 48 MiB, and the HeapInuse peak (garbage included)
// below cap + 128 MiB. (BenchmarkLongRecording reports the figures for
// 10,000 batches.)
func TestRecorderMemoryBounded(t *testing.T) {
	const capBytes = 8 << 20
	peak, live, _, queuePeak := longRecordingQ(t, 3000, capBytes)
	t.Logf("queue peak %.1f MiB, peak live heap %.1f MiB, peak HeapInuse %.1f MiB with a %d MiB queue",
		float64(queuePeak)/(1<<20), float64(live)/(1<<20), float64(peak)/(1<<20), capBytes>>20)
	if queuePeak > capBytes {
		t.Errorf("queue peak %d bytes > cap %d", queuePeak, capBytes)
	}
	if limit := uint64(capBytes + 48<<20); live > limit {
		t.Errorf("peak live heap %d bytes > queue cap + 48 MiB", live)
	}
	if limit := uint64(capBytes + 128<<20); peak > limit {
		t.Errorf("peak HeapInuse %d bytes > queue cap + 128 MiB", peak)
	}
}

// Containers are recorded like leaves, and globs match dotted paths.
func TestRecorderContainersAndGlobs(t *testing.T) {
	b := nn.NewBuilder("tiny")
	x := b.Input("input", -1, 4)
	b.Container("block1", "Block")
	b.Container("block2", "Block")
	x = b.Add("block1.act", nn.NewReLU(), x)
	x = b.Add("block1.sig", nn.NewSigmoid(), x)
	x = b.Add("block2.act", nn.NewTanh(), x)
	m, err := b.Build(x)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	cfg := DefaultConfig()
	cfg.Layers = []string{"block*", "*.act"}
	cfg.Mode = ModeBoth
	r, err := New(st, store.RunInfo{Name: "c"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 4}); err != nil {
		t.Fatal(err)
	}
	in, _ := nn.FromSlice([]float32{-1, 0, 1, 2, 3, -4, 5, 6}, 2, 4)
	out, err := m.Forward(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	layers, err := st.Layers("c")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, l := range layers {
		got[l.Path] = true
	}
	for _, p := range []string{"block1", "block2", "block1.act", "block2.act"} {
		if !got[p] {
			t.Errorf("layer %s not recorded (have %v)", p, got)
		}
	}
	if got["block1.sig"] {
		t.Error("block1.sig recorded but not selected")
	}
	// block2's output is the model output.
	rows := readTensors(t, st, "c", "block2")
	if len(rows) != 2 || !slices.Equal(rows[tensorKey{0, 1}].Data, out.Data[4:]) {
		t.Errorf("block2 rows %v, want the model output %v", rows, out.Data)
	}
}

// A ReLU's histogram derived from its input's equals the one counted from
// its output, including signed zeros and subnormals (nn's ReLU keeps -0),
// and with NaN and ±Inf in the input (the derivation holds for any
// y = ReLU(x): NaN and +Inf stay non-finite, -Inf becomes a counted zero).
func TestRecorderReLUDerivedHistogram(t *testing.T) {
	b := nn.NewBuilder("relu")
	x := b.Input("input", -1, 2048)
	x = b.Add("flat", nn.NewFlatten(1, -1), x)
	x = b.Add("relu", nn.NewReLU(), x)
	x = b.Add("relu2", nn.NewReLU(), x)
	m, err := b.Build(x)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: "relu"}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 2048}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(21, 22))
	outs := map[string][][]float32{}
	for _, p := range []string{"relu", "relu2"} {
		p := p
		h, _ := m.RegisterForwardHook(p, func(_ context.Context, _ nn.ModuleInfo, _ []*nn.Tensor, out *nn.Tensor) {
			outs[p] = append(outs[p], slices.Clone(out.Data))
		})
		defer h.Remove()
	}
	const batches = 4
	for i := 0; i < batches; i++ {
		in := nn.NewTensor(3, 2048)
		for j := range in.Data {
			in.Data[j] = float32(rng.NormFloat64())
			switch j % 7 {
			case 1:
				in.Data[j] = float32(math.Copysign(0, -1))
			case 2:
				in.Data[j] = 0
			case 3:
				in.Data[j] = -math.Float32frombits(uint32(rng.IntN(1 << 23)))
			case 4:
				in.Data[j] = math.Float32frombits(uint32(rng.IntN(1 << 23)))
			}
		}
		switch i {
		case 2:
			in.Data[10] = float32(math.NaN())
			in.Data[11] = float32(math.Inf(1))
			in.Data[12] = float32(math.Inf(-1))
		case 3:
			for j := range in.Data {
				in.Data[j] = -float32(j + 1) // all negative: ReLU output all zeros
			}
		}
		if _, err := m.Forward(WithBatch(context.Background(), Batch{Index: int64(i)}), in); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// relu from flat and relu2 from relu, in every batch.
	if n := r.derived.Load(); n != 2*batches || r.underived.Load() != 0 {
		t.Errorf("derived %d times (%d not), want %d", n, r.underived.Load(), 2*batches)
	}
	for _, p := range []string{"relu", "relu2"} {
		rows := readStats(t, st, "relu", p)
		if len(rows) != batches {
			t.Fatalf("%s: %d rows", p, len(rows))
		}
		for _, row := range rows {
			want := computeStats(outs[p][row.Batch])
			if !slices.Equal(row.Hist.Keys, want.Hist.Keys) || !slices.Equal(row.Hist.Counts, want.Hist.Counts) ||
				row.Percentiles != want.Percentiles || row.ZeroFrac != want.ZeroFrac || row.Count != want.Count ||
				row.NaN != want.NaN || row.Min != want.Min || row.Max != want.Max || !closeRel(row.Mean, want.Mean, 1e-12, 0) {
				t.Errorf("%s batch %d: stored stats differ from the output's: %d buckets zero %v p %v vs %d buckets zero %v p %v",
					p, row.Batch, len(row.Hist.Keys), row.ZeroFrac, row.Percentiles, len(want.Hist.Keys), want.ZeroFrac, want.Percentiles)
			}
		}
	}
}

// Close while other goroutines are in Forward: no error, no race, and every
// row handed to the queue before Close is in the store.
func TestRecorderCloseDuringForward(t *testing.T) {
	st := openStore(t)
	m := recipe(t)
	cfg := DefaultConfig()
	cfg.Layers = []string{"fc1", "fc2"}
	r, err := New(st, store.RunInfo{Name: "cd"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := input(2, float32(g))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := m.Forward(context.Background(), x); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Errorf("Close during Forward = %v", err)
	}
	close(stop)
	wg.Wait()
	if err := r.Err(); err != nil {
		t.Errorf("Err after Close = %v", err)
	}
	c := r.Stats()
	if n := len(readStats(t, st, "cd", "fc2")) + len(readStats(t, st, "cd", "fc1")); int64(n) != c.StatsRows {
		t.Errorf("store has %d stats rows, recorder wrote %d", n, c.StatsRows)
	}
}

func TestRecorderCloseAsInterrupted(t *testing.T) {
	st := openStore(t)
	r, err := New(st, store.RunInfo{Name: "int"}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{4}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(context.Background(), "x", Batch{}, nn.NewTensor(2, 4)); err != nil {
		t.Fatal(err)
	}
	if err := r.CloseAs(store.StateInterrupted); err != nil {
		t.Fatal(err)
	}
	run, err := st.Run("int")
	if err != nil {
		t.Fatal(err)
	}
	if run.State != store.StateInterrupted || len(readStats(t, st, "int", "x")) != 1 {
		t.Errorf("state %q with %d rows, want interrupted with 1 row", run.State, len(readStats(t, st, "int", "x")))
	}
}

func TestRecorderMomentsOnly(t *testing.T) {
	st := openStore(t)
	cfg := DefaultConfig()
	cfg.MomentsOnly = true
	r, err := New(st, store.RunInfo{Name: "mo"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{3}}}); err != nil {
		t.Fatal(err)
	}
	x, _ := nn.FromSlice([]float32{0, 1, -2, 3, float32(math.NaN()), 0}, 2, 3)
	if err := r.Record(context.Background(), "x", Batch{}, x); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	rows := readStats(t, st, "mo", "x")
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	got, want := rows[0], computeStats(x.Data)
	if got.Count != 6 || got.NaN != 1 || got.Mean != want.Mean || got.Std != want.Std || got.Min != -2 || got.Max != 3 ||
		got.ZeroFrac != want.ZeroFrac || got.L2 != want.L2 || len(got.Hist.Keys) != 0 || !math.IsNaN(got.Percentiles[3]) {
		t.Errorf("moments-only row %+v, want moments of %+v without histogram or percentiles", got, want)
	}
}
