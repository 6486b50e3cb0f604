package query

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/actrec/actrec/store"
)

// statsColumns are the CSV columns of a stats export, in order.
var statsColumns = []string{"run", "layer", "batch", "count", "mean", "std", "min", "max", "l2", "zero_frac",
	"nan", "inf", "p01", "p05", "p25", "p50", "p75", "p95", "p99", "hist_buckets"}

// StatsLine is one line of a jsonl stats export.
type StatsLine struct {
	Run string `json:"run"`
	StatsRow
}

// csvFloat formats a float for CSV so that it reads back exactly (pandas
// and numpy parse "nan", "inf" and "-inf").
func csvFloat(f Float) string {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func exportStats(ctx context.Context, s *store.Store, run string, layers []store.LayerSummary, opts ExportOptions, w io.Writer, res *ExportResult) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var cw *csv.Writer
	enc := json.NewEncoder(bw)
	if opts.Format == FormatCSV {
		cw = csv.NewWriter(bw)
		if err := cw.Write(statsColumns); err != nil {
			return err
		}
	}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		rows, err := s.Stats(run, l.Path, opts.Batches)
		if err != nil {
			return fmt.Errorf("stats of %s/%s: %w", run, l.Path, err)
		}
		res.Layers = append(res.Layers, l.Path)
		for _, sr := range rows {
			r := statsRow(l.Path, sr, 1)
			res.Rows++
			if cw == nil {
				if err := enc.Encode(StatsLine{Run: run, StatsRow: r}); err != nil {
					return err
				}
				continue
			}
			rec := []string{run, r.Layer, strconv.FormatInt(r.Batch, 10), strconv.FormatInt(r.Count, 10),
				csvFloat(r.Mean), csvFloat(r.Std), csvFloat(r.Min), csvFloat(r.Max), csvFloat(r.L2), csvFloat(r.ZeroFrac),
				strconv.FormatInt(r.NaN, 10), strconv.FormatInt(r.Inf, 10),
				csvFloat(r.P01), csvFloat(r.P05), csvFloat(r.P25), csvFloat(r.P50), csvFloat(r.P75), csvFloat(r.P95), csvFloat(r.P99),
				strconv.Itoa(r.HistBuckets)}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	}
	return bw.Flush()
}
