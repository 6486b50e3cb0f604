package nn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	sd := map[string]*Tensor{
		"a.weight": {Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, float32(math.Inf(1)), 0, -0.25}},
		"b":        {Shape: []int{}, Data: []float32{7}},
		"empty":    {Shape: []int{0, 4}, Data: []float32{}},
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := SaveSafetensors(path, sd); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(sd) {
		t.Errorf("round trip: got %v, want %v", got, sd)
	}
	raw, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(raw); (8+n)%8 != 0 {
		t.Errorf("header length %d: data not 8-byte aligned", n)
	}
	var buf bytes.Buffer
	if err := EncodeSafetensors(&buf, sd, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	_, meta, err := DecodeSafetensors(buf.Bytes())
	if err != nil || meta["format"] != "pt" {
		t.Errorf("metadata %v, err %v", meta, err)
	}
}

func TestSafetensorsStateDictRoundTrip(t *testing.T) {
	m, _ := RecipeCNN(1, 10)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := SaveSafetensors(path, m.StateDict()); err != nil {
		t.Fatal(err)
	}
	sd, err := LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := RecipeCNN(1, 10)
	for _, p := range m2.StateDict() {
		clear(p.Data)
	}
	if err := m2.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	for k, v := range m.StateDict() {
		if fmt.Sprint(v.Data) != fmt.Sprint(m2.StateDict()[k].Data) {
			t.Errorf("%s differs after save and load", k)
		}
	}
}

func TestF16ToF32(t *testing.T) {
	tests := []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.9604645e-08},
		{0x03ff, 6.097555e-05}, {0x0400, 6.1035156e-05}, {0x3555, 0.33325195},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	}
	for _, tc := range tests {
		if got := f16ToF32(tc.h); got != tc.want {
			t.Errorf("f16ToF32(%#04x) = %g, want %g", tc.h, got, tc.want)
		}
	}
	if v := f16ToF32(0x7e00); v == v {
		t.Errorf("f16ToF32(NaN) = %g", v)
	}
	if v := f16ToF32(0x8000); v != 0 || !math.Signbit(float64(v)) {
		t.Errorf("f16ToF32(-0) = %g", v)
	}
}

// stFile builds a safetensors file from a header string and data bytes.
func stFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestDecodeSafetensorsErrors(t *testing.T) {
	four := make([]byte, 4)
	tests := []struct {
		name   string
		file   []byte
		offset int64
		msg    string
	}{
		{"short", []byte{1, 2, 3}, 0, "too short"},
		{"header too long", binary.LittleEndian.AppendUint64(nil, 1<<40), 0, "header length"},
		{"header past end", append(binary.LittleEndian.AppendUint64(nil, 10), "{}"...), 0, "exceeds the file size"},
		{"not json", stFile("{x", nil), 10, "not a JSON object"},
		{"json array", stFile("[]", nil), 8, "not a JSON object"},
		{"null", stFile("null", nil), 8, "not a JSON object"},
		{"bad metadata", stFile(`{"__metadata__":{"a":1}}`, nil), 8, "__metadata__"},
		{"bad entry", stFile(`{"a":3}`, nil), 8, `tensor "a": bad header entry`},
		{"dtype", stFile(`{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}`, []byte{0}), 8, "unsupported dtype"},
		{"offsets count", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, four), 8, "data_offsets"},
		{"offsets past end", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, four), 62, "outside the 4 data bytes"},
		{"offsets reversed", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, four), 66, "outside"},
		{"negative offset", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, four), 63, "outside"},
		{"size mismatch", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, four), 62, "needs 8 bytes"},
		{"negative dim", stFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, four), 63, "does not fit"},
		{"huge shape", stFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}`, four), 85, "does not fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeSafetensors(tc.file)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FormatError", err)
			}
			if fe.Offset != tc.offset || !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("err = %v, want offset %d and %q", err, tc.offset, tc.msg)
			}
		})
	}
}

func TestLoadSafetensorsNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	os.WriteFile(path, []byte("junk"), 0o644)
	_, err := LoadSafetensors(path)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.File != path || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want a FormatError naming %s", err, path)
	}
	if _, err := LoadSafetensors(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want os.ErrNotExist", err)
	}
}

func FuzzLoadSafetensors(f *testing.F) {
	for _, name := range []string{"paritynet.weights.safetensors"} {
		if b, err := os.ReadFile(filepath.Join(fixtureDir, name)); err == nil {
			f.Add(b)
		}
	}
	f.Add(stFile(`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, []byte{1, 2, 3, 4}))
	f.Add(stFile(`{"__metadata__":{"k":"v"},"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		sd, _, err := DecodeSafetensors(data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			return
		}
		for k, v := range sd {
			if err := v.check(); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
		}
	})
}
