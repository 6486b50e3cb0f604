package nn

import (
	"runtime"
	"sync/atomic"
	"testing"
)

func TestSetThreadsBoundsParallel(t *testing.T) {
	defer SetThreads(SetThreads(0))
	calls := func() int {
		var n atomic.Int64
		parallel(1000, 1, func(lo, hi int) { n.Add(1) })
		return int(n.Load())
	}
	if got, want := calls(), min(runtime.GOMAXPROCS(0), 1000); got != want || Threads() != runtime.GOMAXPROCS(0) {
		t.Fatalf("default: %d ranges, Threads %d; want %d ranges", got, Threads(), want)
	}
	if prev := SetThreads(1); prev != 0 {
		t.Fatalf("SetThreads returned %d, want 0 (default)", prev)
	}
	if got := calls(); got != 1 || Threads() != 1 {
		t.Fatalf("SetThreads(1): %d ranges, Threads %d", got, Threads())
	}
	SetThreads(3)
	if got := calls(); got != 3 {
		t.Fatalf("SetThreads(3): %d ranges", got)
	}
}

func TestSetThreadsSameResult(t *testing.T) {
	defer SetThreads(SetThreads(0))
	m, err := RecipeCNN(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	x := NewTensor(4, 3, 28, 28)
	for i := range x.Data {
		x.Data[i] = float32(i%97) / 97
	}
	var outs [][]float32
	for _, n := range []int{1, 2, 0} {
		SetThreads(n)
		y, err := m.Forward(t.Context(), x)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, y.Data)
	}
	for i := 1; i < len(outs); i++ {
		for j := range outs[0] {
			if outs[i][j] != outs[0][j] {
				t.Fatalf("threads setting %d: output %d = %v, with 1 thread %v", i, j, outs[i][j], outs[0][j])
			}
		}
	}
}
