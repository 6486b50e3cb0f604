package recorder

import "golang.org/x/sys/cpu"

// momentsOut receives the partial results of momentsAVX2.
type momentsOut struct {
	s, q   [4]float64
	mn, mx [8]float32
	z      [8]int32
}

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func histAsm(h *[denseLen]uint32, x []float32)

//go:noescape
func chunkAVX2(h *[denseLen]uint32, x []float32, k float64, simple bool, out *momentsOut)

//go:noescape
func momentsAVX2(x []float32, k float64, out *momentsOut)

func histChunk(h *[denseLen]uint32, c []float32) { histAsm(h, c) }

// momentsFast returns the shifted sums, min and max (meaningful only if s
// is finite) and number of zeros of c (len(c) >= 1), without histogram.
func momentsFast(c []float32, k float64) (s, q float64, mn, mx float32, zeros int64) {
	if !useAVX2 || len(c) < 16 {
		return momentsGo(c, k)
	}
	n := len(c) &^ 15
	var o momentsOut
	momentsAVX2(c[:n], k, &o)
	s, q, mn, mx, zeros = o.reduce()
	if n < len(c) {
		s2, q2, mn2, mx2, z2 := momentsGo(c[n:], k)
		s += s2
		q += q2
		mn = min(mn, mn2)
		mx = max(mx, mx2)
		zeros += z2
	}
	return s, q, mn, mx, zeros
}

func (o *momentsOut) reduce() (s, q float64, mn, mx float32, zeros int64) {
	s = (o.s[0] + o.s[1]) + (o.s[2] + o.s[3])
	q = (o.q[0] + o.q[1]) + (o.q[2] + o.q[3])
	mn, mx = o.mn[0], o.mx[0]
	for i := 0; i < 8; i++ {
		if o.mn[i] < mn {
			mn = o.mn[i]
		}
		if o.mx[i] > mx {
			mx = o.mx[i]
		}
		zeros += int64(o.z[i])
	}
	return s, q, mn, mx, zeros
}

// chunkStats counts c into the histogram h and returns the shifted sums of
// c (shift k), its min and max (meaningful only if s is finite) and its
// number of zeros. simple selects the histogram loop that counts zeros in
// place (see chunkAVX2); both give the same histogram.
func chunkStats(h *[denseLen]uint32, c []float32, k float64, simple bool) (s, q float64, mn, mx float32, zeros int64) {
	if !useAVX2 || len(c) < 16 {
		return chunkStatsGo(h, c, k)
	}
	n := len(c) &^ 15
	var o momentsOut
	chunkAVX2(h, c[:n], k, simple, &o)
	s, q, mn, mx, zeros = o.reduce()
	if n < len(c) {
		s2, q2, mn2, mx2, z2 := chunkStatsGo(h, c[n:], k)
		s += s2
		q += q2
		mn = min(mn, mn2)
		mx = max(mx, mx2)
		zeros += z2
	}
	return s, q, mn, mx, zeros
}
