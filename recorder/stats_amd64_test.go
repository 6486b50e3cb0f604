package recorder

import "testing"

// The portable kernels, used where AVX2+FMA is missing, pass the same
// reference tests.
func TestStatsWithoutAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("AVX2 not in use anyway")
	}
	useAVX2 = false
	defer func() { useAVX2 = true }()
	t.Run("reference", TestStatsAgainstReference)
	t.Run("piecewise", TestStatsPiecewiseAndFold)
	t.Run("merge", TestHistogramMergeOfHalves)
}
