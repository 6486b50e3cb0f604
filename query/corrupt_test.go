package query

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/actrec/actrec/store"
)

// damage truncates the segment holding the given kind of entry of
// run/layer a few bytes into that entry, so that the entry (and any later
// in the file) is unreadable while the other segments stay intact. It
// returns the segment's path relative to the store.
func damage(t *testing.T, dir, run, layer string, kind store.EntryKind) string {
	t.Helper()
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := s.Entries(run, layer, store.BatchRange{})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Kind == kind {
			if err := os.Truncate(filepath.Join(dir, e.Segment), e.Offset+16); err != nil {
				t.Fatal(err)
			}
			return e.Segment
		}
	}
	t.Fatalf("no %s entry of %s/%s", kind, run, layer)
	return ""
}

func corruptStore(t *testing.T, run, layer string, kind store.EntryKind) (*store.Store, string) {
	t.Helper()
	_, dir := testStore(t)
	seg := damage(t, dir, run, layer, kind)
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, seg
}

// TestShow_PartlyUnreadable: show returns the readable part with the error
// of the other.
func TestShow_PartlyUnreadable(t *testing.T) {
	t.Run("stats", func(t *testing.T) {
		s, seg := corruptStore(t, "base", "conv1", store.KindStats)
		tn, err := Show(s, "base", ShowOptions{Layer: "conv1", Batch: 3, Sample: 1})
		var ce *store.CorruptionError
		if !errors.As(err, &ce) || ce.File != seg {
			t.Errorf("err = %v, want a CorruptionError in %s", err, seg)
		}
		if tn == nil || tn.Elements != 6 || len(tn.Values) != 6 || tn.Stats != nil {
			t.Fatalf("tensor not shown: %+v", tn)
		}
		if tn.StatsError == nil || !strings.Contains(*tn.StatsError, seg) || tn.TensorError != nil {
			t.Errorf("stats_error %v tensor_error %v", tn.StatsError, tn.TensorError)
		}
	})
	t.Run("tensors", func(t *testing.T) {
		s, seg := corruptStore(t, "base", "conv1", store.KindTensor)
		tn, err := Show(s, "base", ShowOptions{Layer: "conv1", Batch: 3, Sample: 1})
		var ce *store.CorruptionError
		if !errors.As(err, &ce) || ce.File != seg {
			t.Errorf("err = %v, want a CorruptionError in %s", err, seg)
		}
		if tn == nil || tn.Stats == nil || tn.Values != nil {
			t.Fatalf("stats not shown: %+v", tn)
		}
		if tn.TensorError == nil || !strings.Contains(*tn.TensorError, seg) || tn.StatsError != nil {
			t.Errorf("stats_error %v tensor_error %v", tn.StatsError, tn.TensorError)
		}
	})
}

// TestDiff_UnreadableLayer: a layer whose data cannot be read is reported
// unreadable with the error; the other layers are compared; the diff fails.
func TestDiff_UnreadableLayer(t *testing.T) {
	s, seg := corruptStore(t, "base", "relu1", store.KindTensor)
	rep, err := Diff(t.Context(), s, "perturbed", "base", DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := layerByName(t, rep, "relu1")
	if l.Status != StatusUnreadable || len(l.Reasons) == 0 || !strings.Contains(l.Reasons[0], seg) {
		t.Errorf("relu1: %s %q, want unreadable naming %s", l.Status, l.Reasons, seg)
	}
	var ce *store.CorruptionError
	if !errors.As(l.Err(), &ce) {
		t.Errorf("relu1: Err() = %v, want a CorruptionError", l.Err())
	}
	for _, name := range []string{"conv1", "fc"} {
		if st := layerByName(t, rep, name).Status; st != StatusEqual {
			t.Errorf("%s: %s, want equal", name, st)
		}
	}
	if rep.Pass || len(rep.Unreadable) != 1 || rep.Unreadable[0] != "relu1" || rep.ComparedLayers != 2 || rep.FirstDiverging != nil {
		t.Errorf("pass %v unreadable %v compared %d first %v", rep.Pass, rep.Unreadable, rep.ComparedLayers, rep.FirstDiverging)
	}
}

// TestExport_CorruptNamesFile: an export that meets a corrupt entry fails
// naming the segment file and the offset, and leaves nothing behind.
func TestExport_CorruptNamesFile(t *testing.T) {
	for _, tc := range []struct {
		format string
		kind   store.EntryKind
	}{{FormatNPZ, store.KindTensor}, {FormatCSV, store.KindStats}} {
		t.Run(tc.format, func(t *testing.T) {
			s, seg := corruptStore(t, "base", "conv1", tc.kind)
			dir := t.TempDir()
			_, err := Export(t.Context(), s, "base", ExportOptions{Format: tc.format, Out: filepath.Join(dir, "x."+tc.format)})
			var ce *store.CorruptionError
			if !errors.As(err, &ce) || ce.File != seg || !strings.Contains(err.Error(), seg+" at offset") {
				t.Errorf("err = %v, want a CorruptionError naming %s and the offset", err, seg)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}
