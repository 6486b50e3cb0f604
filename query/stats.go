package query

import (
	"context"
	"fmt"
	"math"

	"github.com/actrec/actrec/store"
)

// StatsRow is the JSON/CSV form of one store.StatsRow (or of an aggregate
// over batches), with the layer it belongs to. Percentile fields are named
// after store.Quantiles. See doc.go for the schema.
type StatsRow struct {
	Layer string `json:"layer"`
	// Batch is the batch number; for an aggregate, the first batch.
	Batch int64 `json:"batch"`
	// Batches is the number of batches aggregated (1 for a plain row).
	Batches  int   `json:"batches"`
	Count    int64 `json:"count"`
	Mean     Float `json:"mean"`
	Std      Float `json:"std"`
	Min      Float `json:"min"`
	Max      Float `json:"max"`
	L2       Float `json:"l2"`
	ZeroFrac Float `json:"zero_frac"`
	NaN      int64 `json:"nan"`
	Inf      int64 `json:"inf"`
	P01      Float `json:"p01"`
	P05      Float `json:"p05"`
	P25      Float `json:"p25"`
	P50      Float `json:"p50"`
	P75      Float `json:"p75"`
	P95      Float `json:"p95"`
	P99      Float `json:"p99"`
	// HistBuckets is the number of non-empty histogram buckets.
	HistBuckets int `json:"hist_buckets"`
}

// statsRow converts a store row.
func statsRow(layer string, r store.StatsRow, batches int) StatsRow {
	p := r.Percentiles
	return StatsRow{
		Layer: layer, Batch: r.Batch, Batches: batches, Count: r.Count,
		Mean: Float(r.Mean), Std: Float(r.Std), Min: Float(r.Min), Max: Float(r.Max), L2: Float(r.L2),
		ZeroFrac: Float(r.ZeroFrac), NaN: r.NaN, Inf: r.Inf,
		P01: Float(p[0]), P05: Float(p[1]), P25: Float(p[2]), P50: Float(p[3]),
		P75: Float(p[4]), P95: Float(p[5]), P99: Float(p[6]),
		HistBuckets: len(r.Hist.Keys),
	}
}

// StatsOptions select what Stats returns.
type StatsOptions struct {
	Layers  []string         // layers to include; default all, in execution order
	Batches store.BatchRange // default all batches
	// Aggregate returns one row per layer, aggregated over the batches with
	// Aggregate (merged histograms, never averaged percentiles).
	Aggregate bool
}

// Stats returns the statistics rows of run, layer by layer in execution
// order and batch by batch. Layers without stats are skipped; when no row
// is selected at all the error (wrapping store.ErrNotFound) names the batch
// range and the batches the run has. It stops
// with ctx.Err() between layers once ctx is done.
func Stats(ctx context.Context, s *store.Store, run string, opts StatsOptions) ([]StatsRow, error) {
	layers, err := layerSummaries(s, run)
	if err != nil {
		return nil, err
	}
	layers, err = findLayers(layers, run, opts.Layers)
	if err != nil {
		return nil, err
	}
	var out []StatsRow
	for _, l := range layers {
		if l.StatsBatches == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows, err := s.Stats(run, l.Path, opts.Batches)
		if err != nil {
			return nil, fmt.Errorf("stats of %s/%s: %w", run, l.Path, err)
		}
		if len(rows) == 0 {
			continue
		}
		if opts.Aggregate {
			out = append(out, statsRow(l.Path, Aggregate(rows), len(rows)))
			continue
		}
		for _, r := range rows {
			out = append(out, statsRow(l.Path, r, 1))
		}
	}
	if len(out) == 0 {
		return nil, emptySelection(s, run, layers, opts.Batches, "stats")
	}
	return out, nil
}

// Aggregate combines stats rows of several batches (of one layer, or of
// anything whose values are pooled) into one row describing all their
// elements together:
//
//   - Count, NaN, Inf: sums; Min: min of mins; Max: max of maxes;
//   - Mean: weighted by the finite counts (Count-NaN-Inf);
//   - Std: pooled population std over all finite elements (Chan et al.'s
//     parallel combination of the per-batch means and variances);
//   - L2: sqrt of the sum of squared L2 norms; ZeroFrac: weighted by finite
//     counts;
//   - Hist: the merged histogram (store.Histogram.Merge), and Percentiles
//     read from it (store.Histogram.Quantile) — never averaged percentiles.
//     Batch is the first row's batch.
//
// Aggregate of no rows is the zero row with NaN statistics.
func Aggregate(rows []store.StatsRow) store.StatsRow {
	var out store.StatsRow
	if len(rows) == 0 {
		nan := math.NaN()
		out.Mean, out.Std, out.Min, out.Max = nan, nan, nan, nan
		for i := range out.Percentiles {
			out.Percentiles[i] = nan
		}
		return out
	}
	out.Batch = rows[0].Batch
	out.Min, out.Max = math.Inf(1), math.Inf(-1)
	var n, mean, m2, l2sq, zeros float64
	for _, r := range rows {
		out.Count += r.Count
		out.NaN += r.NaN
		out.Inf += r.Inf
		fin := float64(r.Count - r.NaN - r.Inf)
		if fin <= 0 {
			continue
		}
		out.Min = min(out.Min, r.Min)
		out.Max = max(out.Max, r.Max)
		l2sq += r.L2 * r.L2
		zeros += r.ZeroFrac * fin
		// Chan et al.: combine (n, mean, M2) with (fin, r.Mean, r.Std^2*fin).
		delta := r.Mean - mean
		tot := n + fin
		mean += delta * fin / tot
		m2 += r.Std*r.Std*fin + delta*delta*n*fin/tot
		n = tot
		out.Hist.Merge(r.Hist)
	}
	if n == 0 {
		nan := math.NaN()
		out.Mean, out.Std, out.Min, out.Max, out.ZeroFrac = nan, nan, nan, nan, nan
	} else {
		out.Mean = mean
		out.Std = math.Sqrt(max(0, m2/n))
		out.ZeroFrac = zeros / n
	}
	out.L2 = math.Sqrt(l2sq)
	for i, q := range store.Quantiles {
		out.Percentiles[i] = out.Hist.Quantile(q)
	}
	return out
}
