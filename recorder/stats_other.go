//go:build !amd64

package recorder

func histChunk(h *[denseLen]uint32, c []float32) { histChunkGo(h, c) }

func momentsFast(c []float32, k float64) (s, q float64, mn, mx float32) {
	return momentsGo(c, k)
}
