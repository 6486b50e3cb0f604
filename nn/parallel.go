package nn

import (
	"sync"
	"sync/atomic"

	"github.com/actrec/actrec/nn/internal/gemm"
)

// SetThreads bounds the goroutines one Forward call of any model uses for
// its layers (the intra-op threads, like PyTorch's torch.set_num_threads)
// and returns the previous setting; n <= 0 restores the default,
// runtime.GOMAXPROCS(0). It applies to calls that start after it. With
// fewer threads than GOMAXPROCS, the remaining cores are left to other
// goroutines, e.g. the recorder's workers (see recorder.Config.StatsInWorkers).
func SetThreads(n int) int { return gemm.SetThreads(n) }

// Threads returns the goroutines a Forward call uses for its layers: the
// SetThreads value, or runtime.GOMAXPROCS(0).
func Threads() int { return gemm.Threads() }

// parallel calls fn on contiguous sub-ranges of [0, n) using up to
// Threads() goroutines (the caller's included), with at least grain items
// per range. fn must be safe to call concurrently on disjoint ranges.
func parallel(n, grain int, fn func(lo, hi int)) {
	if grain < 1 {
		grain = 1
	}
	w := Threads()
	if m := n / grain; w > m {
		w = m
	}
	if w <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	chunk := (n + w - 1) / w
	// A panic in fn (a chunk hook's, say) is re-raised on the calling
	// goroutine once every range has returned, where Forward's callers can
	// recover it, rather than crashing the process from a worker goroutine.
	var panicked atomic.Pointer[any]
	run := func(lo, hi int) {
		defer func() {
			if p := recover(); p != nil {
				panicked.CompareAndSwap(nil, &p)
			}
		}()
		fn(lo, hi)
	}
	var wg sync.WaitGroup
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(lo, hi)
		}()
	}
	run(0, chunk)
	wg.Wait()
	if p := panicked.Load(); p != nil {
		panic(*p)
	}
}

// bufPool recycles float32 scratch buffers (im2col matrices).
var bufPool sync.Pool

func getBuf(n int) *[]float32 {
	if p, ok := bufPool.Get().(*[]float32); ok {
		if cap(*p) >= n {
			*p = (*p)[:n]
			return p
		}
		bufPool.Put(p) // too small for this caller; keep it for another
	}
	b := make([]float32, n)
	return &b
}

func putBuf(p *[]float32) { bufPool.Put(p) }
