//go:build !amd64

package recorder

func histChunk(h *[denseLen]uint32, c []float32) { histChunkGo(h, c) }

func momentsFast(c []float32, k float64) (s, q float64, mn, mx float32, zeros int64) {
	return momentsGo(c, k)
}

func chunkStats(h *[denseLen]uint32, c []float32, k float64, simple bool) (s, q float64, mn, mx float32, zeros int64) {
	return chunkStatsGo(h, c, k)
}
