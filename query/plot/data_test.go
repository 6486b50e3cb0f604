package plot

import (
	"math"
	"math/rand/v2"

	"github.com/actrec/actrec/store"
)

// synthRows returns n stats rows of a layer whose activations are normal with a mean that
// drifts by drift per batch; relu clamps at zero; nanEvery > 0 puts NaNs in every
// nanEvery-th batch.
func synthRows(seed uint64, n int, drift float64, relu bool, nanEvery int) []store.StatsRow {
	rng := rand.New(rand.NewPCG(seed, 7))
	rows := make([]store.StatsRow, n)
	const per = 512
	vals := make([]float64, per)
	for b := range rows {
		counts := map[uint16]uint64{}
		var sum, sq, mn, mx float64 = 0, 0, math.Inf(1), math.Inf(-1)
		zeros := 0
		for i := range vals {
			v := rng.NormFloat64()*(1+0.01*float64(b)) + drift*float64(b)
			if relu && v < 0 {
				v = 0
			}
			vals[i] = v
			k, _ := store.HistogramKey(float32(v))
			counts[k]++
			sum += v
			sq += v * v
			mn, mx = math.Min(mn, v), math.Max(mx, v)
			if v == 0 {
				zeros++
			}
		}
		mean := sum / per
		r := store.StatsRow{
			Batch: int64(b), Count: per, Mean: mean, Std: math.Sqrt(sq/per - mean*mean),
			Min: mn, Max: mx, L2: math.Sqrt(sq), ZeroFrac: float64(zeros) / per,
			Hist: store.HistogramFromCounts(counts),
		}
		if nanEvery > 0 && b%nanEvery == 0 {
			r.NaN = int64(b * 10)
		}
		for i, q := range store.Quantiles {
			r.Percentiles[i] = r.Hist.Quantile(q)
		}
		rows[b] = r
	}
	return rows
}
