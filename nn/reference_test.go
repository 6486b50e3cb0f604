package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Each layer is compared with a naive float64 loop implementation over a
// grid of shapes and parameters (in the style of gonum/mat's list_test.go).

func closeTo(t *testing.T, name string, got *Tensor, want []float64, wantShape []int) {
	t.Helper()
	if fmt.Sprint(got.Shape) != fmt.Sprint(wantShape) {
		t.Fatalf("%s: shape %v, want %v", name, got.Shape, wantShape)
	}
	if len(got.Data) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got.Data), len(want))
	}
	for i, w := range want {
		g := float64(got.Data[i])
		if math.IsNaN(w) != math.IsNaN(g) || math.Abs(g-w) > 1e-5*math.Max(1, math.Abs(w)) {
			t.Fatalf("%s: value %d = %g, want %g", name, i, g, w)
		}
	}
}

func naiveConv(x *Tensor, c *Conv2d) ([]float64, []int) {
	o := c.Options
	n, cin, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	kh, kw := o.KernelSize[0], o.KernelSize[1]
	ho := (h+2*o.Padding[0]-o.Dilation[0]*(kh-1)-1)/o.Stride[0] + 1
	wo := (w+2*o.Padding[1]-o.Dilation[1]*(kw-1)-1)/o.Stride[1] + 1
	cout := o.OutChannels
	if h+2*o.Padding[0] < o.Dilation[0]*(kh-1)+1 || w+2*o.Padding[1] < o.Dilation[1]*(kw-1)+1 {
		return nil, []int{n, cout, 0, 0}
	}
	cg, og := cin/o.Groups, cout/o.Groups
	out := make([]float64, n*cout*ho*wo)
	for b := 0; b < n; b++ {
		for oc := 0; oc < cout; oc++ {
			g := oc / og
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					s := 0.0
					if c.Bias != nil {
						s = float64(c.Bias.Data[oc])
					}
					for ic := 0; ic < cg; ic++ {
						for ki := 0; ki < kh; ki++ {
							for kj := 0; kj < kw; kj++ {
								iy := oy*o.Stride[0] - o.Padding[0] + ki*o.Dilation[0]
								ix := ox*o.Stride[1] - o.Padding[1] + kj*o.Dilation[1]
								if iy < 0 || iy >= h || ix < 0 || ix >= w {
									continue
								}
								xv := x.Data[((b*cin+g*cg+ic)*h+iy)*w+ix]
								wv := c.Weight.Data[((oc*cg+ic)*kh+ki)*kw+kj]
								s += float64(xv) * float64(wv)
							}
						}
					}
					out[((b*cout+oc)*ho+oy)*wo+ox] = s
				}
			}
		}
	}
	return out, []int{n, cout, ho, wo}
}

func fillRand(r *rand.Rand, ts ...*Tensor) {
	for _, t := range ts {
		if t == nil {
			continue
		}
		for i := range t.Data {
			t.Data[i] = float32(r.NormFloat64())
		}
	}
}

func TestConv2dReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := 0
	for _, n := range []int{1, 3} {
		for _, hw := range [][2]int{{1, 1}, {5, 7}, {8, 8}} {
			for _, k := range [][2]int{{1, 1}, {3, 3}, {2, 3}} {
				for _, s := range [][2]int{{1, 1}, {2, 2}, {1, 3}} {
					for _, p := range [][2]int{{0, 0}, {1, 1}, {2, 0}} {
						for _, d := range [][2]int{{1, 1}, {2, 2}} {
							for _, g := range [][3]int{{1, 2, 3}, {2, 4, 6}, {4, 4, 4}, {3, 3, 6}} { // groups, cin, cout
								for _, bias := range []bool{true, false} {
									o := Conv2dOptions{InChannels: g[1], OutChannels: g[2], KernelSize: k, Stride: s, Padding: p, Dilation: d, Groups: g[0], NoBias: !bias}
									c, err := NewConv2d(o)
									if err != nil {
										t.Fatal(err)
									}
									x := NewTensor(n, g[1], hw[0], hw[1])
									fillRand(r, x, c.Weight, c.Bias)
									name := fmt.Sprintf("%+v x%v", o, x.Shape)
									want, shape := naiveConv(x, c)
									if shape[2] <= 0 || shape[3] <= 0 {
										if _, err := c.Forward(x); err == nil {
											t.Errorf("%s: no error for empty output", name)
										}
										continue
									}
									got, err := c.Forward(x)
									if err != nil {
										t.Fatalf("%s: %v", name, err)
									}
									closeTo(t, name, got, want, shape)
									cases++
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d cases", cases)
}

func naivePool(x *Tensor, o PoolOptions, isMax bool) ([]float64, []int) {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	ho := poolOut(h, o.KernelSize[0], o.Stride[0], o.Padding[0], o.Dilation[0], o.CeilMode)
	wo := poolOut(w, o.KernelSize[1], o.Stride[1], o.Padding[1], o.Dilation[1], o.CeilMode)
	out := make([]float64, 0, n*c*ho*wo)
	for pl := 0; pl < n*c; pl++ {
		for oy := 0; oy < ho; oy++ {
			for ox := 0; ox < wo; ox++ {
				m, sum, cnt, padded := math.Inf(-1), 0.0, 0, 0
				for ki := 0; ki < o.KernelSize[0]; ki++ {
					for kj := 0; kj < o.KernelSize[1]; kj++ {
						iy := oy*o.Stride[0] - o.Padding[0] + ki*o.Dilation[0]
						ix := ox*o.Stride[1] - o.Padding[1] + kj*o.Dilation[1]
						// positions inside the padded input count for count_include_pad
						if iy < h+o.Padding[0] && ix < w+o.Padding[1] {
							padded++
						}
						if iy < 0 || iy >= h || ix < 0 || ix >= w {
							continue
						}
						v := float64(x.Data[(pl*h+iy)*w+ix])
						m = math.Max(m, v)
						sum += v
						cnt++
					}
				}
				switch {
				case isMax:
					out = append(out, m)
				case o.DivisorOverride > 0:
					out = append(out, sum/float64(o.DivisorOverride))
				case o.ExcludePad:
					out = append(out, sum/float64(cnt))
				default:
					out = append(out, sum/float64(padded))
				}
			}
		}
	}
	return out, []int{n, c, ho, wo}
}

func TestPoolReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := 0
	for _, shape := range [][]int{{1, 1, 4, 4}, {2, 3, 7, 5}, {1, 2, 9, 9}} {
		for _, k := range [][2]int{{2, 2}, {3, 3}, {1, 2}} {
			for _, s := range [][2]int{{0, 0}, {1, 1}, {2, 1}} {
				for _, p := range [][2]int{{0, 0}, {1, 1}, {1, 0}} {
					for _, d := range [][2]int{{1, 1}, {2, 1}} {
						for _, ceil := range []bool{false, true} {
							for _, avgMode := range []int{0, 1, 2} {
								o := PoolOptions{KernelSize: k, Stride: s, Padding: p, Dilation: d, CeilMode: ceil}
								switch avgMode {
								case 1:
									o.ExcludePad = true
								case 2:
									o.DivisorOverride = 3
								}
								x := NewTensor(shape...)
								fillRand(r, x)
								for _, isMax := range []bool{true, false} {
									var l Layer
									var err error
									if isMax {
										if avgMode > 0 {
											continue
										}
										l, err = NewMaxPool2d(o)
									} else {
										if d != [2]int{1, 1} {
											continue
										}
										l, err = NewAvgPool2d(o)
									}
									name := fmt.Sprintf("max=%v %+v x%v", isMax, o, shape)
									if err != nil {
										if p[0] > k[0]/2 || p[1] > k[1]/2 {
											continue // PyTorch rejects these too
										}
										t.Fatalf("%s: %v", name, err)
									}
									norm := o
									if norm.Stride == [2]int{} {
										norm.Stride = k
									}
									want, ws := naivePool(x, norm, isMax)
									got, err := l.Forward(x)
									if ws[2] <= 0 || ws[3] <= 0 {
										if err == nil {
											t.Errorf("%s: no error for empty output", name)
										}
										continue
									}
									if err != nil {
										t.Fatalf("%s: %v", name, err)
									}
									closeTo(t, name, got, want, ws)
									cases++
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d cases", cases)
}

func TestMaxPoolNaN(t *testing.T) {
	p, _ := NewMaxPool2d(PoolOptions{KernelSize: [2]int{2, 2}})
	nan := float32(math.NaN())
	for _, pos := range []int{0, 1, 2, 3} {
		x, _ := FromSlice([]float32{1, 2, 3, 4}, 1, 1, 2, 2)
		x.Data[pos] = nan
		y, _ := p.Forward(x)
		if y.Data[0] == y.Data[0] {
			t.Errorf("NaN at %d: max = %g, want NaN", pos, y.Data[0])
		}
	}
	q, _ := NewMaxPool2d(PoolOptions{KernelSize: [2]int{3, 3}, Stride: [2]int{1, 1}, Padding: [2]int{1, 1}})
	x, _ := FromSlice([]float32{1, nan, 3, 4}, 1, 1, 2, 2)
	y, _ := q.Forward(x)
	for i, v := range y.Data {
		if v == v {
			t.Errorf("padded window %d: max = %g, want NaN", i, v)
		}
	}
}

func TestAdaptiveAvgPoolReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, shape := range [][]int{{1, 1, 1, 1}, {2, 3, 7, 5}, {1, 2, 9, 4}} {
		for _, os := range [][2]int{{1, 1}, {2, 3}, {3, 3}, {7, 5}, {0, 2}, {10, 1}} {
			x := NewTensor(shape...)
			fillRand(r, x)
			p, err := NewAdaptiveAvgPool2d(os)
			if err != nil {
				t.Fatal(err)
			}
			h, w := shape[2], shape[3]
			ho, wo := os[0], os[1]
			if ho == 0 {
				ho = h
			}
			var want []float64
			for pl := 0; pl < shape[0]*shape[1]; pl++ {
				for oy := 0; oy < ho; oy++ {
					for ox := 0; ox < wo; ox++ {
						y0 := int(math.Floor(float64(oy*h) / float64(ho)))
						y1 := int(math.Ceil(float64((oy+1)*h) / float64(ho)))
						x0 := int(math.Floor(float64(ox*w) / float64(wo)))
						x1 := int(math.Ceil(float64((ox+1)*w) / float64(wo)))
						s := 0.0
						for iy := y0; iy < y1; iy++ {
							for ix := x0; ix < x1; ix++ {
								s += float64(x.Data[(pl*h+iy)*w+ix])
							}
						}
						want = append(want, s/float64((y1-y0)*(x1-x0)))
					}
				}
			}
			got, err := p.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, fmt.Sprint(shape, os), got, want, []int{shape[0], shape[1], ho, wo})
		}
	}
}

func TestLinearReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, shape := range [][]int{{1, 1}, {5, 3}, {2, 3, 7}, {64, 130}} {
		for _, out := range []int{1, 4, 33} {
			for _, bias := range []bool{true, false} {
				in := shape[len(shape)-1]
				l, _ := NewLinear(LinearOptions{InFeatures: in, OutFeatures: out, NoBias: !bias})
				x := NewTensor(shape...)
				fillRand(r, x, l.Weight, l.Bias)
				rows := x.Numel() / in
				var want []float64
				for i := 0; i < rows; i++ {
					for j := 0; j < out; j++ {
						s := 0.0
						if bias {
							s = float64(l.Bias.Data[j])
						}
						for k := 0; k < in; k++ {
							s += float64(x.Data[i*in+k]) * float64(l.Weight.Data[j*in+k])
						}
						want = append(want, s)
					}
				}
				ws := cloneShape(shape)
				ws[len(ws)-1] = out
				got, err := l.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				closeTo(t, fmt.Sprint(shape, out, bias), got, want, ws)
			}
		}
	}
}

func TestBatchNormReference(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, shape := range [][]int{{1, 1, 1, 1}, {2, 3, 4, 5}} {
		for _, affine := range []bool{true, false} {
			c := shape[1]
			b, _ := NewBatchNorm2d(BatchNorm2dOptions{NumFeatures: c, Eps: 1e-3, NoAffine: !affine})
			x := NewTensor(shape...)
			fillRand(r, x, b.Weight, b.Bias, b.RunningMean)
			for i := range b.RunningVar.Data {
				b.RunningVar.Data[i] = 0.5 + r.Float32()
			}
			hw := shape[2] * shape[3]
			want := make([]float64, len(x.Data))
			for i, v := range x.Data {
				ch := (i / hw) % c
				y := (float64(v) - float64(b.RunningMean.Data[ch])) / math.Sqrt(float64(b.RunningVar.Data[ch])+1e-3)
				if affine {
					y = y*float64(b.Weight.Data[ch]) + float64(b.Bias.Data[ch])
				}
				want[i] = y
			}
			got, err := b.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, fmt.Sprint(shape, affine), got, want, shape)
		}
	}
}

func TestElementwiseReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	gelu, _ := NewGELU("none")
	geluTanh, _ := NewGELU("tanh")
	fns := []struct {
		l Layer
		f func(float64) float64
	}{
		{NewReLU(), func(x float64) float64 { return math.Max(x, 0) }},
		{NewSigmoid(), func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }},
		{NewTanh(), math.Tanh},
		{gelu, func(x float64) float64 { return x * 0.5 * math.Erfc(-x/math.Sqrt2) }},
		{geluTanh, func(x float64) float64 {
			return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
		}},
		{NewDropout(0.5), func(x float64) float64 { return x }},
	}
	for _, shape := range [][]int{{0}, {7}, {3, 1 << 15}} {
		x := NewTensor(shape...)
		fillRand(r, x)
		x.Data = append(x.Data[:0:0], x.Data...)
		orig := x.Clone()
		for _, fn := range fns {
			want := make([]float64, len(x.Data))
			for i, v := range x.Data {
				want[i] = fn.f(float64(v))
			}
			got, err := fn.l.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, fmt.Sprint(fn.l.Op(), shape), got, want, shape)
			if fmt.Sprint(orig.Data[:min(10, len(orig.Data))]) != fmt.Sprint(x.Data[:min(10, len(x.Data))]) {
				t.Fatalf("%s modified its input", fn.l.Op())
			}
		}
	}
}

func TestSoftmaxReference(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, shape := range [][]int{{4, 5}, {2, 3, 4}, {1, 1}} {
		for dim := -len(shape); dim < len(shape); dim++ {
			x := NewTensor(shape...)
			fillRand(r, x)
			d := dim
			if d < 0 {
				d += len(shape)
			}
			inner := 1
			for _, v := range shape[d+1:] {
				inner *= v
			}
			want := make([]float64, len(x.Data))
			for i := range x.Data {
				// index of element i along d and the start of its slice
				pos := (i / inner) % shape[d]
				base := i - pos*inner
				s := 0.0
				for k := 0; k < shape[d]; k++ {
					s += math.Exp(float64(x.Data[base+k*inner]))
				}
				want[i] = math.Exp(float64(x.Data[i])) / s
			}
			got, err := NewSoftmax(dim).Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, fmt.Sprint(shape, dim), got, want, shape)
		}
		if _, err := NewSoftmax(len(shape)).Forward(NewTensor(shape...)); err == nil {
			t.Errorf("no error for dim %d of %v", len(shape), shape)
		}
	}
}

func TestAddBroadcast(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	tests := []struct{ a, b, out []int }{
		{[]int{2, 3}, []int{2, 3}, []int{2, 3}},
		{[]int{2, 3}, []int{3}, []int{2, 3}},
		{[]int{2, 1, 4}, []int{3, 1}, []int{2, 3, 4}},
		{[]int{1}, []int{2, 2}, []int{2, 2}},
		{[]int{}, []int{2}, []int{2}},
	}
	for _, tc := range tests {
		a, b := NewTensor(tc.a...), NewTensor(tc.b...)
		fillRand(r, a, b)
		got, err := NewAdd().Forward(a, b)
		if err != nil {
			t.Fatal(err)
		}
		// reference: index both inputs through the broadcast shape
		n := 1
		for _, d := range tc.out {
			n *= d
		}
		idx := func(s []int, flat int) int {
			off, stride := 0, 1
			for i := len(tc.out) - 1; i >= 0; i-- {
				c := flat % tc.out[i]
				flat /= tc.out[i]
				if j := len(s) - len(tc.out) + i; j >= 0 {
					if s[j] != 1 {
						off += c * stride
					}
					stride *= s[j]
				}
			}
			return off
		}
		want := make([]float64, n)
		for i := range want {
			want[i] = float64(a.Data[idx(tc.a, i)]) + float64(b.Data[idx(tc.b, i)])
		}
		closeTo(t, fmt.Sprint(tc.a, tc.b), got, want, tc.out)
	}
	if _, err := NewAdd().Forward(NewTensor(2, 3), NewTensor(2, 4)); err == nil {
		t.Error("no error for incompatible shapes")
	}
}

func TestFlattenShapes(t *testing.T) {
	tests := []struct {
		start, end int
		in         []int
		want       string
	}{
		{1, -1, []int{2, 3, 4, 5}, "[2 60]"},
		{0, -1, []int{2, 3, 4}, "[24]"},
		{1, 2, []int{2, 3, 4, 5}, "[2 12 5]"},
		{-2, -1, []int{2, 3, 4}, "[2 12]"},
		{2, 1, []int{2, 3, 4}, "error"},
		{1, -1, []int{}, "error"},
	}
	for _, tc := range tests {
		s, err := NewFlatten(tc.start, tc.end).OutputShape(tc.in)
		got := fmt.Sprint(s)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("Flatten(%d,%d)%v = %s, want %s", tc.start, tc.end, tc.in, got, tc.want)
		}
	}
}

// TestPoolOutputSize checks poolOut against sizes printed by PyTorch 1.13
// (torch.nn.MaxPool2d(k, s, p, dilation=d, ceil_mode=c) on an n×n input;
// 0 = PyTorch raises an error).
func TestPoolOutputSize(t *testing.T) {
	tests := []struct {
		in, k, s, p, d int
		ceil           bool
		want           int
	}{
		{4, 3, 3, 0, 2, true, 1},
		{4, 3, 3, 0, 2, false, 0},
		{5, 2, 2, 0, 1, true, 3},
		{4, 2, 2, 1, 1, true, 3},
		{6, 3, 2, 1, 1, true, 4},
		{7, 3, 2, 1, 1, true, 4},
		{28, 2, 2, 0, 1, false, 14},
		{3, 3, 3, 1, 1, true, 2},
	}
	for _, tc := range tests {
		got := max(poolOut(tc.in, tc.k, tc.s, tc.p, tc.d, tc.ceil), 0)
		if got != tc.want {
			t.Errorf("poolOut%+v = %d, want %d", tc, got, tc.want)
		}
	}
}
