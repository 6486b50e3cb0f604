package recorder

import (
	"context"
	"math/bits"
	"sync"

	"github.com/actrec/actrec/store"
)

// item is one unit of queued work: the rows of one (batch, layer).
type item struct {
	layer   string
	batch   int64
	stats   *store.StatsRow   // computed in the hook, or nil
	raw     *[]float32        // full output copy whose stats a worker computes, or nil
	lent    bool              // raw is nn's output tensor (nn.OutputDest): not reused
	bias    []float32         // per-channel bias the worker adds to raw first (nn.RawChunkDest), or nil
	shape   []int             // shape of raw (for channel stats)
	src     *layerState       // layer of raw from a hook (StatsInWorkers): its followers' rows are derived from raw
	derived []derivedTensors  // sampled tensors of src's followers, filled from raw by the worker
	tensors []store.TensorRow // sampled tensors (Data slices of buf)
	buf     *[]float32        // pooled buffer backing tensors, or nil
	bytes   int64             // bytes charged to the queue
	tbytes  int64             // Record path: tensor bytes charged to the budget
	bs      *batchState       // the item's batch (Record path: skipped if the batch was dropped)
}

// derivedTensors are the sampled rows of a layer derived from another
// layer's output copy (StatsInWorkers): rows[j] receives sample idx[j]
// (per elements), backed by buf.
type derivedTensors struct {
	layer *layerState
	idx   []int
	per   int
	buf   *[]float32
	rows  []store.TensorRow
}

// queue is a FIFO of items bounded by the bytes they hold. Safe for
// concurrent use. used counts the bytes of items pushed and not yet done,
// plus reservations: bytes a Forward call set aside up front for the
// items it will push (the sampled copies it fills in its hooks).
type queue struct {
	mu       sync.Mutex
	notEmpty sync.Cond
	notFull  sync.Cond
	items    []item
	head     int
	used     int64
	cap      int64
	peak     int64
	closed   bool
}

func newQueue(capBytes int64) *queue {
	q := &queue{cap: capBytes}
	q.notEmpty.L = &q.mu
	q.notFull.L = &q.mu
	return q
}

// reserve sets n bytes aside, waiting for room with block (the same rule
// as push: a reservation larger than the cap is admitted when nothing else
// is held; peak is its highest value). It returns false without reserving
// if there is no room and !block or ctx is done, or if the queue is closed.
func (q *queue) reserve(ctx context.Context, n int64, block bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if block && ctx.Done() != nil && !q.closed && q.used > 0 && q.used+n > q.cap {
		stop := context.AfterFunc(ctx, func() {
			q.mu.Lock()
			q.notFull.Broadcast()
			q.mu.Unlock()
		})
		defer stop()
	}
	for !q.closed && q.used > 0 && q.used+n > q.cap {
		if !block || ctx.Err() != nil {
			return false
		}
		q.notFull.Wait()
	}
	if q.closed {
		return false
	}
	q.used += n
	q.peak = max(q.peak, q.used)
	return true
}

// add appends it, whose bytes were reserved except for extra (which may be
// negative: the unused part of a reservation it returns), without waiting.
func (q *queue) add(it item, extra int64) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.used += extra
	q.peak = max(q.peak, q.used)
	if extra < 0 {
		q.notFull.Broadcast()
	}
	q.notEmpty.Signal()
	q.mu.Unlock()
}

// pop returns the next item, waiting for one; ok is false once the queue is
// closed and empty.
func (q *queue) pop() (it item, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.notEmpty.Wait()
	}
	if q.head == len(q.items) {
		return item{}, false
	}
	it = q.items[q.head]
	q.items[q.head] = item{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return it, true
}

// done releases the bytes of a popped item once it has been written, or
// of a reservation.
func (q *queue) done(n int64) {
	q.mu.Lock()
	q.used -= n
	q.notFull.Broadcast()
	q.mu.Unlock()
}

// waitEmpty waits until every pushed item has been written (done).
func (q *queue) waitEmpty() {
	q.mu.Lock()
	for q.used > 0 {
		q.notFull.Wait()
	}
	q.mu.Unlock()
}

func (q *queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// close wakes everyone; pending items are still popped.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.notEmpty.Broadcast()
	q.notFull.Broadcast()
	q.mu.Unlock()
}

// bufPools holds []float32 buffers of up to maxPooled elements by
// power-of-two capacity class. Larger buffers are allocated at their exact
// size and left to the GC (a Recorder keeps some for reuse, see bigPool):
// a pool would keep buffers of tens of MiB alive outside the queue's
// account (and round them up by as much as 2x).
var bufPools [48]sync.Pool

const maxPooled = 1 << 18 // elements (1 MiB)

// bufBytes is the memory of a buffer getBuf(n) returns, in bytes.
func bufBytes(n int) int64 {
	if n > maxPooled {
		return 4 * int64(n)
	}
	return 4 << bits.Len(uint(max(n, 1)-1))
}

func getBuf(n int) *[]float32 {
	if n > maxPooled {
		b := make([]float32, n)
		return &b
	}
	c := bits.Len(uint(max(n, 1) - 1))
	if p, ok := bufPools[c].Get().(*[]float32); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]float32, n, 1<<c)
	return &b
}

func putBuf(p *[]float32) {
	if p == nil {
		return
	}
	c := bits.Len(uint(cap(*p)) - 1)
	if cap(*p) != 1<<c || cap(*p) > maxPooled {
		return
	}
	bufPools[c].Put(p)
}

// bigPool keeps a Recorder's large buffers (over maxPooled elements: the
// whole-output copies of StatsInWorkers, the same sizes every batch) for
// reuse by exact length, up to max bytes in all, so that a recording does
// not allocate, fault in and zero tens of MiB per batch. The kept buffers
// are outside the queue's account (package doc, Memory); max is
// min(QueueBytes/2, 64 MiB).
type bigPool struct {
	mu    sync.Mutex
	free  map[int][]*[]float32 // by length
	bytes int64
	max   int64
}

func (p *bigPool) get(n int) *[]float32 {
	if n > maxPooled {
		p.mu.Lock()
		if l := p.free[n]; len(l) > 0 {
			b := l[len(l)-1]
			p.free[n] = l[:len(l)-1]
			p.bytes -= 4 * int64(n)
			p.mu.Unlock()
			return b
		}
		p.mu.Unlock()
	}
	return getBuf(n)
}

func (p *bigPool) put(b *[]float32) {
	if b == nil {
		return
	}
	n := cap(*b)
	if n <= maxPooled || len(*b) != n {
		putBuf(b)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bytes+4*int64(n) > p.max {
		return
	}
	if p.free == nil {
		p.free = map[int][]*[]float32{}
	}
	p.free[n] = append(p.free[n], b)
	p.bytes += 4 * int64(n)
}
