package query

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/actrec/actrec/store"
)

// ParseBatchRange parses "A:B" (batches A <= b < B), "A:" (from A on),
// ":B" (before B), "N" (batch N alone) or "" (all batches).
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
		if n == 1<<63-1 {
			return store.BatchRange{}, fmt.Errorf("batch range %q: batch too large", s)
		}
		return batchRange(n, n+1), nil
	}
	a, err1 := parse(lo, 0)
	b, err2 := parse(hi, 1<<63-1)
	if err1 != nil || err2 != nil {
		return store.BatchRange{}, fmt.Errorf("batch range %q: want A:B, A:, :B or N", s)
	}
	if b <= a {
		return store.BatchRange{}, fmt.Errorf("batch range %q: empty (end must be after start)", s)
	}
	return batchRange(a, b), nil
}

// batchRange builds a store.BatchRange for a <= b < c, avoiding the zero
// value's meaning "all" when a range really is [0, 0) (impossible here) and
// mapping "to the end" to To == 0.
func batchRange(a, b int64) store.BatchRange {
	if b == 1<<63-1 {
		b = 0
		if a == 0 {
			return store.BatchRange{}
		}
	}
	return store.BatchRange{From: a, To: b}
}

// inRange reports whether batch b is in r.
func inRange(r store.BatchRange, b int64) bool {
	if r.From == 0 && r.To == 0 {
		return true
	}
	return b >= r.From && (r.To == 0 || b < r.To)
}
