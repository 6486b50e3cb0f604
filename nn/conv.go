package nn

import (
	"fmt"

	"github.com/actrec/actrec/nn/internal/gemm"
)

// Conv2dOptions configures a Conv2d layer. The zero value of each optional
// field is PyTorch's default. Pairs are (height, width).
type Conv2dOptions struct {
	InChannels  int    // required
	OutChannels int    // required
	KernelSize  [2]int // required, both > 0
	Stride      [2]int // zero value: 1
	Padding     [2]int // zero-padding on both sides; zero value: 0
	Dilation    [2]int // zero value: 1
	Groups      int    // zero value: 1; must divide InChannels and OutChannels
	NoBias      bool   // PyTorch bias=False: no bias parameter
}

// Conv2d is a 2-D convolution (cross-correlation) over NCHW input (PyTorch
// nn.Conv2d), computed as im2col + GEMM, parallel over the batch.
// Parameters: "weight" [OutChannels, InChannels/Groups, kH, kW] and "bias"
// [OutChannels].
type Conv2d struct {
	Options Conv2dOptions // normalised: Stride, Dilation, Groups filled in
	Weight  *Tensor
	Bias    *Tensor // nil without bias
}

// NewConv2d returns a Conv2d layer with zero weights, or an error if the
// options are inconsistent.
func NewConv2d(o Conv2dOptions) (*Conv2d, error) {
	for i := range 2 {
		if o.Stride[i] == 0 {
			o.Stride[i] = 1
		}
		if o.Dilation[i] == 0 {
			o.Dilation[i] = 1
		}
	}
	if o.Groups == 0 {
		o.Groups = 1
	}
	switch {
	case o.InChannels <= 0 || o.OutChannels <= 0:
		return nil, fmt.Errorf("nn: Conv2d: in_channels %d and out_channels %d must be positive", o.InChannels, o.OutChannels)
	case o.KernelSize[0] <= 0 || o.KernelSize[1] <= 0:
		return nil, fmt.Errorf("nn: Conv2d: kernel_size %v must be positive", o.KernelSize)
	case o.Stride[0] < 0 || o.Stride[1] < 0 || o.Dilation[0] < 0 || o.Dilation[1] < 0:
		return nil, fmt.Errorf("nn: Conv2d: stride %v and dilation %v must be positive", o.Stride, o.Dilation)
	case o.Padding[0] < 0 || o.Padding[1] < 0:
		return nil, fmt.Errorf("nn: Conv2d: padding %v must not be negative", o.Padding)
	case o.Groups < 0 || o.InChannels%o.Groups != 0 || o.OutChannels%o.Groups != 0:
		return nil, fmt.Errorf("nn: Conv2d: groups %d must divide in_channels %d and out_channels %d", o.Groups, o.InChannels, o.OutChannels)
	}
	c := &Conv2d{Options: o, Weight: NewTensor(o.OutChannels, o.InChannels/o.Groups, o.KernelSize[0], o.KernelSize[1])}
	if !o.NoBias {
		c.Bias = NewTensor(o.OutChannels)
	}
	return c, nil
}

func (*Conv2d) Op() string { return "Conv2d" }

// Params returns "weight" and, with a bias, "bias".
func (c *Conv2d) Params() []Param {
	ps := []Param{{"weight", c.Weight}}
	if c.Bias != nil {
		ps = append(ps, Param{"bias", c.Bias})
	}
	return ps
}

// convOut is the output size of a convolution or pooling window sweep.
func convOut(in, k, s, p, d int) int {
	return (in+2*p-d*(k-1)-1)/s + 1
}

func (c *Conv2d) OutputShape(in ...[]int) ([]int, error) {
	x, err := oneShape("Conv2d", in)
	if err != nil {
		return nil, err
	}
	o := &c.Options
	want := fmt.Sprintf("[N %d H W]", o.InChannels)
	if len(x) != 4 || x[1] != o.InChannels {
		return nil, shapeErr("Conv2d", want, x)
	}
	ho := convOut(x[2], o.KernelSize[0], o.Stride[0], o.Padding[0], o.Dilation[0])
	wo := convOut(x[3], o.KernelSize[1], o.Stride[1], o.Padding[1], o.Dilation[1])
	if x[2]+2*o.Padding[0] < o.Dilation[0]*(o.KernelSize[0]-1)+1 || x[3]+2*o.Padding[1] < o.Dilation[1]*(o.KernelSize[1]-1)+1 || ho <= 0 || wo <= 0 {
		eh := o.Dilation[0]*(o.KernelSize[0]-1) + 1 - 2*o.Padding[0]
		ew := o.Dilation[1]*(o.KernelSize[1]-1) + 1 - 2*o.Padding[1]
		return nil, shapeErr("Conv2d", fmt.Sprintf("[N %d H W] with H >= %d, W >= %d", o.InChannels, eh, ew), x)
	}
	return []int{x[0], o.OutChannels, ho, wo}, nil
}

func (c *Conv2d) Forward(in ...*Tensor) (*Tensor, error) {
	x, err := oneInput("Conv2d", in)
	if err != nil {
		return nil, err
	}
	s, err := c.OutputShape(x.Shape)
	if err != nil {
		return nil, err
	}
	return c.forward(x, s, false, nil, nil, nil), nil
}

// forward computes the convolution of x (whose output shape s has been
// checked), optionally followed by ReLU (relu) and then max-pooling (pool,
// whose output shape ps has been checked), sample by sample while each
// sample's output is still in the cache. With pool set, it returns the
// pooled tensor and the convolution output is never materialised.
//
// ch, if not nil, receives each stage's output in chunks of samples while
// they are in the cache (see stageChunks).
func (c *Conv2d) forward(x *Tensor, s []int, relu bool, pool *MaxPool2d, ps []int, ch *stageChunks) *Tensor {
	depthwise := c.Options.InChannels == c.Options.Groups
	y := &Tensor{Shape: s} // with pool: per-sample scratch only
	out := y
	if pool != nil {
		size := ps[0] * ps[1] * ps[2] * ps[3]
		var data []float32
		if ch != nil && ch.outDest != nil && size > 0 {
			if d := ch.outDest(s[0]); len(d) == size {
				data, ch.outDestUsed = d, true
			}
		}
		if data == nil {
			data = make([]float32, size)
		}
		out = &Tensor{Shape: ps, Data: data}
	}
	if pool == nil || depthwise {
		y.Data = make([]float32, s[0]*s[1]*s[2]*s[3])
	}
	n := s[0]
	if n == 0 {
		return out
	}
	if depthwise {
		c.forwardDepthwise(x, y)
		ch.deliver(ch.conv(), y, 0, n)
		if relu {
			inPlace(y, reluSlice)
			ch.deliver(ch.relu(), y, 0, n)
		}
		if pool != nil {
			l, pl := s[2]*s[3], ps[2]*ps[3]
			parallel(s[0]*s[1], max(1, elementwiseGrain/(l+1)), func(lo, hi int) {
				for i := lo; i < hi; i++ {
					pool.plane(y.Data[i*l:(i+1)*l], out.Data[i*pl:(i+1)*pl], s[2], s[3], ps[2], ps[3])
				}
			})
			ch.deliver(ch.pooled(), out, 0, n)
		}
		return out
	}
	ep := epilogue{relu: relu, pool: pool, out: out, ch: ch}
	// A hook on the convolution alone (the ReLU, if any, is applied after
	// pooling) may supply the memory of the convolution's whole output
	// (ChunkDest): each sample is computed there instead of in scratch
	// memory, and never modified after its chunk is delivered.
	// A hook that adds the bias itself (RawChunkDest) gets the output
	// before bias; the bias is then added to the pooled planes only, as
	// without hooks.
	if pool != nil && ch != nil && ch.dest != nil && ch.conv() != nil && (!relu || ch.relu() == nil) {
		size := s[0] * s[1] * s[2] * s[3]
		if ch.rawDest != nil {
			if d := ch.rawDest(n); len(d) == size {
				ep.dest, ep.raw = d, true
			}
		}
		if ep.dest == nil {
			if d := ch.dest(n); len(d) == size {
				ep.dest = d
			}
		}
	}
	if w := Threads(); n >= w || w == 1 {
		parallel(n, 1, func(lo, hi int) {
			c.forwardSamples(x, y, lo, hi, false, ep)
		})
	} else {
		c.forwardSamples(x, y, 0, n, true, ep)
	}
	return out
}

// epilogue is what forwardSamples applies to each sample's output.
type epilogue struct {
	relu bool
	pool *MaxPool2d // nil: none
	out  *Tensor    // pooled output when pool is set
	ch   *stageChunks
	dest []float32 // with pool: the convolution's output for the whole batch (ChunkDest), or nil for scratch
	raw  bool      // dest receives the output before bias (RawChunkDest)
}

// stageChunks are the chunk callbacks of the stages of a fused chain: the
// convolution's output (bias added, except with rawDest), the ReLU's and the max-pool's; a nil
// callback (or a nil *stageChunks) delivers nothing. Each is called with
// rows [lo, hi) of its stage's output, as a tensor of shape [hi-lo, ...]
// valid only during the call, possibly concurrently for disjoint ranges.
type stageChunks struct {
	fns [3]func(out *Tensor, lo, hi int)
	// dest, if not nil, returns memory for the convolution stage's output
	// of n rows from its only hook (ChunkDest), or nil.
	dest func(n int) []float32
	// rawDest, if not nil, is dest's RawChunkDest form (the hook adds the
	// bias).
	rawDest func(n int) []float32
	// outDest, if not nil, returns memory for the pooled output of n rows
	// from the pool's only hook (OutputDest), or nil; outDestUsed is set
	// when the output was computed there.
	outDest     func(n int) []float32
	outDestUsed bool
}

func (ch *stageChunks) get(i int) func(*Tensor, int, int) {
	if ch == nil {
		return nil
	}
	return ch.fns[i]
}

func (ch *stageChunks) conv() func(*Tensor, int, int)   { return ch.get(0) }
func (ch *stageChunks) relu() func(*Tensor, int, int)   { return ch.get(1) }
func (ch *stageChunks) pooled() func(*Tensor, int, int) { return ch.get(2) }

// deliver calls fn (if not nil) with rows [lo, hi) of t, t holding exactly
// those rows.
func (*stageChunks) deliver(fn func(*Tensor, int, int), t *Tensor, lo, hi int) {
	if fn != nil {
		fn(t, lo, hi)
	}
}

// chunkView is a reusable per-sample view of a stage's output.
type chunkView struct {
	t     Tensor
	shape [4]int
}

func (v *chunkView) of(data []float32, c, h, w int) *Tensor {
	v.shape = [4]int{1, c, h, w}
	v.t = Tensor{Shape: v.shape[:], Data: data}
	return &v.t
}

// forwardSamples computes samples [lo, hi) of the output y (bias and
// epilogue included; with ep.raw, the convolution's output in ep.dest
// stays without bias, which only the pooled output gets). par lets the GEMM itself use several goroutines
// (used when the batch is smaller than Threads()). With ep.pool set, y has
// no data: each sample is computed into a scratch buffer and pooled into
// ep.out.
func (c *Conv2d) forwardSamples(x, y *Tensor, lo, hi int, par bool, ep epilogue) {
	o := &c.Options
	cin, h, w := x.Shape[1], x.Shape[2], x.Shape[3]
	cout, ho, wo := y.Shape[1], y.Shape[2], y.Shape[3]
	g := o.Groups
	cg, og := cin/g, cout/g
	kh, kw := o.KernelSize[0], o.KernelSize[1]
	l := ho * wo
	k := cg * kh * kw
	direct := kh == 1 && kw == 1 && o.Stride == [2]int{1, 1} && o.Padding == [2]int{}
	var colp *[]float32
	if !direct {
		colp = getBuf(k * l)
		defer putBuf(colp)
	}
	var scratch []float32
	if ep.pool != nil && ep.dest == nil {
		sp := getBuf(cout * l)
		defer putBuf(sp)
		scratch = *sp
	}
	convFn, reluFn, poolFn := ep.ch.conv(), ep.ch.relu(), ep.ch.pooled()
	// Hooks on the convolution or the ReLU need their full outputs: bias
	// and ReLU are then applied before pooling (same result, see below).
	early := convFn != nil || reluFn != nil
	// With only the convolution hooked, ReLU can still wait for the pooled
	// planes (a quarter of the work).
	lateReLU := ep.relu && convFn != nil && reluFn == nil && ep.pool != nil
	var view chunkView
	for s := lo; s < hi; s++ {
		ys := scratch
		switch {
		case ep.pool == nil:
			ys = y.Data[s*cout*l : (s+1)*cout*l]
		case ep.dest != nil:
			ys = ep.dest[s*cout*l : (s+1)*cout*l : (s+1)*cout*l]
		}
		for gi := 0; gi < g; gi++ {
			src := x.Data[(s*cin+gi*cg)*h*w : (s*cin+(gi+1)*cg)*h*w]
			dst := ys[gi*og*l : (gi+1)*og*l]
			col := src
			if !direct {
				col = *colp
				im2col(src, cg, h, w, kh, kw, o.Stride[0], o.Stride[1], o.Padding[0], o.Padding[1], o.Dilation[0], o.Dilation[1], ho, wo, col)
			}
			wg := c.Weight.Data[gi*og*k : (gi+1)*og*k]
			if par {
				gemm.SgemmParallel(0, false, false, og, l, k, 1, wg, k, col, l, 0, dst, l)
			} else {
				gemm.Sgemm(false, false, og, l, k, 1, wg, k, col, l, 0, dst, l)
			}
		}
		if early && !ep.raw {
			c.biasReLU(ys, l, ep.relu && convFn == nil)
		}
		if early {
			if convFn != nil {
				convFn(view.of(ys, cout, ho, wo), s, s+1)
				if ep.relu && !lateReLU {
					reluSlice(ys, ys)
				}
			}
			if ep.relu && reluFn != nil {
				reluFn(view.of(ys, cout, ho, wo), s, s+1)
			}
		}
		if ep.pool == nil {
			if !early {
				// bias and ReLU while the sample's output is in the cache
				c.biasReLU(ys, l, ep.relu)
			}
			continue
		}
		// Max-pool first, then bias and ReLU on the smaller pooled planes:
		// both are monotonic, so max(relu(v+b)) = relu(max(v)+b) exactly
		// (NaN included).
		ps := ep.out.Shape
		pl := ps[2] * ps[3]
		dst := ep.out.Data[s*cout*pl : (s+1)*cout*pl]
		for oc := 0; oc < cout; oc++ {
			ep.pool.plane(ys[oc*l:(oc+1)*l], dst[oc*pl:(oc+1)*pl], ho, wo, ps[2], ps[3])
		}
		if !early || ep.raw {
			c.biasReLU(dst, pl, ep.relu)
		} else if lateReLU {
			reluSlice(dst, dst)
		}
		if poolFn != nil {
			poolFn(view.of(dst, cout, ps[2], ps[3]), s, s+1)
		}
	}
}

// biasReLU adds the bias to each of the OutChannels planes of size l in y,
// then applies ReLU if relu is set.
func (c *Conv2d) biasReLU(y []float32, l int, relu bool) {
	for oc := 0; oc < c.Options.OutChannels; oc++ {
		row := y[oc*l : (oc+1)*l]
		var b float32
		if c.Bias != nil {
			b = c.Bias.Data[oc]
		}
		if relu || b != 0 {
			biasReLU(row, b, relu)
		}
	}
}

// AddBias adds b to every element of x, as a convolution adds its bias
// (float32 addition, the same kernel): what a RawChunkDest hook does to
// each channel of the output nn leaves it.
func AddBias(x []float32, b float32) {
	if b != 0 {
		biasReLU(x, b, false)
	}
}

// biasReLUGo is the portable biasReLU (relu_amd64.go, relu_other.go): x[i]
// += b, then with relu x[i] = max(x[i], 0).
func biasReLUGo(x []float32, b float32, relu bool) {
	if relu {
		for i, v := range x {
			x[i] = max(v+b, 0)
		}
		return
	}
	for i := range x {
		x[i] += b
	}
}

// forwardDepthwise computes a convolution whose groups have one input
// channel each (depthwise, possibly with a channel multiplier) directly:
// a GEMM with one row per group would be mostly overhead.
func (c *Conv2d) forwardDepthwise(x, y *Tensor) {
	o := &c.Options
	cin, h, w := x.Shape[1], x.Shape[2], x.Shape[3]
	cout, ho, wo := y.Shape[1], y.Shape[2], y.Shape[3]
	mult := cout / cin
	kh, kw := o.KernelSize[0], o.KernelSize[1]
	sh, sw, ph, pw, dh, dw := o.Stride[0], o.Stride[1], o.Padding[0], o.Padding[1], o.Dilation[0], o.Dilation[1]
	planes := y.Shape[0] * cout
	parallel(planes, max(1, elementwiseGrain/(ho*wo*kh*kw+1)), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			s, oc := pl/cout, pl%cout
			src := x.Data[(s*cin+oc/mult)*h*w : (s*cin+oc/mult+1)*h*w]
			dst := y.Data[pl*ho*wo : (pl+1)*ho*wo]
			wt := c.Weight.Data[oc*kh*kw : (oc+1)*kh*kw]
			var b float32
			if c.Bias != nil {
				b = c.Bias.Data[oc]
			}
			for i := range dst {
				dst[i] = b
			}
			for ki := 0; ki < kh; ki++ {
				for kj := 0; kj < kw; kj++ {
					wv := wt[ki*kw+kj]
					ix0 := kj*dw - pw
					olo, ohi := 0, wo
					if ix0 < 0 {
						olo = (-ix0 + sw - 1) / sw
					}
					if last := w - 1 - ix0; last < 0 {
						ohi = 0
					} else {
						ohi = min(wo, last/sw+1)
					}
					if olo >= ohi {
						continue
					}
					for oy := 0; oy < ho; oy++ {
						iy := oy*sh - ph + ki*dh
						if iy < 0 || iy >= h {
							continue
						}
						srow := src[iy*w : (iy+1)*w]
						drow := dst[oy*wo : (oy+1)*wo]
						if sw == 1 {
							sr := srow[ix0+olo : ix0+ohi]
							dr := drow[olo:ohi]
							for i, v := range sr {
								dr[i] += wv * v
							}
						} else {
							for ox := olo; ox < ohi; ox++ {
								drow[ox] += wv * srow[ix0+ox*sw]
							}
						}
					}
				}
			}
		}
	})
}

// im2col unfolds the [c, h, w] image src into the [c*kh*kw, ho*wo] matrix
// col: row (ci*kh+ki)*kw+kj holds, for every output position, the input
// value under kernel tap (ki, kj) of channel ci (zero in the padding).
func im2col(src []float32, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo int, col []float32) {
	l := ho * wo
	r := 0
	for ci := 0; ci < c; ci++ {
		plane := src[ci*h*w : (ci+1)*h*w]
		for ki := 0; ki < kh; ki++ {
			for kj := 0; kj < kw; kj++ {
				dst := col[r*l : (r+1)*l]
				r++
				ix0 := kj*dw - pw
				// output columns whose input column is inside the image
				olo, ohi := 0, wo
				if ix0 < 0 {
					olo = (-ix0 + sw - 1) / sw
				}
				if last := w - 1 - ix0; last < 0 {
					ohi = 0
				} else {
					ohi = min(wo, last/sw+1)
				}
				if olo > ohi {
					olo = ohi
				}
				for oy := 0; oy < ho; oy++ {
					row := dst[oy*wo : (oy+1)*wo]
					iy := oy*sh - ph + ki*dh
					if iy < 0 || iy >= h {
						clear(row)
						continue
					}
					srow := plane[iy*w : (iy+1)*w]
					clear(row[:olo])
					if sw == 1 {
						copy(row[olo:ohi], srow[ix0+olo:ix0+ohi])
					} else {
						for ox := olo; ox < ohi; ox++ {
							row[ox] = srow[ix0+ox*sw]
						}
					}
					clear(row[ohi:])
				}
			}
		}
	}
}
