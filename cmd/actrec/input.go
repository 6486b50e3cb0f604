package main

import (
	"archive/zip"
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // decoder for --input directories
	_ "image/png"  // decoder for --input directories
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/image/draw"

	idx "github.com/actrec/actrec/nn/dataset"
)

// dataset is a sequence of input samples of one shape, read into float32 batches.
type dataset interface {
	// Len is the number of samples.
	Len() int
	// Shape is the per-sample shape (e.g. [1 28 28]).
	Shape() []int
	// Fill copies samples [start, start+n) into dst (len n*prod(Shape)).
	Fill(dst []float32, start, n int) error
	// Describe is the run's input description (provenance).
	Describe() string
}

// memDataset holds all samples in memory as float32.
type memDataset struct {
	shape []int
	data  []float32
	desc  string
}

func (d *memDataset) Len() int {
	per := prod(d.shape)
	if per == 0 {
		return 0
	}
	return len(d.data) / per
}
func (d *memDataset) Shape() []int     { return d.shape }
func (d *memDataset) Describe() string { return d.desc }
func (d *memDataset) Fill(dst []float32, start, n int) error {
	per := prod(d.shape)
	if start < 0 || n < 0 || (start+n)*per > len(d.data) || len(dst) < n*per {
		return fmt.Errorf("samples [%d, %d) out of range (dataset has %d)", start, start+n, d.Len())
	}
	copy(dst, d.data[start*per:(start+n)*per])
	return nil
}

func prod(s []int) int {
	p := 1
	for _, v := range s {
		p *= v
	}
	return p
}

// normalization maps a pixel in [0,1] to (x-mean)/std, per channel when len(mean) == channels.
type normalization struct {
	Mean, Std []float64
}

func (n normalization) apply(c int, x float64) float32 {
	m, s := 0.0, 1.0
	if len(n.Mean) > 0 {
		m = n.Mean[c%len(n.Mean)]
	}
	if len(n.Std) > 0 {
		s = n.Std[c%len(n.Std)]
	}
	return float32((x - m) / s)
}

func (n normalization) String() string {
	if len(n.Mean) == 0 && len(n.Std) == 0 {
		return "x/255"
	}
	return fmt.Sprintf("(x/255 - %v) / %v", n.Mean, n.Std)
}

// openDataset opens --input: an IDX file (MNIST format, optionally gzip), an .npy or .npz file
// (optionally "file.npz:array"), or a directory of PNG/JPEG images resized to want (C,H,W).
// Images and IDX bytes are scaled to [0,1] then normalized; .npy/.npz arrays are used as they are.
func openDataset(path string, want []int, norm normalization) (dataset, error) {
	name, key := path, ""
	if i := strings.LastIndex(path, ".npz:"); i >= 0 {
		name, key = path[:i+4], path[i+5:]
	}
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	var d dataset
	switch low := strings.ToLower(name); {
	case fi.IsDir():
		d, err = readImageDir(name, want, norm)
	case strings.HasSuffix(low, ".npy"):
		d, err = readNPYFile(name)
	case strings.HasSuffix(low, ".npz"):
		d, err = readNPZ(name, key)
	default:
		d, err = readIDXImages(name, norm)
	}
	if err != nil {
		return nil, err
	}
	if len(want) > 0 && !sameShape(d.Shape(), want) {
		return nil, fmt.Errorf("input %s: samples have shape %v, the model wants %v", name, d.Shape(), want)
	}
	return d, nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// maxInputBytes bounds what a header may claim, so that a corrupt length cannot make us allocate
// without limit before reading.
const maxInputBytes = 8 << 30

// readIDXImages reads an MNIST-format IDX image file (gzip or not) into samples [1,H,W],
// normalized exactly as torchvision's ToTensor + Normalize (see nn/dataset).
func readIDXImages(path string, norm normalization) (dataset, error) {
	im, err := idx.OpenImages(path)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	mean, std := float32(0), float32(1)
	if len(norm.Mean) > 0 {
		mean = float32(norm.Mean[0])
	}
	if len(norm.Std) > 0 {
		std = float32(norm.Std[0])
	}
	t, err := im.Tensor(0, im.N, mean, std)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	sample := []int{1, im.Rows, im.Cols}
	return &memDataset{shape: sample, data: t.Data,
		desc: fmt.Sprintf("idx:%s n=%d shape=%v normalize=%s", filepath.Base(path), im.N, sample, norm)}, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readImageDir loads every .png/.jpg/.jpeg file of dir in name order, resized (bilinear) to
// want = [C,H,W] (C 1: luminance, C 3: RGB), scaled to [0,1] and normalized.
func readImageDir(dir string, want []int, norm normalization) (dataset, error) {
	if len(want) != 3 || (want[0] != 1 && want[0] != 3) {
		return nil, fmt.Errorf("input %s: image directories need a model input of shape [1|3,H,W], have %v", dir, want)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg":
			if e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("input %s: no .png, .jpg or .jpeg files", dir)
	}
	sort.Strings(names)
	c, h, w := want[0], want[1], want[2]
	per := c * h * w
	data := make([]float32, len(names)*per)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for i, n := range names {
		img, err := decodeImage(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", filepath.Join(dir, n), err)
		}
		draw.BiLinear.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
		out := data[i*per : (i+1)*per]
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := dst.RGBAAt(x, y)
				if c == 1 {
					g := color.GrayModel.Convert(p).(color.Gray)
					out[y*w+x] = norm.apply(0, float64(g.Y)/255)
					continue
				}
				out[0*h*w+y*w+x] = norm.apply(0, float64(p.R)/255)
				out[1*h*w+y*w+x] = norm.apply(1, float64(p.G)/255)
				out[2*h*w+y*w+x] = norm.apply(2, float64(p.B)/255)
			}
		}
	}
	return &memDataset{shape: append([]int(nil), want...), data: data,
		desc: fmt.Sprintf("images:%s n=%d resized=%dx%d bilinear channels=%d normalize=%s", dir, len(names), h, w, c, norm)}, nil
}

func decodeImage(path string) (img image.Image, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, err
	}
	if int64(cfg.Width)*int64(cfg.Height) > 1<<28 {
		return nil, fmt.Errorf("image %dx%d too large", cfg.Width, cfg.Height)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	img, _, err = image.Decode(f)
	return img, err
}

// --- NPY / NPZ input ---

var npyShapeRE = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
var npyDescrRE = regexp.MustCompile(`'descr':\s*'([^']*)'`)
var npyFortranRE = regexp.MustCompile(`'fortran_order':\s*(True|False)`)

func readNPYFile(path string) (dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	shape, data, err := decodeNPY(bufio.NewReader(f), fi.Size())
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	return npyDataset(path, shape, data)
}

func npyDataset(name string, shape []int, data []float32) (dataset, error) {
	if len(shape) < 2 {
		return nil, fmt.Errorf("input %s: array of shape %v: want [N, ...sample shape]", name, shape)
	}
	return &memDataset{shape: shape[1:], data: data,
		desc: fmt.Sprintf("npy:%s n=%d shape=%v (used as stored, no normalization)", filepath.Base(name), shape[0], shape[1:])}, nil
}

func readNPZ(path, key string) (dataset, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, strings.TrimSuffix(f.Name, ".npy"))
	}
	for _, f := range zr.File {
		n := strings.TrimSuffix(f.Name, ".npy")
		if key != "" && n != key {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("input %s: array %s: %w", path, n, err)
		}
		shape, data, err := decodeNPY(bufio.NewReader(rc), int64(f.UncompressedSize64))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("input %s: array %s: %w", path, n, err)
		}
		return npyDataset(path+":"+n, shape, data)
	}
	if key != "" {
		return nil, fmt.Errorf("input %s: no array %q (have %s)", path, key, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("input %s: empty npz", path)
}

// decodeNPY reads a .npy array of float32, float64, uint8 or int64 (little-endian, C order) and
// converts it to float32. size bounds the data length a header may claim; the array is allocated
// as its data is read, not from the header's claim.
func decodeNPY(r io.Reader, size int64) ([]int, []float32, error) {
	var pre [10]byte
	if _, err := io.ReadFull(r, pre[:8]); err != nil {
		return nil, nil, fmt.Errorf("npy header at offset 0: %w", noEOF(err))
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return nil, nil, fmt.Errorf("npy header at offset 0: bad magic %q", pre[:6])
	}
	var hlen, off int
	switch pre[6] {
	case 1:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return nil, nil, fmt.Errorf("npy header at offset 8: %w", noEOF(err))
		}
		hlen, off = int(binary.LittleEndian.Uint16(pre[8:10])), 10
	case 2, 3:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, nil, fmt.Errorf("npy header at offset 8: %w", noEOF(err))
		}
		hlen, off = int(binary.LittleEndian.Uint32(l[:])), 12
	default:
		return nil, nil, fmt.Errorf("npy header at offset 6: unsupported version %d.%d", pre[6], pre[7])
	}
	if hlen > 1<<20 {
		return nil, nil, fmt.Errorf("npy header at offset %d: header length %d too large", off-4, hlen)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, nil, fmt.Errorf("npy header at offset %d: %w", off, noEOF(err))
	}
	h := string(hdr)
	dm := npyDescrRE.FindStringSubmatch(h)
	sm := npyShapeRE.FindStringSubmatch(h)
	if dm == nil || sm == nil {
		return nil, nil, fmt.Errorf("npy header at offset %d: no descr or shape in %q", off, h)
	}
	if fm := npyFortranRE.FindStringSubmatch(h); fm != nil && fm[1] == "True" {
		return nil, nil, fmt.Errorf("npy header at offset %d: fortran_order arrays are not supported", off)
	}
	var shape []int
	n := int64(1)
	for _, p := range strings.Split(sm[1], ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return nil, nil, fmt.Errorf("npy header at offset %d: bad shape %q", off, sm[1])
		}
		shape = append(shape, v)
		if v > 0 && n > maxInputBytes/int64(v) {
			return nil, nil, fmt.Errorf("npy header at offset %d: shape (%s) too large", off, sm[1])
		}
		n *= int64(v)
	}
	var width int64
	switch dm[1] {
	case "<f4", "<f8", "|u1", "<i8":
		width = map[string]int64{"<f4": 4, "<f8": 8, "|u1": 1, "<i8": 8}[dm[1]]
	default:
		return nil, nil, fmt.Errorf("npy header at offset %d: dtype %q not supported (want <f4, <f8, |u1 or <i8)", off, dm[1])
	}
	dataOff := int64(off + hlen)
	if size >= 0 && dataOff+n*width > size {
		return nil, nil, fmt.Errorf("npy data at offset %d: truncated: shape %v needs %d bytes, file has %d", dataOff, shape, n*width, size-dataOff)
	}
	// out grows as data arrives: size may be a zip entry's own claim, so a tiny file claiming a
	// huge array costs no more memory than the bytes it really has.
	out := make([]float32, 0, min(n, 1<<20))
	buf := make([]byte, 1<<16)
	var done int64
	for done < n {
		k := min(int64(len(buf))/width, n-done)
		if _, err := io.ReadFull(r, buf[:k*width]); err != nil {
			return nil, nil, fmt.Errorf("npy data at offset %d: %w", dataOff+done*width, noEOF(err))
		}
		out = slices.Grow(out, int(k))[:done+k]
		for i := int64(0); i < k; i++ {
			b := buf[i*width:]
			var v float32
			switch dm[1] {
			case "<f4":
				v = math.Float32frombits(binary.LittleEndian.Uint32(b))
			case "<f8":
				v = float32(math.Float64frombits(binary.LittleEndian.Uint64(b)))
			case "|u1":
				v = float32(b[0])
			case "<i8":
				v = float32(int64(binary.LittleEndian.Uint64(b)))
			}
			out[done+i] = v
		}
		done += k
	}
	return shape, out, nil
}
