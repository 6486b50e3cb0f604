package recorder

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// chunkLen is the number of elements whose moments are summed in float64
// before being merged into the running (n, mean, M2) with Chan et al.'s
// formula. 4096 float32 = 16 KiB, so a chunk stays in L1 between passes
// (the slow path's); 1024 cost 20 % more per element in per-chunk
// overhead (BenchmarkStatsRecipeBatch/recorder: 0.37-0.41 -> 0.31-0.32 ns).
// The shifted float64 sums of 4096 terms cannot overflow, and their
// rounding error (< 4096 x 2^-53 relative) is far below the tests' bounds.
const chunkLen = 4096

// Dense histogram layout: slots 0..0xffff are the bfloat16 keys. A value
// that is exactly ±0 is counted in a rotating dummy slot at zeroBase+(r)
// (+0) or zeroBase+0x8000+r (-0) instead of key 0x0000/0x8000, so that the
// zero-heavy outputs of ReLU do not serialise on one counter; the dummy slots
// are summed into the zero keys when the histogram is read.
const (
	zeroBase  = 1 << 16
	zeroRot   = 16
	denseLen  = 1 << 17
	denseMask = denseLen - 1
)

// Hot spare slots: the two-pass AVX-512 histogram loop counts the elements whose key
// is the predicted hot key in slots hotBase..hotBase+zeroRot-1 (one per
// lane), and foldHot moves them to the key's own counter after each chunk,
// so they are always zero between chunks.
const (
	hotBase = zeroBase + 0x4000
	noHot   = ^uint32(0)
	// keysBase..keysBase+chunkLen-1: scratch of the two-pass AVX-512
	// histogram (chunkKeysAVX512), never read as counts
	keysBase = zeroBase + 0xc000
)

// histHint is what the histogram loops are told about a chunk, predicted
// from the one before it (nextHint): simple (zeros are rare: count them in
// their own keys, in the one-pass loop) and hot (a key so frequent that it
// is spread over spare slots, or noHot); with AVX-512 a chunk that is not
// simple or has a hot key goes to the two-pass loop (chunkKeysAVX512).
// Every hint gives the same histogram; a wrong one only costs time.
type histHint struct {
	simple bool
	hot    uint32
}

// nextHint predicts the hint of the chunk after c (moments m) from the
// current one: the hot key is looked for in the first chunk after a reset,
// then in every hotEvery-th chunk, or in every chunk while there is one
// (hotKey costs about 10 % of the statistics where it runs on every chunk
// and finds nothing, BenchmarkStatsRecipeBatch).
func (a *accumulator) nextHint(c []float32, m moments) {
	a.hint.simple = m.zeros*32 < int64(len(c))
	if !useAVX512 {
		return
	}
	if a.hintAge++; a.hint.hot != noHot || a.hintAge >= hotEvery {
		a.hint.hot, a.hintAge = hotKey(c), 0
	}
}

// hotEvery is how often (in chunks) an accumulator without a hot key
// looks for one.
const hotEvery = 16

// hotKey returns a key, other than those of ±0 (which have their own
// spare slots), that holds at least 10 of 32 elements of c sampled at an
// even stride (it finds every key holding more than a third of the
// sampled elements that are not ±0), or noHot. A key repeated that often
// serialises the scalar increments on one counter (a ReLU6's sixes, a
// quantized tensor's levels): in BenchmarkKernelsL1 a key in 50 % (90 %)
// of the elements costs 0.83-0.93 (1.49-1.59) ns per element without the
// hint, 0.28 (0.27) with it (chunkKeysAVX512). Misra-Gries with two
// counters finds the candidates, which are then counted exactly.
func hotKey(c []float32) uint32 {
	const samples = 32
	if len(c) < 8*samples {
		return noHot
	}
	step := len(c) / samples
	var keys [samples]uint32
	k0, k1, n0, n1 := uint32(0), uint32(0), 0, 0
	for i := range keys {
		k := math.Float32bits(c[i*step]) >> 16
		keys[i] = k
		switch {
		case k&0x7fff == 0:
		case n0 > 0 && k == k0:
			n0++
		case n1 > 0 && k == k1:
			n1++
		case n0 == 0:
			k0, n0 = k, 1
		case n1 == 0:
			k1, n1 = k, 1
		default:
			n0--
			n1--
		}
	}
	c0, c1 := 0, 0
	for _, k := range keys {
		if n0 > 0 && k == k0 {
			c0++
		} else if n1 > 0 && k == k1 {
			c1++
		}
	}
	switch {
	case c0 >= 10 && c0 >= c1:
		return k0
	case c1 >= 10:
		return k1
	}
	return noHot
}

// foldHot adds the hot spare slots to the counter of key hot and zeroes
// them (nothing for noHot).
func foldHot(h *[denseLen]uint32, hot uint32) {
	if hot == noHot {
		return
	}
	var s uint32
	for r := uint32(0); r < zeroRot; r++ {
		s += h[hotBase+r]
		h[hotBase+r] = 0
	}
	h[hot&0xffff] += s
}

// maxDense bounds the elements added between folds of the uint32 dense
// counters into uint64 totals.
const maxDense = 1 << 31

// accumulator computes the contract statistics of a stream of float32 values.
// Not safe for concurrent use. Obtain with getAccumulator, release with put.
type accumulator struct {
	dense   *[denseLen]uint32
	big     []uint64 // lazily allocated uint64 fold of dense, 1<<16 entries
	inDense int64    // elements counted in dense since last fold

	count      int64 // all elements
	n          int64 // finite elements
	mean, m2   float64
	min, max   float32
	nan, inf   int64
	zeros      int64     // elements equal to ±0
	negZeros   int64     // elements equal to -0
	hint       histHint  // the histogram loop's prediction for the next chunk
	hintAge    int       // chunks since the hot key was last looked for
	foldedZero [2]uint64 // ±0 counts folded into big
}

var densePool = sync.Pool{New: func() any { return new([denseLen]uint32) }}

func newAccumulator() *accumulator {
	a := &accumulator{dense: densePool.Get().(*[denseLen]uint32)}
	a.resetMoments()
	return a
}

// release returns the dense array to the pool; a must not be used afterwards.
func (a *accumulator) release() {
	if a.dense != nil {
		a.clearDense()
		densePool.Put(a.dense)
		a.dense = nil
	}
}

func (a *accumulator) resetMoments() {
	a.count, a.n, a.mean, a.m2 = 0, 0, 0, 0
	a.min, a.max = float32(math.Inf(1)), float32(math.Inf(-1))
	a.nan, a.inf, a.zeros, a.negZeros = 0, 0, 0, 0
	a.hint, a.hintAge = histHint{hot: noHot}, hotEvery
	a.big = nil
	a.inDense = 0
}

// add accumulates x.
func (a *accumulator) add(x []float32) { a.histChunks(x, a.chunk) }

// histChunks calls fn on each chunkLen chunk of x, after folding the dense
// counters when the chunk could overflow them.
func (a *accumulator) histChunks(x []float32, fn func(c []float32)) {
	forChunks(x, func(c []float32) {
		if a.inDense+int64(len(c)) > maxDense {
			a.fold()
		}
		a.inDense += int64(len(c))
		fn(c)
	})
}

// forChunks calls fn on x in consecutive chunks of chunkLen elements (the
// last one shorter).
func forChunks(x []float32, fn func(c []float32)) {
	for len(x) > 0 {
		c := x[:min(len(x), chunkLen)]
		x = x[len(c):]
		fn(c)
	}
}

// moments are the partial results of one pass over a chunk: the sums of
// d = x-k and d² (s, q), min and max (meaningful only if s is finite), and
// the numbers of elements equal to ±0 and to -0.
type moments struct {
	s, q            float64
	mn, mx          float32
	zeros, negZeros int64
}

// add merges the moments of another part of the chunk (same shift).
func (m *moments) add(o moments) {
	m.s += o.s
	m.q += o.q
	m.mn = min(m.mn, o.mn)
	m.mx = max(m.mx, o.mx)
	m.zeros += o.zeros
	m.negZeros += o.negZeros
}

// chunkStatsGo is the portable chunkStats.
func chunkStatsGo(h *[denseLen]uint32, c []float32, k float64) moments {
	histChunkGo(h, c)
	return momentsGo(c, k)
}

// histChunkGo counts the bfloat16 key of every element of c (NaN and Inf
// included; they are removed when the histogram is read). histChunk is the
// same in assembly where available.
func histChunkGo(h *[denseLen]uint32, c []float32) {
	b := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(c))), len(c))
	i := 0
	for ; i+4 <= len(b); i += 4 {
		rot := uint32(zeroBase + ((i>>2)&3)*4)
		b0, b1, b2, b3 := b[i], b[i+1], b[i+2], b[i+3]
		// m is all ones iff the value is ±0 (t = bits without sign == 0).
		t0, t1, t2, t3 := b0<<1, b1<<1, b2<<1, b3<<1
		m0 := uint32(int32(^t0&(t0-1)) >> 31)
		m1 := uint32(int32(^t1&(t1-1)) >> 31)
		m2 := uint32(int32(^t2&(t2-1)) >> 31)
		m3 := uint32(int32(^t3&(t3-1)) >> 31)
		h[((b0>>16)|(m0&rot))&denseMask]++
		h[((b1>>16)|(m1&(rot+1)))&denseMask]++
		h[((b2>>16)|(m2&(rot+2)))&denseMask]++
		h[((b3>>16)|(m3&(rot+3)))&denseMask]++
	}
	for ; i < len(b); i++ {
		t := b[i] << 1
		m := uint32(int32(^t&(t-1)) >> 31)
		h[((b[i]>>16)|(m&zeroBase))&denseMask]++
	}
}

// chunk counts one chunk into the histogram and merges its moments into a. The fast path sums
// d = x-K and d² in float64 with K = c[0] (a shifted-data sum, exact enough
// because K is one of the data) and tracks min and max; a non-finite
// element makes the float64 sum non-finite (float32 values cannot overflow
// a float64 sum of chunkLen terms), and only then the chunk is redone by the
// filtering slow path.
func (a *accumulator) chunk(c []float32) {
	a.count += int64(len(c))
	k := float64(c[0])
	m := chunkStats(a.dense, c, k, a.hint)
	a.mergeChunk(c, k, m)
	a.nextHint(c, m)
}

// mergeChunk merges the moments m (shift k) of chunk c into a.
func (a *accumulator) mergeChunk(c []float32, k float64, m moments) {
	a.zeros += m.zeros
	a.negZeros += m.negZeros
	s, q := m.s, m.q
	if math.IsNaN(s) || math.IsInf(s, 0) {
		a.slowChunk(c)
		return
	}
	n := float64(len(c))
	m2 := q - s*s/n
	if m2 < 0 {
		m2 = 0
	}
	a.merge(int64(len(c)), k+s/n, m2, m.mn, m.mx)
}

// momentsGo returns the moments of c with shift k.
func momentsGo(c []float32, k float64) (m moments) {
	var s0, s1, s2, s3, q0, q1, q2, q3 float64
	mn, mx := c[0], c[0]
	i := 0
	for ; i+4 <= len(c); i += 4 {
		x0, x1, x2, x3 := c[i], c[i+1], c[i+2], c[i+3]
		d0, d1, d2, d3 := float64(x0)-k, float64(x1)-k, float64(x2)-k, float64(x3)-k
		s0 += d0
		s1 += d1
		s2 += d2
		s3 += d3
		q0 += d0 * d0
		q1 += d1 * d1
		q2 += d2 * d2
		q3 += d3 * d3
		if x0 < mn {
			mn = x0
		}
		if x0 > mx {
			mx = x0
		}
		if x1 < mn {
			mn = x1
		}
		if x1 > mx {
			mx = x1
		}
		if x2 < mn {
			mn = x2
		}
		if x2 > mx {
			mx = x2
		}
		if x3 < mn {
			mn = x3
		}
		if x3 > mx {
			mx = x3
		}
	}
	for ; i < len(c); i++ {
		x := c[i]
		d := float64(x) - k
		s0 += d
		q0 += d * d
		if x < mn {
			mn = x
		}
		if x > mx {
			mx = x
		}
	}
	m = moments{s: (s0 + s1) + (s2 + s3), q: (q0 + q1) + (q2 + q3), mn: mn, mx: mx}
	for _, v := range c {
		if v == 0 {
			m.zeros++
			if math.Signbit(float64(v)) {
				m.negZeros++
			}
		}
	}
	return m
}

// reluMomentsGo returns the moments of max(c, 0) with shift k (c free of
// NaN), computed as nn's ReLU computes them: every x <= 0 (-0 included)
// becomes +0.
func reluMomentsGo(c []float32, k float64) moments {
	var buf [256]float32
	var m moments
	for first := true; len(c) > 0; first = false {
		n := min(len(c), len(buf))
		y := buf[:n]
		nn.ReLUSlice(y, c[:n])
		if first {
			m = momentsGo(y, k)
		} else {
			m.add(momentsGo(y, k))
		}
		c = c[n:]
	}
	return m
}

// addWithReLU is add(x) plus, into ar, addReLUMoments(x) (ar's moments
// of max(x, 0)) in the same pass where the CPU has the kernel
// (chunkStatsReLU); NaN and Inf are handled (the ReLU's values are then
// written to a scratch buffer for that chunk).
func (a *accumulator) addWithReLU(ar *accumulator, x []float32) {
	var scratch []float32
	a.histChunks(x, func(c []float32) {
		a.count += int64(len(c))
		k, ky := float64(c[0]), float64(max(c[0], 0))
		m, my, ok := chunkStatsReLU(a.dense, c, k, ky, a.hint)
		if !ok {
			m = chunkStats(a.dense, c, k, a.hint)
		}
		a.mergeChunk(c, k, m)
		a.nextHint(c, m)
		ar.addReLUChunk(c, ky, m, my, ok, &scratch)
	})
}

// addMomentsWithReLU is addMoments(x) plus, into ar, the moments of
// max(x, 0) in the same pass (momentsReLU), like addWithReLU without
// histogram.
func (a *accumulator) addMomentsWithReLU(ar *accumulator, x []float32) {
	var scratch []float32
	forChunks(x, func(c []float32) {
		a.count += int64(len(c))
		k, ky := float64(c[0]), float64(max(c[0], 0))
		m, my, ok := momentsReLU(c, k, ky)
		if !ok {
			m = momentsFast(c, k)
		}
		a.mergeChunk(c, k, m)
		ar.addReLUChunk(c, ky, m, my, ok, &scratch)
	})
}

// addReLUChunk adds the moments of max(c, 0) to a (ReLU moments my with
// shift ky from the fused kernel when ok; m are c's own moments): my where
// c is finite, a second pass without writing where there was no kernel,
// and the ReLU's values written to *scratch where c has NaN or Inf.
func (a *accumulator) addReLUChunk(c []float32, ky float64, m, my moments, ok bool, scratch *[]float32) {
	switch finite := !math.IsNaN(m.s) && !math.IsInf(m.s, 0); {
	case ok && finite:
		a.count += int64(len(c))
		a.mergeChunk(c, ky, my)
	case finite:
		a.addReLUMoments(c)
	default:
		if *scratch == nil {
			*scratch = make([]float32, chunkLen)
		}
		y := (*scratch)[:len(c)]
		nn.ReLUSlice(y, c)
		a.addMoments(y)
	}
}

// addReLUMoments accumulates the moments of max(x, 0) (x free of NaN and
// Inf) like addMoments does those of its argument, without writing them.
func (a *accumulator) addReLUMoments(x []float32) {
	a.addMomentsWith(x, func(c []float32) float64 { return float64(max(c[0], 0)) }, reluMomentsFast)
}

// slowChunk handles a chunk holding NaN or Inf: two passes over the finite
// values only.
func (a *accumulator) slowChunk(c []float32) {
	var n int64
	var sum float64
	mn, mx := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, x := range c {
		switch {
		case x != x:
			a.nan++
		case math.IsInf(float64(x), 0):
			a.inf++
		default:
			n++
			sum += float64(x)
			mn = min(mn, x)
			mx = max(mx, x)
		}
	}
	if n == 0 {
		return
	}
	mean := sum / float64(n)
	var m2 float64
	for _, x := range c {
		if x == x && !math.IsInf(float64(x), 0) {
			d := float64(x) - mean
			m2 += d * d
		}
	}
	a.merge(n, mean, m2, mn, mx)
}

// merge combines (nb, meanb, m2b) into the running moments (Chan et al.).
func (a *accumulator) merge(nb int64, meanb, m2b float64, mn, mx float32) {
	if mn < a.min {
		a.min = mn
	}
	if mx > a.max {
		a.max = mx
	}
	if a.n == 0 {
		a.n, a.mean, a.m2 = nb, meanb, m2b
		return
	}
	na, fb := float64(a.n), float64(nb)
	n := na + fb
	d := meanb - a.mean
	a.mean += d * fb / n
	a.m2 += m2b + d*d*na*fb/n
	a.n += nb
}

// keyRanges returns the inclusive dense index ranges that can hold finite
// values given the running min and max: negative keys [nlo, nhi] and
// positive keys [plo, phi]; an empty range has lo > hi.
func (a *accumulator) keyRanges() (nlo, nhi, plo, phi uint32) {
	nlo, nhi, plo, phi = 1, 0, 1, 0
	if a.n == 0 {
		return
	}
	_, neg := a.zeroCounts()
	if a.min < 0 || a.zeros > 0 || neg > 0 || a.foldedZero[1] > 0 {
		nlo, nhi = 0x8000, 0x8000
		if a.min < 0 {
			nhi = math.Float32bits(a.min) >> 16
		}
	}
	if a.max >= 0 {
		plo, phi = 0, math.Float32bits(a.max)>>16
		if a.max == 0 {
			phi = 0
		}
	}
	return
}

// drain calls fn(k, c) for every nonzero dense count c in [lo, hi], in
// ascending key order, and zeroes it. Runs of zero counts are skipped
// eight at a time.
func drain(d *[denseLen]uint32, lo, hi uint32, fn func(k, c uint32)) {
	k := lo
	for k <= hi {
		if k&7 == 0 && k+7 <= hi {
			u := (*[4]uint64)(unsafe.Pointer(&d[k]))
			if u[0]|u[1]|u[2]|u[3] == 0 {
				k += 8
				continue
			}
		}
		if c := d[k]; c != 0 {
			d[k] = 0
			fn(k, c)
		}
		k++
	}
}

// collect appends the keys and counts of the nonzero dense counters in
// [lo, hi] in ascending key order and zeroes them; runs of zero counters
// are skipped sixteen at a time.
func collect(d *[denseLen]uint32, lo, hi uint32, keys []uint16, counts []uint64) ([]uint16, []uint64) {
	u := (*[denseLen / 2]uint64)(unsafe.Pointer(d))
	k := lo
	for k <= hi {
		if k&15 == 0 && k+15 <= hi {
			i := (k >> 1) & (denseLen/2 - 1) &^ 7
			w := u[i : i+8 : i+8]
			if w[0]|w[1]|w[2]|w[3]|w[4]|w[5]|w[6]|w[7] == 0 {
				k += 16
				continue
			}
		}
		if c := d[k&denseMask]; c != 0 {
			d[k&denseMask] = 0
			keys = append(keys, uint16(k))
			counts = append(counts, uint64(c))
		}
		k++
	}
	return keys, counts
}

// zeroCounts returns the dense counts of +0 and -0.
func (a *accumulator) zeroCounts() (pos, neg uint64) {
	for r := 0; r < zeroRot; r++ {
		pos += uint64(a.dense[zeroBase+r])
		neg += uint64(a.dense[zeroBase+0x8000+r])
	}
	return pos, neg
}

// clearAux zeroes the dense slots outside the finite ranges (zero dummies,
// NaN and Inf keys). The finite ranges are zeroed by drain.
func (a *accumulator) clearAux() {
	d := a.dense
	if a.nan+a.inf > 0 {
		clear(d[0x7f80:0x8000])
		clear(d[0xff80:0x10000])
	}
	clear(d[zeroBase : zeroBase+zeroRot])
	clear(d[zeroBase+0x8000 : zeroBase+0x8000+zeroRot])
	a.inDense = 0
}

// clearDense zeroes every dense count slot that add may have touched (the
// two-pass kernel's scratch area at keysBase is not a count and keeps its
// values).
func (a *accumulator) clearDense() {
	nlo, nhi, plo, phi := a.keyRanges()
	nop := func(k, c uint32) {}
	drain(a.dense, nlo, nhi, nop)
	drain(a.dense, plo, phi, nop)
	a.clearAux()
}

// fold moves the dense counts into uint64 totals.
func (a *accumulator) fold() {
	if a.big == nil {
		a.big = make([]uint64, 1<<16)
	}
	nlo, nhi, plo, phi := a.keyRanges()
	add := func(k, c uint32) { a.big[k] += uint64(c) }
	drain(a.dense, nlo, nhi, add)
	drain(a.dense, plo, phi, add)
	p, n := a.zeroCounts()
	a.foldedZero[0] += p
	a.foldedZero[1] += n
	a.clearAux()
}

// result returns the statistics of everything added since the last result
// and resets a for reuse.
func (a *accumulator) result(withHist bool) store.StatsRow {
	r := store.StatsRow{Count: a.count, NaN: a.nan, Inf: a.inf}
	nan := math.NaN()
	r.Mean, r.Std, r.Min, r.Max, r.L2, r.ZeroFrac = nan, nan, nan, nan, 0, nan
	for i := range r.Percentiles {
		r.Percentiles[i] = nan
	}
	if a.n > 0 {
		r.Mean = a.mean
		r.Std = math.Sqrt(a.m2 / float64(a.n))
		r.Min, r.Max = float64(a.min), float64(a.max)
		n := float64(a.n)
		r.L2 = math.Sqrt(a.m2 + n*a.mean*a.mean)
		r.Hist = a.sparse()
		r.ZeroFrac = float64(a.zeros) / n
		r.Percentiles = quantiles(r.Hist, uint64(a.n))
		for i, v := range r.Percentiles {
			r.Percentiles[i] = math.Min(math.Max(v, r.Min), r.Max)
		}
		if !withHist {
			r.Hist = store.Histogram{}
		}
	}
	a.clearAux()
	a.foldedZero = [2]uint64{}
	a.resetMoments()
	return r
}

// sparse converts the dense (and folded) counts to a histogram, zeroing the
// dense finite ranges.
func (a *accumulator) sparse() (h store.Histogram) {
	if a.big != nil {
		a.fold()
	}
	pos, neg := a.zeroCounts()
	pos += a.foldedZero[0]
	neg += a.foldedZero[1]
	nlo, nhi, plo, phi := a.keyRanges()
	if a.big != nil {
		for k := int(nhi); k >= int(nlo); k-- {
			c := a.big[k]
			if k == 0x8000 {
				c += neg
			}
			if c != 0 {
				h.Keys = append(h.Keys, uint16(k))
				h.Counts = append(h.Counts, c)
			}
		}
		for k := plo; k <= phi; k++ {
			c := a.big[k]
			if k == 0 {
				c += pos
			}
			if c != 0 {
				h.Keys = append(h.Keys, uint16(k))
				h.Counts = append(h.Counts, c)
			}
		}
		return h
	}
	// Negative keys: collected ascending (least negative first), reversed.
	est := min(int(a.n), int(nhi-nlo+1)+int(phi-plo+1), 1<<12)
	h.Keys = make([]uint16, 0, est+2)
	h.Counts = make([]uint64, 0, est+2)
	h.Keys, h.Counts = collect(a.dense, nlo, nhi, h.Keys, h.Counts)
	if neg > 0 {
		if len(h.Keys) > 0 && h.Keys[0] == 0x8000 {
			h.Counts[0] += neg
		} else {
			h.Keys = append(h.Keys, 0)
			h.Counts = append(h.Counts, 0)
			copy(h.Keys[1:], h.Keys)
			copy(h.Counts[1:], h.Counts)
			h.Keys[0], h.Counts[0] = 0x8000, neg
		}
	}
	slices.Reverse(h.Keys)
	slices.Reverse(h.Counts)
	nNeg := len(h.Keys)
	h.Keys, h.Counts = collect(a.dense, plo, phi, h.Keys, h.Counts)
	if pos > 0 {
		if len(h.Keys) > nNeg && h.Keys[nNeg] == 0 {
			h.Counts[nNeg] += pos
		} else {
			h.Keys = append(h.Keys, 0)
			h.Counts = append(h.Counts, 0)
			copy(h.Keys[nNeg+1:], h.Keys[nNeg:])
			copy(h.Counts[nNeg+1:], h.Counts[nNeg:])
			h.Keys[nNeg], h.Counts[nNeg] = 0, pos
		}
	}
	return h
}

// channelStats returns the per-channel mean and max of finite values of an
// NCHW (or NC...) tensor of shape [n, c, rest...] given as n, c and the
// product of the remaining dims.
func channelStats(x []float32, n, c, hw int) (mean, mx []float32) {
	sums := make([]float64, c)
	cnt := make([]int64, c)
	mx = make([]float32, c)
	for i := range mx {
		mx[i] = float32(math.Inf(-1))
	}
	for s := 0; s < n; s++ {
		for ch := 0; ch < c; ch++ {
			p := x[(s*c+ch)*hw : (s*c+ch+1)*hw]
			var sum float64
			var k int64
			m := mx[ch]
			for _, v := range p {
				if v-v == 0 { // finite
					sum += float64(v)
					k++
					if v > m {
						m = v
					}
				}
			}
			sums[ch] += sum
			cnt[ch] += k
			mx[ch] = m
		}
	}
	mean = make([]float32, c)
	for i := range mean {
		if cnt[i] == 0 {
			mean[i] = float32(math.NaN())
			mx[i] = float32(math.NaN())
			continue
		}
		mean[i] = float32(sums[i] / float64(cnt[i]))
	}
	return mean, mx
}

// absorb adds everything accumulated by b into a and resets b.
func (a *accumulator) absorb(b *accumulator) {
	if a.inDense+b.inDense > maxDense {
		a.fold()
	}
	d, e := a.dense, b.dense
	nlo, nhi, plo, phi := b.keyRanges()
	add := func(k, c uint32) { d[k] += c }
	drain(e, nlo, nhi, add)
	drain(e, plo, phi, add)
	for r := 0; r < zeroRot; r++ {
		d[zeroBase+r] += e[zeroBase+r]
		d[zeroBase+0x8000+r] += e[zeroBase+0x8000+r]
	}
	a.inDense += b.inDense
	if b.big != nil {
		if a.big == nil {
			a.big = make([]uint64, 1<<16)
		}
		for k, c := range b.big {
			a.big[k] += c
		}
		a.foldedZero[0] += b.foldedZero[0]
		a.foldedZero[1] += b.foldedZero[1]
	}
	a.count += b.count
	a.zeros += b.zeros
	a.negZeros += b.negZeros
	a.nan += b.nan
	a.inf += b.inf
	if b.n > 0 {
		a.merge(b.n, b.mean, b.m2, b.min, b.max)
	}
	b.clearAux()
	b.foldedZero = [2]uint64{}
	b.resetMoments()
}

// accPool keeps clean accumulators (zero counts; the scratch area aside) (each holds a 512 KiB counter array)
// across garbage collections, unlike a sync.Pool, which the frequent GCs of
// a forward pass would empty; beyond its capacity they are left to the GC.
var accPool = accumulatorPool{free: make(chan *accumulator, 32)}

type accumulatorPool struct{ free chan *accumulator }

func (p accumulatorPool) Get() *accumulator {
	select {
	case a := <-p.free:
		return a
	default:
		return newAccumulator()
	}
}

// Put returns a, which must be reset (result, resultWith or absorb).
func (p accumulatorPool) Put(a *accumulator) {
	select {
	case p.free <- a:
	default:
	}
}

// parallelMin is the smallest input that accumulate splits across
// goroutines.
const parallelMin = 1 << 16

// accumulate adds data to a, splitting large inputs across up to
// GOMAXPROCS (at most 8) goroutines whose partial results are merged.
func accumulate(a *accumulator, data []float32) { accumulateWith(a, data, (*accumulator).add) }

// accumulateWith is accumulate with add (or addMoments) as the per-part
// accumulation.
func accumulateWith(a *accumulator, data []float32, add func(*accumulator, []float32)) {
	if len(data) < parallelMin || runtime.GOMAXPROCS(0) < 2 {
		add(a, data)
		return
	}
	accumulatePair(a, nil, data, func(a, _ *accumulator, x []float32) { add(a, x) })
}

// accumulatePair is accumulate of data into a plus, into ar, the moments
// of max(data, 0), with add (addWithReLU or addMomentsWithReLU), split like
// accumulate; with ar nil, add gets a nil second accumulator.
func accumulatePair(a, ar *accumulator, data []float32, add func(a, ar *accumulator, x []float32)) {
	w := min(runtime.GOMAXPROCS(0), 8)
	if len(data) < parallelMin || w < 2 {
		add(a, ar, data)
		return
	}
	get := func() *accumulator {
		if ar == nil {
			return nil
		}
		return accPool.Get()
	}
	part := (len(data)/w + chunkLen - 1) / chunkLen * chunkLen
	var wg sync.WaitGroup
	var parts [][2]*accumulator
	var failed atomic.Value
	for lo := part; lo < len(data); lo += part {
		p := [2]*accumulator{accPool.Get(), get()}
		parts = append(parts, p)
		wg.Add(1)
		go func(x []float32) {
			defer wg.Done()
			defer func() {
				if e := recover(); e != nil {
					failed.Store(fmt.Sprint(e))
				}
			}()
			add(p[0], p[1], x)
		}(data[lo:min(lo+part, len(data))])
	}
	add(a, ar, data[:part])
	wg.Wait()
	if e := failed.Load(); e != nil {
		panic(e)
	}
	for _, p := range parts {
		a.absorb(p[0])
		accPool.Put(p[0])
		if ar != nil {
			ar.absorb(p[1])
			accPool.Put(p[1])
		}
	}
}

// quantiles returns h.Quantile(q) for every q of store.Quantiles (same
// definition: linear interpolation between the closest ranks, each read as
// its bucket's midpoint) in one pass over h; n is h.Total().
func quantiles(h store.Histogram, n uint64) (out [len(store.Quantiles)]float64) {
	if n == 0 {
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	type want struct {
		rank uint64
		mid  float64
	}
	var ranks [2 * len(store.Quantiles)]want
	var frac [len(store.Quantiles)]float64
	for i, q := range store.Quantiles {
		pos := q * float64(n-1)
		lo := uint64(math.Floor(pos))
		frac[i] = pos - float64(lo)
		ranks[2*i].rank = lo
		ranks[2*i+1].rank = min(lo+1, n-1)
	}
	// Visit the ranks in ascending order in one walk over the buckets.
	var order [len(ranks)]int
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order[:], func(a, b int) int { return cmp.Compare(ranks[a].rank, ranks[b].rank) })
	j := 0
	var cum uint64
	for b, c := range h.Counts {
		cum += c
		for j < len(order) && ranks[order[j]].rank < cum {
			ranks[order[j]].mid = store.KeyMid(h.Keys[b])
			j++
		}
		if j == len(order) {
			break
		}
	}
	for i := range out {
		a, b := ranks[2*i].mid, ranks[2*i+1].mid
		if frac[i] == 0 || ranks[2*i].rank+1 >= n {
			out[i] = a
			continue
		}
		out[i] = a + (b-a)*frac[i]
	}
	return out
}

// addMoments accumulates everything but the histogram of x (for
// resultWith, when the histogram is known otherwise).
func (a *accumulator) addMoments(x []float32) {
	a.addMomentsWith(x, func(c []float32) float64 { return float64(c[0]) }, momentsFast)
}

// addMomentsWith accumulates the moments fn returns for each chunkLen
// chunk of x, with the chunk's shift.
func (a *accumulator) addMomentsWith(x []float32, shift func([]float32) float64, fn func([]float32, float64) moments) {
	forChunks(x, func(c []float32) {
		a.count += int64(len(c))
		k := shift(c)
		a.mergeChunk(c, k, fn(c, k))
	})
}

// resultWith is result for an accumulator filled by addMoments, with the
// histogram h of the same values supplied by the caller.
func (a *accumulator) resultWith(h store.Histogram, withHist bool) store.StatsRow {
	r := store.StatsRow{Count: a.count, NaN: a.nan, Inf: a.inf}
	nan := math.NaN()
	r.Mean, r.Std, r.Min, r.Max, r.L2, r.ZeroFrac = nan, nan, nan, nan, 0, nan
	for i := range r.Percentiles {
		r.Percentiles[i] = nan
	}
	if a.n > 0 {
		n := float64(a.n)
		r.Mean = a.mean
		r.Std = math.Sqrt(a.m2 / n)
		r.Min, r.Max = float64(a.min), float64(a.max)
		r.L2 = math.Sqrt(a.m2 + n*a.mean*a.mean)
		r.ZeroFrac = float64(a.zeros) / n
		r.Percentiles = quantiles(h, h.Total()) // NaN for an empty h
		for i, v := range r.Percentiles {
			r.Percentiles[i] = math.Min(math.Max(v, r.Min), r.Max)
		}
		if withHist {
			r.Hist = h
		}
	}
	a.clearAux()
	a.foldedZero = [2]uint64{}
	a.resetMoments()
	return r
}

// zeroCounts are the numbers of ±0 and of -0 among some values.
type zeroCounts struct{ zeros, neg int64 }

// reluHistogram returns the histogram of y = ReLU(x) given the histogram
// hx of x and the zero counts of x and y, for x and y without NaN or Inf
// and y >= 0. It relies only on ReLU keeping positive values unchanged and
// mapping everything else to a zero of either sign: the positive buckets
// of y are those of x, except bucket 0x0000, which holds y's +0 plus x's
// positive subnormals of that bucket (x's bucket 0x0000 minus x's +0);
// y's bucket 0x8000 holds exactly y's -0. ok is false if the counts are
// inconsistent.
func reluHistogram(hx store.Histogram, zx, zy zeroCounts) (hy store.Histogram, ok bool) {
	first := len(hx.Keys) // first positive bucket of x
	var key0 uint64
	for i, k := range hx.Keys {
		if k&0x8000 == 0 {
			first = i
			if k == 0 {
				key0 = hx.Counts[i]
				first++
			}
			break
		}
	}
	posZeroX := uint64(zx.zeros - zx.neg)
	if key0 < posZeroX || zy.neg < 0 || zy.zeros < zy.neg {
		return hy, false
	}
	key0 += uint64(zy.zeros-zy.neg) - posZeroX
	n := len(hx.Keys) - first + 2
	hy.Keys = make([]uint16, 0, n)
	hy.Counts = make([]uint64, 0, n)
	if zy.neg > 0 {
		hy.Keys = append(hy.Keys, 0x8000)
		hy.Counts = append(hy.Counts, uint64(zy.neg))
	}
	if key0 > 0 {
		hy.Keys = append(hy.Keys, 0)
		hy.Counts = append(hy.Counts, key0)
	}
	hy.Keys = append(hy.Keys, hx.Keys[first:]...)
	hy.Counts = append(hy.Counts, hx.Counts[first:]...)
	return hy, true
}
