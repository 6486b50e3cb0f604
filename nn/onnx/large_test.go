package onnx

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/actrec/actrec/nn"
)

// The large parity models (torchvision resnet18 and mobilenet_v2 with random
// weights; more with --zoo) are too big to commit. Generate them with
//
//	/usr/bin/python3 scripts/onnx_export.py --large DIR [--zoo]
//
// TestLoad_LargeParity compares every DIR/NAME.onnx that has a
// DIR/NAME.io.safetensors.
// and run the test and benchmarks with ACTREC_ONNX_LARGE=DIR.
const largeEnv = "ACTREC_ONNX_LARGE"

func largeDir(tb testing.TB) string {
	dir := os.Getenv(largeEnv)
	if dir == "" {
		tb.Skipf("%s is not set: generate the models with `/usr/bin/python3 scripts/onnx_export.py --large DIR` and set %s=DIR", largeEnv, largeEnv)
	}
	return dir
}

func TestLoad_LargeParity(t *testing.T) {
	dir := largeDir(t)
	ios, err := filepath.Glob(filepath.Join(dir, "*.io.safetensors"))
	if err != nil || len(ios) == 0 {
		t.Fatalf("no *.io.safetensors in %s (%v)", dir, err)
	}
	for _, io := range ios {
		name := strings.TrimSuffix(filepath.Base(io), ".io.safetensors")
		t.Run(name, func(t *testing.T) {
			m, err := Load(filepath.Join(dir, name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			io, err := nn.LoadSafetensors(filepath.Join(dir, name+".io.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			e, tol := checkParity(t, m, io)
			leaves := 0
			for _, mi := range m.Modules() {
				if mi.Leaf {
					leaves++
				}
			}
			t.Logf("%s: %d leaves, output max abs error %.3g (tolerance %.3g; %d reference tensors incl. output)", name, leaves, e, tol, len(io)-1)
		})
	}
}

func BenchmarkResNet18(b *testing.B) {
	dir := largeDir(b)
	m, err := Load(filepath.Join(dir, "resnet18.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			x := nn.NewTensor(batch, 3, 224, 224)
			for i := range x.Data {
				x.Data[i] = float32(i%255)/255 - 0.5
			}
			ctx := context.Background()
			if _, err := m.Forward(ctx, x); err != nil {
				b.Fatal(err)
			}
			// cpu-ms/op (process CPU time per forward) is less sensitive than
			// ns/op to other processes competing for the cores.
			// min-ms/op is the fastest single forward (as the PyTorch script's "min").
			cpu0 := processCPU()
			fastest := time.Duration(math.MaxInt64)
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if _, err := m.Forward(ctx, x); err != nil {
					b.Fatal(err)
				}
				fastest = min(fastest, time.Since(t0))
			}
			b.StopTimer()
			if cpu := processCPU() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/op")
			}
			b.ReportMetric(float64(fastest.Microseconds())/1e3, "min-ms/op")
		})
	}
}
