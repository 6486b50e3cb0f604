package plot

import (
	"encoding/binary"
	"io"
	"math"
	"testing"

	"github.com/actrec/actrec/store"
)

// rowsFromBytes decodes fuzz input into stats rows: per row an int16 batch, a float64
// value used for every stat, an int8 NaN count and up to 4 (key, count) histogram pairs,
// with whatever key order and counts the bytes give (rows read from a damaged store may
// break the histogram invariants).
func rowsFromBytes(b []byte) []store.StatsRow {
	var rows []store.StatsRow
	for len(b) >= 11+4*3 && len(rows) < 64 {
		r := store.StatsRow{Batch: int64(int16(binary.LittleEndian.Uint16(b)))}
		v := math.Float64frombits(binary.LittleEndian.Uint64(b[2:]))
		r.Mean, r.Std, r.Min, r.Max, r.L2, r.ZeroFrac = v, v, v, v, v, v
		r.NaN = int64(int8(b[10]))
		for i := range r.Percentiles {
			r.Percentiles[i] = v
		}
		p := b[11:]
		for i := 0; i < 4; i++ {
			r.Hist.Keys = append(r.Hist.Keys, binary.LittleEndian.Uint16(p[3*i:]))
			r.Hist.Counts = append(r.Hist.Counts, uint64(p[3*i+2]))
		}
		rows = append(rows, r)
		b = b[11+12:]
	}
	return rows
}

func fuzzSeeds(f *testing.F) {
	for _, rows := range [][]store.StatsRow{synthRows(1, 3, 0.1, true, 2), synthRows(2, 2, 0, false, 0)} {
		var b []byte
		for _, r := range rows {
			b = binary.LittleEndian.AppendUint16(b, uint16(r.Batch))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.Mean))
			b = append(b, byte(r.NaN))
			for i := 0; i < 4; i++ {
				k := r.Hist.Keys[i*len(r.Hist.Keys)/4]
				b = binary.LittleEndian.AppendUint16(b, k)
				b = append(b, byte(r.Hist.Counts[i*len(r.Hist.Keys)/4]))
			}
		}
		f.Add(b)
	}
	inf := binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Inf(1)))
	f.Add(append(append([]byte{0, 0}, inf...), make([]byte, 13)...))
}

// FuzzHist: no input makes Hist or its rendering panic.
func FuzzHist(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		rows := rowsFromBytes(b)
		fig, err := Hist(Series{Run: "r", Layer: "l", Rows: rows}, HistOptions{ValueBins: 16, MaxColumns: 16})
		if err != nil {
			return
		}
		if err := fig.Render(io.Discard, SVG); err != nil {
			t.Fatalf("render: %v", err)
		}
	})
}

// FuzzStat: no stat values (NaN, Inf, huge, tiny, negative) make Stat or its rendering
// panic or fail.
func FuzzStat(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		rows := rowsFromBytes(b)
		for _, st := range []string{"mean", "nan", "p90"} {
			fig, err := Stat(st, Series{Run: "r", Layer: "l", Rows: rows})
			if err != nil {
				continue
			}
			if err := fig.Render(io.Discard, SVG); err != nil {
				t.Fatalf("%s: render: %v", st, err)
			}
		}
	})
}
