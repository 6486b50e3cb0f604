package recorder

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// bigLayerMem is what bigLayerRecording measured.
type bigLayerMem struct {
	peakInuse uint64 // highest HeapInuse sampled after each batch (garbage included)
	live      uint64 // highest HeapAlloc right after a GC, after each batch
	queuePeak int64  // highest bytes the queue held (reservations included)
	callBytes int64  // what one Forward call records: its reservation
	baseline  uint64 // HeapAlloc after a GC with the recorder attached, before recording
	kept      int64  // most bytes of large buffers the recorder keeps for reuse (bigPool)
}

// bigLayerRecording records every sample's tensors and the stats of the two
// biggest layers of RecipeCNN(1,10) (conv1 and relu1, [32 26 26] each) for
// batches of n samples through the chunk hooks, called from callers
// goroutines at a time, with a queue of capBytes and a store buffering up
// to maxBuf bytes (store.Options.MaxBufferBytes).
func bigLayerRecording(tb testing.TB, batches, n, callers int, capBytes, maxBuf int64, workers bool) bigLayerMem {
	opts := store.DefaultOptions()
	opts.NoSync = true
	opts.MaxBufferBytes = maxBuf
	st, err := store.Open(tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	m, err := nn.RecipeCNN(1, 10)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Layers = []string{"conv1", "relu1"}
	cfg.Mode = ModeBoth
	cfg.QueueBytes = capBytes
	cfg.StatsInWorkers = workers
	r, err := New(st, store.RunInfo{Name: "big"}, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.Attach(m, []int{n, 1, 28, 28}); err != nil {
		tb.Fatal(err)
	}
	x := nn.NewTensor(n, 1, 28, 28)
	copy(x.Data, benchData(len(x.Data), false))
	var res bigLayerMem
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.baseline = ms.HeapAlloc
	// callers goroutines call Forward concurrently (an inference server);
	// after each round, the heap is sampled.
	for i := 0; i < batches; i += callers {
		var wg sync.WaitGroup
		for j := i; j < min(i+callers, batches); j++ {
			wg.Go(func() {
				ctx := WithBatch(context.Background(), Batch{Index: int64(j), DatasetIndex: int64(j * n)})
				if _, err := m.Forward(ctx, x); err != nil {
					tb.Error(err)
				}
			})
		}
		wg.Wait()
		runtime.ReadMemStats(&ms)
		res.peakInuse = max(res.peakInuse, ms.HeapInuse)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		res.live = max(res.live, ms.HeapAlloc)
	}
	if err := r.Close(); err != nil {
		tb.Fatal(err)
	}
	c := r.Stats()
	if c.StatsRows != int64(2*batches) || c.TensorRows != int64(2*batches*n) {
		tb.Fatalf("%d stats rows, %d tensor rows; want %d, %d", c.StatsRows, c.TensorRows, 2*batches, 2*batches*n)
	}
	per := 32 * 26 * 26
	res.callBytes = 2*(bufBytes(n*per)+48*int64(n)) + r.statsReserve(r.layers["conv1"]) + r.statsReserve(r.layers["relu1"])
	if workers {
		res.callBytes += bufBytes(n * per) // conv1's whole output for the worker
	}
	res.kept = r.big.max
	res.queuePeak = c.QueuePeak
	return res
}

// Big layers: hooks that copy every sample of conv1 and relu1 (2 x 11 MiB
// per call at batch 128) hold only what the queue has reserved for them,
// also with 4 concurrent Forward calls, so the live heap stays within the
// baseline plus the queue's bound (the cap, or one call's records if
// larger) plus the store's buffering plus a constant. The store buffers
// up to MaxBufferBytes plus one append (the recorder appends at most
// appendBytes at a time) per layer, in two sets of buffers that grow by
// doubling: 4 x (MaxBufferBytes + appendBytes) per layer is allowed.
// Before the reservation, each concurrent call's hook copies were held
// outside the queue's account, in pooled buffers rounded up to a power of
// two (8 x 16 MiB beyond the bound).
func TestRecorderMemoryBoundedBigLayers(t *testing.T) {
	if raceEnabled {
		t.Skip("heap figures are not meaningful under the race detector")
	}
	const capBytes, maxBuf, n = 8 << 20, 4 << 20, 128
	for _, workers := range []bool{false, true} {
		got := bigLayerRecording(t, 16, n, 4, capBytes, maxBuf, workers)
		bound := got.baseline + uint64(max(capBytes, got.callBytes)) + uint64(got.kept) + 2*4*(maxBuf+appendBytes) + 32<<20
		t.Logf("workers %v: baseline %.1f MiB, one call %.1f MiB, queue peak %.1f MiB, peak live %.1f MiB (bound %.1f), peak HeapInuse %.1f MiB",
			workers, mib(got.baseline), mib(uint64(got.callBytes)), mib(uint64(got.queuePeak)), mib(got.live), mib(bound), mib(got.peakInuse))
		// Rows bigger than their layer's estimate are charged beyond the
		// reservation, by at most 640 KiB per layer.
		if limit := max(capBytes, got.callBytes) + 2*640<<10; got.queuePeak > limit {
			t.Errorf("workers %v: queue peak %d bytes > max(cap %d, one call %d) + 2 x 640 KiB", workers, got.queuePeak, capBytes, got.callBytes)
		}
		if got.live > bound {
			t.Errorf("workers %v: peak live heap %.1f MiB > baseline + max(cap, one call) + kept buffers + 2 layers x 4 x (store buffer + one append) + 32 MiB = %.1f MiB", workers, mib(got.live), mib(bound))
		}
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// An item bigger than appendBytes reaches the store in several appends;
// every row arrives, in order, with its data.
func TestRecorderSplitAppends(t *testing.T) {
	st := openStore(t)
	cfg := DefaultConfig()
	cfg.Mode = ModeBoth
	r, err := New(st, store.RunInfo{Name: "split"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n, per = 600, 1024 // 2.3 MiB per batch: 3 appends
	if err := r.Declare([]store.LayerInfo{{Path: "x", Op: "Identity", Shape: []int{per}}}); err != nil {
		t.Fatal(err)
	}
	x := nn.NewTensor(n, per)
	for i := range x.Data {
		x.Data[i] = float32(i)
	}
	for b := int64(0); b < 2; b++ {
		if err := r.Record(context.Background(), "x", Batch{Index: b, DatasetIndex: b * n}, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var got []store.TensorRow
	err = st.Tensors("split", "x", store.BatchRange{}, func(row store.TensorRow) error {
		row.Data = slices.Clone(row.Data)
		got = append(got, row)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*n {
		t.Fatalf("%d rows, want %d", len(got), 2*n)
	}
	for i, row := range got {
		b, s := int64(i/n), i%n
		if row.Batch != b || int(row.Sample) != s || row.DatasetIndex != b*n+int64(s) || !slices.Equal(row.Data, x.Data[s*per:(s+1)*per]) {
			t.Fatalf("row %d: batch %d sample %d dataset index %d, want %d %d %d (or data differs)", i, row.Batch, row.Sample, row.DatasetIndex, b, s, b*n+int64(s))
		}
	}
}
