//go:build amd64 && !purego

package query

import "golang.org/x/sys/cpu"

// haveAVX2 selects the AVX2+FMA kernel; set once at package initialization
// from the CPU's features and never changed.
var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// lanes are the per-lane partial sums written by errSumsAVX2.
type lanes struct {
	abs, sq, a2, b2, ab, mx [4]float64
	out                     [4]int64
}

// errSumsAVX2 accumulates n pairs (n a multiple of 4) into l, four lanes
// of float64 at a time. Implemented in metrics_amd64.s.
//
//go:noescape
func errSumsAVX2(a, b *float32, n int, atol, rtol float64, l *lanes)

// vectorSums accumulates the longest prefix of (a, b) the vector kernel
// handles into s and returns its length (0 without AVX2).
func vectorSums(a, b []float32, atol, rtol float64, s *chunkSums) int {
	n := len(a) &^ 3
	if !haveAVX2 || n == 0 {
		return 0
	}
	var l lanes
	errSumsAVX2(&a[0], &b[0], n, atol, rtol, &l)
	for i := range 4 {
		s.abs += l.abs[i]
		s.sq += l.sq[i]
		s.a2 += l.a2[i]
		s.b2 += l.b2[i]
		s.ab += l.ab[i]
		s.mx = max(s.mx, l.mx[i])
		s.out += l.out[i]
	}
	return n
}
