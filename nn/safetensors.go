package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// safetensors format (https://github.com/huggingface/safetensors):
//
//	8 bytes   little-endian uint64 N, the header length
//	N bytes   JSON object: name -> {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//	          plus an optional "__metadata__": {string: string}
//	rest      raw tensor data; offsets are relative to its start
//
// Every length and offset is checked against the file before use.

// maxSafetensorsHeader bounds the JSON header (the reference implementation
// uses the same limit).
const maxSafetensorsHeader = 100 << 20

// FormatError reports a malformed file: which file, at which byte offset,
// and what is wrong there.
type FormatError struct {
	File   string // "" when decoding bytes without a file
	Offset int64  // byte offset in the file
	Msg    string
}

func (e *FormatError) Error() string {
	f := e.File
	if f == "" {
		f = "safetensors data"
	}
	return fmt.Sprintf("nn: %s: offset %d: %s", f, e.Offset, e.Msg)
}

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

type stEntry struct {
	Dtype       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

func dtypeSize(dt string) int {
	switch dt {
	case "F32":
		return 4
	case "F16", "BF16":
		return 2
	case "F64":
		return 8
	}
	return 0
}

// LoadSafetensors reads the tensors of a safetensors file. F32 tensors load
// as they are; F16, BF16 and F64 tensors are converted to float32. Errors
// about the file's content are *FormatError values carrying the path and
// byte offset.
func LoadSafetensors(path string) (map[string]*Tensor, error) {
	sd, _, err := LoadSafetensorsWithMetadata(path)
	return sd, err
}

// LoadSafetensorsWithMetadata is LoadSafetensors that also returns the
// file's "__metadata__" map (nil if absent).
func LoadSafetensorsWithMetadata(path string) (map[string]*Tensor, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("nn: load safetensors: %w", err)
	}
	sd, meta, err := DecodeSafetensors(data)
	var fe *FormatError
	if errors.As(err, &fe) {
		fe.File = path
	}
	return sd, meta, err
}

// DecodeSafetensors decodes a safetensors file held in memory and returns
// its tensors (converted to float32, never aliasing data) and its
// "__metadata__" map (nil if absent).
func DecodeSafetensors(data []byte) (map[string]*Tensor, map[string]string, error) {
	if len(data) < 8 {
		return nil, nil, formatErr(0, "file of %d bytes is too short for the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > maxSafetensorsHeader || n > uint64(len(data)-8) {
		return nil, nil, formatErr(0, "header length %d exceeds the file size %d (or the %d-byte limit)", n, len(data), maxSafetensorsHeader)
	}
	hdr := data[8 : 8+n]
	body := data[8+n:]
	base := int64(8 + n)
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if err := dec.Decode(&raw); err != nil {
		off := int64(8)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off += se.Offset
		}
		return nil, nil, formatErr(off, "header is not a JSON object: %v", err)
	}
	if raw == nil {
		return nil, nil, formatErr(8, "header is not a JSON object")
	}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, formatErr(8, "__metadata__ is not a string map: %v", err)
		}
		delete(raw, "__metadata__")
	}
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make(map[string]*Tensor, len(raw))
	for _, name := range names {
		var e stEntry
		if err := json.Unmarshal(raw[name], &e); err != nil {
			return nil, nil, formatErr(8, "tensor %q: bad header entry: %v", name, err)
		}
		size := dtypeSize(e.Dtype)
		if size == 0 {
			return nil, nil, formatErr(8, "tensor %q: unsupported dtype %q (want F32, F16, BF16 or F64)", name, e.Dtype)
		}
		if len(e.DataOffsets) != 2 {
			return nil, nil, formatErr(8, "tensor %q: data_offsets %v, want [begin, end]", name, e.DataOffsets)
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || end < b || end > int64(len(body)) {
			return nil, nil, formatErr(base+max(b, 0), "tensor %q: data_offsets [%d, %d] outside the %d data bytes", name, b, end, len(body))
		}
		shape := make([]int, len(e.Shape))
		count := int64(1)
		for i, d := range e.Shape {
			if d < 0 || (d > 0 && count > (end-b)/d) {
				return nil, nil, formatErr(base+b, "tensor %q: shape %v does not fit its %d bytes", name, e.Shape, end-b)
			}
			count *= d
			shape[i] = int(d)
		}
		if count*int64(size) != end-b {
			return nil, nil, formatErr(base+b, "tensor %q: shape %v of %s needs %d bytes, data_offsets give %d", name, e.Shape, e.Dtype, count*int64(size), end-b)
		}
		out[name] = &Tensor{Shape: shape, Data: decodeFloats(e.Dtype, body[b:end])}
	}
	return out, meta, nil
}

func decodeFloats(dtype string, b []byte) []float32 {
	le := binary.LittleEndian
	switch dtype {
	case "F32":
		d := make([]float32, len(b)/4)
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return d
	case "F64":
		d := make([]float32, len(b)/8)
		for i := range d {
			d[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
		return d
	case "BF16":
		d := make([]float32, len(b)/2)
		for i := range d {
			d[i] = math.Float32frombits(uint32(le.Uint16(b[2*i:])) << 16)
		}
		return d
	default: // F16
		d := make([]float32, len(b)/2)
		for i := range d {
			d[i] = f16ToF32(le.Uint16(b[2*i:]))
		}
		return d
	}
}

// f16ToF32 converts an IEEE 754 binary16 value to float32 exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac * 2^-24
		v := float32(frac) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// EncodeSafetensors writes sd as a safetensors file (F32, tensors in key
// order, header padded to 8 bytes) with optional metadata.
func EncodeSafetensors(w io.Writer, sd map[string]*Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(sd))
	for k, t := range sd {
		if k == "__metadata__" || k == "" {
			return fmt.Errorf("nn: safetensors: invalid tensor name %q", k)
		}
		if err := t.check(); err != nil {
			return fmt.Errorf("nn: safetensors: tensor %q: %v", k, err)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return err
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(m)
	}
	var off int64
	for i, k := range names {
		if i > 0 || len(metadata) > 0 {
			hdr.WriteByte(',')
		}
		t := sd[k]
		kb, _ := json.Marshal(k)
		sb, _ := json.Marshal(t.Shape)
		if len(t.Shape) == 0 {
			sb = []byte("[]")
		}
		n := int64(len(t.Data)) * 4
		fmt.Fprintf(&hdr, `%s:{"dtype":"F32","shape":%s,"data_offsets":[%d,%d]}`, kb, sb, off, off+n)
		off += n
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(hdr.Len()))
	if _, err := w.Write(lenb[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, k := range names {
		for _, v := range sd[k].Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err := w.Write(buf)
	return err
}

// SaveSafetensors writes sd to path as a safetensors file of F32 tensors,
// atomically: to a temporary file in the same directory, synced, then
// renamed over path.
func SaveSafetensors(path string, sd map[string]*Tensor) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+strings.TrimPrefix(base, ".")+".tmp*")
	if err != nil {
		return fmt.Errorf("nn: save safetensors: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("nn: save safetensors %s: %w", path, err)
	}
	if err := EncodeSafetensors(f, sd, nil); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("nn: save safetensors %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("nn: save safetensors %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
