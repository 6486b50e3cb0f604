//go:build !amd64 || purego

package nn

func biasReLU(x []float32, b float32, relu bool) { biasReLUGo(x, b, relu) }

func reluSlice(dst, src []float32) { reluSliceGo(dst, src) }
