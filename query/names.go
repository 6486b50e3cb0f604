package query

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/actrec/actrec/store"
)

// NotFoundError reports an unknown run or layer together with the closest
// existing names (by edit distance), so that a typo is one look away from
// its fix. It wraps store.ErrNotFound.
type NotFoundError struct {
	Kind    string   // "run" or "layer"
	Name    string   // the name asked for
	Run     string   // for a layer: the run searched
	Closest []string // up to 5 existing names, closest first
}

func (e *NotFoundError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %q not found", e.Kind, e.Name)
	if e.Run != "" {
		fmt.Fprintf(&sb, " in run %q", e.Run)
	}
	if len(e.Closest) > 0 {
		sb.WriteString("; closest: ")
		for i, c := range e.Closest {
			if i > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "%q", c)
		}
	}
	return sb.String()
}

func (e *NotFoundError) Unwrap() error { return store.ErrNotFound }

// closest returns up to n of names, nearest to name first (Levenshtein
// distance, ties broken by a shared prefix then alphabetically). Names
// containing name as a substring count as distance 1 at most.
func closest(name string, names []string, n int) []string {
	type cand struct {
		s string
		d int
	}
	cs := make([]cand, 0, len(names))
	for _, s := range names {
		d := levenshtein(name, s)
		if name != "" && strings.Contains(s, name) {
			d = min(d, 1)
		}
		cs = append(cs, cand{s, d})
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].s < cs[j].s
	})
	out := make([]string, 0, n)
	for _, c := range cs[:min(n, len(cs))] {
		out = append(out, c.s)
	}
	return out
}

// levenshtein is the edit distance between a and b over runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// runNotFound builds the error for an unknown run name.
func runNotFound(s *store.Store, name string) error {
	runs, err := s.Runs()
	if err != nil {
		return &NotFoundError{Kind: "run", Name: name}
	}
	names := make([]string, len(runs))
	for i, r := range runs {
		names[i] = r.Name
	}
	return &NotFoundError{Kind: "run", Name: name, Closest: closest(name, names, 5)}
}

// findLayers resolves layer names of run against its layers, returning
// them in execution order (all layers when want is empty).
func findLayers(layers []store.LayerSummary, run string, want []string) ([]store.LayerSummary, error) {
	if len(want) == 0 {
		return layers, nil
	}
	var out []store.LayerSummary
	for _, l := range layers {
		if slices.Contains(want, l.Path) {
			out = append(out, l)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(layers, func(l store.LayerSummary) bool { return l.Path == w }) {
			names := make([]string, len(layers))
			for i, l := range layers {
				names[i] = l.Path
			}
			return nil, &NotFoundError{Kind: "layer", Name: w, Run: run, Closest: closest(w, names, 5)}
		}
	}
	return out, nil
}
