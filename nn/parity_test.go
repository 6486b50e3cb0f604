package nn

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

const fixtureDir = "../testdata/nn"

// loadFixture loads testdata/nn/<name>, skipping the test if it is absent.
func loadFixture(t *testing.T, name string) map[string]*Tensor {
	t.Helper()
	path := filepath.Join(fixtureDir, name)
	if _, err := os.Stat(path); os.IsNotExist(err) {
		t.Skipf("%s not found; generate it with /usr/bin/python3 scripts/gen_nn_fixtures.py", path)
	}
	sd, err := LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

// maxAbsErr returns max|got-want|, and the tolerance 1e-4*max(1, max|want|).
func maxAbsErr(got, want []float32) (err, tol float64) {
	ref := 1.0
	for i := range want {
		ref = math.Max(ref, math.Abs(float64(want[i])))
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		err = math.Max(err, d)
	}
	return err, 1e-4 * ref
}

// checkParity runs model on the fixture input with a global hook and
// compares every module's output (and the model output) with PyTorch's.
func checkParity(t *testing.T, m *Model, fixture string) {
	t.Helper()
	weights := loadFixture(t, fixture+".weights.safetensors")
	io := loadFixture(t, fixture+".io.safetensors")
	if err := m.LoadStateDict(weights); err != nil {
		t.Fatal(err)
	}
	shapes, err := m.Shapes(io["input"].Shape)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shapes {
		key := s.Path
		if key == "" {
			key = "output"
		}
		if want := io[key]; want != nil && fmt.Sprint(s.Shape) != fmt.Sprint(want.Shape) {
			t.Errorf("Shapes: %s %v, PyTorch %v", key, s.Shape, want.Shape)
		}
	}
	got := map[string]*Tensor{}
	h := m.RegisterGlobalHook(func(ctx context.Context, mod ModuleInfo, in []*Tensor, out *Tensor) {
		got[mod.Path] = out.Clone()
	})
	defer h.Remove()
	y, err := m.Forward(context.Background(), io["input"])
	if err != nil {
		t.Fatal(err)
	}
	got["output"] = y
	compared := 0
	for _, mod := range m.Modules() {
		key := mod.Path
		if key == "" {
			key = "output"
		}
		want, ok := io[key]
		if !ok {
			t.Errorf("fixture has no output for module %q", key)
			continue
		}
		g := got[mod.Path]
		if g == nil || fmt.Sprint(g.Shape) != fmt.Sprint(want.Shape) {
			t.Errorf("%s: shape %v, want %v", key, g.Shape, want.Shape)
			continue
		}
		e, tol := maxAbsErr(g.Data, want.Data)
		if e > tol {
			t.Errorf("%s (%s): max abs err %.3g > %.3g", key, mod.Op, e, tol)
		} else {
			t.Logf("%-12s %-18s max abs err %.2g (tol %.2g)", key, mod.Op, e, tol)
		}
		compared++
	}
	if e, tol := maxAbsErr(y.Data, io["output"].Data); e > tol {
		t.Errorf("output: max abs err %.3g > %.3g", e, tol)
	}
	if compared != len(m.Modules()) {
		t.Errorf("compared %d modules of %d", compared, len(m.Modules()))
	}
	h.Remove()

	// A forward hook on one module at a time (which limits fusing and
	// in-place work around it) must see PyTorch's output of that module.
	for _, mod := range m.Modules() {
		key := mod.Path
		if key == "" {
			key = "output"
		}
		seen := false
		h, err := m.RegisterForwardHook(mod.Path, func(ctx context.Context, _ ModuleInfo, _ []*Tensor, out *Tensor) {
			seen = true
			if e, tol := maxAbsErr(out.Data, io[key].Data); e > tol {
				t.Errorf("%s hooked alone: max abs err %.3g > %.3g", key, e, tol)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		y, err := m.Forward(context.Background(), io["input"])
		if err != nil {
			t.Fatal(err)
		}
		if e, tol := maxAbsErr(y.Data, io["output"].Data); e > tol || !seen {
			t.Errorf("hook on %s alone: output max abs err %.3g > %.3g or hook not called", key, e, tol)
		}
		h.Remove()
	}
	// Hooks on the containers only, then no hooks at all (layers fused and
	// in place): the same results.
	for _, mod := range m.Modules() {
		if mod.Leaf || mod.Path == "" {
			continue
		}
		m.RegisterForwardHook(mod.Path, func(ctx context.Context, mod ModuleInfo, in []*Tensor, out *Tensor) {
			if e, tol := maxAbsErr(out.Data, io[mod.Path].Data); e > tol {
				t.Errorf("container %s alone: max abs err %.3g > %.3g", mod.Path, e, tol)
			}
		})
	}
	for _, hooked := range []bool{true, false} {
		in := io["input"].Clone()
		y, err := m.Forward(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if e, tol := maxAbsErr(y.Data, io["output"].Data); e > tol {
			t.Errorf("output (container hooks %v): max abs err %.3g > %.3g", hooked, e, tol)
		}
		if fmt.Sprint(in.Data) != fmt.Sprint(io["input"].Data) {
			t.Error("Forward modified its input")
		}
		m.hooks.Store(nil)
	}
}

func TestParityRecipeCNN(t *testing.T) {
	m, err := RecipeCNN(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	checkParity(t, m, "recipe_cnn")
}

func TestParityNet(t *testing.T) {
	m, err := ParityNet()
	if err != nil {
		t.Fatal(err)
	}
	checkParity(t, m, "paritynet")
}

// TestLoadHalfPrecisionWeights loads the F16 and BF16 copies of the
// RecipeCNN fixture weights: each value must be the F32 value rounded to
// the narrower format.
func TestLoadHalfPrecisionWeights(t *testing.T) {
	f32 := loadFixture(t, "recipe_cnn.weights.safetensors")
	for _, tc := range []struct {
		file   string
		relTol float64 // half the format's epsilon
	}{
		{"recipe_cnn_f16.weights.safetensors", 1.0 / 2048},
		{"recipe_cnn_bf16.weights.safetensors", 1.0 / 256},
	} {
		t.Run(tc.file, func(t *testing.T) {
			sd := loadFixture(t, tc.file)
			if len(sd) != len(f32) {
				t.Fatalf("%d tensors, want %d", len(sd), len(f32))
			}
			for k, want := range f32 {
				got := sd[k]
				if got == nil || fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
					t.Fatalf("%s: missing or mis-shaped", k)
				}
				for i, w := range want.Data {
					d := math.Abs(float64(got.Data[i]) - float64(w))
					// subnormal F16 values have an absolute error bound
					if d > tc.relTol*math.Abs(float64(w))+6e-8 {
						t.Fatalf("%s[%d] = %g, want %g", k, i, got.Data[i], w)
					}
				}
			}
			m, _ := RecipeCNN(3, 10)
			if err := m.LoadStateDict(sd); err != nil {
				t.Fatal(err)
			}
		})
	}
}
