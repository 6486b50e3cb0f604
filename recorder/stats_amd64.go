package recorder

import "golang.org/x/sys/cpu"

// momentsOut receives the partial results of chunkAVX2 and momentsAVX2.
type momentsOut struct {
	s, q   [4]float64
	mn, mx [8]float32
	z, nz  [8]int32
}

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// useAVX512 selects the AVX-512 kernels (momentsAVX512 etc.: 512-bit
// vectors, mask registers, Z16-Z26) for all the moments, and enables the
// fused ReLU kernels (chunkReLUAVX512), which exist only in that form.
var useAVX512 = useAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasPOPCNT

// useKeys selects the two-pass AVX-512 histogram (chunkKeysAVX512) for
// chunks of up to chunkLen elements predicted to repeat values (a hot
// key, or zeros: not histHint.simple); tests switch it off to check the
// one-pass loops too.
var useKeys = true

//go:noescape
func histAsm(h *[denseLen]uint32, x []float32)

//go:noescape
func chunkAVX2(h *[denseLen]uint32, x []float32, k float64, simple bool, out *momentsOut)

//go:noescape
func chunkReLUAVX512(h *[denseLen]uint32, x []float32, k, ky float64, simple bool, out, outy *momentsOut)

//go:noescape
func momentsReLUAVX512(x []float32, k, ky float64, out, outy *momentsOut)

//go:noescape
func momentsAVX2(x []float32, k float64, out *momentsOut)

//go:noescape
func reluMomentsAVX2(x []float32, k float64, out *momentsOut)

//go:noescape
func momentsAVX512(x []float32, k float64, out *momentsOut)

//go:noescape
func reluMomentsAVX512(x []float32, k float64, out *momentsOut)

//go:noescape
func chunkAVX512(h *[denseLen]uint32, x []float32, k float64, simple bool, out *momentsOut)

// reluMomentsFast returns the moments of max(c, 0) (len(c) >= 1, no NaN)
// with shift k, without writing them.
func reluMomentsFast(c []float32, k float64) moments { return withKernel(c, k, true) }

func histChunk(h *[denseLen]uint32, c []float32) { histAsm(h, c) }

// momentsFast returns the moments of c (len(c) >= 1) with shift k, without
// histogram.
func momentsFast(c []float32, k float64) moments { return withKernel(c, k, false) }

// withKernel runs the assembly kernel (momentsAVX2, or reluMomentsAVX2 with
// relu; their AVX-512 forms where available) on the multiple-of-16 head of c and the portable one on the rest
// (or on all of c without AVX2). (A switch, not func values: a pointer
// passed to a func value escapes, and o would be allocated per chunk.)
func withKernel(c []float32, k float64, relu bool) moments {
	portable := momentsGo
	if relu {
		portable = reluMomentsGo
	}
	if !useAVX2 || len(c) < 16 {
		return portable(c, k)
	}
	n := len(c) &^ 15
	var o momentsOut
	switch {
	case relu && useAVX512:
		reluMomentsAVX512(c[:n], k, &o)
	case relu:
		reluMomentsAVX2(c[:n], k, &o)
	case useAVX512:
		momentsAVX512(c[:n], k, &o)
	default:
		momentsAVX2(c[:n], k, &o)
	}
	m := o.reduce()
	if n < len(c) {
		m.add(portable(c[n:], k))
	}
	return m
}

// chunkStats counts c into the histogram h and returns its moments with
// shift k. The hint selects the histogram loop (see histHint); every
// choice gives the same histogram.
func chunkStats(h *[denseLen]uint32, c []float32, k float64, hint histHint) moments {
	if !useAVX2 || len(c) < 16 {
		return chunkStatsGo(h, c, k)
	}
	n := len(c) &^ 15
	var o momentsOut
	if useAVX512 {
		if useKeys && n <= chunkLen && (!hint.simple || hint.hot != noHot) {
			chunkKeysAVX512(h, c[:n], k, hint.hot, &o)
		} else {
			chunkAVX512(h, c[:n], k, hint.simple, &o)
		}
		foldHot(h, hint.hot)
	} else {
		chunkAVX2(h, c[:n], k, hint.simple, &o)
	}
	m := o.reduce()
	if n < len(c) {
		m.add(chunkStatsGo(h, c[n:], k))
	}
	return m
}

func (o *momentsOut) reduce() moments {
	m := moments{
		s:  (o.s[0] + o.s[1]) + (o.s[2] + o.s[3]),
		q:  (o.q[0] + o.q[1]) + (o.q[2] + o.q[3]),
		mn: o.mn[0],
		mx: o.mx[0],
	}
	for i := 0; i < 8; i++ {
		if o.mn[i] < m.mn {
			m.mn = o.mn[i]
		}
		if o.mx[i] > m.mx {
			m.mx = o.mx[i]
		}
		m.zeros += int64(o.z[i])
		m.negZeros += int64(o.nz[i])
	}
	return m
}

// chunkStatsReLU is chunkStats, plus the moments of max(c, 0) with shift ky
// in the same pass (meaningful only if c has no NaN: m.s is then finite);
// ok is false where the CPU lacks the kernel.
func chunkStatsReLU(h *[denseLen]uint32, c []float32, k, ky float64, hint histHint) (m, my moments, ok bool) {
	return withReLUKernel(h, c, k, ky, hint)
}

// momentsReLU is chunkStatsReLU without the histogram (momentsFast plus the
// ReLU's moments).
func momentsReLU(c []float32, k, ky float64) (m, my moments, ok bool) {
	return withReLUKernel(nil, c, k, ky, histHint{hot: noHot})
}

// withReLUKernel runs the kernel that fills x's moments and its ReLU's
// (chunkKeysReLUAVX512 or chunkReLUAVX512 with histogram h, as for
// chunkStats; momentsReLUAVX512 with h nil) on the
// multiple-of-16 head of c and portable code on the rest, and completes
// the ReLU's moments from x's: its zeros are x's zeros plus its elements
// < 0, its min and max x's clamped at 0.
func withReLUKernel(h *[denseLen]uint32, c []float32, k, ky float64, hint histHint) (m, my moments, ok bool) {
	if !useAVX2 || !useAVX512 || len(c) < 16 {
		return m, my, false
	}
	n := len(c) &^ 15
	var o, oy momentsOut
	if h != nil {
		if useKeys && n <= chunkLen && (!hint.simple || hint.hot != noHot) {
			chunkKeysReLUAVX512(h, c[:n], k, ky, hint.hot, &o, &oy)
		} else {
			chunkReLUAVX512(h, c[:n], k, ky, hint.simple, &o, &oy)
		}
		foldHot(h, hint.hot)
	} else {
		momentsReLUAVX512(c[:n], k, ky, &o, &oy)
	}
	m = o.reduce()
	my = moments{s: (oy.s[0] + oy.s[1]) + (oy.s[2] + oy.s[3]), q: (oy.q[0] + oy.q[1]) + (oy.q[2] + oy.q[3])}
	for _, z := range oy.z {
		my.zeros += int64(z) // elements < 0; those == ±0 are added below
	}
	if n < len(c) {
		if h != nil {
			m.add(chunkStatsGo(h, c[n:], k))
		} else {
			m.add(momentsGo(c[n:], k))
		}
		t := reluMomentsGo(c[n:], ky)
		my.s += t.s
		my.q += t.q
		my.zeros += t.zeros - zerosOf(c[n:])
	}
	my.zeros += m.zeros
	my.mn, my.mx = max(m.mn, 0), max(m.mx, 0)
	return m, my, true
}

// zerosOf counts the elements of c equal to ±0.
func zerosOf(c []float32) (n int64) {
	for _, v := range c {
		if v == 0 {
			n++
		}
	}
	return n
}

//go:noescape
func chunkKeysAVX512(h *[denseLen]uint32, x []float32, k float64, hot uint32, out *momentsOut)

//go:noescape
func chunkKeysReLUAVX512(h *[denseLen]uint32, x []float32, k, ky float64, hot uint32, out, outy *momentsOut)
