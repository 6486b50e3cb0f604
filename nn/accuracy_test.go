package nn_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/nn/dataset"
)

// TestShippedModelsAccuracy runs the shipped Fashion-MNIST models on the
// shipped test set and checks that Go reproduces PyTorch's test accuracy
// (testdata/models/accuracy.json) within 0.05 percentage points, and its
// logits for the first 8 images.
func TestShippedModelsAccuracy(t *testing.T) {
	const models = "../testdata/models"
	const fmnist = "../testdata/fashion-mnist"
	raw, err := os.ReadFile(filepath.Join(models, "accuracy.json"))
	if err != nil {
		t.Skipf("%v (written by scripts/train_fashion.py)", err)
	}
	var acc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &acc); err != nil {
		t.Fatal(err)
	}
	images, err := dataset.OpenImages(filepath.Join(fmnist, "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		t.Skipf("%v (see testdata/fashion-mnist/README.md)", err)
	}
	labels, err := dataset.OpenLabels(filepath.Join(fmnist, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	n := images.N
	if raceEnabled || testing.Short() {
		n = 8 // the race detector makes the full set too slow; check the logits only
	}
	for _, version := range []string{"v1", "v2", "v1-int8"} {
		t.Run(version, func(t *testing.T) {
			var want struct {
				Accuracy     float64        `json:"accuracy"`
				Correct      int            `json:"correct"`
				Total        int            `json:"total"`
				File         string         `json:"file"`
				First8Logits [8][10]float64 `json:"first8_logits"`
			}
			if err := json.Unmarshal(acc[version], &want); err != nil {
				t.Fatal(err)
			}
			sd, meta, err := nn.LoadSafetensorsWithMetadata(filepath.Join(models, want.File))
			if err != nil {
				t.Fatal(err)
			}
			mean, err1 := strconv.ParseFloat(meta["normalize_mean"], 32)
			std, err2 := strconv.ParseFloat(meta["normalize_std"], 32)
			if err1 != nil || err2 != nil || meta["version"] != version {
				t.Fatalf("metadata %v", meta)
			}
			m, err := nn.RecipeCNN(1, 10)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.LoadStateDict(sd); err != nil {
				t.Fatal(err)
			}
			correct := 0
			const batch = 500
			for lo := 0; lo < n; lo += batch {
				hi := min(lo+batch, n)
				x, err := images.Tensor(lo, hi, float32(mean), float32(std))
				if err != nil {
					t.Fatal(err)
				}
				y, err := m.Forward(context.Background(), x)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < hi-lo; i++ {
					row := y.Data[i*10 : (i+1)*10]
					best := 0
					for c, v := range row {
						if v > row[best] {
							best = c
						}
					}
					if best == int(labels[lo+i]) {
						correct++
					}
					if lo+i < 8 {
						for c, v := range row {
							w := want.First8Logits[lo+i][c]
							if d := math.Abs(float64(v) - w); d > 1e-4*math.Max(1, math.Abs(w)) {
								t.Errorf("image %d logit %d = %g, PyTorch %g", lo+i, c, v, w)
							}
						}
					}
				}
			}
			if n < want.Total {
				t.Logf("checked the first %d images only", n)
				return
			}
			got := float64(correct) / float64(n)
			t.Logf("%s: Go accuracy %.4f (%d/%d), PyTorch %.4f", version, got, correct, n, want.Accuracy)
			if math.Abs(got-want.Accuracy)*100 > 0.05 {
				t.Errorf("accuracy %.4f, PyTorch %.4f: differs by more than 0.05 percentage points", got, want.Accuracy)
			}
		})
	}
}
