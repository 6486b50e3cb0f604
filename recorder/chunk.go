package recorder

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// How a layer's statistics are obtained in a Forward call.
type statsKind int

const (
	kindCount statsKind = iota // counted from the layer's own output
	kindReLU                   // moments counted; histogram derived from the input's (from)
	kindSame                   // identical to the input's row (Flatten, Dropout): nothing counted
)

// callState is what the recorder keeps about one Forward call, from the
// root's pre-hook to the call-end hook.
type callState struct {
	bs *batchState
	n  int // rows of the model's first input; -1 if unknown

	mu      sync.Mutex
	layers  map[*layerState]*layerCall // layers whose chunks are arriving
	done    map[*layerState]*layerResult
	planned bool        // the call's reservation was attempted (at its first recorded layer)
	dropped bool        // Policy Drop: no room for the call; nothing of it is recorded
	held    int64       // queue bytes reserved for the call, not yet turned into items
	idx     []int       // sampled rows of the call
	stop    func() bool // stops the context.AfterFunc releasing held on cancellation
	// tensorsOK: the call's sampled tensors were charged to the tensor
	// budget, all layers at once at the reservation (so that the batch at
	// which the budget is reached has no tensors at all, not those of its
	// first layers); charged is the part of that not yet handed to a layer.
	tensorsOK bool
	charged   int64
}

// layerResult is what later layers of the same call reuse from a layer's
// statistics: the full row (histogram included, whatever Config.Histogram
// says) and its zero counts and maximum for ReLU derivation.
type layerResult struct {
	row   store.StatsRow
	zeros zeroCounts
	max   float32
}

// layerCall accumulates the chunks of one (call, layer).
type layerCall struct {
	mu      sync.Mutex
	stats   bool // statistics wanted (decided at the first chunk)
	tensors bool // sampled tensors wanted
	rows    int  // rows delivered

	idle []*accumulator // accumulators not in use by a chunk

	full    *[]float32 // Config.StatsInWorkers: copy of the whole output (rows of per elements), filled chunk by chunk
	fullN   int        // rows of full
	fullPer int        // elements per row of full (guarded by mu once chunks arrive)
	shape   []int      // per-row shape of full's data: the run's, or the call's if it differs (variable input size)
	resized bool       // full was resized for the call's shape
	keptAny bool       // a chunk was put into full (guarded by mu)
	// lent: full is nn's output tensor itself (nn.OutputDest), read by later
	// layers until the call ends, so it is never reused (left to the GC)
	lent bool
	// bias: full holds a convolution's output before its bias, one value
	// per channel, which the worker adds (nn.RawChunkDest); nil: none
	bias []float32
	// viaWorker: Config.StatsInWorkers, and the row is derived by the
	// worker from the source layer's copy (l.from's item)
	viaWorker bool
	// viaSource: statistics in hooks, l is its input's fusedReLU: its
	// moments are counted in the input's chunks, into this layerCall's
	// accumulators, and its row pushed at the input's Done (its own chunks
	// then serve its sampled tensors only).
	viaSource bool
	relu      *layerCall // the fusedReLU's layerCall when it is viaSource (nil: none)
	reluSet   bool       // relu was looked up

	chSum []float64 // Config.ChannelStats: per-channel sums, counts, maxima
	chCnt []int64
	chMax []float32

	idx  []int // sampled rows
	per  int   // elements per row
	buf  *[]float32
	trow []store.TensorRow
	got  int // sampled rows copied

	err error
}

// chunkHook is the nn.ChunkHook of one recorded layer.
type chunkHook struct {
	r *Recorder
	l *layerState
}

// startCall is the root's pre-hook: it assigns the call's batch and notes
// its batch size.
func (r *Recorder) startCall(ctx context.Context, _ nn.ModuleInfo, in []*nn.Tensor) {
	n := -1
	if len(in) > 0 && in[0] != nil {
		n = batchSize(in[0])
	}
	if !r.enabled.Load() || r.failed.Load() {
		// A call not recorded still takes its batch index and dataset
		// positions, so that later calls keep theirs (samples are matched
		// across runs by dataset index).
		if _, ok := BatchFrom(ctx); !ok {
			r.mu.Lock()
			r.next.Index++
			r.next.DatasetIndex += int64(max(n, 0))
			r.mu.Unlock()
		}
		return
	}
	r.newCall(ctx, n)
}

// endCall is the model's call-end hook (nn.CallEndHook), which nn runs
// once as every hooked Forward call ends, successful or not: the call is
// forgotten, what it reserved and did not use is released, and so is what
// layers it did not finish hold (a layer error or cancellation skips the
// Done of the modules after it): accumulators, sample buffers and their
// tensor budget.
func (r *Recorder) endCall(ctx context.Context, _ error) {
	id := nn.CallID(ctx)
	if id == 0 {
		return
	}
	r.mu.Lock()
	cs, ok := r.calls.get(id)
	r.calls.delete(id)
	r.mu.Unlock()
	if ok {
		r.endReservation(cs)
		r.dropLayers(cs)
	}
}

// dropLayers releases the state of the layers of the call that were
// started and not finished (no chunk of the call is in flight any more).
func (r *Recorder) dropLayers(cs *callState) {
	cs.mu.Lock()
	layers := cs.layers
	cs.layers = map[*layerState]*layerCall{}
	cs.done = map[*layerState]*layerResult{}
	cs.mu.Unlock()
	for _, lc := range layers {
		r.dropSamples(lc)
		for _, a := range lc.idle {
			discard(a)
		}
		lc.idle = nil
		r.putFull(lc)
	}
}

// endReservation releases the unused part of the call's reservation; later
// items of the call (if any) are charged in full.
func (r *Recorder) endReservation(cs *callState) {
	cs.mu.Lock()
	h := cs.held
	cs.held = 0
	stop := cs.stop
	cs.stop = nil
	if cs.charged > 0 { // tensors of layers the call never reached
		r.tensorBytes.Add(-cs.charged)
		cs.charged = 0
	}
	cs.tensorsOK = false // (a layer under way when the call is cancelled keeps its share)
	cs.mu.Unlock()
	if stop != nil {
		stop()
	}
	if h > 0 {
		r.q.done(h)
	}
}

// statsReserve is what a stats row of l is expected to hold: the largest
// row of l queued so far, at least rowBytes with a histogram of 1024
// buckets. A bigger row is charged the difference when it is queued, at
// most 10 bytes per bucket beyond (640 KiB), in the first calls only.
func (r *Recorder) statsReserve(l *layerState) int64 {
	n := int64(256 + 10*1024)
	if r.cfg.ChannelStats && len(l.info.Shape) >= 2 {
		n += 8 * int64(l.info.Shape[0])
	}
	return max(n, l.rowEst.Load())
}

// reserveCall sets aside, at the call's first recorded layer, the queue
// bytes of everything the call will record: stats rows, sampled copies
// (filled by the hooks as chunks arrive) and, with StatsInWorkers, output
// copies. With Policy Block it waits for room; with Drop, no room means
// the whole batch is skipped and counted, so that every layer of a run has
// the same batches. Reserving once per call (rather than per layer) is
// what makes waiting safe: a call never waits while holding bytes the
// queue needs to drain. cs.mu is held.
func (r *Recorder) reserveCall(ctx context.Context, cs *callState) {
	cs.planned = true
	bs := cs.bs
	if !bs.stats {
		return
	}
	if r.cfg.Policy == Drop && bs.dropped.Load() {
		cs.dropped = true // another call of the same batch was dropped
		return
	}
	var need, tneed, tbytes int64
	for _, l := range r.layerList {
		per := shapeLen(l.info.Shape)
		if l.mode&ModeStats != 0 {
			need += r.statsReserve(l)
			if r.cfg.StatsInWorkers && l.kind == kindCount && cs.n > 0 {
				need += bufBytes(cs.n * per) // the output copy the worker reads
			}
		}
		if l.mode&ModeTensors != 0 && bs.tensors && cs.n > 0 {
			if cs.idx == nil {
				cs.idx = r.cfg.Samples.samples(bs.b.Index, cs.n)
			}
			if k := len(cs.idx); k > 0 {
				tneed += bufBytes(per*k) + 48*int64(k)
				tbytes += int64(4 * per * k)
			}
		}
	}
	if tbytes > 0 && r.chargeBudget(tbytes, bs.b.Index) {
		need += tneed
		cs.tensorsOK, cs.charged = true, tbytes
	}
	if need == 0 {
		return
	}
	if !r.q.reserve(ctx, need, r.cfg.Policy == Block) {
		r.tensorBytes.Add(-cs.charged)
		cs.tensorsOK, cs.charged = false, 0
		cs.dropped = true
		if r.cfg.Policy == Drop && !r.q.isClosed() && bs.dropped.CompareAndSwap(false, true) {
			r.dropped.Add(1)
		}
		return
	}
	cs.held = need
	if ctx.Done() != nil {
		// Release at once on cancellation, not only when Forward notices
		// it between layers and ends the call.
		cs.stop = context.AfterFunc(ctx, func() { r.endReservation(cs) })
	}
}

func (r *Recorder) newCall(ctx context.Context, n int) *callState {
	id := nn.CallID(ctx)
	var bs *batchState
	if b, ok := BatchFrom(ctx); ok {
		bs = r.batchState(b)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cs, ok := r.calls.get(id); ok && id != 0 {
		return cs
	}
	if bs == nil {
		b := r.next
		r.next.Index++
		r.next.DatasetIndex += int64(max(n, 0))
		bs = r.decide(b)
	}
	cs := &callState{bs: bs, n: n, layers: map[*layerState]*layerCall{}, done: map[*layerState]*layerResult{}}
	if id != 0 {
		r.calls.put(id, cs)
	}
	return cs
}

// callOf returns the state of the call a hook runs in (created if the
// root's pre-hook did not run, e.g. while hooks were being attached).
func (r *Recorder) callOf(ctx context.Context) *callState {
	id := nn.CallID(ctx)
	r.mu.Lock()
	cs, ok := r.calls.get(id)
	r.mu.Unlock()
	if ok && id != 0 {
		return cs
	}
	return r.newCall(ctx, -1)
}

// layerCall returns the accumulation state of l in the call, deciding at
// the first chunk what is recorded; out is the first chunk (rows
// [lo, hi)), nil at Done.
func (cs *callState) layerCall(ctx context.Context, r *Recorder, l *layerState, out *nn.Tensor, lo, hi int) *layerCall {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if lc, ok := cs.layers[l]; ok {
		return lc
	}
	if !cs.planned {
		r.reserveCall(ctx, cs)
	}
	lc := &layerCall{
		stats:   l.mode&ModeStats != 0 && cs.bs.stats && !cs.dropped,
		tensors: l.mode&ModeTensors != 0 && cs.tensorsOK && !cs.dropped,
	}
	cs.layers[l] = lc
	if lc.stats && !r.cfg.StatsInWorkers && l.from != nil && l.from.fusedReLU == l {
		lc.viaSource = true // its chunks, if it wants any, are for sampled tensors only
	}
	if lc.stats && r.cfg.StatsInWorkers && cs.n > 0 {
		if l.kind == kindCount {
			lc.fullPer, lc.fullN, lc.shape = shapeLen(l.info.Shape), cs.n, l.info.Shape
			lc.full = r.big.get(cs.n * lc.fullPer)
		} else {
			lc.viaWorker = true
		}
	}
	if lc.tensors {
		lc.tensors = false
		per := shapeLen(l.info.Shape)
		if out != nil && hi > lo && len(out.Data) != per*(hi-lo) {
			lc.err = fmt.Errorf("recorder: %s: per-sample output shape %v, run has %v", l.info.Path, out.Shape[1:], l.info.Shape)
			return lc
		}
		if cs.idx == nil {
			cs.idx = r.cfg.Samples.samples(cs.bs.b.Index, cs.n)
		}
		idx := cs.idx
		if len(idx) == 0 {
			return lc
		}
		cs.charged -= int64(4 * per * len(idx)) // now the layer's (refunded by dropSamples)
		lc.tensors, lc.idx, lc.per = true, idx, per
		lc.buf = getBuf(per * len(idx))
		lc.trow = make([]store.TensorRow, len(idx))
		b := cs.bs.b
		for j, s := range idx {
			lc.trow[j] = store.TensorRow{Batch: b.Index, Sample: int32(s), DatasetIndex: b.DatasetIndex + int64(s),
				Data: (*lc.buf)[j*per : (j+1)*per : (j+1)*per]}
		}
	}
	return lc
}

// take removes l's accumulation state from the call.
func (cs *callState) take(l *layerState) *layerCall {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	lc := cs.layers[l]
	delete(cs.layers, l)
	return lc
}

func (cs *callState) result(l *layerState) *layerResult {
	if l == nil {
		return nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.done[l]
}

func (cs *callState) keep(l *layerState, res *layerResult) {
	cs.mu.Lock()
	cs.done[l] = res
	cs.mu.Unlock()
}

// Wants reports whether the layer records anything in this call, so that
// nn runs unrecorded calls (e.g. batches BatchPolicy skips) as if unhooked.
func (h *chunkHook) Wants(ctx context.Context, _ nn.ModuleInfo) (want bool) {
	r, l := h.r, h.l
	if !r.enabled.Load() || r.failed.Load() {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			r.setErr(fmt.Errorf("recorder: hook on %s: panic: %v", l.info.Path, p))
			want = false
		}
	}()
	lc := r.callOf(ctx).layerCall(ctx, r, l, nil, 0, 0)
	// A layer whose row and samples the worker derives needs none of its
	// data: declining lets nn skip materialising it (e.g. a ReLU fused after
	// a convolution).
	return lc.err != nil || (!lc.viaWorker && (lc.tensors || (lc.stats && !lc.viaSource)))
}

// deriveTensors hands the sampled-tensor buffers of l's followers whose
// rows the worker derives (viaWorker), recursively, to l's item: the
// worker fills them from l's output copy, so that these layers need no
// chunks at all (nn can then keep, e.g., a ReLU fused after l
// unmaterialised). It adds their bytes and those of their stats rows to
// *bytes.
func (r *Recorder) deriveTensors(ctx context.Context, cs *callState, l *layerState, per int, bytes *int64) (out []derivedTensors, err error) {
	for _, f := range l.followers {
		flc := cs.layerCall(ctx, r, f, nil, 0, 0)
		flc.mu.Lock()
		if flc.viaWorker && flc.tensors && flc.err == nil {
			if flc.per != per {
				// as a hook on f would find (variable input size)
				err = fmt.Errorf("recorder: %s: per-sample output of %d elements, run has %v", f.info.Path, per, f.info.Shape)
			}
			out = append(out, derivedTensors{layer: f, idx: flc.idx, per: flc.per, buf: flc.buf, rows: flc.trow})
			*bytes += bufBytes(flc.per*len(flc.idx)) + 48*int64(len(flc.idx))
			flc.buf, flc.trow, flc.tensors = nil, nil, false
		}
		flc.mu.Unlock()
		*bytes += r.statsReserve(f) // its row
		more, ferr := r.deriveTensors(ctx, cs, f, per, bytes)
		out = append(out, more...)
		err = cmp.Or(err, ferr)
	}
	return out, err
}

// ChunkDest hands nn the output copy of a layer whose statistics a worker
// computes (StatsInWorkers), so that a fused convolution computes its
// output there and the chunks need no copying (nn.ChunkDest).
func (h *chunkHook) ChunkDest(ctx context.Context, _ nn.ModuleInfo, n int) []float32 {
	return h.dest(ctx, n, func(lc *layerCall) []float32 { return *lc.full })
}

// RawChunkDest is ChunkDest for a fused convolution with a bias, which the
// worker then adds to the copy (nn.RawChunkDest) instead of nn on the
// Forward goroutine. Not where the call samples the convolution's own
// tensors: those are copied from the chunks, on the Forward goroutine.
func (h *chunkHook) RawChunkDest(ctx context.Context, _ nn.ModuleInfo, n int, bias []float32) []float32 {
	return h.dest(ctx, n, func(lc *layerCall) []float32 {
		lc.mu.Lock()
		defer lc.mu.Unlock()
		if lc.tensors || lc.keptAny || len(lc.shape) == 0 || lc.shape[0] != len(bias) {
			return nil
		}
		lc.bias = slices.Clone(bias)
		return *lc.full
	})
}

// OutputDest hands nn memory for a layer's output tensor itself (the
// pooled output of a fused chain, nn.OutputDest) when a worker computes
// its statistics (StatsInWorkers): the layer's output is then the copy, and
// its chunks need no copying. The memory is allocated for the call, as nn
// would, and not reused: nn reads it until the call ends.
func (h *chunkHook) OutputDest(ctx context.Context, _ nn.ModuleInfo, n int) []float32 {
	return h.dest(ctx, n, func(lc *layerCall) []float32 {
		own := make([]float32, len(*lc.full))
		h.r.putFull(lc)
		lc.full, lc.lent = &own, true
		return own
	})
}

// dest returns mem(lc) when the call keeps the layer's whole output of n
// rows for a worker (lc.full of that size), else nil.
func (h *chunkHook) dest(ctx context.Context, n int, mem func(lc *layerCall) []float32) (dest []float32) {
	r, l := h.r, h.l
	if !r.enabled.Load() || r.failed.Load() {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			r.setErr(fmt.Errorf("recorder: hook on %s: panic: %v", l.info.Path, p))
			dest = nil
		}
	}()
	lc := r.callOf(ctx).layerCall(ctx, r, l, nil, 0, 0)
	if lc.err != nil || lc.full == nil || len(*lc.full) != n*lc.fullPer {
		return nil
	}
	return mem(lc)
}

// putFull gives lc's output copy back for reuse, unless nn has it
// (lent), and forgets it and what was true of it (lent, bias: a buffer
// replaced because the call's size differs from the run's gets nn's
// chunks with the bias added).
func (r *Recorder) putFull(lc *layerCall) {
	if !lc.lent {
		r.big.put(lc.full)
	}
	lc.full, lc.lent, lc.bias = nil, false, nil
}

func (h *chunkHook) Chunk(ctx context.Context, _ nn.ModuleInfo, out *nn.Tensor, lo, hi int) {
	r, l := h.r, h.l
	if !r.enabled.Load() || out == nil || r.failed.Load() {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			r.setErr(fmt.Errorf("recorder: hook on %s: panic: %v", l.info.Path, p))
		}
	}()
	cs := r.callOf(ctx)
	lc := cs.layerCall(ctx, r, l, out, lo, hi)
	lc.mu.Lock()
	failed := lc.err != nil
	lc.mu.Unlock()
	if failed || (!lc.stats && !lc.tensors) {
		return
	}
	if l.fusedReLU != nil && lc.stats {
		r.lookUpReLU(ctx, cs, l, lc)
	}
	r.addChunk(l, lc, out, lo, hi)
}

// lookUpReLU sets lc.relu, once per call, to the layerCall of l's
// fusedReLU if that one counts its moments in l's chunks in this call.
func (r *Recorder) lookUpReLU(ctx context.Context, cs *callState, l *layerState, lc *layerCall) {
	lc.mu.Lock()
	set := lc.reluSet
	lc.mu.Unlock()
	if set {
		return
	}
	flc := cs.layerCall(ctx, r, l.fusedReLU, nil, 0, 0)
	lc.mu.Lock()
	if !lc.reluSet {
		lc.reluSet = true
		if flc.viaSource {
			lc.relu = flc
		}
	}
	lc.mu.Unlock()
}

// addChunk accumulates rows [lo, hi) of a layer's output (out).
func (r *Recorder) addChunk(l *layerState, lc *layerCall, out *nn.Tensor, lo, hi int) {
	if lc.tensors && hi > lo {
		if len(out.Data) != lc.per*(hi-lo) {
			lc.mu.Lock()
			lc.err = fmt.Errorf("recorder: %s: per-sample output shape %v, run has %v", l.info.Path, out.Shape[1:], l.info.Shape)
			lc.mu.Unlock()
			return
		}
		got := 0
		for j, s := range lc.idx {
			if s >= lo && s < hi {
				copy(lc.trow[j].Data, out.Data[(s-lo)*lc.per:(s-lo+1)*lc.per])
				got++
			}
		}
		if got > 0 {
			lc.mu.Lock()
			lc.got += got
			lc.mu.Unlock()
		}
	}
	if lc.stats {
		switch {
		case lc.full != nil:
			// A worker computes the statistics of the copy (and those of
			// the layers derived from it, see workerRows).
			if err := r.keepChunk(l, lc, out, lo, hi); err != nil {
				lc.mu.Lock()
				lc.err = err
				lc.mu.Unlock()
				return
			}
		case lc.viaWorker:
			// derived by the worker from the source layer's copy
		case lc.viaSource:
			// counted in the input's chunks
		case l.kind == kindSame:
		default:
			a := lc.acc()
			lc.mu.Lock()
			flc := lc.relu
			lc.mu.Unlock()
			switch {
			case flc != nil:
				ar := flc.acc()
				add := (*accumulator).addWithReLU
				if r.cfg.MomentsOnly {
					add = (*accumulator).addMomentsWithReLU
				}
				accumulatePair(a, ar, out.Data, add)
				flc.mu.Lock()
				flc.idle = append(flc.idle, ar)
				flc.mu.Unlock()
			case r.cfg.MomentsOnly || l.kind == kindReLU:
				accumulateWith(a, out.Data, (*accumulator).addMoments)
			default:
				accumulate(a, out.Data)
			}
			lc.mu.Lock()
			lc.idle = append(lc.idle, a)
			lc.mu.Unlock()
			if r.cfg.ChannelStats && len(out.Shape) >= 3 {
				r.addChannels(lc, out)
			}
		}
	}
	lc.mu.Lock()
	lc.rows += hi - lo
	lc.mu.Unlock()
}

// keepChunk puts rows [lo, hi) of a layer's output into lc.full (nothing to
// do if nn computed them there, nn.ChunkDest). A call whose input has
// another size than the run's (a model with variable spatial size) gets a
// buffer of its own size at its first chunk, as the hooks would count it.
func (r *Recorder) keepChunk(l *layerState, lc *layerCall, out *nn.Tensor, lo, hi int) error {
	rows := hi - lo
	if rows <= 0 {
		return nil
	}
	if len(out.Data)%rows != 0 || len(out.Shape) == 0 {
		return fmt.Errorf("recorder: %s: chunk of rows [%d, %d) with shape %v", l.info.Path, lo, hi, out.Shape)
	}
	per := len(out.Data) / rows
	lc.mu.Lock()
	if hi > lc.fullN && lo == 0 && !lc.keptAny {
		// An output whose first dimension is not the batch (Flatten(0, -1),
		// a Reshape), delivered whole: a buffer of its own size.
		r.putFull(lc)
		lc.full = r.big.get(hi * per)
		lc.fullN, lc.fullPer, lc.shape, lc.resized = hi, per, slices.Clone(out.Shape[1:]), true
	}
	lc.keptAny = true
	if per != lc.fullPer {
		if lc.resized {
			lc.mu.Unlock()
			return fmt.Errorf("recorder: %s: chunks of one call with %d and %d elements per row", l.info.Path, lc.fullPer, per)
		}
		r.putFull(lc)
		lc.full = r.big.get(lc.fullN * per)
		lc.fullPer, lc.shape, lc.resized = per, slices.Clone(out.Shape[1:]), true
	}
	full := *lc.full
	lc.mu.Unlock()
	if hi*per > len(full) {
		return fmt.Errorf("recorder: %s: chunk of rows [%d, %d), the call has %d", l.info.Path, lo, hi, len(full)/per)
	}
	if dst := full[lo*per : hi*per]; &dst[0] != &out.Data[0] {
		copy(dst, out.Data)
	}
	return nil
}

// acc returns an idle accumulator of the (call, layer) or a new one.
func (lc *layerCall) acc() *accumulator {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if k := len(lc.idle); k > 0 {
		a := lc.idle[k-1]
		lc.idle = lc.idle[:k-1]
		return a
	}
	return accPool.Get()
}

// addChannels adds the per-channel sums, counts and maxima of a chunk.
func (r *Recorder) addChannels(lc *layerCall, out *nn.Tensor) {
	n, c := out.Shape[0], out.Shape[1]
	hw := shapeLen(out.Shape[2:])
	if n*c*hw != len(out.Data) || hw == 0 {
		return
	}
	sums := make([]float64, c)
	cnt := make([]int64, c)
	mx := make([]float32, c)
	for i := range mx {
		mx[i] = float32(math.Inf(-1))
	}
	for s := 0; s < n; s++ {
		for ch := 0; ch < c; ch++ {
			p := out.Data[(s*c+ch)*hw : (s*c+ch+1)*hw]
			var sum float64
			var k int64
			m := mx[ch]
			for _, v := range p {
				if v-v == 0 { // finite
					sum += float64(v)
					k++
					if v > m {
						m = v
					}
				}
			}
			sums[ch] += sum
			cnt[ch] += k
			mx[ch] = m
		}
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.chSum == nil {
		lc.chSum, lc.chCnt, lc.chMax = sums, cnt, mx
		return
	}
	if len(lc.chSum) != c {
		return
	}
	for i := range sums {
		lc.chSum[i] += sums[i]
		lc.chCnt[i] += cnt[i]
		lc.chMax[i] = max(lc.chMax[i], mx[i])
	}
}

// channels returns the per-channel mean and max accumulated by addChannels.
func (lc *layerCall) channels() (mean, mx []float32) {
	if lc.chSum == nil {
		return nil, nil
	}
	mean = make([]float32, len(lc.chSum))
	mx = lc.chMax
	for i := range mean {
		if lc.chCnt[i] == 0 {
			mean[i] = float32(math.NaN())
			mx[i] = float32(math.NaN())
			continue
		}
		mean[i] = float32(lc.chSum[i] / float64(lc.chCnt[i]))
	}
	return mean, mx
}

func (h *chunkHook) Done(ctx context.Context, _ nn.ModuleInfo, n int) {
	r, l := h.r, h.l
	if !r.enabled.Load() || r.failed.Load() {
		// switched off during the call: release what its chunks took
		if lc := r.callOf(ctx).take(l); lc != nil {
			r.dropSamples(lc)
			for _, a := range lc.idle {
				discard(a)
			}
			r.putFull(lc) // nn is done with it (ChunkDest), or has it (OutputDest)
		}
		return
	}
	defer func() {
		if p := recover(); p != nil {
			r.setErr(fmt.Errorf("recorder: hook on %s: panic: %v", l.info.Path, p))
		}
	}()
	cs := r.callOf(ctx)
	lc := cs.take(l)
	if lc == nil {
		if n > 0 {
			return // recording was off while the chunks went by
		}
		lc = cs.layerCall(ctx, r, l, nil, 0, 0)
		cs.take(l)
	}
	if err := r.finishCall(ctx, l, cs, lc, n); err != nil && !errors.Is(err, ErrClosed) {
		r.setErr(err)
	}
}

// finishCall turns the accumulated chunks of a (call, layer) into an item
// and queues it.
func (r *Recorder) finishCall(ctx context.Context, l *layerState, cs *callState, lc *layerCall, n int) error {
	it := item{layer: l.info.Path, batch: cs.bs.b.Index}
	var fused *layerCall // l's fusedReLU's, whose row is pushed after l's
	defer func() {
		for _, a := range lc.idle {
			discard(a)
		}
		lc.idle = nil
		r.putFull(lc)
	}()
	if lc.err != nil {
		r.dropSamples(lc)
		return lc.err
	}
	if lc.rows != n {
		r.dropSamples(lc)
		return nil // chunks missed (recording switched on during the call)
	}
	if lc.stats {
		switch {
		case lc.full != nil:
			if n*lc.fullPer != len(*lc.full) {
				r.dropSamples(lc)
				return fmt.Errorf("recorder: %s: output has %d rows, the batch %d", l.info.Path, n, lc.fullN)
			}
			it.raw, it.lent, lc.full, lc.lent = lc.full, lc.lent, nil, false
			it.bias, lc.bias = lc.bias, nil
			it.shape = append([]int{n}, lc.shape...)
			it.src = l
			it.bytes += bufBytes(len(*it.raw)) + r.statsReserve(l)
			var err error
			if it.derived, err = r.deriveTensors(ctx, cs, l, lc.fullPer, &it.bytes); err != nil {
				r.dropSamples(lc)
				r.release(&it)
				return err
			}
		case lc.viaWorker, lc.viaSource:
			// the input's item carries (worker) or pushes (hooks) this layer's row
		default:
			if l.fusedReLU != nil {
				// (a call without rows delivers no chunk)
				r.lookUpReLU(ctx, cs, l, lc)
				fused = lc.relu
			}
			row, ok := r.layerRow(l, cs, lc)
			if !ok {
				break
			}
			row.Batch = cs.bs.b.Index
			it.stats = &row
			n := rowBytes(&row)
			it.bytes += n
			if n > l.rowEst.Load() {
				l.rowEst.Store(n) // racing stores of close sizes: any is fine
			}
		}
	}
	if lc.tensors {
		if n != cs.n || lc.got != len(lc.idx) {
			r.dropSamples(lc)
			return fmt.Errorf("recorder: %s: output has %d rows, the batch %d samples", l.info.Path, n, cs.n)
		}
		it.buf, it.tensors = lc.buf, lc.trow
		it.bytes += bufBytes(lc.per*len(lc.idx)) + int64(len(lc.idx))*48
	}
	if err := r.pushCall(cs, it); err != nil || fused == nil {
		return err
	}
	return r.pushFusedReLU(cs, l, fused)
}

// dropSamples releases the sample buffer of lc and refunds its budget.
func (r *Recorder) dropSamples(lc *layerCall) {
	if lc.tensors {
		r.tensorBytes.Add(-int64(4 * lc.per * len(lc.idx)))
		lc.tensors = false
	}
	putBuf(lc.buf)
	lc.buf = nil
}

// layerRow computes the statistics row of a (call, layer) from its
// accumulators (merged into one) or, for kindSame, from its input's row;
// ok is false if there is nothing to report (the input's row is missing).
func (r *Recorder) layerRow(l *layerState, cs *callState, lc *layerCall) (store.StatsRow, bool) {
	if l.kind == kindSame {
		src := cs.result(l.from)
		if src == nil {
			return store.StatsRow{}, false
		}
		if l.keep {
			cs.keep(l, src)
		}
		row := src.row
		row.Hist = store.Histogram{}
		if r.cfg.Histogram && !r.cfg.MomentsOnly {
			row.Hist = store.Histogram{Keys: slices.Clone(src.row.Hist.Keys), Counts: slices.Clone(src.row.Hist.Counts)}
		}
		if !r.cfg.ChannelStats || len(l.info.Shape) < 2 {
			row.ChannelMean, row.ChannelMax = nil, nil
		}
		return row, true
	}
	var a *accumulator
	for _, b := range lc.idle {
		if a == nil {
			a = b
			continue
		}
		a.absorb(b)
		accPool.Put(b)
	}
	lc.idle = nil
	if a == nil {
		a = accPool.Get()
	}
	defer accPool.Put(a)
	var row store.StatsRow
	switch {
	case r.cfg.MomentsOnly:
		row = a.resultWith(store.Histogram{}, false)
		if l.keep {
			cs.keep(l, &layerResult{row: row})
		}
	case l.kind == kindReLU:
		row = r.reluRow(l, cs, a)
	default:
		res := &layerResult{zeros: zeroCounts{a.zeros, a.negZeros}, max: a.max}
		row = a.result(true)
		res.row = row
		if l.keep {
			cs.keep(l, res)
		}
		if !r.cfg.Histogram {
			row.Hist = store.Histogram{}
		}
	}
	row.ChannelMean, row.ChannelMax = lc.channels()
	if l.keep {
		if res := cs.result(l); res != nil {
			res.row.ChannelMean, res.row.ChannelMax = row.ChannelMean, row.ChannelMax
		}
	}
	return row, true
}

// reluRow is the row of a ReLU whose moments a holds, with the histogram
// derived from its input's (reluHistogram). The derivation holds for any
// y = ReLU(x), NaN and Inf included (positive finite values keep their
// buckets, NaN and +Inf stay non-finite, everything else becomes a zero,
// which is counted); it is checked (y >= 0, same positive maximum, bucket
// total equal to the finite count). If the input's row is missing or the
// check fails, the row has no histogram and NaN percentiles.
func (r *Recorder) reluRow(l *layerState, cs *callState, a *accumulator) store.StatsRow {
	res := r.deriveReLU(cs.result(l.from), a)
	row := res.row
	if l.keep {
		cs.keep(l, res)
	}
	if !r.cfg.Histogram {
		row.Hist = store.Histogram{}
	}
	return row
}

// deriveReLU returns the result of a ReLU whose moments a holds (a is
// reset), its histogram derived from src, its input's result, as described
// at reluRow; with src nil or a failed check, the row has no histogram.
func (r *Recorder) deriveReLU(src *layerResult, a *accumulator) *layerResult {
	zy := zeroCounts{a.zeros, a.negZeros}
	var h store.Histogram
	ok := src != nil && !r.cfg.MomentsOnly
	if ok {
		h, ok = reluHistogram(src.row.Hist, src.zeros, zy)
		wantMax := max(src.max, 0)
		ok = ok && a.min >= 0 && h.Total() == uint64(a.n) && (a.n == 0 || a.max == wantMax)
	}
	res := &layerResult{zeros: zy, max: a.max}
	switch {
	case r.cfg.MomentsOnly:
		res.row = a.resultWith(store.Histogram{}, false)
	case !ok:
		r.underived.Add(1)
		res.row = a.resultWith(store.Histogram{}, false)
	default:
		r.derived.Add(1)
		res.row = a.resultWith(h, true)
	}
	return res
}

// workerRows computes, in a worker, the statistics row of it.raw, the
// output copy of layer it.src (StatsInWorkers), and those of the layers
// derived from it (it.src's followers, recursively: a ReLU's from the copy
// with the ReLU applied in place, a Flatten's or Dropout's the input's
// row), and passes each to emit. The work runs on the worker's goroutine
// only, leaving the other cores to inference.
func (r *Recorder) workerRows(it *item, emit func(layer string, row store.StatsRow) error) error {
	data := *it.raw
	a := accPool.Get()
	// The first ReLU follower that needs only moments from the copy gets
	// them in the source's pass (addWithReLU).
	var pre map[*layerState]*accumulator
	var fused *layerState
	for _, f := range it.src.followers {
		if r.reluFromMoments(f, it.shape) {
			fused = f
			break
		}
	}
	var count func(x []float32)
	switch {
	case fused != nil:
		ar := accPool.Get()
		if r.cfg.MomentsOnly {
			count = func(x []float32) { a.addMomentsWithReLU(ar, x) }
		} else {
			count = func(x []float32) { a.addWithReLU(ar, x) }
		}
		pre = map[*layerState]*accumulator{fused: ar}
	case r.cfg.MomentsOnly:
		count = a.addMoments
	default:
		count = a.add
	}
	if it.bias == nil {
		count(data)
	} else if err := addBiasCounting(data, it.bias, it.shape, count); err != nil {
		accPool.Put(a)
		for _, ar := range pre {
			accPool.Put(ar)
		}
		return fmt.Errorf("%s: %w", it.layer, err)
	} else {
		r.biasAdded.Add(1)
	}
	res := &layerResult{zeros: zeroCounts{a.zeros, a.negZeros}, max: a.max}
	if r.cfg.MomentsOnly {
		res.row = a.resultWith(store.Histogram{}, false)
	} else {
		res.row = a.result(true)
	}
	accPool.Put(a)
	r.workerChannels(&res.row, data, it.shape)
	return r.emitDerived(it, it.src, res, data, it.shape, false, pre, emit)
}

// addBiasCounting adds bias[c] to every element of channel c of x (shape
// [n, len(bias), ...]), as nn leaves it to a RawChunkDest hook, and passes
// x to count piece by piece, each while it is in the cache. The pieces are
// whole chunks (chunkLen), so the accumulators sum exactly what one call
// on x would.
func addBiasCounting(x, bias []float32, shape []int, count func([]float32)) error {
	if len(shape) < 2 || shape[1] != len(bias) || shapeLen(shape) != len(x) {
		return fmt.Errorf("bias of %d channels for an output of shape %v", len(bias), shape)
	}
	plane := shapeLen(shape[2:])
	if plane == 0 {
		count(x)
		return nil
	}
	const piece = 4 * chunkLen
	for off := 0; off < len(x); off += piece {
		p := x[off:min(off+piece, len(x))]
		for i := 0; i < len(p); {
			end := min(len(p), i+plane-(off+i)%plane)
			nn.AddBias(p[i:end], bias[((off+i)/plane)%len(bias)])
			i = end
		}
		count(p)
	}
	return nil
}

// reluFromMoments reports whether follower f is a ReLU whose row the
// worker can compute from its input's values without writing its output:
// no followers of its own, no per-channel statistics (shape is the input's).
func (r *Recorder) reluFromMoments(f *layerState, shape []int) bool {
	return f.kind == kindReLU && len(f.followers) == 0 && !(r.cfg.ChannelStats && len(f.info.Shape) == len(shape)-1 && len(shape) >= 3)
}

// emitDerived emits l's row (res) and derives its followers' rows; data is
// l's output, of shape shape (batch first), or with reluPending its input,
// whose ReLU l's sampled rows still need. data is never modified: every
// follower sees the source's values.
func (r *Recorder) emitDerived(it *item, l *layerState, res *layerResult, data []float32, shape []int, reluPending bool, pre map[*layerState]*accumulator, emit func(string, store.StatsRow) error) error {
	row := res.row
	row.Batch = it.batch
	if !r.cfg.Histogram {
		row.Hist = store.Histogram{}
	}
	if err := emit(l.info.Path, row); err != nil {
		return err
	}
	if l != it.src {
		for _, d := range it.derived {
			if d.layer != l {
				continue
			}
			for j, s := range d.idx {
				copy(d.rows[j].Data, data[s*d.per:(s+1)*d.per])
				if reluPending {
					nn.ReLUSlice(d.rows[j].Data, d.rows[j].Data)
				}
			}
			if err := r.appendTensors(l.info.Path, d.rows); err != nil {
				return err
			}
		}
	}
	for _, f := range l.followers {
		// f's output shape: l's (Dropout, ReLU), or, for a layer that
		// changes the rank (Flatten), the run's
		fshape := shape
		if len(f.info.Shape) != len(shape)-1 {
			fshape = append([]int{shape[0]}, f.info.Shape...)
		}
		var fr *layerResult
		fdata, pending := data, false
		var scratch *[]float32
		switch f.kind {
		case kindSame:
			fr = &layerResult{row: res.row, zeros: res.zeros, max: res.max}
			fr.row.Hist = store.Histogram{Keys: slices.Clone(res.row.Hist.Keys), Counts: slices.Clone(res.row.Hist.Counts)}
			if !r.cfg.ChannelStats || len(f.info.Shape) < 2 {
				fr.row.ChannelMean, fr.row.ChannelMax = nil, nil
			}
			fdata, pending = data, reluPending
		case kindReLU:
			a := pre[f]
			switch {
			case a != nil: // moments counted in the source's pass
				pending = true
			case res.row.NaN == 0 && res.row.Inf == 0 && r.reluFromMoments(f, shape):
				// the ReLU's moments without writing its output (the
				// kernel needs finite input)
				a = accPool.Get()
				a.addReLUMoments(data)
				pending = true
			default:
				a = accPool.Get()
				scratch = r.big.get(len(data))
				fdata = *scratch
				nn.ReLUSlice(fdata, data)
				a.addMoments(fdata)
			}
			fr = r.deriveReLU(res, a)
			accPool.Put(a)
			if !pending {
				r.workerChannels(&fr.row, fdata, fshape)
			}
		default:
			continue
		}
		err := r.emitDerived(it, f, fr, fdata, fshape, pending, nil, emit)
		r.big.put(scratch)
		if err != nil {
			return err
		}
	}
	return nil
}

// workerChannels sets the per-channel statistics of row from data (shape
// [n, c, ...]) when Config.ChannelStats asks for them.
func (r *Recorder) workerChannels(row *store.StatsRow, data []float32, shape []int) {
	if !r.cfg.ChannelStats || len(shape) < 3 {
		return
	}
	if hw := shapeLen(shape[2:]); hw > 0 && shape[0]*shape[1]*hw == len(data) {
		row.ChannelMean, row.ChannelMax = channelStats(data, shape[0], shape[1], hw)
	}
}

// discard resets a and returns it to the pool.
func discard(a *accumulator) {
	a.result(false)
	accPool.Put(a)
}

// pushFusedReLU queues the row of l's fusedReLU, whose moments l's chunks
// counted into flc (viaSource), its histogram derived from l's.
func (r *Recorder) pushFusedReLU(cs *callState, l *layerState, flc *layerCall) error {
	flc.mu.Lock()
	idle := flc.idle
	flc.idle = nil
	flc.mu.Unlock()
	var a *accumulator
	for _, b := range idle {
		if a == nil {
			a = b
			continue
		}
		a.absorb(b)
		accPool.Put(b)
	}
	if a == nil {
		a = accPool.Get()
	}
	res := r.deriveReLU(cs.result(l), a)
	accPool.Put(a)
	row := res.row
	if !r.cfg.Histogram {
		row.Hist = store.Histogram{}
	}
	row.Batch = cs.bs.b.Index
	f := l.fusedReLU
	n := rowBytes(&row)
	if n > f.rowEst.Load() {
		f.rowEst.Store(n)
	}
	return r.pushCall(cs, item{layer: f.info.Path, batch: cs.bs.b.Index, stats: &row, bytes: n})
}

// pushCall queues an item of the call, out of the call's reservation
// (bytes beyond it are charged without waiting: the call may hold
// reservations the queue needs to drain); r.closeMu is taken here.
func (r *Recorder) pushCall(cs *callState, it item) error {
	if it.stats == nil && it.raw == nil && it.tensors == nil {
		return nil
	}
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		r.release(&it)
		return ErrClosed
	}
	cs.mu.Lock()
	use := min(it.bytes, cs.held)
	cs.held -= use
	cs.mu.Unlock()
	r.q.add(it, it.bytes-use)
	return nil
}

// planLayers sets, for every recorded layer of m, how its statistics are
// obtained: a ReLU whose input is another recorded layer's output derives
// its histogram from it; a Flatten or Dropout whose input is a recorded
// layer's output reuses that layer's row (same data); other layers count.
func (r *Recorder) planLayers(m *nn.Model) {
	for _, l := range r.layers {
		l.kind, l.from, l.keep, l.followers = kindCount, nil, false, nil
	}
	for _, l := range r.layers {
		if l.mode&ModeStats == 0 {
			continue
		}
		ins, ok := m.LeafInputs(l.info.Path)
		if !ok || len(ins) != 1 {
			continue
		}
		from, ok := r.layers[ins[0]]
		if !ok || from.mode&ModeStats == 0 {
			continue
		}
		switch m.Layer(l.info.Path).(type) {
		case *nn.ReLU:
			// Derived in every mode: its histogram from the input's, and
			// (fusedReLU, StatsInWorkers) its moments from the input's values.
			l.kind, l.from = kindReLU, from
		case *nn.Flatten, *nn.Dropout:
			l.kind, l.from = kindSame, from
		}
	}
	for _, l := range r.layerList {
		if l.from != nil {
			l.from.keep = true
			l.from.followers = append(l.from.followers, l)
		}
	}
	for _, l := range r.layerList {
		l.fusedReLU = nil
	}
	if r.cfg.StatsInWorkers || !useAVX512 {
		return // (without the kernel, a separate pass over the ReLU's chunks is as cheap)
	}
	for _, f := range r.layerList {
		src := f.from
		if f.kind != kindReLU || src == nil || src.kind != kindCount || src.fusedReLU != nil || len(f.followers) > 0 ||
			(r.cfg.ChannelStats && len(f.info.Shape) >= 2) {
			continue
		}
		src.fusedReLU = f
	}
}
