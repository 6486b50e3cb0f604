package recorder

import (
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
	shape   []int             // shape of raw (for channel stats)
	tensors []store.TensorRow // sampled tensors (Data slices of buf)
	buf     *[]float32        // pooled buffer backing tensors, or nil
	bytes   int64             // bytes charged to the queue
}

// queue is a FIFO of items bounded by the bytes they hold. Safe for
// concurrent use.
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

// push adds it. With block, it waits until the queue has room; otherwise it
// returns false if the queue is full. An item larger than the cap is
// admitted when the queue is empty. push after close returns false.
func (q *queue) push(it item, block bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && q.used > 0 && q.used+it.bytes > q.cap {
		if !block {
			return false
		}
		q.notFull.Wait()
	}
	if q.closed {
		return false
	}
	q.items = append(q.items, it)
	q.used += it.bytes
	q.peak = max(q.peak, q.used)
	q.notEmpty.Signal()
	return true
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

// done releases the bytes of a popped item once it has been written.
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

// close wakes everyone; pending items are still popped.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.notEmpty.Broadcast()
	q.notFull.Broadcast()
	q.mu.Unlock()
}

// bufPools holds []float32 buffers by power-of-two capacity class.
var bufPools [48]sync.Pool

func getBuf(n int) *[]float32 {
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
	if cap(*p) != 1<<c {
		return
	}
	bufPools[c].Put(p)
}
