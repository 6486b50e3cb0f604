// Package plot draws pictures of recorded runs with gonum.org/v1/plot and
// writes them as PNG or SVG:
//
//   - [Stat]: a statistic (mean, std, min, max, l2, zeros, nan, inf, count, pNN)
//     over batches for one or several layers of one or several runs, overlaid,
//     one legend entry "run/layer" per series.
//   - [Hist]: a layer's activation histogram over batches as a heat map
//     (x = batch, y = activation value, colour = log10 of the fraction of the
//     batch's elements in the bin), and below it, in the same figure, the
//     whole-run merged histogram as a step line. Both charts are in one output
//     file, stacked vertically.
//   - [Diff]: a per-layer comparison metric of two runs (SQNR in dB, cosine
//     similarity or relative L2 error) in execution order as bars, the first
//     diverging layer in red and labelled, thresholds as dashed lines.
//
// Every chart has a title and axis labels with units. The y axis switches to a
// logarithmic scale on its own when the values are non-negative and span at
// least two decades; when some values are exactly zero (NaN counts are the
// usual case) it uses log(1+y), so that zeros stay visible.
//
// The bfloat16 buckets of store.Histogram are far finer than a picture can
// show; Hist regroups them into display bins (by default 2*sqrt(elements per
// column), between 48 and 96) evenly spread over the layer's value range,
// splitting each bucket's count over the display bins it overlaps in
// proportion to the overlap. Batches are regrouped the same way
// when there are more of them than columns (default at most 160): the
// histograms of neighbouring batches are merged, which is exact because the
// buckets are the same everywhere.
//
// Long series are decimated for drawing (min and max of every group of
// batches are kept, so spikes stay visible). NaN stat values break a line
// rather than being drawn.
//
// The package does not read the store: callers pass the rows they read
// (store.Store.Stats) or a computed diff. Figures are plain values, not safe
// for concurrent use; build one per goroutine. Rendering recovers from panics
// inside gonum plot and returns them as errors.
package plot
