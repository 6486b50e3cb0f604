package nn

import (
	"fmt"
	"math"
)

// PoolOptions configures MaxPool2d and AvgPool2d. The zero value of each
// optional field is PyTorch's default. Pairs are (height, width).
type PoolOptions struct {
	KernelSize [2]int // required, both > 0
	Stride     [2]int // zero value: KernelSize
	Padding    [2]int // implicit padding on both sides, at most half the (effective) kernel; zero value: 0
	Dilation   [2]int // MaxPool2d only; zero value: 1
	CeilMode   bool   // round the output size up instead of down
	// AvgPool2d only: PyTorch count_include_pad=False (divide by the number
	// of input elements in the window rather than the padded window size).
	ExcludePad bool
	// AvgPool2d only: if > 0, divide every window sum by it (PyTorch divisor_override).
	DivisorOverride int
}

func (o PoolOptions) normalise(op string, dilation bool) (PoolOptions, error) {
	for i := range 2 {
		if o.Stride[i] == 0 {
			o.Stride[i] = o.KernelSize[i]
		}
		if o.Dilation[i] == 0 || !dilation {
			o.Dilation[i] = 1
		}
	}
	for i := range 2 {
		if o.KernelSize[i] <= 0 || o.Stride[i] <= 0 || o.Dilation[i] <= 0 {
			return o, fmt.Errorf("nn: %s: kernel_size %v, stride %v and dilation %v must be positive", op, o.KernelSize, o.Stride, o.Dilation)
		}
		if o.Padding[i] < 0 || o.Padding[i] > (o.Dilation[i]*(o.KernelSize[i]-1)+1)/2 {
			return o, fmt.Errorf("nn: %s: padding %v must be between 0 and half the kernel size %v", op, o.Padding, o.KernelSize)
		}
	}
	if o.DivisorOverride < 0 {
		return o, fmt.Errorf("nn: %s: divisor_override %d must not be negative", op, o.DivisorOverride)
	}
	return o, nil
}

// poolOut is PyTorch's pooling output size (pooling_output_shape): with
// ceil_mode the last window may run past the input, but must start inside
// the input or its left padding.
func poolOut(in, k, s, p, d int, ceil bool) int {
	num := in + 2*p - d*(k-1) - 1
	if ceil {
		num += s - 1
	}
	out := num / s
	if num%s != 0 && num < 0 {
		out-- // floor division
	}
	out++
	if ceil && (out-1)*s >= in+p {
		out--
	}
	return out
}

func poolShape(op string, o *PoolOptions, in [][]int) ([]int, error) {
	x, err := oneShape(op, in)
	if err != nil {
		return nil, err
	}
	if len(x) != 4 {
		return nil, shapeErr(op, "[N C H W]", x)
	}
	ho := poolOut(x[2], o.KernelSize[0], o.Stride[0], o.Padding[0], o.Dilation[0], o.CeilMode)
	wo := poolOut(x[3], o.KernelSize[1], o.Stride[1], o.Padding[1], o.Dilation[1], o.CeilMode)
	if ho <= 0 || wo <= 0 {
		eh := o.Dilation[0]*(o.KernelSize[0]-1) + 1 - 2*o.Padding[0]
		ew := o.Dilation[1]*(o.KernelSize[1]-1) + 1 - 2*o.Padding[1]
		return nil, shapeErr(op, fmt.Sprintf("[N C H W] with H >= %d, W >= %d", eh, ew), x)
	}
	return []int{x[0], x[1], ho, wo}, nil
}

// MaxPool2d is the maximum over sliding windows of NCHW input (PyTorch
// nn.MaxPool2d). Padding never wins the maximum; NaN propagates.
type MaxPool2d struct {
	Options PoolOptions // normalised
}

// NewMaxPool2d returns a MaxPool2d layer.
func NewMaxPool2d(o PoolOptions) (*MaxPool2d, error) {
	o, err := o.normalise("MaxPool2d", true)
	if err != nil {
		return nil, err
	}
	return &MaxPool2d{Options: o}, nil
}

func (*MaxPool2d) Op() string { return "MaxPool2d" }

func (p *MaxPool2d) OutputShape(in ...[]int) ([]int, error) {
	return poolShape("MaxPool2d", &p.Options, in)
}

func (p *MaxPool2d) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("MaxPool2d", in)
	if err != nil {
		return nil, err
	}
	s, err := p.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	h, w, ho, wo := x.Shape[2], x.Shape[3], s[2], s[3]
	y := &Tensor{Shape: s, Data: make([]float32, s[0]*s[1]*ho*wo)}
	planes := s[0] * s[1]
	parallel(planes, max(1, elementwiseGrain/(h*w+1)), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			p.plane(x.Data[pl*h*w:(pl+1)*h*w], y.Data[pl*ho*wo:(pl+1)*ho*wo], h, w, ho, wo)
		}
	})
	return y, nil
}

// plane max-pools one h×w plane src into the ho×wo plane dst.
func (p *MaxPool2d) plane(src, dst []float32, h, w, ho, wo int) {
	o := &p.Options
	kh, kw, sh, sw, ph, pw, dh, dw := o.KernelSize[0], o.KernelSize[1], o.Stride[0], o.Stride[1], o.Padding[0], o.Padding[1], o.Dilation[0], o.Dilation[1]
	if kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && dh == 1 && dw == 1 && 2*ho <= h && 2*wo <= w {
		maxPool2x2(src, dst, w, ho, wo)
		return
	}
	for oy := 0; oy < ho; oy++ {
		for ox := 0; ox < wo; ox++ {
			m := float32(math.Inf(-1))
			for ki := 0; ki < kh; ki++ {
				iy := oy*sh - ph + ki*dh
				if iy < 0 || iy >= h {
					continue
				}
				for kj := 0; kj < kw; kj++ {
					ix := ox*sw - pw + kj*dw
					if ix < 0 || ix >= w {
						continue
					}
					m = max(m, src[iy*w+ix]) // NaN propagates
				}
			}
			dst[oy*wo+ox] = m
		}
	}
}

func maxPool2x2(src, dst []float32, w, ho, wo int) {
	for oy := 0; oy < ho; oy++ {
		r0 := src[2*oy*w : 2*oy*w+w]
		r1 := src[(2*oy+1)*w : (2*oy+1)*w+w]
		d := dst[oy*wo : (oy+1)*wo]
		for ox := range d {
			d[ox] = max(r0[2*ox], r0[2*ox+1], r1[2*ox], r1[2*ox+1]) // NaN propagates
		}
	}
}

// AvgPool2d is the mean over sliding windows of NCHW input (PyTorch
// nn.AvgPool2d). By default (count_include_pad=True) the zero padding counts
// towards the window size.
type AvgPool2d struct {
	Options PoolOptions // normalised; Dilation is always 1
}

// NewAvgPool2d returns an AvgPool2d layer.
func NewAvgPool2d(o PoolOptions) (*AvgPool2d, error) {
	o, err := o.normalise("AvgPool2d", false)
	if err != nil {
		return nil, err
	}
	return &AvgPool2d{Options: o}, nil
}

func (*AvgPool2d) Op() string { return "AvgPool2d" }

func (p *AvgPool2d) OutputShape(in ...[]int) ([]int, error) {
	return poolShape("AvgPool2d", &p.Options, in)
}

func (p *AvgPool2d) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("AvgPool2d", in)
	if err != nil {
		return nil, err
	}
	s, err := p.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	o := &p.Options
	h, w, ho, wo := x.Shape[2], x.Shape[3], s[2], s[3]
	y := &Tensor{Shape: s, Data: make([]float32, s[0]*s[1]*ho*wo)}
	kh, kw, sh, sw, ph, pw := o.KernelSize[0], o.KernelSize[1], o.Stride[0], o.Stride[1], o.Padding[0], o.Padding[1]
	parallel(s[0]*s[1], max(1, elementwiseGrain/(h*w+1)), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			src := x.Data[pl*h*w : (pl+1)*h*w]
			dst := y.Data[pl*ho*wo : (pl+1)*ho*wo]
			for oy := 0; oy < ho; oy++ {
				h0 := oy*sh - ph
				h1 := min(h0+kh, h+ph)
				for ox := 0; ox < wo; ox++ {
					w0 := ox*sw - pw
					w1 := min(w0+kw, w+pw)
					size := (h1 - h0) * (w1 - w0)
					a0, a1, b0, b1 := max(h0, 0), min(h1, h), max(w0, 0), min(w1, w)
					if a0 >= a1 || b0 >= b1 {
						dst[oy*wo+ox] = 0
						continue
					}
					var sum float32
					for iy := a0; iy < a1; iy++ {
						for _, v := range src[iy*w+b0 : iy*w+b1] {
							sum += v
						}
					}
					div := size
					switch {
					case o.DivisorOverride > 0:
						div = o.DivisorOverride
					case o.ExcludePad:
						div = (a1 - a0) * (b1 - b0)
					}
					dst[oy*wo+ox] = sum / float32(div)
				}
			}
		}
	})
	return y, nil
}

// AdaptiveAvgPool2d averages NCHW input into a fixed output size (PyTorch
// nn.AdaptiveAvgPool2d): output cell i covers input rows
// floor(i*H/Ho) .. ceil((i+1)*H/Ho)-1, likewise for columns.
type AdaptiveAvgPool2d struct {
	OutputSize [2]int // (Ho, Wo); a zero entry keeps the input size
}

// NewAdaptiveAvgPool2d returns an AdaptiveAvgPool2d layer; outputSize
// entries must not be negative (0 keeps the input size, like PyTorch's None).
func NewAdaptiveAvgPool2d(outputSize [2]int) (*AdaptiveAvgPool2d, error) {
	if outputSize[0] < 0 || outputSize[1] < 0 {
		return nil, fmt.Errorf("nn: AdaptiveAvgPool2d: output_size %v must not be negative", outputSize)
	}
	return &AdaptiveAvgPool2d{OutputSize: outputSize}, nil
}

func (*AdaptiveAvgPool2d) Op() string { return "AdaptiveAvgPool2d" }

func (p *AdaptiveAvgPool2d) size(x []int) (int, int) {
	ho, wo := p.OutputSize[0], p.OutputSize[1]
	if ho == 0 {
		ho = x[2]
	}
	if wo == 0 {
		wo = x[3]
	}
	return ho, wo
}

func (p *AdaptiveAvgPool2d) OutputShape(in ...[]int) ([]int, error) {
	x, err := oneShape("AdaptiveAvgPool2d", in)
	if err != nil {
		return nil, err
	}
	if len(x) != 4 || x[2] == 0 || x[3] == 0 {
		return nil, shapeErr("AdaptiveAvgPool2d", "[N C H W] with H, W > 0", x)
	}
	ho, wo := p.size(x)
	return []int{x[0], x[1], ho, wo}, nil
}

func (p *AdaptiveAvgPool2d) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("AdaptiveAvgPool2d", in)
	if err != nil {
		return nil, err
	}
	s, err := p.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	h, w, ho, wo := x.Shape[2], x.Shape[3], s[2], s[3]
	y := &Tensor{Shape: s, Data: make([]float32, s[0]*s[1]*ho*wo)}
	parallel(s[0]*s[1], max(1, elementwiseGrain/(h*w+1)), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			src := x.Data[pl*h*w : (pl+1)*h*w]
			dst := y.Data[pl*ho*wo : (pl+1)*ho*wo]
			for oy := 0; oy < ho; oy++ {
				a0, a1 := oy*h/ho, ((oy+1)*h+ho-1)/ho
				for ox := 0; ox < wo; ox++ {
					b0, b1 := ox*w/wo, ((ox+1)*w+wo-1)/wo
					var sum float32
					for iy := a0; iy < a1; iy++ {
						for _, v := range src[iy*w+b0 : iy*w+b1] {
							sum += v
						}
					}
					dst[oy*wo+ox] = sum / float32((a1-a0)*(b1-b0))
				}
			}
		}
	})
	return y, nil
}
