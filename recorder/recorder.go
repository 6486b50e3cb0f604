package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/store"
)

// Batch identifies a batch: its index in the run and the dataset index of
// its sample 0 (sample i has dataset index DatasetIndex+i).
type Batch struct {
	Index        int64
	DatasetIndex int64
}

type batchKey struct{}

// WithBatch returns a context that makes forward hooks record under batch b.
// Without it, each Model.Forward call gets the next batch index in the order
// calls first reach a recorded layer, and a dataset index that counts the
// samples of earlier calls.
func WithBatch(ctx context.Context, b Batch) context.Context {
	return context.WithValue(ctx, batchKey{}, b)
}

// BatchFrom returns the batch set by WithBatch.
func BatchFrom(ctx context.Context) (Batch, bool) {
	if ctx == nil {
		return Batch{}, false
	}
	b, ok := ctx.Value(batchKey{}).(Batch)
	return b, ok
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("recorder: closed")

// Counters are running totals of a Recorder.
type Counters struct {
	Batches       int64 // batches seen (selected or not)
	StatsRows     int64 // stats rows written to the store
	TensorRows    int64 // tensor rows (samples) written to the store
	TensorBytes   int64 // tensor bytes charged to the budget
	Dropped       int64 // batches skipped as a whole (Drop policy)
	DroppedItems  int64 // (batch, layer) items not written because their batch was skipped (Record path)
	QueuePeak     int64 // highest queued bytes
	BudgetReached int64 // batch index at which the tensor budget was reached, -1 if not
}

// layerState is a recorded layer. kind, from and keep are set when the
// run is created (planLayers) and read-only afterwards.
type layerState struct {
	info store.LayerInfo
	mode Mode
	kind statsKind
	from *layerState // kindReLU, kindSame: the recorded layer whose output is the input
	keep bool        // a later layer reuses this layer's result in the call
	// followers are the layers whose from is this one, in layerList order
	// (StatsInWorkers: their rows are computed from this layer's item).
	followers []*layerState
	// fusedReLU (statistics in hooks): the ReLU follower whose moments
	// this layer's chunks count in the same pass (addWithReLU); it then
	// declines its own chunks (unless it samples tensors).
	fusedReLU *layerState

	rowEst atomic.Int64 // largest stats row queued so far (rowBytes), for reservations
}

// batchState is the per-batch decision, made once per batch.
type batchState struct {
	b       Batch
	stats   bool
	tensors bool
	dropped atomic.Bool

	// Record charges the tensors of all the batch's tensor layers to the
	// budget at once, at its first Record with tensors (so that the batch
	// at which the budget is reached has none, not those of its first
	// layers); charged says whether they fit, and unspent is the part not
	// yet queued: refunded if the batch is dropped or at Close, kept for a
	// Record retried after a context error.
	charge  sync.Once
	charged bool
	unspent atomic.Int64
}

// Recorder turns layer outputs into store rows. Safe for concurrent use:
// hooks may run on many goroutines at once (concurrent Forward calls).
type Recorder struct {
	st   *store.Store
	info store.RunInfo
	cfg  Config

	batches       *batchFilter
	tensorBatches *batchFilter

	mu     sync.Mutex // guards w, layers, handles, batch maps
	w      *store.Writer
	layers map[string]*layerState
	// layerList is r.layers in run order, set with the run and read-only
	// afterwards (hooks read it without r.mu).
	layerList []*layerState
	handles   []*nn.HookHandle
	calls     boundedMap[uint64, *callState] // by nn.CallID
	byIndex   boundedMap[int64, *batchState]
	next      Batch // next auto-assigned batch

	enabled atomic.Bool

	closeMu sync.RWMutex // hooks hold R while pushing; Close takes W
	closed  bool
	// closeDone is closed when the first Close has written the run (later
	// Closes wait for it)
	closeDone chan struct{}

	q       *queue
	big     bigPool // large buffers kept for reuse
	workers sync.WaitGroup

	errMu  sync.Mutex
	err    error
	failed atomic.Bool // err != nil, read without the lock on hot paths

	// beforeWrite, if set (tests), runs in the worker before an item is
	// written; a non-nil error is treated as a writer error.
	beforeWrite func(*item) error

	derived   atomic.Int64 // ReLU histograms derived from their input's
	underived atomic.Int64 // ReLU rows left without histogram (derivation impossible)
	biasAdded atomic.Int64 // convolution outputs whose bias a worker added (nn.RawChunkDest)

	nBatches, statsRows, tensorRows, tensorBytes, dropped, droppedItems atomic.Int64
	budgetAt                                                            atomic.Int64
}

// New returns a Recorder that will record into a new run of st described by
// info (Name is required; Model, ModelVersion, WeightsHash, Input and Tags
// are kept as given; Created, State, Config, GoVersion and Host are filled
// in). The run is created by Attach or Declare, when its layers are known.
func New(st *store.Store, info store.RunInfo, cfg Config) (*Recorder, error) {
	if st == nil {
		return nil, errors.New("recorder: nil store")
	}
	if info.Name == "" {
		return nil, errors.New("recorder: run name is empty")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Recorder{
		st:            st,
		info:          info,
		cfg:           cfg,
		batches:       newBatchFilter(cfg.Batches, cfg.Now),
		tensorBatches: newTensorBatchFilter(cfg.TensorBatches, cfg.Now),
		layers:        make(map[string]*layerState),
		calls:         newBoundedMap[uint64, *callState](4096),
		byIndex:       newBoundedMap[int64, *batchState](4096),
		q:             newQueue(cfg.QueueBytes),
		big:           bigPool{max: min(cfg.QueueBytes/2, 64<<20)},
		closeDone:     make(chan struct{}),
	}
	r.budgetAt.Store(-1)
	r.enabled.Store(true)
	return r, nil
}

// Attach creates the run with the model's selected layers (their per-sample
// output shapes for the given full input shapes, e.g. [1 3 28 28]) and
// registers forward hooks on them. If info.Model is empty it becomes
// m.Name(); if info.WeightsHash is empty it becomes the SHA-256 of the
// state dict. Attach after Detach re-registers the hooks (the layers must
// be ones the run already has).
func (r *Recorder) Attach(m *nn.Model, input ...[]int) error {
	if err := r.Err(); err != nil {
		return err
	}
	r.closeMu.RLock()
	closed := r.closed
	r.closeMu.RUnlock()
	if closed {
		return ErrClosed
	}
	mods := m.Modules()
	sel, err := r.selection(mods)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.handles) > 0 {
		return errors.New("recorder: already attached; Detach first")
	}
	if r.w == nil {
		shapes, err := m.Shapes(input...)
		if err != nil {
			return fmt.Errorf("recorder: layer shapes: %w", err)
		}
		var layers []store.LayerInfo
		for _, s := range shapes {
			if _, ok := sel[s.Path]; !ok {
				continue
			}
			ps := []int{}
			if len(s.Shape) > 1 {
				ps = slices.Clone(s.Shape[1:])
			}
			layers = append(layers, store.LayerInfo{Path: s.Path, Op: s.Op, Shape: ps, Order: s.Order})
		}
		slices.SortStableFunc(layers, func(a, b store.LayerInfo) int { return a.Order - b.Order })
		if r.info.Model == "" {
			r.info.Model = m.Name()
		}
		if r.info.WeightsHash == "" {
			r.info.WeightsHash = weightsHash(m.StateDict())
		}
		if err := r.createRun(layers, sel); err != nil {
			return err
		}
		r.planLayers(m)
	}
	// The root's pre-hook starts every call (batch assignment) and the
	// call-end hook ends it (on success and on error: it forgets the call
	// and releases its reservation); both are registered before the layers'
	// hooks and removed after them, so that any Forward that sees a
	// layer's hook sees them too.
	start, err := m.RegisterForwardPreHook("", r.startCall)
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	end := m.RegisterCallEndHook(r.endCall)
	var hs []*nn.HookHandle
	for _, mi := range mods {
		l, ok := r.layers[mi.Path]
		if !ok || mi.Path == "" {
			continue
		}
		h, err := m.RegisterChunkHook(mi.Path, &chunkHook{r: r, l: l})
		if err != nil {
			for _, h := range hs {
				h.Remove()
			}
			end.Remove()
			start.Remove()
			return fmt.Errorf("recorder: %w", err)
		}
		hs = append(hs, h)
	}
	r.handles = append(hs, end, start)
	return nil
}

// Declare creates the run for the framework-free entry point Record, with
// the given layers (Path, Op, per-sample Shape, Order). Config.Layers and
// Overrides select among them as among a model's leaves.
func (r *Recorder) Declare(layers []store.LayerInfo) error {
	if err := r.Err(); err != nil {
		return err
	}
	// Held until the run exists, so that a concurrent Close either comes
	// first (ErrClosed) or sees the run and closes it.
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	mods := []nn.ModuleInfo{{Path: "", Order: -1}}
	for _, l := range layers {
		mods = append(mods, nn.ModuleInfo{Path: l.Path, Op: l.Op, Order: l.Order, Leaf: true})
	}
	sel, err := r.selection(mods)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil {
		return errors.New("recorder: run already created")
	}
	var keep []store.LayerInfo
	for _, l := range layers {
		if _, ok := sel[l.Path]; ok {
			keep = append(keep, l)
		}
	}
	return r.createRun(keep, sel)
}

// selection returns the mode of every selected module.
func (r *Recorder) selection(mods []nn.ModuleInfo) (map[string]Mode, error) {
	base, err := selectModules(mods, r.cfg.Layers)
	if err != nil {
		return nil, err
	}
	sel := make(map[string]Mode, len(base))
	for p := range base {
		sel[p] = r.cfg.Mode
	}
	for _, o := range r.cfg.Overrides {
		got, err := matchSelector(mods, o.Select)
		if err != nil {
			return nil, err
		}
		for _, p := range got {
			sel[p] = o.Mode
		}
	}
	return sel, nil
}

// createRun creates the store run; r.mu is held.
func (r *Recorder) createRun(layers []store.LayerInfo, sel map[string]Mode) error {
	info := r.info
	info.Created = r.cfg.Now()
	info.State = store.StateRecording
	info.Config = r.cfg.JSON()
	info.GoVersion = runtime.Version()
	if info.Host == "" {
		info.Host, _ = os.Hostname()
	}
	// where inference ran: the statistics' cost depends on it (package
	// doc, Cost)
	info.Meta = maps.Clone(info.Meta)
	if info.Meta == nil {
		info.Meta = map[string]string{}
	}
	info.Meta["nn_threads"] = strconv.Itoa(nn.Threads())
	info.Meta["gomaxprocs"] = strconv.Itoa(runtime.GOMAXPROCS(0))
	w, err := r.st.CreateRun(info, layers)
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	r.w = w
	r.info = info
	for _, l := range layers {
		ls := &layerState{info: l, mode: sel[l.Path]}
		r.layers[l.Path] = ls
		r.layerList = append(r.layerList, ls)
	}
	for i := 0; i < r.cfg.Workers; i++ {
		r.workers.Add(1)
		go r.work()
	}
	return nil
}

// Detach removes the hooks; the run stays open (Attach again or Close).
func (r *Recorder) Detach() {
	r.mu.Lock()
	hs := r.handles
	r.handles = nil
	r.mu.Unlock()
	for _, h := range hs {
		h.Remove()
	}
}

// SetEnabled turns recording on or off without touching the model; while
// disabled, hooks return at once and Record records nothing. Forward calls
// made while disabled still take their automatic batch index and dataset
// positions, so the calls recorded after them keep theirs.
func (r *Recorder) SetEnabled(on bool) { r.enabled.Store(on) }

// Err returns the first error of a hook or of writing to the store.
func (r *Recorder) Err() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.err
}

func (r *Recorder) setErr(err error) {
	r.errMu.Lock()
	if r.err == nil {
		r.err = err
		r.failed.Store(true)
	}
	r.errMu.Unlock()
}

// Stats returns the running counters.
func (r *Recorder) Stats() Counters {
	r.q.mu.Lock()
	peak := r.q.peak
	r.q.mu.Unlock()
	return Counters{
		Batches:       r.nBatches.Load(),
		StatsRows:     r.statsRows.Load(),
		TensorRows:    r.tensorRows.Load(),
		TensorBytes:   r.tensorBytes.Load(),
		Dropped:       r.dropped.Load(),
		DroppedItems:  r.droppedItems.Load(),
		QueuePeak:     peak,
		BudgetReached: r.budgetAt.Load(),
	}
}

// Record records t as the output of layer for batch b: the framework-free
// entry point. It returns the first earlier error of the recorder, if any.
// t is not retained; Record copies what it keeps. With Policy Block it
// waits for queue room until ctx is done (then it returns ctx's error and
// records nothing). Whether a batch is recorded (Config.Batches, the
// tensor budget, Drop) is decided at its first Record and remembered for
// the 4096 most recently decided batch indices: record a batch's layers
// together (as a forward pass does), not layer by layer over more batches
// than that, or a batch may be decided again.
func (r *Recorder) Record(ctx context.Context, layer string, b Batch, t *nn.Tensor) (err error) {
	if err := r.Err(); err != nil {
		return err
	}
	if !r.enabled.Load() {
		return nil
	}
	if t == nil {
		return errors.New("recorder: Record: nil tensor")
	}
	r.mu.Lock()
	l, ok := r.layers[layer]
	created := r.w != nil
	r.mu.Unlock()
	if !created {
		return errors.New("recorder: Record before Declare or Attach")
	}
	if !ok {
		r.mu.Lock()
		valid := make([]string, 0, len(r.layerList))
		for _, l := range r.layerList {
			valid = append(valid, l.info.Path)
		}
		r.mu.Unlock()
		return fmt.Errorf("recorder: Record: %w %q: not recorded in run %s; recorded layers: %s", ErrUnknownLayer, layer, r.info.Name, strings.Join(valid, ", "))
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("recorder: Record %s: panic: %v", layer, p)
		}
	}()
	return r.record(ctx, l, r.batchState(b), t)
}

// batchState returns the state of an explicitly numbered batch.
func (r *Recorder) batchState(b Batch) *batchState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if bs, ok := r.byIndex.get(b.Index); ok && bs.b == b {
		return bs
	}
	bs := r.decide(b)
	r.byIndex.put(b.Index, bs)
	return bs
}

// decide applies the batch policies once per batch; r.mu is held.
func (r *Recorder) decide(b Batch) *batchState {
	r.nBatches.Add(1)
	bs := &batchState{b: b}
	bs.stats = r.batches.keep(b.Index)
	bs.tensors = bs.stats && r.tensorBatches.keep(b.Index)
	return bs
}

func batchSize(t *nn.Tensor) int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Shape[0]
}

// record does the synchronous part of Record for one (batch, layer):
// statistics of the output and a copy of the sampled tensors, then queues
// the rows for the writer. The queue bytes are reserved before anything is
// copied, so that copies are always charged to the queue.
func (r *Recorder) record(ctx context.Context, l *layerState, bs *batchState, out *nn.Tensor) error {
	wantStats := l.mode&ModeStats != 0 && bs.stats
	wantTensors := l.mode&ModeTensors != 0 && bs.tensors && r.budgetAt.Load() < 0
	if !wantStats && !wantTensors {
		return nil
	}
	r.closeMu.RLock()
	closed := r.closed
	r.closeMu.RUnlock()
	if closed {
		return ErrClosed
	}
	if r.cfg.Policy == Drop && bs.dropped.Load() {
		r.droppedItems.Add(1) // the batch was skipped at another layer
		return nil
	}
	it := item{layer: l.info.Path, batch: bs.b.Index, bs: bs}
	if wantStats && !r.cfg.StatsInWorkers {
		row := r.computeStats(out.Data, out.Shape)
		row.Batch = bs.b.Index
		it.stats = &row
		it.bytes += rowBytes(&row)
	}
	var idx []int
	per := 0
	if wantTensors {
		var err error
		if idx, per, err = r.chargeSamples(l, bs, out); err != nil {
			return err
		}
	}
	rawBytes := int64(0)
	if wantStats && r.cfg.StatsInWorkers {
		rawBytes = bufBytes(len(out.Data))
	}
	sampleBytes := int64(0)
	if len(idx) > 0 {
		sampleBytes = bufBytes(per*len(idx)) + int64(len(idx))*48
	}
	it.bytes += rawBytes + sampleBytes
	if it.bytes == 0 {
		return nil
	}
	// Wait for room without holding closeMu: a Close waiting for it would
	// block the Forward calls whose reservations are what frees the room.
	// (A Record that fails here keeps its share of the batch's tensor
	// charge unspent: a retry spends it, Close refunds it.)
	if !r.q.reserve(ctx, it.bytes, r.cfg.Policy == Block) {
		if r.q.isClosed() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("recorder: Record %s batch %d: %w", l.info.Path, bs.b.Index, err)
		}
		r.droppedItems.Add(1)
		if bs.dropped.CompareAndSwap(false, true) {
			r.dropped.Add(1)
		}
		r.tensorBytes.Add(-bs.unspent.Swap(0)) // no more of the batch is recorded
		return nil
	}
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed { // Close came first: it may have closed the queue
		r.q.done(it.bytes)
		return ErrClosed
	}
	if rawBytes > 0 {
		it.raw = r.big.get(len(out.Data))
		copy(*it.raw, out.Data)
		it.shape = slices.Clone(out.Shape)
	}
	if len(idx) > 0 {
		it.tbytes = int64(4 * per * len(idx))
		bs.unspent.Add(-it.tbytes)
		it.buf = getBuf(per * len(idx))
		buf := *it.buf
		it.tensors = make([]store.TensorRow, len(idx))
		for j, s := range idx {
			d := buf[j*per : (j+1)*per : (j+1)*per]
			copy(d, out.Data[s*per:(s+1)*per])
			it.tensors[j] = store.TensorRow{Batch: bs.b.Index, Sample: int32(s), DatasetIndex: bs.b.DatasetIndex + int64(s), Data: d}
		}
	}
	r.q.add(it, 0)
	return nil
}

// chargeSamples returns the selected samples of out and their elements
// each, charging them to the tensor budget (none once it is reached).
func (r *Recorder) chargeSamples(l *layerState, bs *batchState, out *nn.Tensor) (idx []int, per int, err error) {
	n := batchSize(out)
	if n <= 0 {
		return nil, 0, nil
	}
	per = len(out.Data) / n
	if per*n != len(out.Data) {
		return nil, 0, fmt.Errorf("recorder: %s: output shape %v does not match %d elements", l.info.Path, out.Shape, len(out.Data))
	}
	if want := shapeLen(l.info.Shape); want != per {
		return nil, 0, fmt.Errorf("recorder: %s: per-sample output shape %v, run has %v", l.info.Path, out.Shape[1:], l.info.Shape)
	}
	idx = r.cfg.Samples.samples(bs.b.Index, n)
	if len(idx) == 0 {
		return nil, 0, nil
	}
	bs.charge.Do(func() {
		var size int64
		for _, tl := range r.layerList {
			if tl.mode&ModeTensors != 0 {
				size += int64(4 * shapeLen(tl.info.Shape) * len(idx))
			}
		}
		bs.charged = r.chargeBudget(size, bs.b.Index)
		if bs.charged {
			bs.unspent.Store(size)
		}
	})
	if !bs.charged {
		return nil, 0, nil
	}
	return idx, per, nil
}

// chargeBudget charges size bytes of sampled tensors of batch to the
// tensor budget; false (nothing charged, the budget marked reached at
// batch unless it already was) if they do not fit.
func (r *Recorder) chargeBudget(size, batch int64) bool {
	if r.budgetAt.Load() >= 0 {
		return false
	}
	if b := r.cfg.TensorBudget; b > 0 {
		if r.tensorBytes.Add(size) > b {
			r.tensorBytes.Add(-size)
			r.budgetAt.CompareAndSwap(-1, batch)
			return false
		}
		return true
	}
	r.tensorBytes.Add(size)
	return true
}

func shapeLen(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func rowBytes(row *store.StatsRow) int64 {
	return 256 + int64(len(row.Hist.Keys))*10 + int64(len(row.ChannelMean)+len(row.ChannelMax))*4
}

func (r *Recorder) addChannelStats(row *store.StatsRow, data []float32, shape []int) {
	if r.cfg.ChannelStats && len(shape) >= 3 {
		hw := shapeLen(shape[2:])
		if shape[0]*shape[1]*hw == len(data) && hw > 0 {
			row.ChannelMean, row.ChannelMax = channelStats(data, shape[0], shape[1], hw)
		}
	}
}

// computeStats returns the statistics row of data (batch unset).
func (r *Recorder) computeStats(data []float32, shape []int) store.StatsRow {
	return r.statsOf(data, shape, accumulateWith)
}

// computeStatsSerial is computeStats on the calling goroutine only (a
// worker's: StatsInWorkers leaves the other cores to inference).
func (r *Recorder) computeStatsSerial(data []float32, shape []int) store.StatsRow {
	return r.statsOf(data, shape, func(a *accumulator, x []float32, add func(*accumulator, []float32)) { add(a, x) })
}

func (r *Recorder) statsOf(data []float32, shape []int, acc func(*accumulator, []float32, func(*accumulator, []float32))) store.StatsRow {
	a := accPool.Get()
	var row store.StatsRow
	if r.cfg.MomentsOnly {
		acc(a, data, (*accumulator).addMoments)
		row = a.resultWith(store.Histogram{}, false)
	} else {
		acc(a, data, (*accumulator).add)
		row = a.result(r.cfg.Histogram)
	}
	accPool.Put(a)
	if r.cfg.ChannelStats && len(shape) >= 3 {
		hw := shapeLen(shape[2:])
		if shape[0]*shape[1]*hw == len(data) && hw > 0 {
			row.ChannelMean, row.ChannelMax = channelStats(data, shape[0], shape[1], hw)
		}
	}
	return row
}

func (r *Recorder) release(it *item) {
	if !it.lent {
		r.big.put(it.raw)
	}
	putBuf(it.buf)
	for _, d := range it.derived {
		putBuf(d.buf)
	}
	it.derived = nil
	it.raw, it.buf, it.tensors = nil, nil, nil
}

// work writes queued items to the store until the queue is closed.
func (r *Recorder) work() {
	defer r.workers.Done()
	for {
		it, ok := r.q.pop()
		if !ok {
			return
		}
		if it.bs != nil && r.cfg.Policy == Drop && it.bs.dropped.Load() {
			r.droppedItems.Add(1) // its batch was skipped at a later layer
			r.tensorBytes.Add(-it.tbytes)
		} else {
			r.write(&it)
		}
		r.release(&it)
		r.q.done(it.bytes)
	}
}

func (r *Recorder) write(it *item) {
	defer func() {
		if p := recover(); p != nil {
			r.setErr(fmt.Errorf("recorder: writing %s batch %d: panic: %v", it.layer, it.batch, p))
		}
	}()
	if r.failed.Load() {
		return
	}
	if r.beforeWrite != nil {
		if err := r.beforeWrite(it); err != nil {
			r.setErr(fmt.Errorf("recorder: %w", err))
			return
		}
	}
	if it.raw != nil && it.src != nil {
		err := r.workerRows(it, func(layer string, row store.StatsRow) error {
			if err := r.w.AppendStats(layer, row); err != nil {
				return err
			}
			r.statsRows.Add(1)
			return nil
		})
		if err != nil {
			r.setErr(fmt.Errorf("recorder: %w", err))
			return
		}
	} else if it.raw != nil {
		row := r.computeStatsSerial(*it.raw, it.shape)
		row.Batch = it.batch
		it.stats = &row
	}
	if it.stats != nil {
		if err := r.w.AppendStats(it.layer, *it.stats); err != nil {
			r.setErr(fmt.Errorf("recorder: %w", err))
			return
		}
		r.statsRows.Add(1)
	}
	// Tensors go to the store in appends of at most appendBytes (at least
	// one row): the store copies appended rows into per-layer buffers that
	// grow to hold an append whole and are kept, so appending a big item in
	// one piece would size them by the item rather than by
	// store.Options.MaxBufferBytes.
	if err := r.appendTensors(it.layer, it.tensors); err != nil {
		r.setErr(fmt.Errorf("recorder: %w", err))
	}
}

// appendTensors hands rows to the store in appends of at most appendBytes
// (at least one row).
func (r *Recorder) appendTensors(layer string, rows []store.TensorRow) error {
	for len(rows) > 0 {
		k := max(1, appendBytes/(4*max(1, len(rows[0].Data))))
		k = min(k, len(rows))
		if err := r.w.AppendTensors(layer, rows[:k]...); err != nil {
			return err
		}
		r.tensorRows.Add(int64(k))
		rows = rows[k:]
	}
	return nil
}

// appendBytes is the most tensor bytes handed to the store in one append
// (unless a single row is bigger).
const appendBytes = 1 << 20

// Close detaches the hooks, waits until every queued row is written, records
// the run's end time and metadata (dropped_batches,
// tensor_budget_reached_at_batch) and closes the run as complete (or
// interrupted if an error occurred). It returns the first error of the
// recording. Close is idempotent.
func (r *Recorder) Close() error { return r.CloseAs(store.StateComplete) }

// CloseAs is Close with the state the run ends in when no error occurred, e.g.
// store.StateInterrupted when the user stopped the recording (Ctrl-C): every
// queued row is still written.
func (r *Recorder) CloseAs(state store.RunState) error {
	r.Detach()
	r.closeMu.Lock()
	already := r.closed
	r.closed = true
	r.closeMu.Unlock()
	if already {
		<-r.closeDone // the first Close's run is written when this one returns
		return r.Err()
	}
	defer close(r.closeDone)
	r.q.close()
	r.workers.Wait()
	r.mu.Lock()
	w := r.w
	for _, bs := range r.byIndex.m { // Record's charges of layers never recorded
		r.tensorBytes.Add(-bs.unspent.Swap(0))
	}
	r.mu.Unlock()
	if w == nil {
		return r.Err()
	}
	end := r.cfg.Now()
	dropped, at := r.dropped.Load(), r.budgetAt.Load()
	err := w.UpdateRun(func(info *store.RunInfo) {
		info.Finished = end
		if info.Meta == nil {
			info.Meta = map[string]string{}
		}
		info.Meta["dropped_batches"] = strconv.FormatInt(dropped, 10)
		if at >= 0 {
			info.Meta["tensor_budget_reached_at_batch"] = strconv.FormatInt(at, 10)
		}
	})
	if err != nil {
		r.setErr(fmt.Errorf("recorder: %w", err))
	}
	if r.Err() != nil {
		state = store.StateInterrupted
	}
	if err := w.Close(state); err != nil {
		r.setErr(fmt.Errorf("recorder: %w", err))
	}
	return r.Err()
}

// weightsHash returns "sha256:<hex>" over the state dict in key order
// (key, shape, little-endian float32 data).
func weightsHash(sd map[string]*nn.Tensor) string {
	keys := make([]string, 0, len(sd))
	for k := range sd {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	var b [8]byte
	for _, k := range keys {
		t := sd[k]
		h.Write([]byte(k))
		h.Write([]byte{0})
		for _, d := range t.Shape {
			binary.LittleEndian.PutUint64(b[:], uint64(d))
			h.Write(b[:])
		}
		buf := make([]byte, 4*len(t.Data))
		for i, v := range t.Data {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// boundedMap is a map that forgets its oldest entries beyond a size.
type boundedMap[K comparable, V any] struct {
	m     map[K]V
	order []K
	max   int
}

func newBoundedMap[K comparable, V any](n int) boundedMap[K, V] {
	return boundedMap[K, V]{m: make(map[K]V), max: n}
}

func (b *boundedMap[K, V]) get(k K) (V, bool) { v, ok := b.m[k]; return v, ok }

func (b *boundedMap[K, V]) put(k K, v V) {
	if _, ok := b.m[k]; !ok {
		b.order = append(b.order, k)
	}
	b.m[k] = v
	for len(b.m) > b.max && len(b.order) > 0 {
		delete(b.m, b.order[0])
		b.order = b.order[1:]
	}
	if len(b.order) > 2*b.max+16 {
		// Drop keys deleted since they were put.
		live := make([]K, 0, len(b.m))
		seen := make(map[K]bool, len(b.m))
		for _, k := range b.order {
			if _, ok := b.m[k]; ok && !seen[k] {
				seen[k] = true
				live = append(live, k)
			}
		}
		b.order = live
	}
}

func (b *boundedMap[K, V]) delete(k K) { delete(b.m, k) }
