package store

// Quantiles are the probabilities of StatsRow.Percentiles, in order.
var Quantiles = [7]float64{0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99}

// StatsRow is the statistics of one layer's output for one batch. Count counts all elements;
// Mean, Std (population, ddof=0), Min, Max, L2 and ZeroFrac are over finite values only
// (ZeroFrac = zeros / finite count). NaN and Inf count the non-finite elements.
type StatsRow struct {
	Batch       int64
	Count       int64
	Mean        float64
	Std         float64
	Min         float64
	Max         float64
	L2          float64
	ZeroFrac    float64
	NaN         int64
	Inf         int64
	Percentiles [7]float64 // at Quantiles
	Hist        Histogram
	ChannelMean []float32 // optional, nil if not recorded
	ChannelMax  []float32 // optional, nil if not recorded
}
