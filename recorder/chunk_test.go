package recorder

import (
	"context"
	"math"
	"slices"
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
	for _, momentsOnly := range []bool{false, true} {
		st := openStore(t)
		m, ref := recipe(t), recipe(t)
		cfg := DefaultConfig()
		cfg.Mode = ModeBoth
		cfg.Samples = SamplePolicy{Indices: []int{0, 2, 4}}
		cfg.ChannelStats = true
		cfg.MomentsOnly = momentsOnly
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
					t.Errorf("moments-only %v: %s batch %d: stored %+v\nwant %+v", momentsOnly, path, row.Batch, row, want)
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
		if !momentsOnly && (r.derived.Load() != 3*batches || r.underived.Load() != 0) {
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
