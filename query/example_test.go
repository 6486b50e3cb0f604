package query_test

import (
	"fmt"

	"github.com/actrec/actrec/query"
)

// The error of a candidate tensor against a reference, accumulated over
// two batches.
func ExampleErrorAccumulator() {
	acc := query.ErrorAccumulator{Tol: query.Tolerance{Atol: 1e-3}}
	acc.Add([]float32{1, 2, 3}, []float32{1, 2, 3})
	acc.Add([]float32{4, 5.5}, []float32{4, 5})
	m := acc.Metrics()
	fmt.Printf("max %v, outside %d of %d, cosine %.4f, sqnr %.1f dB\n", m.MaxAbsErr, m.OutsideCount, m.N, float64(m.Cosine), float64(m.SQNRdB))
	// Output: max 0.5, outside 1 of 5, cosine 0.9989, sqnr 23.4 dB
}

func ExampleParseBatchRange() {
	r, _ := query.ParseBatchRange("10:20")
	fmt.Println(r.From, r.To)
	// Output: 10 20
}
