package main

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func npyBytes(t testing.TB, descr string, shape string, payload []byte) []byte {
	t.Helper()
	h := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }"
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(h)))
	b.WriteString(h)
	b.Write(payload)
	return b.Bytes()
}

func TestDecodeNPY(t *testing.T) {
	var p bytes.Buffer
	want := []float32{0, 1.5, -2, float32(math.Inf(1)), 3, 4}
	for _, v := range want {
		binary.Write(&p, binary.LittleEndian, v)
	}
	raw := npyBytes(t, "<f4", "2, 3", p.Bytes())
	shape, got, err := decodeNPY(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if !sameShape(shape, []int{2, 3}) {
		t.Fatalf("shape %v", shape)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("data[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	// uint8 conversion
	raw = npyBytes(t, "|u1", "1, 2", []byte{7, 255})
	_, got, err = decodeNPY(bytes.NewReader(raw), int64(len(raw)))
	if err != nil || got[0] != 7 || got[1] != 255 {
		t.Fatalf("u1: %v %v", got, err)
	}
}

func TestDecodeNPY_Errors(t *testing.T) {
	ok := npyBytes(t, "<f4", "2,", []byte{0, 0, 0, 0, 0, 0, 0, 0})
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"bad magic", append([]byte("XNUMPY"), ok[6:]...), "bad magic"},
		{"truncated data", ok[:len(ok)-1], "npy data at offset 128: truncated"},
		{"truncated header", ok[:20], "npy header at offset 10"},
		{"dtype", npyBytes(t, "<c8", "1,", make([]byte, 8)), `dtype "<c8" not supported`},
		{"huge shape", npyBytes(t, "<f4", "100000, 100000, 100000", nil), "too large"},
		{"version", append(append([]byte{}, ok[:6]...), append([]byte{9, 0}, ok[8:]...)...), "unsupported version 9.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeNPY(bytes.NewReader(tc.raw), int64(len(tc.raw)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// Guards that a tiny .npz whose zip entry and npy header claim a huge array ([2^30, 8] float32,
// 32 GiB) is reported as truncated input (exit 3, naming the file) instead of allocating the
// claimed size up front and dying with "fatal error: runtime: out of memory". It runs actrec in
// a subprocess, since that fatal error cannot be recovered.
func TestRecord_NPZHugeClaim(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bomb.npz")
	npy := npyBytes(t, "<f4", "1073741824, 8", make([]byte, 64)) // a few data bytes only
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "x.npy", Method: zip.Store,
		CRC32: crc32.ChecksumIEEE(npy), CompressedSize64: uint64(len(npy)), UncompressedSize64: 1 << 36})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(npy)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	cmd := exec.Command(os.Args[0], "record", "--store", filepath.Join(dir, "st"), "--model", "paritynet",
		"--input", path, "--progress", "none")
	cmd.Env = append(os.Environ(), "ACTREC_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()
	if code != exitInput || strings.Contains(string(out), "fatal error") || !strings.Contains(string(out), path) {
		t.Errorf("actrec record --input bomb.npz: exit %d (%v), want %d (input error naming the file)\n%.600s", code, err, exitInput, out)
	}
}

func idxBytes(dims []uint32, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(data)
	return b.Bytes()
}

func TestReadIDXImages(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x-idx3-ubyte")
	if err := os.WriteFile(p, idxBytes([]uint32{2, 2, 2}, []byte{0, 255, 51, 102, 0, 0, 0, 255}), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := openDataset(p, []int{1, 2, 2}, normalization{Mean: []float64{0.5}, Std: []float64{0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 2 {
		t.Fatalf("len %d", d.Len())
	}
	dst := make([]float32, 4)
	if err := d.Fill(dst, 1, 1); err != nil {
		t.Fatal(err)
	}
	want := []float32{-1, -1, -1, 1}
	for i := range want {
		if math.Abs(float64(dst[i]-want[i])) > 1e-6 {
			t.Fatalf("dst %v want %v", dst, want)
		}
	}
	if _, err := openDataset(p, []int{1, 28, 28}, normalization{}); err == nil || !strings.Contains(err.Error(), "samples have shape [1 2 2], the model wants [1 28 28]") {
		t.Fatalf("shape mismatch error: %v", err)
	}
	trunc := filepath.Join(dir, "t-idx3-ubyte")
	os.WriteFile(trunc, idxBytes([]uint32{2, 2, 2}, []byte{1, 2, 3}), 0o644)
	if _, err := openDataset(trunc, nil, normalization{}); err == nil || !strings.Contains(err.Error(), trunc) {
		t.Fatalf("truncated error: %v", err)
	}
}

func TestReadImageDir(t *testing.T) {
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			img.Set(x, y, color.RGBA{255, 0, 0, 255})
		}
	}
	f, _ := os.Create(filepath.Join(dir, "a.png"))
	png.Encode(f, img)
	f.Close()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	d, err := openDataset(dir, []int{3, 4, 4}, normalization{})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 48)
	if err := d.Fill(dst, 0, 1); err != nil {
		t.Fatal(err)
	}
	if dst[0] != 1 || dst[16] != 0 || dst[32] != 0 {
		t.Fatalf("red image: R %v G %v B %v", dst[0], dst[16], dst[32])
	}
	if _, err := openDataset(t.TempDir(), []int{3, 4, 4}, normalization{}); err == nil || !strings.Contains(err.Error(), "no .png") {
		t.Fatalf("empty dir error: %v", err)
	}
}

func FuzzDecodeNPY(f *testing.F) {
	f.Add(npyBytes(f, "<f4", "2,", make([]byte, 8)))
	f.Add(npyBytes(f, "|u1", "1, 3", []byte{1, 2, 3}))
	f.Add([]byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		shape, data, err := decodeNPY(bytes.NewReader(raw), int64(len(raw)))
		if err == nil && int64(len(data)) != int64(prod(shape)) {
			t.Fatalf("shape %v but %d values", shape, len(data))
		}
	})
}

// FuzzReadImageDir: any bytes in a .png or .jpg file of an input directory
// give a dataset whose values are finite and in [0, 1], or an error naming
// the file; never a panic.
func FuzzReadImageDir(f *testing.F) {
	var buf bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, 3, 2))
	img.Pix[1] = 200
	png.Encode(&buf, img)
	f.Add(buf.Bytes(), false)
	f.Add(buf.Bytes()[:len(buf.Bytes())/2], false)
	f.Add([]byte("\xff\xd8\xff\xdb"), true)
	f.Fuzz(func(t *testing.T, raw []byte, jpg bool) {
		dir := t.TempDir()
		name := filepath.Join(dir, "x.png")
		if jpg {
			name = filepath.Join(dir, "x.jpg")
		}
		if err := os.WriteFile(name, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range []int{1, 3} {
			d, err := openDataset(dir, []int{c, 4, 5}, normalization{})
			if err != nil {
				if !strings.Contains(err.Error(), name) {
					t.Fatalf("error %q does not name %s", err, name)
				}
				continue
			}
			dst := make([]float32, c*4*5)
			if err := d.Fill(dst, 0, 1); err != nil {
				t.Fatal(err)
			}
			for _, v := range dst {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("value %v outside [0, 1]", v)
				}
			}
		}
	})
}
