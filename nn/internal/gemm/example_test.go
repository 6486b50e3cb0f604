package gemm_test

import (
	"fmt"

	"github.com/actrec/actrec/nn/internal/gemm"
)

// A Linear layer: y = x·Wᵀ + bias, with PyTorch's weight layout [out, in]
// (op(B) = Wᵀ) and the bias broadcast into C first (beta = 1).
func ExampleSgemm() {
	x := []float32{ // 2 samples × 3 features
		1, 2, 3,
		4, 5, 6,
	}
	w := []float32{ // 2 outputs × 3 inputs
		1, 0, -1,
		0.5, 0.5, 0.5,
	}
	bias := []float32{10, 20}
	y := make([]float32, 2*2)
	for i := 0; i < 2; i++ {
		copy(y[i*2:], bias)
	}
	gemm.Sgemm(false, true, 2, 2, 3, 1, x, 3, w, 3, 1, y, 2)
	fmt.Println(y)
	// Output: [8 23 8 27.5]
}
