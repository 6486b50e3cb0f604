package store_test

import (
	"fmt"
	"log"
	"os"

	"github.com/actrec/actrec/store"
)

func Example() {
	dir, _ := os.MkdirTemp("", "actrec-example-")
	defer os.RemoveAll(dir)

	s, err := store.Open(dir, store.DefaultOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	w, err := s.CreateRun(store.RunInfo{Name: "demo", Model: "recipe-cnn"},
		[]store.LayerInfo{{Path: "fc2", Op: "Linear", Shape: []int{3}, Order: 9}})
	if err != nil {
		log.Fatal(err)
	}
	for b := int64(0); b < 2; b++ {
		w.AppendTensors("fc2",
			store.TensorRow{Batch: b, Sample: 0, DatasetIndex: 2 * b, Data: []float32{1, 2, 3}},
			store.TensorRow{Batch: b, Sample: 1, DatasetIndex: 2*b + 1, Data: []float32{4, 5, 6}})
	}
	if err := w.Close(store.StateComplete); err != nil {
		log.Fatal(err)
	}

	run, _ := s.Run("demo")
	fmt.Println(run.Name, run.State, run.Batches, "batches")
	s.Tensors("demo", "fc2", store.BatchRange{From: 1, To: 2}, func(r store.TensorRow) error {
		fmt.Println(r.Batch, r.Sample, r.DatasetIndex, r.Data)
		return nil
	})
	// Output:
	// demo complete 2 batches
	// 1 0 2 [1 2 3]
	// 1 1 3 [4 5 6]
}

func ExampleHistogram_Quantile() {
	counts := map[uint16]uint64{}
	for _, v := range []float32{1, 2, 3, 4, 100} {
		k, _ := store.HistogramKey(v)
		counts[k]++
	}
	h := store.HistogramFromCounts(counts)
	fmt.Printf("n=%d median≈%.3g p99≈%.3g\n", h.Total(), h.Quantile(0.5), h.Quantile(0.99))
	// Output: n=5 median≈3.01 p99≈96.4
}
