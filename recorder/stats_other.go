//go:build !amd64

package recorder

func histChunk(h *[denseLen]uint32, c []float32) { histChunkGo(h, c) }

func momentsFast(c []float32, k float64) moments { return momentsGo(c, k) }

func chunkStats(h *[denseLen]uint32, c []float32, k float64, hint histHint) moments {
	return chunkStatsGo(h, c, k)
}

func reluMomentsFast(c []float32, k float64) moments { return reluMomentsGo(c, k) }

func chunkStatsReLU(h *[denseLen]uint32, c []float32, k, ky float64, hint histHint) (m, my moments, ok bool) {
	return m, my, false
}

func momentsReLU(c []float32, k, ky float64) (m, my moments, ok bool) { return m, my, false }

// useAVX512: the fused ReLU kernels exist on amd64 only.
var useAVX512 = false
