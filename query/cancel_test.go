package query

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/actrec/actrec/store"
)

// cancelAfter is a context whose Err turns context.Canceled after n calls:
// it cancels an operation at a chosen point of its streaming loops,
// deterministically.
type cancelAfter struct {
	context.Context
	n     atomic.Int64
	calls atomic.Int64
}

func newCancelAfter(n int64) *cancelAfter {
	c := &cancelAfter{Context: context.Background()}
	c.n.Store(n)
	return c
}

func (c *cancelAfter) Err() error {
	c.calls.Add(1)
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// TestExport_Canceled cancels exports of every format after a few rows:
// Export returns context.Canceled and leaves nothing behind.
func TestExport_Canceled(t *testing.T) {
	s, _ := testStore(t)
	for _, tc := range []struct {
		format, out string
		layers      []string
		after       int64
	}{
		{FormatArrow, "t.arrow", []string{"conv1"}, 3},
		{FormatArrow, "dir", nil, 10},
		{FormatParquet, "t.parquet", []string{"relu1"}, 3},
		{FormatParquet, "dataset", nil, 10},
		{FormatNPZ, "t.npz", nil, 3},  // while listing rows
		{FormatNPZ, "t.npz", nil, 20}, // while writing them
		{FormatNPY, "t.npy", []string{"conv1"}, 12},
		{FormatCSV, "t.csv", nil, 1},
		{FormatJSONL, "t.jsonl", nil, 2},
	} {
		t.Run(tc.format+"/"+tc.out, func(t *testing.T) {
			dir := t.TempDir()
			ctx := newCancelAfter(tc.after)
			_, err := Export(ctx, s, "base", ExportOptions{Format: tc.format, Out: filepath.Join(dir, tc.out), Layers: tc.layers})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				t.Errorf("left behind: %s", e.Name())
			}
			// The same export runs to the end when not canceled, and checked
			// ctx more often than the cancel point: the cancel was mid-way.
			full := newCancelAfter(1 << 40)
			if _, err := Export(full, s, "base", ExportOptions{Format: tc.format, Out: filepath.Join(dir, tc.out), Layers: tc.layers}); err != nil {
				t.Fatal(err)
			}
			if full.calls.Load() <= tc.after {
				t.Errorf("an uncanceled export checks ctx %d times; cancel point %d is not mid-way", full.calls.Load(), tc.after)
			}
		})
	}
}

// TestDiff_Canceled cancels diffs in the one-pass and the general path.
func TestDiff_Canceled(t *testing.T) {
	s, _ := testStore(t)
	for _, tc := range []struct {
		name  string
		a, b  string
		opts  DiffOptions
		after int64
	}{
		{"lockstep", "perturbed", "base", DiffOptions{}, 10},
		{"general", "perturbed", "base", DiffOptions{Batches: store.BatchRange{From: 0, To: 100}}, 10},
		{"shuffled", "shuffled", "base", DiffOptions{MemoryBudget: 1}, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := newCancelAfter(tc.after)
			if _, err := Diff(ctx, s, tc.a, tc.b, tc.opts); !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			full := newCancelAfter(1 << 40)
			if _, err := Diff(full, s, tc.a, tc.b, tc.opts); err != nil {
				t.Fatal(err)
			}
			if full.calls.Load() <= tc.after {
				t.Errorf("an uncanceled diff checks ctx %d times; cancel point %d is not mid-way", full.calls.Load(), tc.after)
			}
		})
	}
	// Stats stops too.
	if _, err := Stats(newCancelAfter(0), s, "base", StatsOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("stats: err = %v, want context.Canceled", err)
	}
}
