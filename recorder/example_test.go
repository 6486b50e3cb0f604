package recorder_test

import (
	"context"
	"fmt"
	"os"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/recorder"
	"github.com/actrec/actrec/store"
)

// Record the statistics of every batch and samples 0 and 2 of relu1 of the
// recipe's CNN, then read them back.
func Example() {
	dir, _ := os.MkdirTemp("", "actrec-example")
	defer os.RemoveAll(dir)
	st, err := store.Open(dir, store.DefaultOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()

	model, _ := nn.RecipeCNN(1, 10)
	cfg := recorder.DefaultConfig()
	cfg.Layers = []string{"relu1", "fc2"}
	cfg.Overrides = []recorder.LayerMode{{Select: "relu1", Mode: recorder.ModeBoth}}
	cfg.Samples = recorder.SamplePolicy{Indices: []int{0, 2}}
	rec, err := recorder.New(st, store.RunInfo{Name: "example", Input: "zeros"}, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := rec.Attach(model, []int{1, 1, 28, 28}); err != nil {
		fmt.Println(err)
		return
	}
	for i := 0; i < 3; i++ {
		ctx := recorder.WithBatch(context.Background(), recorder.Batch{Index: int64(i), DatasetIndex: int64(4 * i)})
		if _, err := model.Forward(ctx, nn.NewTensor(4, 1, 28, 28)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := rec.Close(); err != nil {
		fmt.Println(err)
		return
	}

	rows, _ := st.Stats("example", "fc2", store.BatchRange{})
	fmt.Println("fc2 stats rows:", len(rows), "elements per batch:", rows[0].Count)
	st.Tensors("example", "relu1", store.BatchRange{}, func(r store.TensorRow) error {
		fmt.Printf("relu1 batch %d sample %d dataset index %d: %d values\n", r.Batch, r.Sample, r.DatasetIndex, len(r.Data))
		return nil
	})
	// Output:
	// fc2 stats rows: 3 elements per batch: 40
	// relu1 batch 0 sample 0 dataset index 0: 21632 values
	// relu1 batch 0 sample 2 dataset index 2: 21632 values
	// relu1 batch 1 sample 0 dataset index 4: 21632 values
	// relu1 batch 1 sample 2 dataset index 6: 21632 values
	// relu1 batch 2 sample 0 dataset index 8: 21632 values
	// relu1 batch 2 sample 2 dataset index 10: 21632 values
}
