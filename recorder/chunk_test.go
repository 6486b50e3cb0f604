package recorder

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// TestRecorderFusedChunks records every layer of RecipeCNN with nothing
// else hooked, so that nn runs its fused chains and delivers per-sample
// chunks from its workers, with concurrent Forward calls: every stored row
// and sampled tensor must equal what an identical, unfused model's outputs
// give (statistics counted in one piece, histogram and percentiles exactly,
// moments to rounding), NaN included.
func TestRecorderFusedChunks(t *testing.T) {
	for _, variant := range []string{"full", "full-no-channel-stats", "stats-only", "moments-only", "moments-only-no-channel-stats",
		"stats-in-workers", "stats-in-workers-no-channel-stats", "stats-in-workers-moments-only", "stats-in-workers-moments-only-no-channel-stats",
		"stats-in-workers-stats-only"} {
		momentsOnly := strings.Contains(variant, "moments-only")
		noChannels := strings.HasSuffix(variant, "no-channel-stats")
		statsOnly := strings.HasSuffix(variant, "stats-only") // no tensors: ReLUs counted in their inputs' pass (hooks), convolutions computed before bias (workers)
		st := openStore(t)
		m, ref := recipe(t), recipe(t)
		cfg := DefaultConfig()
		cfg.Mode = ModeBoth
		cfg.Samples = SamplePolicy{Indices: []int{0, 2, 4}}
		cfg.ChannelStats = true
		cfg.MomentsOnly = momentsOnly
		cfg.StatsInWorkers = strings.HasPrefix(variant, "stats-in-workers")
		if statsOnly {
			cfg.Mode = ModeStats
		}
		if statsOnly || noChannels {
			cfg.ChannelStats = false // (a ReLU with per-channel stats counts its own chunks)
		}
		r, err := New(st, store.RunInfo{Name: "fused"}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Attach(m, []int{1, 3, 28, 28}); err != nil {
			t.Fatal(err)
		}
		const batches, n = 4, 5
		xs := make([]*nn.Tensor, batches)
		for b := range xs {
			xs[b] = input(n, float32(b))
		}
		xs[1].Data[100] = float32(math.NaN())
		xs[2].Data[3*28*28+50] = float32(math.Inf(-1))
		var wg sync.WaitGroup
		for b := range xs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := m.Forward(WithBatch(context.Background(), Batch{Index: int64(b), DatasetIndex: int64(b * n)}), xs[b]); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		// reference outputs, unfused (a forward hook on every module)
		outs := map[string][][]float32{}
		h := ref.RegisterGlobalHook(func(_ context.Context, mi nn.ModuleInfo, _ []*nn.Tensor, out *nn.Tensor) {
			if mi.Leaf {
				outs[mi.Path] = append(outs[mi.Path], slices.Clone(out.Data))
			}
		})
		for _, x := range xs {
			if _, err := ref.Forward(context.Background(), x); err != nil {
				t.Fatal(err)
			}
		}
		h.Remove()
		for path, per := range outs {
			rows := readStats(t, st, "fused", path)
			if len(rows) != batches {
				t.Fatalf("%s: %d stats rows, want %d", path, len(rows), batches)
			}
			for _, row := range rows {
				data := per[row.Batch]
				want := computeStats(data)
				if momentsOnly {
					want.Hist = store.Histogram{}
					for i := range want.Percentiles {
						want.Percentiles[i] = math.NaN()
					}
				}
				if row.Count != want.Count || row.NaN != want.NaN || row.Inf != want.Inf || row.Min != want.Min || row.Max != want.Max ||
					row.ZeroFrac != want.ZeroFrac || !closeRel(row.Mean, want.Mean, 1e-9, 1e-12) || !closeRel(row.Std, want.Std, 1e-9, 1e-12) ||
					!closeRel(row.L2, want.L2, 1e-9, 1e-12) || !slices.Equal(row.Hist.Keys, want.Hist.Keys) || !slices.Equal(row.Hist.Counts, want.Hist.Counts) ||
					!sameFloats(row.Percentiles[:], want.Percentiles[:]) {
					t.Errorf("%s: %s batch %d: stored %+v\nwant %+v", variant, path, row.Batch, row, want)
				}
				if len(row.ChannelMean) > 0 {
					c := len(row.ChannelMean)
					mean, mx := channelStats(data, n, c, len(data)/(n*c))
					for i := range mean {
						if !closeRel(float64(row.ChannelMean[i]), float64(mean[i]), 1e-6, 1e-30) || !sameFloats([]float64{float64(row.ChannelMax[i])}, []float64{float64(mx[i])}) {
							t.Errorf("%s batch %d channel %d: mean/max %v/%v, want %v/%v", path, row.Batch, i, row.ChannelMean[i], row.ChannelMax[i], mean[i], mx[i])
						}
					}
				}
			}
			tr := readTensors(t, st, "fused", path)
			if statsOnly {
				if len(tr) != 0 {
					t.Errorf("%s: %d tensor rows in a stats-only run", path, len(tr))
				}
				continue
			}
			if len(tr) != batches*3 {
				t.Errorf("%s: %d tensor rows, want %d", path, len(tr), batches*3)
			}
			for k, row := range tr {
				d := per[k.batch]
				sz := len(d) / n
				if !sameBits32(row.Data, d[int(k.sample)*sz:int(k.sample+1)*sz]) || row.DatasetIndex != k.batch*n+int64(k.sample) {
					t.Errorf("%s batch %d sample %d: tensor differs from the output", path, k.batch, k.sample)
				}
			}
		}
		if len(outs) != 10 {
			t.Errorf("reference has %d layers", len(outs))
		}
		if (statsOnly || noChannels) && !cfg.StatsInWorkers && useAVX512 {
			for _, p := range []string{"conv1", "conv2", "fc1"} {
				if f := r.layers[p].fusedReLU; f == nil || f.from != r.layers[p] {
					t.Errorf("%s: no ReLU counted in its pass", p)
				}
			}
		}
		// With StatsInWorkers and no tensors, nn leaves the bias of
		// conv1 and conv2 to the worker (nn.RawChunkDest).
		if want := int64(0); cfg.StatsInWorkers && statsOnly && r.biasAdded.Load() != 2*batches || !(cfg.StatsInWorkers && statsOnly) && r.biasAdded.Load() != want {
			t.Errorf("%s: the worker added the bias of %d outputs", variant, r.biasAdded.Load())
		}
		if (strings.HasPrefix(variant, "full") || statsOnly || variant == "stats-in-workers" || variant == "stats-in-workers-no-channel-stats") && (r.derived.Load() != 3*batches || r.underived.Load() != 0) {
			t.Errorf("ReLU histograms derived %d times (%d not), want %d", r.derived.Load(), r.underived.Load(), 3*batches)
		}
	}
}

func sameFloats(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) })
}

func sameBits32(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool {
		return math.Float32bits(x) == math.Float32bits(y) || (x != x && y != y)
	})
}

// Layers whose output is their input's data (Dropout, Flatten) reuse the
// recorded input's row; the stored rows must be those of their outputs
// (per-channel stats only where the output has channels), and a ReLU after
// them derives its histogram through the reused rows. With StatsInWorkers,
// the worker derives all of them from the convolution's copy, including
// the sampled tensors, and a ReLU on the same input as the Dropout
// (applied in place in the copy) must not change the Dropout's data.
func TestRecorderReusedRows(t *testing.T) {
	b := nn.NewBuilder("reuse")
	x := b.Input("input", -1, 3, 4, 5)
	c := b.Add("conv", mustConv(t), x)
	ra := b.Add("relu_a", nn.NewReLU(), c)
	d := b.Add("drop", nn.NewDropout(0.5), c)
	sum := b.Add("sum", nn.NewAdd(), ra, d)
	f := b.Add("flat", nn.NewFlatten(1, -1), sum)
	y := b.Add("relu", nn.NewReLU(), f)
	m, err := b.Build(y)
	if err != nil {
		t.Fatal(err)
	}
	in := nn.NewTensor(6, 3, 4, 5)
	for i := range in.Data {
		in.Data[i] = float32(math.Sin(float64(i)))
	}
	in.Data[7] = float32(math.NaN())
	// reference outputs, unfused
	outs := map[string][]float32{}
	h := m.RegisterGlobalHook(func(_ context.Context, mi nn.ModuleInfo, _ []*nn.Tensor, out *nn.Tensor) {
		outs[mi.Path] = slices.Clone(out.Data)
	})
	if _, err := m.Forward(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	h.Remove()
	for _, workers := range []bool{false, true} {
		st := openStore(t)
		cfg := DefaultConfig()
		cfg.ChannelStats = true
		cfg.StatsInWorkers = workers
		cfg.Mode = ModeBoth
		cfg.Samples = SamplePolicy{Indices: []int{1, 4}}
		r, err := New(st, store.RunInfo{Name: "reuse"}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Attach(m, []int{1, 3, 4, 5}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Forward(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if l := r.layers["drop"]; l.kind != kindSame || l.from != r.layers["conv"] || r.layers["flat"].kind != kindSame || r.layers["relu"].kind != kindReLU || r.layers["relu_a"].kind != kindReLU {
			t.Fatalf("plan: drop %v flat %v relu %v", l.kind, r.layers["flat"].kind, r.layers["relu"].kind)
		}
		conv := readStats(t, st, "reuse", "conv")
		for _, p := range []string{"drop"} {
			rows := readStats(t, st, "reuse", p)
			if len(rows) != 1 || len(conv) != 1 {
				t.Fatalf("workers %v: %s: %d rows", workers, p, len(rows))
			}
			got, want := rows[0], conv[0]
			if p == "flat" {
				want.ChannelMean, want.ChannelMax = nil, nil
			}
			if got.Count != want.Count || got.Mean != want.Mean || got.NaN != want.NaN || !slices.Equal(got.Hist.Counts, want.Hist.Counts) ||
				!sameFloats(got.Percentiles[:], want.Percentiles[:]) || len(got.ChannelMean) != len(want.ChannelMean) {
				t.Errorf("workers %v: %s row %+v, want conv's %+v", workers, p, got, want)
			}
		}
		for _, p := range []string{"relu", "relu_a", "flat", "sum"} {
			rows := readStats(t, st, "reuse", p)
			want := computeStats(outs[p])
			if len(rows) != 1 || rows[0].Count != want.Count || rows[0].Min != want.Min || rows[0].Max != want.Max || rows[0].ZeroFrac != want.ZeroFrac ||
				!closeRel(rows[0].Mean, want.Mean, 1e-9, 1e-12) || !slices.Equal(rows[0].Hist.Counts, want.Hist.Counts) {
				t.Errorf("workers %v: %s rows %+v, want %+v", workers, p, rows, want)
			}
		}
		if r.derived.Load() != 2 {
			t.Errorf("workers %v: relu histogram derived %d times, want 2", workers, r.derived.Load())
		}
		for _, p := range []string{"conv", "drop", "relu_a", "sum", "flat", "relu"} {
			tr := readTensors(t, st, "reuse", p)
			d := outs[p]
			per := len(d) / 6
			if len(tr) != 2 {
				t.Errorf("workers %v: %s: %d tensor rows, want 2", workers, p, len(tr))
			}
			for k, row := range tr {
				if !sameBits32(row.Data, d[int(k.sample)*per:int(k.sample+1)*per]) {
					t.Errorf("workers %v: %s sample %d: tensor differs from the output", workers, p, k.sample)
				}
			}
		}
	}
}

func mustConv(t *testing.T) *nn.Conv2d {
	t.Helper()
	c, err := nn.NewConv2d(nn.Conv2dOptions{InChannels: 3, OutChannels: 2, KernelSize: [2]int{1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Weight.Data {
		c.Weight.Data[i] = float32(i) - 2
	}
	return c
}

var _ nn.ChunkFilter = (*chunkHook)(nil)

// The worker derives a ReLU's output from its input's copy with
// nn.ReLUSlice; it must give nn.ReLU's output bit for bit, NaN, -0, ±Inf
// and subnormals included.
func TestReLUSliceMatchesNN(t *testing.T) {
	vals := []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32, 1e-40, -1e-40}
	var x []float32
	for i := 0; i < 4100; i++ { // long enough for nn's vector kernels and their tails
		x = append(x, vals[i%len(vals)]*float32(1+i%3))
	}
	in, err := nn.FromSlice(slices.Clone(x), 1, len(x))
	if err != nil {
		t.Fatal(err)
	}
	want, err := (&nn.ReLU{}).Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	nn.ReLUSlice(x, x)
	for i := range x {
		if !sameBits32(x[i:i+1], want.Data[i:i+1]) {
			t.Fatalf("element %d: %v, nn.ReLU %v", i, x[i], want.Data[i])
		}
	}
}

// A fused conv→ReLU→MaxPool with a bias, attached with one spatial size and
// called with another, statistics in workers: the conv row must be that of
// the unhooked conv output (bias added once).
func TestRawChunkDestVariableSize(t *testing.T) {
	b := nn.NewBuilder("var")
	x := b.Input("input", -1, 3, -1, -1)
	conv := mustConv(t)
	conv.Bias.Data[0], conv.Bias.Data[1] = 100, -50
	c := b.Add("conv", conv, x)
	y := b.Add("relu", nn.NewReLU(), c)
	pool, err := nn.NewMaxPool2d(nn.PoolOptions{KernelSize: [2]int{2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	p := b.Add("pool", pool, y)
	m, err := b.Build(p)
	if err != nil {
		t.Fatal(err)
	}
	in := sinInput(2, 3, 6, 6)
	outs := leafOutputs(t, m, in)
	for _, workers := range []bool{false, true} {
		st, err := recordOnce(t, m, in, []int{1, 3, 4, 4}, workers, nil)
		if err != nil {
			t.Fatalf("workers %v: %v", workers, err)
		}
		rows := readStats(t, st, "w", "conv")
		want := computeStats(outs["conv"])
		if len(rows) != 1 || math.Abs(rows[0].Mean-want.Mean) > 1e-6 || rows[0].Max != want.Max {
			t.Errorf("workers %v: conv mean %v max %v, want mean %v max %v", workers, rows[0].Mean, rows[0].Max, want.Mean, want.Max)
		}
	}
}
