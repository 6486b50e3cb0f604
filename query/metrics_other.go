//go:build !amd64 || purego

package query

const haveAVX2 = false

// vectorSums is the portable stand-in: no vector kernel, nothing done.
func vectorSums(a, b []float32, atol, rtol float64, s *chunkSums) int { return 0 }
