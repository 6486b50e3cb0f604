//go:build amd64 && !purego

package nn

import "golang.org/x/sys/cpu"

var hasAVX2 = cpu.X86.HasAVX2

// biasReLUAVX2 sets x[i] = max(x[i]+b, 0) for the first len(x)&^7
// elements; relu selects ReLU (else only the bias is added).
//
//go:noescape
func biasReLUAVX2(x []float32, b float32, relu bool)

// reluAVX2 sets dst[i] = max(src[i], 0) for the first len(src)&^7 elements.
//
//go:noescape
func reluAVX2(dst, src []float32)

// biasReLU sets x[i] = x[i]+b, then, with relu, max(·, 0): the same bits
// as Go's max(x[i]+b, 0), but for NaN payloads.
func biasReLU(x []float32, b float32, relu bool) {
	n := 0
	if hasAVX2 {
		n = len(x) &^ 7
		if n > 0 {
			biasReLUAVX2(x[:n], b, relu)
		}
	}
	biasReLUGo(x[n:], b, relu)
}

func reluSlice(dst, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if hasAVX2 {
		n = len(src) &^ 7
		if n > 0 {
			reluAVX2(dst[:n], src[:n])
		}
	}
	reluSliceGo(dst[n:], src[n:])
}
