package dstream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/keyhash"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/window"
)

// Windowed operators
//
// Every windowed operator is a node that ticks: at every batch of its
// parent it takes the parent's batch in (the raw partitions for Window, a
// pane reduced by key for the keyed forms) and, at the times its slide
// divides, computes the window from what it holds. Only the batches that a
// later window can still use are kept. With a checkpoint, each batch's
// commit writes what changed (new batches or panes, the drop horizon, the
// keys whose window value changed), nothing when the batch brought no
// record and changed no key, and, now and then, a snapshot written in the
// background from an immutable copy.

// Window returns a stream whose batch at time t holds the elements of every
// batch of s in (t − window, t], as Spark's DStream.window does: the
// partitions of the oldest batch first, each batch's partitions in their
// order, so Batch.All yields the elements in time order. The stream emits
// only at the times t where t − zero is a multiple of slide; the first
// windows are partial.
//
// window and slide must be positive multiples of the slide of s (the batch
// interval unless s is itself windowed); otherwise the job fails to start
// with an error that names the operator and the durations.
//
// The window shares the partitions of s with its batches: neither s's
// consumers nor the window's may modify elements in place. It holds the
// elements of up to window/slide-of-s batches; with a checkpoint, each
// commit writes the batches added since the last one, encoded with
// [state.CodecFor] unless [WindowRecordCodec] says otherwise.
func Window[T any](s *Stream[T], window, slide time.Duration) *Stream[T] {
	return newWindow(s, window, slide)
}

// ReduceByKeyAndWindow returns a stream with one pair per key present in
// the batches of s in (t − window, t], its values combined with reduce, as
// Spark's reduceByKeyAndWindow without an inverse function: each batch is
// reduced by key once (combining within each input partition first), and a
// window combines those per-batch panes in time order. A key with no value
// in the window is absent from it. reduce must be associative and
// commutative, and must not modify its arguments.
//
// Windows emit at multiples of slide, as for [Window]; window and slide must
// be positive multiples of the slide of s. Keys are hash-partitioned into
// the context's parallelism of partitions (see [Stream.Partitions]); a job
// restored from a checkpoint keeps the partition count the checkpoint was
// written with. reduce runs in parallel tasks, one per partition, so it must
// be safe for concurrent use. A window costs time in proportion to the keys
// of the panes it covers; when reduce has an inverse,
// [ReduceByKeyAndWindowInv] costs only what enters and leaves the window.
func ReduceByKeyAndWindow[K comparable, V any](s *Stream[KV[K, V]], reduce func(V, V) V, window, slide time.Duration) *Stream[KV[K, V]] {
	mustFn(reduce == nil, "ReduceByKeyAndWindow")
	w := newKeyedWindow("reduceByKeyAndWindow", s, window, slide, windowReducer(reduce))
	w.plain = reduceWindow[K](reduce)
	return keyedWindowStream(w)
}

// ReduceByKeyAndWindowInv is [ReduceByKeyAndWindow] computed incrementally,
// as Spark's reduceByKeyAndWindow with an inverse function: the window at t
// is the window at t − slide with the values of the batches that left it
// taken out by inverse (inverse(v, old) undoes reduce(v, old)) and the
// values of the batches that entered it reduced in. A step costs time in
// proportion to the keys of the entering and leaving batches, not to the
// window length.
//
// A key whose values have all left the window stays in it at the reduce
// function's "zero" (0 for a sum), as in Spark, unless keep returns false
// for it; keep, which may be nil, is called for every key of the window at
// every emission. Dropping a key while the window still holds values for it
// fails the batch (window.ErrFilteredKey), as in Spark: keep should drop
// only keys at the "zero".
//
// reduce, inverse and keep run in parallel tasks, one per partition, and
// must not modify their arguments. Partitions, timing
// and validation are as for [ReduceByKeyAndWindow]. With a checkpoint, each
// commit writes the panes added and the keys whose window value changed.
func ReduceByKeyAndWindowInv[K comparable, V any](s *Stream[KV[K, V]], reduce, inverse func(V, V) V, window, slide time.Duration, keep func(KV[K, V]) bool) *Stream[KV[K, V]] {
	mustFn(reduce == nil || inverse == nil, "ReduceByKeyAndWindowInv")
	return keyedWindowStream(newIncrementalWindow("reduceByKeyAndWindowInv", s, reduce, inverse, window, slide, keep))
}

// GroupByKeyAndWindow returns a stream with one pair per key present in the
// batches of s in (t − window, t], holding all its values in time order
// (within a batch, in the order [GroupByKey] gives), as Spark's
// groupByKeyAndWindow. Timing, validation and partitions are as for
// [ReduceByKeyAndWindow].
func GroupByKeyAndWindow[K comparable, V any](s *Stream[KV[K, V]], window, slide time.Duration) *Stream[KV[K, []V]] {
	w := newKeyedWindow("groupByKeyAndWindow", s, window, slide, groupCombiner[V]())
	w.xc = listValueCodec[V]()
	w.vc = windowGroupsCodec(state.CodecFor[V]())
	w.codecs[1] = codecCheck{"value", reflect.TypeFor[V](), "WindowCodecs (a codec of []V)"}
	w.plain = concatWindow[K, V]
	return keyedWindowStream(w)
}

// CountByValueAndWindow returns a stream with one pair (x, n) per distinct
// element x of the batches of s in (t − window, t], n being how often it
// occurs there. As in Spark, it counts incrementally
// ([ReduceByKeyAndWindowInv] with + and −) and drops the elements whose
// count falls to 0. Timing, validation and partitions are as for
// [ReduceByKeyAndWindow].
func CountByValueAndWindow[T comparable](s *Stream[T], window, slide time.Duration) *Stream[KV[T, int64]] {
	ones := Map(s, func(x T) KV[T, int64] { return KV[T, int64]{x, 1} })
	w := newIncrementalWindow("countByValueAndWindow", ones, windowAdd64, windowSub64, window, slide,
		func(kv KV[T, int64]) bool { return kv.Value != 0 })
	return keyedWindowStream(w)
}

// CountByWindow returns a stream with the number of elements in the batches
// of s in (t − window, t], as Spark's countByWindow: it counts
// incrementally ([ReduceByWindowInv] with + and −), so the first windows
// emit nothing until s has had an element, and a window from which every
// element has left emits 0. Timing and validation are as for [Window]; the
// stream has one partition.
func CountByWindow[T any](s *Stream[T], window, slide time.Duration) *Stream[int64] {
	ones := Map(s, func(T) int64 { return 1 })
	return globalWindowStream(newIncrementalWindow("countByWindow", windowUnitKeyed(ones), windowAdd64, windowSub64, window, slide, nil))
}

// ReduceByWindow returns a stream with one element per window: the
// elements of the batches of s in (t − window, t] combined with reduce, as
// Spark's reduceByWindow without an inverse function (each batch reduced
// once, the window combining those). A window without elements emits
// nothing. reduce must be associative and commutative, and must not modify
// its arguments. Timing and validation are as for [Window]; the stream has
// one partition.
func ReduceByWindow[T any](s *Stream[T], reduce func(T, T) T, window, slide time.Duration) *Stream[T] {
	mustFn(reduce == nil, "ReduceByWindow")
	w := newKeyedWindow("reduceByWindow", windowUnitKeyed(s), window, slide, windowReducer(reduce))
	w.plain = reduceWindow[int8](reduce)
	return globalWindowStream(w)
}

// ReduceByWindowInv is [ReduceByWindow] computed incrementally with an
// inverse function, as Spark's reduceByWindow with one: once s has had an
// element, every window emits, at the reduce function's "zero" after all
// elements have left it.
func ReduceByWindowInv[T any](s *Stream[T], reduce, inverse func(T, T) T, window, slide time.Duration) *Stream[T] {
	mustFn(reduce == nil || inverse == nil, "ReduceByWindowInv")
	return globalWindowStream(newIncrementalWindow("reduceByWindowInv", windowUnitKeyed(s), reduce, inverse, window, slide, nil))
}

// WindowCodecs sets the codecs with which the keyed windowed operator that
// made s writes its keys and values to checkpoints, overriding the default
// [state.CodecFor] of each; a nil codec keeps the default. It applies to
// streams made by [ReduceByKeyAndWindow], [ReduceByKeyAndWindowInv],
// [CountByValueAndWindow] and [GroupByKeyAndWindow] (whose values are the
// groups, []V; the default encodes each element with state.CodecFor[V]) and
// panics on others. Call it before the context starts. It returns s.
//
// With a checkpoint, a key or value type the default codec cannot carry
// whole (a struct with an unexported field, which gob drops; an interface;
// a func) is refused when the context starts, naming the field: export it,
// or pass a codec here (or with [WindowRecordCodec] for the operators it
// applies to). Without a checkpoint windows encode nothing, and any type
// is accepted.
//
// Keys of types other than string, bool, float64 and the integer types are
// also hash-partitioned by their encoding, so that a restarted job routes a
// key to the partition that holds its state; give such keys a fast codec.
func WindowCodecs[K comparable, V any](s *Stream[KV[K, V]], key state.Codec[K], value state.Codec[V]) *Stream[KV[K, V]] {
	n, ok := s.node.(interface {
		setCodecs(state.Codec[K], state.Codec[V])
	})
	if !ok {
		panic("dstream: WindowCodecs applies to the streams of keyed windowed operators, not to " + s.node.Meta().Kind)
	}
	n.setCodecs(key, value)
	return s
}

// WindowRecordCodec sets the codec with which the windowed operator that
// made s writes the elements it holds to checkpoints, overriding the
// default [state.CodecFor]. It applies to streams made by [Window],
// [ReduceByWindow], [ReduceByWindowInv] and [CountByWindow], and panics on
// others. Call it before the context starts. It returns s.
func WindowRecordCodec[T any](s *Stream[T], c state.Codec[T]) *Stream[T] {
	n, ok := s.node.(interface{ setRecordCodec(state.Codec[T]) })
	if !ok || c == nil {
		panic("dstream: WindowRecordCodec needs a codec and applies to the streams of Window, ReduceByWindow and CountByWindow, not to " + s.node.Meta().Kind)
	}
	n.setRecordCodec(c)
	return s
}

func windowAdd64(a, b int64) int64 { return a + b }
func windowSub64(a, b int64) int64 { return a - b }

func windowReducer[V any](reduce func(V, V) V) combiner[V, V] {
	return combiner[V, V]{create: identity[V], merge: reduce, mergeC: reduce}
}

// windowUnitKeyed keys every element of s by the same key, as Spark's
// reduceByWindow keys them by 1 before reducing by key and window.
func windowUnitKeyed[T any](s *Stream[T]) *Stream[KV[int8, T]] {
	return Map(s, func(x T) KV[int8, T] { return KV[int8, T]{0, x} })
}

// reduceWindow returns the window of ReduceByKeyAndWindow: the panes in
// the window reduced by key, as Spark computes it without an inverse.
func reduceWindow[K comparable, V any](reduce func(V, V) V) func(*window.Panes[K, V], window.Spec, time.Time, time.Time) map[K]V {
	return func(p *window.Panes[K, V], spec window.Spec, zero, t time.Time) map[K]V {
		return p.Window(spec, zero, t, reduce)
	}
}

// concatWindow is GroupByKeyAndWindow's window: each key's groups of the
// panes in the window, concatenated in time order into a new slice. It
// drops the panes no later window uses, as Panes.Window does.
func concatWindow[K comparable, V any](p *window.Panes[K, []V], spec window.Spec, zero, t time.Time) map[K][]V {
	from, to := spec.Covers(t)
	if from.Before(zero) {
		from = zero
	}
	out := make(map[K][]V)
	for _, pane := range p.Range(from, to) {
		for k, vs := range pane {
			out[k] = append(out[k], vs...)
		}
	}
	p.Drop(spec.First(t.Add(spec.Slide)))
	return out
}

// windowClock remembers the last batch a windowed node took in, so that its
// work happens once per batch whether Tick or a reader comes first.
type windowClock struct {
	at  time.Time
	set bool
}

func (c *windowClock) done(t time.Time) bool { return c.set && c.at.Equal(t) }
func (c *windowClock) mark(t time.Time)      { c.at, c.set = t, true }

// windowSpec checks the durations of the windowed operator m over a parent
// sliding every parent.
func windowSpec(m *engine.Meta, parent, length, slide time.Duration) (window.Spec, error) {
	spec := window.Spec{Window: length, Slide: slide, Parent: parent}
	if err := spec.Validate(); err != nil {
		return spec, fmt.Errorf("dstream: %s (window %v, slide %v) reads a stream sliding every %v: %w",
			m.Name(), length, slide, parent, err)
	}
	return spec, nil
}

// windowMeta sets the slide of a windowed node before it is registered (a
// slide that is not positive is left for Validate to report), and its
// window and slide as the Params its checkpointed state holds under: panes
// restored under another window length or slide would give wrong windows
// (an incremental window would never take out the panes a shorter window
// no longer reaches).
func windowMeta(m *engine.Meta, length, slide time.Duration) {
	if slide > 0 {
		m.Slide = slide
	}
	m.Params = fmt.Sprintf("window %v, slide %v", length, slide)
}

// windowNode is the node of Window: a buffer of the parent's recent batches.
type windowNode[T any] struct {
	node
	parent        *Stream[T]
	length, slide time.Duration
	spec          window.Spec
	codec         state.Codec[T]
	codecSet      bool // set with WindowRecordCodec

	buf    window.Buffer[T]
	clock  windowClock
	result [][]T
}

var (
	_ engine.Ticker    = (*windowNode[int])(nil)
	_ engine.Validator = (*windowNode[int])(nil)
	_ engine.Stateful  = (*windowNode[int])(nil)
)

func newWindow[T any](s *Stream[T], length, slide time.Duration) *Stream[T] {
	n := &windowNode[T]{parent: s, length: length, slide: slide, codec: state.CodecFor[T]()}
	windowMeta(n.Meta(), length, slide)
	out := derive[T]("window", n, s)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[T], error) {
		if err := n.advance(ctx, j); err != nil {
			return nil, err
		}
		return materialized(n.result), nil
	}
	return out
}

func (n *windowNode[T]) setRecordCodec(c state.Codec[T]) { n.codec, n.codecSet = c, true }

// Validate checks the window's durations against its parent's slide and,
// with a checkpoint, refuses an element type the default codec cannot
// carry.
func (n *windowNode[T]) Validate() (err error) {
	if n.Meta().Context().Checkpointing() && !n.codecSet {
		if err := checkCodecs(n.Meta().Name(), codecCheck{"element", reflect.TypeFor[T](), "WindowRecordCodec"}); err != nil {
			return err
		}
	}
	if err := refuseInGroup(n.Meta(), "keeps the records of past batches, which do not move with their tasks in group mode; window a keyed stream with ReduceByKeyAndWindow or GroupByKeyAndWindow instead"); err != nil {
		return err
	}
	n.spec, err = windowSpec(n.Meta(), n.parent.Slide(), n.length, n.slide)
	return err
}

// Tick takes in the parent's batch and, at emission times, cuts the window.
func (n *windowNode[T]) Tick(ctx context.Context, j *engine.Job) error { return n.advance(ctx, j) }

func (n *windowNode[T]) advance(ctx context.Context, j *engine.Job) error {
	if n.clock.done(j.Time) {
		return nil
	}
	b, ok, err := n.parent.batch(ctx, j)
	if err != nil {
		return err
	}
	if ok {
		n.buf.Add(j.Time, b.Parts)
	}
	n.result = nil
	if n.spec.Emits(j.Zero(), j.Time) {
		n.result = n.buf.Window(n.spec, j.Zero(), j.Time)
	}
	n.clock.mark(j.Time)
	return nil
}

// SaveState writes the batches added since the last checkpoint and the
// drop horizon, or nothing when no batch with records was added (see
// [window.Buffer.Changed]); when a snapshot is due, it hands over an
// immutable copy.
func (n *windowNode[T]) SaveState(w engine.StateWriter) error {
	kind := n.Meta().Kind
	if n.buf.Changed() {
		err := w.WriteDelta(func(out io.Writer) error {
			if err := writeWindowHeader(out, kind, 1); err != nil {
				return err
			}
			return n.buf.WriteDelta(out, n.codec)
		})
		if err != nil {
			return err
		}
	}
	if w.SnapshotDue() {
		snap := n.buf.SnapshotFunc(n.codec)
		w.WriteSnapshot(func(out io.Writer) error {
			if err := writeWindowHeader(out, kind, 1); err != nil {
				return err
			}
			return snap(out)
		})
	}
	return nil
}

// RestoreState reads the buffer back from a snapshot and the deltas after it.
func (n *windowNode[T]) RestoreState(r engine.StateReader) error {
	snap, err := r.Snapshot()
	if err != nil {
		return err
	}
	if snap != nil {
		rd := bytes.NewReader(snap)
		if _, err := readWindowHeader(rd, n.Meta(), 1); err != nil {
			return err
		}
		var buf window.Buffer[T]
		if err := buf.ReadSnapshot(rd, n.codec); err != nil {
			return err
		}
		if err := windowTrailing(rd, n.Meta()); err != nil {
			return err
		}
		n.buf = buf
	}
	return r.Deltas(func(rd io.Reader) error {
		if _, err := readWindowHeader(rd, n.Meta(), 1); err != nil {
			return err
		}
		return n.buf.ApplyDelta(rd, n.codec)
	})
}

// keyedWindow is the node of the keyed windowed operators: per output
// partition, the panes of recent batches (each batch reduced by key into
// combiners C) and, for the incremental form, the current window. Keys are
// routed to partitions by a hash that is the same in every process, so that
// a restored job finds each key's panes where it left them.
type keyedWindow[K comparable, V, C any] struct {
	node
	groupCheck
	parent        *Stream[KV[K, V]]
	length, slide time.Duration
	spec          window.Spec
	global        bool // one partition, as for ReduceByWindow
	parts         int  // set with Partitions; 0 means the context's parallelism

	cb              combiner[V, C] // reduces each batch into a pane
	reduce, inverse func(C, C) C   // inverse set: the incremental form
	keep            func(KV[K, C]) bool
	plain           func(p *window.Panes[K, C], spec window.Spec, zero, t time.Time) map[K]C
	kc              state.Codec[K]
	vc              state.Codec[C]
	codecs          [2]codecCheck // key and value types encoded with the default codec
	hash            func(K) uint64

	n     int // partitions of the state: fixed at the first batch or by the checkpoint
	panes []*window.Panes[K, C]
	incs  []*window.Incremental[K, C]
	held  []windowPartition[K, C] // panes or incs, for what both do
	clock windowClock
	out   [][]KV[K, C]
	keys  atomic.Int64 // keys of the last window computed, for Metrics
	tasks []windowTask // in group mode, per task (see windowtasks.go)
	x     *exchangeReader[K, V, C]
	xc    state.Codec[C] // the codec of panes' values in an exchange; nil: the default
}

// windowPartition is what the plain and the incremental form of a keyed
// window do alike with one partition's state.
type windowPartition[K comparable, C any] interface {
	Add(t time.Time, pane map[K]C)
	Changed() bool
	WriteDelta(w io.Writer, kc state.Codec[K], vc state.Codec[C]) error
	SnapshotFunc(kc state.Codec[K], vc state.Codec[C]) func(io.Writer) error
	ReadSnapshot(r io.Reader, kc state.Codec[K], vc state.Codec[C]) error
	ApplyDelta(r io.Reader, kc state.Codec[K], vc state.Codec[C]) error
	TrackChanges()
}

var (
	_ windowPartition[int, int] = (*window.Panes[int, int])(nil)
	_ windowPartition[int, int] = (*window.Incremental[int, int])(nil)
)

var (
	_ engine.Ticker          = (*keyedWindow[int, int, int])(nil)
	_ engine.Validator       = (*keyedWindow[int, int, int])(nil)
	_ engine.Stateful        = (*keyedWindow[int, int, int])(nil)
	_ engine.MetricsReporter = (*keyedWindow[int, int, int])(nil)
	_ engine.TaskStateful    = (*keyedWindow[int, int, int])(nil)
)

// Metrics reports the keys of the last window computed ("state_keys"), as
// UpdateStateByKey and MapWithState report the keys in their state.
func (w *keyedWindow[K, V, C]) Metrics() []engine.Metric {
	return []engine.Metric{{Name: "state_keys", Help: "Keys the operator holds in its state, as of the last batch (for a window: the keys of the last window computed).", Kind: engine.GaugeMetric, Value: float64(w.keys.Load())}}
}

func newKeyedWindow[K comparable, V, C any](kind string, s *Stream[KV[K, V]], length, slide time.Duration, cb combiner[V, C]) *keyedWindow[K, V, C] {
	w := &keyedWindow[K, V, C]{
		groupCheck: groupCheck{inputs: []keyedRef{s}},
		parent:     s, length: length, slide: slide, cb: cb,
		kc: state.CodecFor[K](), vc: state.CodecFor[C](),
		codecs: [2]codecCheck{
			{"key", reflect.TypeFor[K](), "WindowCodecs"},
			{"value", reflect.TypeFor[C](), "WindowCodecs"},
		},
	}
	w.meta.Kind = kind
	windowMeta(w.Meta(), length, slide)
	return w
}

func newIncrementalWindow[K comparable, V any](kind string, s *Stream[KV[K, V]], reduce, inverse func(V, V) V, length, slide time.Duration, keep func(KV[K, V]) bool) *keyedWindow[K, V, V] {
	w := newKeyedWindow(kind, s, length, slide, windowReducer(reduce))
	w.reduce, w.inverse, w.keep = reduce, inverse, keep
	return w
}

// keyedWindowStream registers w and returns its stream of pairs.
func keyedWindowStream[K comparable, V, C any](w *keyedWindow[K, V, C]) *Stream[KV[K, C]] {
	w.x = readExchange(w.parent, w.Meta(), &w.groupCheck, w.cb, w.xc)
	out := keepsKeying(derive[KV[K, C]](w.meta.Kind, w, w.parent), w.parent)
	w.x.attach(w, out)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[KV[K, C]], error) {
		if err := w.advance(ctx, j); err != nil {
			return nil, err
		}
		d := materialized(w.out)
		if w.group != nil {
			return byTask(d, w.n), nil
		}
		return d, nil
	}
	return out
}

// globalWindowStream registers w, which reduces everything under one key,
// and returns its stream of values: one partition, holding the window's
// value when it has one.
func globalWindowStream[T any](w *keyedWindow[int8, T, T]) *Stream[T] {
	w.global = true
	out := derive[T](w.meta.Kind, w, w.parent)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[T], error) {
		if err := w.advance(ctx, j); err != nil {
			return nil, err
		}
		var vals []T
		for _, p := range w.out {
			for _, kv := range p {
				vals = append(vals, kv.Value)
			}
		}
		return materialized([][]T{vals}), nil
	}
	return out
}

func (w *keyedWindow[K, V, C]) setCodecs(key state.Codec[K], value state.Codec[C]) {
	if key != nil {
		w.kc = key
		w.codecs[0] = codecCheck{}
	}
	if value != nil {
		w.vc = value
		w.codecs[1] = codecCheck{}
	}
}

func (w *keyedWindow[K, V, C]) setRecordCodec(c state.Codec[C]) {
	if !w.global {
		panic("dstream: WindowRecordCodec does not apply to " + w.meta.Kind + "; use WindowCodecs")
	}
	w.vc = c
	w.codecs[1] = codecCheck{}
}

// setPartitions is what [Stream.Partitions] calls, with n ≥ 1.
func (w *keyedWindow[K, V, C]) setPartitions(n int) {
	if w.global {
		panic("dstream: " + w.meta.Kind + " emits one value per window and has one partition")
	}
	w.parts = n
}

// Validate checks the window's durations, fixes the key routing and, with
// a checkpoint, refuses key and value types the default codec cannot
// carry.
func (w *keyedWindow[K, V, C]) Validate() (err error) {
	if w.meta.Context().Checkpointing() {
		if err := checkCodecs(w.meta.Name(), w.codecs[:]...); err != nil {
			return err
		}
	}
	if w.global {
		if err := refuseInGroup(&w.meta, "reduces every record of a window together, across the tasks that group mode spreads over several processes; key the stream like the job's input (dstream.CoPartitioned) and window it with ReduceByKeyAndWindow instead"); err != nil {
			return err
		}
	} else if err := w.validateGroup(&w.meta); err != nil {
		return err
	}
	w.hash = windowKeyHash(w.kc)
	w.spec, err = windowSpec(w.Meta(), w.parent.Slide(), w.length, w.slide)
	return err
}

// Tick takes in the parent's batch and, at emission times, computes the
// window.
func (w *keyedWindow[K, V, C]) Tick(ctx context.Context, j *engine.Job) error {
	return w.advance(ctx, j)
}

// configured is the partition count the operator asks for.
func (w *keyedWindow[K, V, C]) configured() int {
	switch {
	case w.global:
		return 1
	case w.group != nil:
		return w.group.TaskCount()
	case w.parts > 0:
		return w.parts
	}
	return w.meta.Context().Parallelism()
}

// alloc makes n empty partitions of state.
func (w *keyedWindow[K, V, C]) alloc(n int) {
	w.n = n
	w.panes, w.incs = nil, nil
	w.held = make([]windowPartition[K, C], n)
	if w.inverse == nil {
		w.panes = make([]*window.Panes[K, C], n)
		for p := range w.panes {
			w.panes[p] = new(window.Panes[K, C])
			w.held[p] = w.panes[p]
		}
		w.allocTasks()
		return
	}
	var keep func(K, C) bool
	if w.keep != nil {
		keep = func(k K, v C) bool { return w.keep(KV[K, C]{k, v}) }
	}
	w.incs = make([]*window.Incremental[K, C], n)
	for p := range w.incs {
		w.incs[p] = window.NewIncremental(w.reduce, w.inverse, keep)
		w.held[p] = w.incs[p]
	}
	w.allocTasks()
}

func (w *keyedWindow[K, V, C]) advance(ctx context.Context, j *engine.Job) error {
	if w.clock.done(j.Time) {
		return nil
	}
	if w.n == 0 {
		w.alloc(w.configured())
	}
	w.out = nil
	in, err := w.parent.get(ctx, j)
	if err != nil {
		return err
	}
	emit := w.spec.Emits(j.Zero(), j.Time)
	if in == nil && !emit {
		w.clock.mark(j.Time)
		return nil
	}
	op, id := w.meta.Name(), w.meta.ID()
	var panes [][]KV[K, C]
	if in != nil {
		if err := w.groupInput(op, in); err != nil {
			return err
		}
		if panes, err = keyedShuffle(ctx, j, op, id, w.x, in, w.n, w.hash, w.cb); err != nil {
			return err
		}
	}
	var out [][]KV[K, C]
	if emit {
		out = make([][]KV[K, C], w.n)
	}
	err = j.Run(ctx, op, w.n, func(ctx context.Context, tk *engine.Task) error {
		p := tk.Index
		if panes != nil {
			w.held[p].Add(j.Time, windowPane(panes[p]))
		}
		if !emit {
			return nil
		}
		var err error
		out[p], err = w.window(p, j.Zero(), j.Time)
		return err
	})
	if err != nil {
		return err
	}
	if emit {
		var n int
		for _, o := range out {
			n += len(o)
		}
		w.keys.Store(int64(n))
	}
	w.out = out
	w.clock.mark(j.Time)
	return nil
}

// window computes partition p's window at t.
func (w *keyedWindow[K, V, C]) window(p int, zero, t time.Time) ([]KV[K, C], error) {
	if w.incs == nil {
		m := w.plain(w.panes[p], w.spec, zero, t)
		out := make([]KV[K, C], 0, len(m))
		for k, v := range m {
			out = append(out, KV[K, C]{k, v})
		}
		return out, nil
	}
	inc := w.incs[p]
	if err := inc.Step(w.spec, zero, t); err != nil {
		return nil, err
	}
	out := make([]KV[K, C], 0, inc.Len())
	for k, v := range inc.All() {
		out = append(out, KV[K, C]{k, v})
	}
	return out, nil
}

// windowPane turns one partition of a shuffled batch into a pane.
func windowPane[K comparable, C any](kvs []KV[K, C]) map[K]C {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[K]C, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// SaveState writes, for every partition, the panes added since the last
// checkpoint, the drop horizon and (incremental form) the keys whose window
// value changed, or nothing when no partition changed (see
// [window.Panes.Changed] and [window.Incremental.Changed]); when a snapshot
// is due, it hands over an immutable copy.
func (w *keyedWindow[K, V, C]) SaveState(sw engine.StateWriter) error {
	if w.n == 0 {
		w.alloc(w.configured())
	}
	kind, n := w.meta.Kind, w.n
	changed := false
	for p := 0; p < n && !changed; p++ {
		changed = w.held[p].Changed()
	}
	if changed {
		err := sw.WriteDelta(func(out io.Writer) error {
			if err := writeWindowHeader(out, kind, n); err != nil {
				return err
			}
			for p := range n {
				if err := w.held[p].WriteDelta(out, w.kc, w.vc); err != nil {
					return fmt.Errorf("partition %d: %w", p, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if !sw.SnapshotDue() {
		return nil
	}
	snaps := make([]func(io.Writer) error, n)
	for p := range n {
		snaps[p] = w.held[p].SnapshotFunc(w.kc, w.vc)
	}
	sw.WriteSnapshot(func(out io.Writer) error {
		if err := writeWindowHeader(out, kind, n); err != nil {
			return err
		}
		for p, snap := range snaps {
			if err := snap(out); err != nil {
				return fmt.Errorf("partition %d: %w", p, err)
			}
		}
		return nil
	})
	return nil
}

// RestoreState reads every partition back from a snapshot and the deltas
// after it. The operator keeps the partition count it was checkpointed with.
func (w *keyedWindow[K, V, C]) RestoreState(r engine.StateReader) error {
	snap, err := r.Snapshot()
	if err != nil {
		return err
	}
	if snap != nil {
		rd := bytes.NewReader(snap)
		n, err := readWindowHeader(rd, w.Meta(), 0)
		if err != nil {
			return err
		}
		w.alloc(n)
		for p := range n {
			if err := w.held[p].ReadSnapshot(rd, w.kc, w.vc); err != nil {
				return fmt.Errorf("partition %d: %w", p, err)
			}
		}
		if err := windowTrailing(rd, w.Meta()); err != nil {
			return err
		}
	}
	err = r.Deltas(func(rd io.Reader) error {
		n, err := readWindowHeader(rd, w.Meta(), w.n)
		if err != nil {
			return err
		}
		if w.n == 0 {
			w.alloc(n)
		}
		for p := range n {
			if err := w.held[p].ApplyDelta(rd, w.kc, w.vc); err != nil {
				return fmt.Errorf("partition %d: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if want := w.configured(); w.n != 0 && w.n != want {
		w.meta.Context().Logger().Info("windowed operator keeps the partition count of its checkpoint",
			slog.String("operator", w.meta.Name()), slog.Int("partitions", w.n), slog.Int("configured", want))
	}
	return nil
}

// The checkpointed state of a windowed operator starts with a header that
// names the operator kind and the number of partitions that follow, each
// one frame of package window.

const windowStateMagic = "SLDW"
const windowStateVersion = 1

func writeWindowHeader(w io.Writer, kind string, parts int) error {
	b := append([]byte(windowStateMagic), windowStateVersion)
	b = binary.AppendUvarint(b, uint64(len(kind)))
	b = append(b, kind...)
	b = binary.AppendUvarint(b, uint64(parts))
	_, err := w.Write(b)
	return err
}

// readWindowHeader reads the header of the state of operator m and returns
// its partition count, which must equal want unless want is 0.
func readWindowHeader(r io.Reader, m *engine.Meta, want int) (int, error) {
	corrupt := func(what string) error {
		return fmt.Errorf("%w: state of operator %q: %s", window.ErrCorrupt, m.Name(), what)
	}
	var head [len(windowStateMagic) + 1]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, corrupt("header truncated")
	}
	if string(head[:len(windowStateMagic)]) != windowStateMagic {
		return 0, corrupt("not the state of a windowed operator")
	}
	if v := head[len(windowStateMagic)]; v != windowStateVersion {
		return 0, corrupt(fmt.Sprintf("format version %d, this build reads version %d", v, windowStateVersion))
	}
	br := windowByteReader{r}
	klen, err := binary.ReadUvarint(br)
	if err != nil || klen > 256 {
		return 0, corrupt("bad operator kind")
	}
	kind := make([]byte, klen)
	if _, err := io.ReadFull(r, kind); err != nil {
		return 0, corrupt("operator kind truncated")
	}
	if string(kind) != m.Kind {
		return 0, fmt.Errorf("dstream: operator %q was checkpointed as a %s but this job builds a %s under that name; "+
			"give the operators their own names or start with a fresh checkpoint dir", m.Name(), kind, m.Kind)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n == 0 || n > 1<<20 {
		return 0, corrupt("bad partition count")
	}
	if want != 0 && int(n) != want {
		return 0, corrupt(fmt.Sprintf("%d partitions where the state before it has %d", n, want))
	}
	return int(n), nil
}

// windowTrailing fails when a snapshot has bytes after its last partition.
func windowTrailing(r *bytes.Reader, m *engine.Meta) error {
	if r.Len() != 0 {
		return fmt.Errorf("%w: state of operator %q: %d bytes after the last partition", window.ErrCorrupt, m.Name(), r.Len())
	}
	return nil
}

// windowByteReader reads single bytes from r for binary.ReadUvarint.
type windowByteReader struct{ r io.Reader }

func (b windowByteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.r, p[:])
	return p[0], err
}

// windowKeyHash returns the hash that routes keys to partitions: the
// key hash of package keyhash where it is the same in every process, and
// otherwise a hash of the key's encoding, so that a restored job routes a
// key where its state is.
func windowKeyHash[K comparable](kc state.Codec[K]) func(K) uint64 {
	if stableHash[K]() {
		return keyhash.For[K]()
	}
	return func(k K) uint64 {
		b, err := kc.Encode(k)
		if err != nil {
			return 0 // the checkpoint reports the codec's error
		}
		return keyhash.String(string(b))
	}
}

// windowGroupsCodec encodes a slice as a count and its elements, each
// length-prefixed and encoded with c.
func windowGroupsCodec[V any](c state.Codec[V]) state.Codec[[]V] { return windowGroupCodec[V]{c} }

type windowGroupCodec[V any] struct{ c state.Codec[V] }

func (s windowGroupCodec[V]) Encode(vs []V) ([]byte, error) {
	b := binary.AppendUvarint(nil, uint64(len(vs)))
	for _, v := range vs {
		e, err := s.c.Encode(v)
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b, nil
}

var errWindowGroupCodec = errors.New("dstream: malformed encoding of a group of values")

func (s windowGroupCodec[V]) Decode(b []byte) ([]V, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %w: bad count", state.ErrDecode, errWindowGroupCodec)
	}
	b = b[k:]
	var out []V
	if n > 0 {
		out = make([]V, 0, n)
	}
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: %w: bad element length", state.ErrDecode, errWindowGroupCodec)
		}
		v, err := s.c.Decode(b[k : k+int(l)])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %w: %d trailing bytes", state.ErrDecode, errWindowGroupCodec, len(b))
	}
	return out, nil
}
