package query

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/actrec/actrec/store"
)

// TestDiff_NothingCompared: a diff in which no layer had comparable data
// does not pass, says why, and lists the batches of the run that has some.
func TestDiff_NothingCompared(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	tensorsOnly := baseLayers()[:2]
	for i := range tensorsOnly {
		tensorsOnly[i].stats = false
	}
	statsOnly := baseLayers()[:2]
	for i := range statsOnly {
		statsOnly[i].tensors = false
	}
	other := []fixLayer{{"head", "Linear", []int{4}, true, true}}
	record(t, dir,
		fixRun{name: "base", layers: baseLayers(), samples: 8, bs: 2, val: baseVal},
		fixRun{name: "empty", layers: baseLayers(), samples: 0, bs: 2, val: baseVal}, // crashed before batch 0
		fixRun{name: "tensors", layers: tensorsOnly, samples: 8, bs: 2, val: baseVal},
		fixRun{name: "stats", layers: statsOnly, samples: 8, bs: 2, val: baseVal},
		fixRun{name: "other", layers: other, samples: 8, bs: 2, val: baseVal},
	)
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name, a, b   string
		onlyA, onlyB []int64
		layerReason  string // in the reasons of conv1 ("" = conv1 not matched)
	}{
		{"empty_vs_base", "empty", "base", []int64{}, []int64{0, 1, 2, 3}, "no batches recorded in empty"},
		{"base_vs_empty", "base", "empty", []int64{0, 1, 2, 3}, []int64{}, "no batches recorded in empty"},
		{"tensors_vs_stats", "tensors", "stats", []int64{}, []int64{}, "tensors only in tensors, stats only in stats"},
		{"disjoint_layers", "other", "base", []int64{}, []int64{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Diff(t.Context(), s, tc.a, tc.b, DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pass || rep.ComparedLayers != 0 {
				t.Errorf("pass %v, compared %d; want a failure with nothing compared", rep.Pass, rep.ComparedLayers)
			}
			if len(rep.Reasons) == 0 || !strings.Contains(rep.Reasons[0], "nothing compared") {
				t.Errorf("reasons %q, want \"nothing compared ...\"", rep.Reasons)
			}
			if !slices.Equal(rep.BatchesOnlyA, tc.onlyA) || !slices.Equal(rep.BatchesOnlyB, tc.onlyB) ||
				rep.BatchesOnlyACount != len(tc.onlyA) || rep.BatchesOnlyBCount != len(tc.onlyB) {
				t.Errorf("batches only in A %v (%d), only in B %v (%d); want %v, %v", rep.BatchesOnlyA, rep.BatchesOnlyACount,
					rep.BatchesOnlyB, rep.BatchesOnlyBCount, tc.onlyA, tc.onlyB)
			}
			if tc.layerReason == "" {
				return
			}
			l := layerByName(t, rep, "conv1")
			if l.Status != StatusNoCommonData || !strings.Contains(strings.Join(l.Reasons, "; "), tc.layerReason) {
				t.Errorf("conv1: %s %q, want no_common_data with %q", l.Status, l.Reasons, tc.layerReason)
			}
		})
	}
	// A layer without common data does not fail a diff that compared others.
	rep, err := Diff(t.Context(), s, "tensors", "base", DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || rep.ComparedLayers != 2 || len(rep.Reasons) != 0 {
		t.Errorf("tensors vs base: pass %v compared %d reasons %q", rep.Pass, rep.ComparedLayers, rep.Reasons)
	}
}
