//go:build !race

package gemm

// raceEnabled shortens the exhaustive tests under the race detector.
const raceEnabled = false
