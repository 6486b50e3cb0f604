package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/actrec/actrec/store"
)

// ParseBatchRange parses "A:B" (batches A <= b < B), "A:" (from A on),
// ":B" (before B, negative batches included), "N" (batch N alone) or ""
// (all batches). Negative batch numbers are allowed anywhere.
func ParseBatchRange(s string) (store.BatchRange, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == ":" {
		return store.BatchRange{}, nil
	}
	lo, hi, ok := strings.Cut(s, ":")
	parse := func(v string, def int64) (int64, error) {
		if v == "" {
			return def, nil
		}
		return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	}
	if !ok {
		n, err := parse(lo, 0)
		if err != nil {
			return store.BatchRange{}, fmt.Errorf("batch range %q: want A:B, A:, :B or N", s)
		}
		if n == math.MaxInt64 {
			return store.BatchRange{}, fmt.Errorf("batch range %q: batch too large", s)
		}
		return batchRange(n, n+1), nil
	}
	a, err1 := parse(lo, math.MinInt64)
	b, err2 := parse(hi, math.MaxInt64)
	if err1 != nil || err2 != nil {
		return store.BatchRange{}, fmt.Errorf("batch range %q: want A:B, A:, :B or N", s)
	}
	if b <= a {
		return store.BatchRange{}, fmt.Errorf("batch range %q: empty (end must be after start)", s)
	}
	return batchRange(a, b), nil
}

// batchRange builds the store.BatchRange of a <= b < c: the zero value
// (all) for the whole int64 range, else {a, b} as they are (store reads
// To == 0 as "to the end" only after a positive From, and [a, 0) with a < 0
// is exactly that range).
func batchRange(a, b int64) store.BatchRange {
	if a == math.MinInt64 && b == math.MaxInt64 {
		return store.BatchRange{}
	}
	return store.BatchRange{From: a, To: b}
}

// inRange reports whether batch b is in r.
func inRange(r store.BatchRange, b int64) bool { return r.Contains(b) }

// FormatBatchRange formats r as ParseBatchRange reads it: "A:B", "A:",
// ":B", or "all" for the zero value.
func FormatBatchRange(r store.BatchRange) string {
	switch {
	case r == store.BatchRange{}:
		return "all"
	case r.To == math.MaxInt64 || (r.To == 0 && r.From > 0):
		return fmt.Sprintf("%d:", r.From)
	case r.From == math.MinInt64:
		return fmt.Sprintf(":%d", r.To)
	}
	return fmt.Sprintf("%d:%d", r.From, r.To)
}

// batchSet is the set of batches recorded for some layers, read from the
// index alone (no segment is read), with the number of entry rows per
// kind.
type batchSet struct {
	batches             map[int64]bool
	statsRows, tensRows int
}

// recordedBatches lists the batches in r of the given layers, from the
// index.
func recordedBatches(s *store.Store, run string, layers []store.LayerSummary, r store.BatchRange) (batchSet, error) {
	bs := batchSet{batches: map[int64]bool{}}
	for _, l := range layers {
		ents, err := s.Entries(run, l.Path, r)
		if err != nil {
			return bs, fmt.Errorf("entries of %s/%s: %w", run, l.Path, err)
		}
		for _, e := range ents {
			bs.batches[e.Batch] = true
			if e.Kind == store.KindStats {
				bs.statsRows += e.Rows
			} else {
				bs.tensRows += e.Rows
			}
		}
	}
	return bs, nil
}

// String describes the batches: "no batches", "batch 3", "batches 0..9"
// (contiguous) or "7 batches between 0 and 99".
func (b batchSet) String() string {
	if len(b.batches) == 0 {
		return "no batches"
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for k := range b.batches {
		lo, hi = min(lo, k), max(hi, k)
	}
	switch {
	case lo == hi:
		return fmt.Sprintf("batch %d", lo)
	case hi-lo+1 == int64(len(b.batches)):
		return fmt.Sprintf("batches %d..%d", lo, hi)
	}
	return fmt.Sprintf("%d batches between %d and %d", len(b.batches), lo, hi)
}

// emptySelection is the error of a selection that holds no data of the
// kind wanted ("stats" or "tensors"): it names the range and what the run
// holds.
func emptySelection(s *store.Store, run string, layers []store.LayerSummary, r store.BatchRange, kind string) error {
	all, err := recordedBatches(s, run, layers, store.BatchRange{})
	if err != nil {
		return err
	}
	what := "the selected layers"
	if len(layers) == 1 {
		what = fmt.Sprintf("layer %q", layers[0].Path)
	}
	if r == (store.BatchRange{}) {
		return fmt.Errorf("run %q: no %s recorded for %s (it has %s): %w", run, kind, what, all, store.ErrNotFound)
	}
	return fmt.Errorf("run %q: no %s in batches %s for %s (recorded: %s): %w", run, kind, FormatBatchRange(r), what, all, store.ErrNotFound)
}
