package recorder

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

func zzFill(r *rand.Rand, ts ...*nn.Tensor) {
	for _, t := range ts {
		if t == nil {
			continue
		}
		for i := range t.Data {
			t.Data[i] = float32(r.NormFloat64())
		}
	}
}

func zzTailModel(t *testing.T, tail string, seed uint64) *nn.Model {
	r := rand.New(rand.NewPCG(seed, 1))
	conv, _ := nn.NewConv2d(nn.Conv2dOptions{InChannels: 2, OutChannels: 4, KernelSize: [2]int{3, 3}, Padding: [2]int{1, 1}})
	zzFill(r, conv.Weight, conv.Bias)
	pool, _ := nn.NewMaxPool2d(nn.PoolOptions{KernelSize: [2]int{2, 2}})
	b := nn.NewBuilder("m")
	x := b.Input("x", -1, 2, 8, 8)
	h := b.Add("conv", conv, x)
	h = b.Add("relu", nn.NewReLU(), h)
	h = b.Add("pool", pool, h)
	switch tail {
	case "sigmoid":
		h = b.Add("t1", nn.NewSigmoid(), h)
	case "bn":
		bn, err := nn.NewBatchNorm2d(nn.BatchNorm2dOptions{NumFeatures: 4})
		if err != nil {
			t.Fatal(err)
		}
		zzFill(r, bn.Weight, bn.Bias, bn.RunningMean)
		for i := range bn.RunningVar.Data {
			bn.RunningVar.Data[i] = 1
		}
		h = b.Add("t1", bn, h)
	case "flatten-relu":
		h = b.Add("t1", nn.NewFlatten(1, -1), h)
		h = b.Add("t2", nn.NewReLU(), h)
	case "dropout-relu":
		h = b.Add("t1", nn.NewDropout(0.1), h)
		h = b.Add("t2", nn.NewReLU(), h)
	case "relu":
		h = b.Add("t1", nn.NewReLU(), h)
	}
	if tail != "flatten-relu" {
		h = b.Add("flat", nn.NewFlatten(1, -1), h)
	}
	fc, _ := nn.NewLinear(nn.LinearOptions{InFeatures: 4 * 4 * 4, OutFeatures: 3})
	zzFill(r, fc.Weight, fc.Bias)
	h = b.Add("fc", fc, h)
	m, err := b.Build(h)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// conv->relu->pool->tail with StatsInWorkers (pool computed in the
// recorder's memory, nn.OutputDest) vs hooks mode vs an unhooked model:
// same outputs, same stored stats and tensors; concurrent calls.
func TestOutputDestRecorder(t *testing.T) {
	defer nn.SetThreads(nn.SetThreads(0))
	for _, tail := range []string{"sigmoid", "bn", "flatten-relu", "dropout-relu", "relu"} {
		for _, threads := range []int{1, 2} {
			nn.SetThreads(threads)
			const batches, n = 4, 3
			xs := make([]*nn.Tensor, batches)
			r := rand.New(rand.NewPCG(5, uint64(threads)))
			for b := range xs {
				xs[b] = nn.NewTensor(n, 2, 8, 8)
				zzFill(r, xs[b])
			}
			xs[1].Data[7] = float32(math.NaN())
			ref := zzTailModel(t, tail, 3)
			var wantOut [batches][]float32
			for b, x := range xs {
				y, err := ref.Forward(context.Background(), x)
				if err != nil {
					t.Fatal(err)
				}
				wantOut[b] = slices.Clone(y.Data)
			}
			stores := map[bool]*store.Store{}
			for _, workers := range []bool{false, true} {
				m := zzTailModel(t, tail, 3)
				st := openStore(t)
				cfg := DefaultConfig()
				cfg.Mode = ModeBoth
				cfg.Samples = SamplePolicy{Indices: []int{0, 2}}
				cfg.StatsInWorkers = workers
				cfg.ChannelStats = true
				rec, err := New(st, store.RunInfo{Name: "o"}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := rec.Attach(m, []int{1, 2, 8, 8}); err != nil {
					t.Fatal(err)
				}
				var lentSeen, poolItems int
				var lmu sync.Mutex
				rec.beforeWrite = func(it *item) error {
					lmu.Lock()
					defer lmu.Unlock()
					if it.layer == "pool" {
						poolItems++
						if it.lent {
							lentSeen++
						}
					}
					return nil
				}
				var wg sync.WaitGroup
				for b := range xs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						y, err := m.Forward(WithBatch(context.Background(), Batch{Index: int64(b), DatasetIndex: int64(b * n)}), xs[b])
						if err != nil {
							t.Error(err)
							return
						}
						if !sameBits32(y.Data, wantOut[b]) {
							t.Errorf("%s threads=%d workers=%v batch %d: model output differs from the unhooked model's", tail, threads, workers, b)
						}
					}()
				}
				wg.Wait()
				if err := rec.Close(); err != nil {
					t.Fatal(err)
				}
				stores[workers] = st
				if workers && lentSeen != batches {
					t.Errorf("%s threads=%d: %d of %d pool items lent (OutputDest not used)", tail, threads, lentSeen, poolItems)
				}
			}
			for _, p := range []string{"conv", "relu", "pool", "t1", "t2", "flat", "fc"} {
				a, b := readStatsOK(stores[false], p), readStatsOK(stores[true], p)
				if len(a) != len(b) {
					t.Errorf("%s %s: %d vs %d rows", tail, p, len(a), len(b))
					continue
				}
				slices.SortFunc(a, func(x, y store.StatsRow) int { return int(x.Batch - y.Batch) })
				slices.SortFunc(b, func(x, y store.StatsRow) int { return int(x.Batch - y.Batch) })
				for i := range a {
					x, y := a[i], b[i]
					if x.Count != y.Count || x.NaN != y.NaN || x.Inf != y.Inf || !sameF(x.Min, y.Min) || !sameF(x.Max, y.Max) || x.ZeroFrac != y.ZeroFrac ||
						!closeRel(x.Mean, y.Mean, 1e-9, 1e-12) || !closeRel(x.Std, y.Std, 1e-9, 1e-12) || !slices.Equal(x.Hist.Counts, y.Hist.Counts) {
						t.Errorf("%s threads=%d %s batch %d: hooks %+v\nworkers %+v", tail, threads, p, x.Batch, x, y)
					}
				}
				ta, tb := readTensorsOK(stores[false], p), readTensorsOK(stores[true], p)
				if len(ta) != len(tb) {
					t.Errorf("%s %s: %d vs %d tensors", tail, p, len(ta), len(tb))
				}
				for k, v := range ta {
					if w, ok := tb[k]; !ok || !sameBits32(v.Data, w.Data) {
						t.Errorf("%s threads=%d %s %v: tensor differs", tail, threads, p, k)
					}
				}
			}
		}
	}
}

func sameF(a, b float64) bool { return a == b || (a != a && b != b) }

func readStatsOK(st *store.Store, layer string) []store.StatsRow {
	rows, _ := st.Stats("o", layer, store.BatchRange{})
	return rows
}

func readTensorsOK(st *store.Store, layer string) map[string]store.TensorRow {
	out := map[string]store.TensorRow{}
	_ = st.Tensors("o", layer, store.BatchRange{}, func(r store.TensorRow) error {
		r.Data = slices.Clone(r.Data)
		out[fmt.Sprint(r.Batch, "/", r.Sample)] = r
		return nil
	})
	return out
}
