package recorder

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// span is an inclusive range of batch indices; hi < 0 means open-ended.
type span struct{ lo, hi int64 }

// parseRanges parses "0-9,20,50-". Empty means no restriction (nil, nil).
func parseRanges(s string) ([]span, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []span
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		bad := func() ([]span, error) {
			return nil, fmt.Errorf("recorder: bad batch range %q in %q (want N, N-M or N-)", part, s)
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
		if err != nil || a < 0 {
			return bad()
		}
		sp := span{a, a}
		if isRange {
			hi = strings.TrimSpace(hi)
			if hi == "" {
				sp.hi = -1
			} else {
				b, err := strconv.ParseInt(hi, 10, 64)
				if err != nil || b < a {
					return bad()
				}
				sp.hi = b
			}
		}
		out = append(out, sp)
	}
	return out, nil
}

// batchFilter is a compiled BatchPolicy. Safe for concurrent use.
type batchFilter struct {
	p     BatchPolicy
	spans []span
	now   func() time.Time
	salt  uint64 // mixed into p.Seed (newTensorBatchFilter)

	mu   sync.Mutex
	last time.Time
	any  bool
}

func newBatchFilter(p BatchPolicy, now func() time.Time) *batchFilter {
	spans, _ := parseRanges(p.Ranges) // validated by Config.validate
	return &batchFilter{p: p, spans: spans, now: now}
}

// tensorSalt is mixed into the seed of Config.TensorBatches' filter, so that
// its Probability draws independently of Config.Batches' with the same seed.
const tensorSalt = 0x7465_6e73_6f72_7321 // "tensors!"

func newTensorBatchFilter(p BatchPolicy, now func() time.Time) *batchFilter {
	f := newBatchFilter(p, now)
	f.salt = tensorSalt
	return f
}

// keep reports whether batch index b is selected. The interval condition is
// stateful: keep must be called once per batch.
func (f *batchFilter) keep(b int64) bool {
	p := &f.p
	if p.Every > 1 && b%p.Every != 0 {
		return false
	}
	if p.First > 0 && b >= p.First {
		return false
	}
	if f.spans != nil {
		in := false
		for _, s := range f.spans {
			if b >= s.lo && (s.hi < 0 || b <= s.hi) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if p.Probability > 0 && p.Probability < 1 {
		if unitHash(p.Seed^f.salt, uint64(b)) >= p.Probability {
			return false
		}
	}
	if p.MinInterval > 0 {
		t := f.now()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.any && t.Sub(f.last) < p.MinInterval {
			return false
		}
		f.any, f.last = true, t
	}
	return true
}

// unitHash maps (seed, x) to a uniform number in [0, 1) (SplitMix64).
func unitHash(seed, x uint64) float64 {
	z := seed ^ (x * 0x9e3779b97f4a7c15)
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// samples returns the sorted sample indices of a batch of size n selected
// by p for batch index b.
func (p *SamplePolicy) samples(b int64, n int) []int {
	switch {
	case len(p.Indices) > 0:
		var out []int
		for _, i := range p.Indices {
			if i < n && !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
		slices.Sort(out)
		return out
	case p.First > 0:
		return seq(min(p.First, n))
	case p.Random > 0:
		if p.Random >= n {
			return seq(n)
		}
		r := rand.New(rand.NewPCG(p.Seed, uint64(b)))
		perm := seq(n)
		for i := 0; i < p.Random; i++ {
			j := i + r.IntN(n-i)
			perm[i], perm[j] = perm[j], perm[i]
		}
		out := perm[:p.Random]
		slices.Sort(out)
		return out
	}
	return seq(n)
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
