package recorder

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/actrec/actrec/nn"
)

func refMoments(c []float32, k float64) (s, q float64, mn, mx float32, z, nz int64) {
	mn, mx = c[0], c[0]
	for _, v := range c {
		d := float64(v) - k
		s += d
		q += d * d
		if v < mn || v != v {
			mn = min(mn, v)
		}
		if v > mx || v != v {
			mx = max(mx, v)
		}
		if v == 0 {
			z++
			if math.Signbit(float64(v)) {
				nz++
			}
		}
	}
	return
}

func nearRel(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return a == b
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// Every multiple of 16 up to 4096, all five AVX-512 kernels: against a
// float64 reference and (bitwise) against each other.
func TestAVX512KernelsAllLengths(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512")
	}
	r := rand.New(rand.NewPCG(7, 8))
	negz := float32(math.Copysign(0, -1))
	specials := []float32{0, negz, 1e-40, -1e-40, 1e-45, -1e-45, 3.4e38, -3.4e38, 1, -1, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32}
	defer func() { useKeys = true }()
	for n := 16; n <= 4096; n += 16 {
		for variant := 0; variant < 4; variant++ {
			useKeys = n%32 == 0 // else the one-pass loops for every hint
			x := randNormal(r, n, 0.5, 3)
			for i := r.IntN(5); i < n; i += 1 + r.IntN(7) {
				x[i] = specials[r.IntN(len(specials))]
			}
			switch variant {
			case 1: // NaN somewhere
				x[r.IntN(n)] = float32(math.NaN())
			case 2:
				x[r.IntN(n)] = float32(math.Inf(1))
				x[r.IntN(n)] = float32(math.Inf(-1))
			case 3: // all zeros / -0 mix
				for i := range x {
					if r.IntN(2) == 0 {
						x[i] = negz
					} else {
						x[i] = 0
					}
				}
			}
			hasNaN := variant == 1
			k := float64(x[0])
			if math.IsInf(k, 0) || math.IsNaN(k) {
				k = 0
			}
			m := momentsFast(x, k)
			s, q, mn, mx, z, nz := refMoments(x, k)
			if m.zeros != z || m.negZeros != nz {
				t.Fatalf("n=%d v=%d: zeros %d/%d want %d/%d", n, variant, m.zeros, m.negZeros, z, nz)
			}
			if !hasNaN {
				if m.mn != mn || m.mx != mx || math.Signbit(float64(m.mn)) != math.Signbit(float64(mn)) && m.mn != 0 {
					t.Fatalf("n=%d v=%d: min/max %v/%v want %v/%v", n, variant, m.mn, m.mx, mn, mx)
				}
				if !nearRel(m.s, s) || !nearRel(m.q, q) {
					t.Fatalf("n=%d v=%d: s,q %v %v want %v %v", n, variant, m.s, m.q, s, q)
				}
			} else if !math.IsNaN(m.s) {
				t.Fatalf("n=%d: NaN input, s=%v", n, m.s)
			}
			// AVX2 for comparison
			useAVX512 = false
			m2 := momentsFast(x, k)
			h2 := new([denseLen]uint32)
			c2 := chunkStats(h2, x, k, histHint{hot: noHot})
			useAVX512 = true
			if m2.zeros != m.zeros || m2.negZeros != m.negZeros || (!hasNaN && (m2.mn != m.mn || m2.mx != m.mx || !nearRel(m2.s, m.s) || !nearRel(m2.q, m.q))) {
				t.Fatalf("n=%d v=%d: AVX512 %+v AVX2 %+v", n, variant, m, m2)
			}
			for _, hint := range testHints(x) {
				h := new([denseLen]uint32)
				c := chunkStats(h, x, k, hint)
				if !hasNaN && !zzMomentsEq(c, m, false) || hasNaN && (c.zeros != m.zeros || c.negZeros != m.negZeros || !math.IsNaN(c.s)) {
					t.Fatalf("n=%d v=%d hint=%+v: chunkStats %+v momentsFast %+v", n, variant, hint, c, m)
				}
				if (!hint.simple || useKeys && hint.hot != noHot) && (!sameDense(h, h2) || !zzMomentsEq(c2, m2, hasNaN)) {
					t.Fatalf("n=%d v=%d hint=%+v: AVX-512 histogram differs from chunkAVX2's", n, variant, hint)
				}
			}
			if hasNaN {
				continue // the ReLU kernels require NaN-free input
			}
			y := slices.Clone(x)
			nn.ReLUSlice(y, y)
			ky := float64(max(x[0], 0))
			if math.IsInf(ky, 0) {
				ky = 0
			}
			wy := momentsFast(y, ky)
			if g := reluMomentsFast(x, ky); !zzMomentsEq(g, wy, false) {
				t.Fatalf("n=%d v=%d: reluMomentsFast %+v, momentsFast(relu) %+v", n, variant, g, wy)
			}
			m3, my3, ok := momentsReLU(x, k, ky)
			if !ok || !zzMomentsEq(m3, m, false) || !zzMomentsEq(my3, wy, false) {
				t.Fatalf("n=%d v=%d: momentsReLU %+v %+v want %+v %+v", n, variant, m3, my3, m, wy)
			}
			for _, hint := range testHints(x) {
				h, hh := new([denseLen]uint32), new([denseLen]uint32)
				m4, my4, _ := chunkStatsReLU(h, x, k, ky, hint)
				c := chunkStats(hh, x, k, hint)
				if !sameDense(h, hh) || !zzMomentsEq(m4, c, false) || !zzMomentsEq(my4, wy, false) {
					t.Fatalf("n=%d v=%d hint=%+v: chunkStatsReLU %+v %+v want %+v %+v", n, variant, hint, m4, my4, c, wy)
				}
			}
		}
	}
}

// bitwise equal (NaN == NaN)
func zzMomentsEq(a, b moments, nan bool) bool {
	eqf := func(x, y float64) bool {
		return math.Float64bits(x) == math.Float64bits(y) || (math.IsNaN(x) && math.IsNaN(y))
	}
	eq32 := func(x, y float32) bool {
		return math.Float32bits(x) == math.Float32bits(y) || (x != x && y != y)
	}
	return eqf(a.s, b.s) && eqf(a.q, b.q) && eq32(a.mn, b.mn) && eq32(a.mx, b.mx) && a.zeros == b.zeros && a.negZeros == b.negZeros
}
