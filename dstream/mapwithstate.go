package dstream

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// State is the state of one key as a [MapWithState] mapping function sees
// it, as Spark's State: whether it exists, its value, and the means to
// update or remove it. The mapping function must not keep it after
// returning. The zero State is a key without state.
type State[S any] struct {
	value     S
	exists    bool
	updated   bool
	removed   bool
	timingOut bool
}

// Exists reports whether the key has a state.
func (s *State[S]) Exists() bool { return s.exists }

// Get returns the key's state and true, or the zero S and false when the
// key has none.
func (s *State[S]) Get() (S, bool) { return s.value, s.exists }

// Update sets the key's state to v. It panics when the state was removed in
// this call or is timing out (see [State.IsTimingOut]): the system removes a
// timing-out state whatever the function does. The panic fails the batch.
func (s *State[S]) Update(v S) {
	switch {
	case s.removed:
		panic("dstream: State.Update after State.Remove in the same call; a removed state cannot be updated")
	case s.timingOut:
		panic("dstream: State.Update on a state that is timing out; it is removed after this call, check IsTimingOut first")
	}
	s.value, s.exists, s.updated = v, true, true
}

// Remove removes the key's state, if it has one. It panics when the state
// was already removed in this call or is timing out. The panic fails the
// batch.
func (s *State[S]) Remove() {
	switch {
	case s.timingOut:
		panic("dstream: State.Remove on a state that is timing out; it is removed after this call anyway")
	case s.removed:
		panic("dstream: State.Remove called twice in the same call")
	}
	var zero S
	s.value, s.exists, s.updated, s.removed = zero, false, false, true
}

// IsTimingOut reports whether this is the last call for a key that had no
// data for longer than the spec's timeout: the call has no value, and the
// state is removed after it.
func (s *State[S]) IsTimingOut() bool { return s.timingOut }

// String formats the state's value, or "<state not set>".
func (s *State[S]) String() string {
	if !s.exists {
		return "<state not set>"
	}
	return fmt.Sprint(s.value)
}

// StateSpec says how [MapWithState] maps records and keeps state, as
// Spark's StateSpec: the mapping function and, through its With methods,
// an initial state, an idle timeout, a partition count and codecs. Make one
// with [NewStateSpec] or [NewSimpleStateSpec]; the With methods return a
// modified copy.
type StateSpec[K comparable, V, S, U any] struct {
	fn         func(t time.Time, key K, value Optional[V], state *State[S]) (U, bool)
	initial    map[K]S
	timeout    time.Duration
	partitions int
	keyCodec   state.Codec[K]
	stateCodec state.Codec[S]
}

// NewStateSpec returns a spec with the mapping function f, Spark's
// (Time, K, Option[V], State[S]) => Option[U] form: f gets the batch time,
// the key, the record's value (absent in the last call of a timing-out key)
// and the key's state, and returns a mapped element and true, or false to
// emit nothing.
func NewStateSpec[K comparable, V, S, U any](f func(t time.Time, key K, value Optional[V], state *State[S]) (U, bool)) StateSpec[K, V, S, U] {
	mustFn(f == nil, "NewStateSpec")
	return StateSpec[K, V, S, U]{fn: f}
}

// NewSimpleStateSpec returns a spec with a mapping function of Spark's
// simple (K, Option[V], State[S]) => U form, whose result is emitted for
// every call.
func NewSimpleStateSpec[K comparable, V, S, U any](f func(key K, value Optional[V], state *State[S]) U) StateSpec[K, V, S, U] {
	mustFn(f == nil, "NewSimpleStateSpec")
	return NewStateSpec(func(_ time.Time, key K, value Optional[V], state *State[S]) (U, bool) {
		return f(key, value, state), true
	})
}

// WithInitialState sets the state the operator starts with, overriding the
// default of none. The keys count as updated at the first batch (so their
// idle timeout runs from then). It is ignored when the job resumes from a
// checkpoint.
func (sp StateSpec[K, V, S, U]) WithInitialState(initial map[K]S) StateSpec[K, V, S, U] {
	sp.initial = initial
	return sp
}

// WithTimeout sets the idle timeout, overriding the default of none: a key
// that got no data for longer than d (its last data came at a batch time
// before t − d) gets one last call at batch t, with no value and
// IsTimingOut true, and its state is removed after it. d must not be
// negative; 0 means no timeout.
func (sp StateSpec[K, V, S, U]) WithTimeout(d time.Duration) StateSpec[K, V, S, U] {
	sp.timeout = d
	return sp
}

// WithPartitions sets how many partitions (and tasks) hold the state,
// overriding the default of the context's parallelism. [Stream.Partitions]
// on the mapped stream sets it too.
func (sp StateSpec[K, V, S, U]) WithPartitions(n int) StateSpec[K, V, S, U] {
	sp.partitions = n
	return sp
}

// WithCodecs sets the codecs of keys and states in the store and in
// checkpoints, overriding the default of state.CodecFor. A nil codec keeps
// the default. A key or state type the default codec cannot carry whole (a
// struct with an unexported field, which gob drops; an interface; a func)
// is refused when the context starts, naming the field: export it, or pass
// a codec here.
func (sp StateSpec[K, V, S, U]) WithCodecs(keys state.Codec[K], states state.Codec[S]) StateSpec[K, V, S, U] {
	sp.keyCodec, sp.stateCodec = keys, states
	return sp
}

// MapWithStateStream is the stream of elements a [MapWithState] mapping
// function returns, with access to the states behind it.
type MapWithStateStream[K comparable, S, U any] struct {
	*Stream[U]
	snapshots func() *Stream[KV[K, S]]
}

// StateSnapshots returns the stream of every key's state after each batch,
// as Spark's stateSnapshots: partition by partition, each partition in
// ascending key order. Calling it again returns the same stream. Call it
// before the job starts.
func (m *MapWithStateStream[K, S, U]) StateSnapshots() *Stream[KV[K, S]] { return m.snapshots() }

// MapWithState maps the records of s with the spec's function and keeps a
// state per key across batches, as Spark's mapWithState.
//
// At every batch, the function is called once per record, in input order
// within each input partition, input partitions in order, with the record's
// key, its value and the key's [State], through which it reads, updates or
// removes the state. Keys without data in the batch are not called: the
// cost of a batch follows its records, not the size of the state. With a
// timeout (see [StateSpec.WithTimeout]), a key idle for longer than the
// timeout gets one last call after the batch's records, with no value and
// IsTimingOut true, and its state is removed; timing-out keys of a partition
// are called in the order of their last update, then of their encoded keys.
//
// The returned stream holds what the calls return, partition by partition:
// the records' results in order, then the timing-out keys'. Its
// StateSnapshots method gives the states. Calls for one partition run one
// after another in its task; partitions run in parallel.
//
// State is kept in partitions by key hash, and with a checkpoint it is
// saved after every batch as a delta of the keys that changed, as for
// [UpdateStateByKey]. A state's last update time is kept with it, so
// timeouts carry over a restart. The operator's default name is
// "mapWithState-<n>". MapWithState panics when spec has no function.
//
// Unlike Spark, which looks for timed-out keys only at batches that
// checkpoint the state, Sluice does it every batch, from an index of keys
// by last update time.
func MapWithState[K comparable, V, S, U any](s *Stream[KV[K, V]], spec StateSpec[K, V, S, U]) *MapWithStateStream[K, S, U] {
	mustFn(spec.fn == nil, "MapWithState (make the spec with NewStateSpec)")
	stateCodec := spec.stateCodec
	if stateCodec == nil {
		stateCodec = state.CodecFor[S]()
	}
	n := &mapWithStateNode[K, V, S, U]{
		groupCheck: groupCheck{inputs: []keyedRef{s}},
		parent:     s,
		spec:       spec,
		parts:      spec.partitions,
		ks:         newKeyedState[K, stamped[S]](spec.keyCodec, stampedCodec[S]{inner: stateCodec}),
	}
	n.x = readExchange(s, n.Meta(), &n.groupCheck, groupCombiner[V](), listValueCodec[V]())
	out := derive[U]("mapWithState", n, s)
	n.x.attach(n)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[U], error) {
		if err := n.advance(ctx, j); err != nil {
			return nil, err
		}
		return byTask(materialized(n.mapped), n.ks.taskCount()), nil
	}
	var snaps *Stream[KV[K, S]]
	m := &MapWithStateStream[K, S, U]{Stream: out}
	m.snapshots = func() *Stream[KV[K, S]] {
		if snaps != nil {
			return snaps
		}
		snaps = keepsKeying(derive[KV[K, S]]("stateSnapshots", &node{}, out), s)
		if n.x != nil {
			snaps.setExchanged(n.x.x)
		}
		snaps.compute = func(ctx context.Context, j *engine.Job) (*data[KV[K, S]], error) {
			if err := n.advance(ctx, j); err != nil {
				return nil, err
			}
			return stateData(n.ks, func(k K, v stamped[S]) KV[K, S] { return KV[K, S]{k, v.state} }), nil
		}
		return snaps
	}
	return m
}

// mapWithStateNode is the node of MapWithState: it ticks every batch to run
// the mapping function over the parent's batch, keeps the mapped elements
// for the batch, and checkpoints the state.
type mapWithStateNode[K comparable, V, S, U any] struct {
	node
	groupCheck
	parent *Stream[KV[K, V]]
	spec   StateSpec[K, V, S, U]
	parts  int
	ks     *keyedState[K, stamped[S]]
	idle   []idleIndex[K] // per partition, with a timeout; nil until built
	last   time.Time      // the batch the state was last advanced to
	mapped [][]U          // what the function returned in batch last
	x      *exchangeReader[K, V, []V]
}

var (
	_ engine.Ticker          = (*mapWithStateNode[int, int, int, int])(nil)
	_ engine.Stateful        = (*mapWithStateNode[int, int, int, int])(nil)
	_ engine.Validator       = (*mapWithStateNode[int, int, int, int])(nil)
	_ engine.MetricsReporter = (*mapWithStateNode[int, int, int, int])(nil)
	_ engine.TaskStateful    = (*mapWithStateNode[int, int, int, int])(nil)
)

// SaveTask passes put the keys of task's state changed since its last
// SaveTask or RestoreTask (see tasks.go for the records).
func (n *mapWithStateNode[K, V, S, U]) SaveTask(task int, put func(key, value []byte) error) error {
	return n.ks.saveTask(n.meta.Name(), task, put)
}

// RestoreTask replaces task's state with the records load passes. The
// index of keys by update time is rebuilt at the next batch.
func (n *mapWithStateNode[K, V, S, U]) RestoreTask(task int, load func(apply func(key, value []byte) error) error) error {
	n.idle = nil
	return n.ks.restoreTask(n.meta.Name(), task, load)
}

// DropTask forgets task's state.
func (n *mapWithStateNode[K, V, S, U]) DropTask(task int) {
	n.ks.dropTask(task)
	if n.idle != nil && task >= 0 && task < len(n.idle) {
		n.idle[task] = idleIndex[K]{}
	}
}

// Metrics reports the keys in state ("state_keys").
func (n *mapWithStateNode[K, V, S, U]) Metrics() []engine.Metric { return n.ks.metrics() }

func (n *mapWithStateNode[K, V, S, U]) setPartitions(p int) { n.parts = p }

// Validate checks the spec, fixes the partition count and creates the empty
// state.
func (n *mapWithStateNode[K, V, S, U]) Validate() error {
	if n.spec.timeout < 0 {
		return fmt.Errorf("dstream: operator %q has timeout %v; pass a positive duration to WithTimeout, or 0 for none", n.meta.Name(), n.spec.timeout)
	}
	err := checkCodecs(n.meta.Name(),
		defaultCodec(n.spec.keyCodec, "key", "StateSpec.WithCodecs"),
		defaultCodec(n.spec.stateCodec, "state", "StateSpec.WithCodecs"))
	if err != nil {
		return err
	}
	if err := n.validateGroup(&n.meta); err != nil {
		return err
	}
	n.idle = nil
	if n.group != nil {
		if n.spec.initial != nil {
			return fmt.Errorf("dstream: operator %q has an initial state (StateSpec.WithInitialState), which group mode cannot place in the tasks its keys belong to; drop it, or run the job in single-process mode", n.meta.Name())
		}
		n.ks.group = n.group // stores are made once the tasks are known
		return nil
	}
	p, err := statePartitions(n.meta.Name(), "partitions", n.parts, n.meta.Context())
	if err != nil {
		return err
	}
	n.ks.init(p, n.spec.initial != nil)
	n.idle = nil
	return nil
}

// Tick runs the mapping function over the parent's batch.
func (n *mapWithStateNode[K, V, S, U]) Tick(ctx context.Context, j *engine.Job) error {
	return n.advance(ctx, j)
}

// SaveState writes the keys changed since the last checkpoint, and a full
// snapshot when one is due.
func (n *mapWithStateNode[K, V, S, U]) SaveState(w engine.StateWriter) error {
	return n.ks.save(w)
}

// RestoreState replaces the state with the checkpoint's. A checkpoint that
// holds no state for the operator was taken before the initial state was
// applied, which is then still to do.
func (n *mapWithStateNode[K, V, S, U]) RestoreState(r engine.StateReader) error {
	n.idle = nil
	if err := n.ks.restore(r); err != nil {
		return err
	}
	if !n.ks.initialPending {
		n.spec.initial = nil
	}
	return nil
}

// advance brings the state to batch j and computes the batch's mapped
// elements, once per batch.
func (n *mapWithStateNode[K, V, S, U]) advance(ctx context.Context, j *engine.Job) error {
	if n.last.Equal(j.Time) {
		return nil
	}
	in, err := n.parent.get(ctx, j)
	if err != nil || in == nil {
		return err
	}
	n.last = j.Time
	n.mapped = nil
	op, id := n.meta.Name(), n.meta.ID()
	ks := n.ks
	if err := groupInput(op, ks, in); err != nil {
		return err
	}
	defer ks.countKeys()
	defer ks.forgetChanges(j.Context())
	ms := j.Time.UnixMilli()
	err = applyInitial(ctx, j, op, ks, n.spec.initial, func(s S) stamped[S] { return stamped[S]{ms: ms, state: s} })
	if err != nil {
		return err
	}
	n.spec.initial = nil
	if n.spec.timeout > 0 && n.idle == nil {
		if err := n.buildIdle(ctx, j, op); err != nil {
			return err
		}
	}
	byTask, err := n.route(ctx, j, op, in)
	if err != nil {
		return err
	}
	mapped := make([][]U, ks.n)
	err = j.Run(ctx, op, ks.n, func(ctx context.Context, tk *engine.Task) error {
		var err error
		mapped[tk.Index], err = n.mapPartition(tk, id, j.Time, byTask)
		return err
	})
	if err != nil {
		return err
	}
	n.mapped = mapped
	return nil
}

// route sends each record of the batch to its key's partition (its task's
// in group mode), keeping record order: byTask[m][p] holds what map task m
// sends to partition p. Through an exchange (group mode, a stream not keyed
// like the job's input), a key's records of one batch of one member come
// together, in order.
func (n *mapWithStateNode[K, V, S, U]) route(ctx context.Context, j *engine.Job, op string, in *data[KV[K, V]]) ([][][]KV[K, V], error) {
	ks := n.ks
	if n.x.reads() {
		groups, err := n.x.shuffle(ctx, j, op)
		if err != nil {
			return nil, err
		}
		split := make([][]KV[K, V], len(groups))
		for p, g := range groups {
			for _, kv := range g {
				for _, v := range kv.Value {
					split[p] = append(split[p], KV[K, V]{kv.Key, v})
				}
			}
		}
		return [][][]KV[K, V]{split}, nil
	}
	byTask := make([][][]KV[K, V], in.n)
	err := j.Run(ctx, op, in.n, func(ctx context.Context, tk *engine.Task) error {
		split := make([][]KV[K, V], ks.n)
		if in.tasks != nil {
			p := in.tasks[tk.Index]
			in.iter(tk, tk.Index, func(kv KV[K, V]) bool {
				split[p] = append(split[p], kv)
				return true
			})
			byTask[tk.Index] = split
			return nil
		}
		in.iter(tk, tk.Index, func(kv KV[K, V]) bool {
			p := ks.partition(kv.Key)
			split[p] = append(split[p], kv)
			return true
		})
		byTask[tk.Index] = split
		return nil
	})
	return byTask, err
}

// mapPartition runs the mapping function over partition tk.Index's records
// of batch t, then over its timing-out keys, as Spark's
// MapWithStateRDDRecord.updateRecordWithData.
func (n *mapWithStateNode[K, V, S, U]) mapPartition(tk *engine.Task, id int, t time.Time, byTask [][][]KV[K, V]) ([]U, error) {
	p := tk.Index
	st := n.ks.stores[p]
	ms := t.UnixMilli()
	timed := n.spec.timeout > 0
	fn := n.spec.fn
	var out []U
	var s State[S]
	for _, split := range byTask {
		for _, kv := range split[p] {
			// One search of the store per record, as a map lookup would be.
			err := st.Update(kv.Key, func(old stamped[S], exists bool) (stamped[S], bool) {
				s = State[S]{value: old.state, exists: exists}
				tk.Node = id
				if u, ok := fn(t, kv.Key, Some(kv.Value), &s); ok {
					out = append(out, u)
				}
				switch {
				case s.removed:
					return old, false
				case s.updated || (s.exists && timed):
					// With a timeout, data refreshes the key's update
					// time even when the function leaves the state as is.
					if timed && (!exists || old.ms != ms) {
						n.idle[p].add(ms, kv.Key)
					}
					return stamped[S]{ms: ms, state: s.value}, true
				}
				return old, exists // unchanged
			})
			if err != nil {
				return out, err
			}
		}
	}
	if !timed {
		return out, nil
	}
	type due struct {
		key K
		enc []byte
		v   stamped[S]
	}
	var dues []due
	var err error
	n.idle[p].expire(ms-n.spec.timeout.Milliseconds(), func(at int64, k K) {
		v, ok := st.Get(k)
		if !ok || v.ms != at || err != nil {
			return // removed, or updated since: a stale entry
		}
		var enc []byte
		enc, err = state.AppendEncode(n.ks.keys, nil, k)
		dues = append(dues, due{k, enc, v})
	})
	if err != nil {
		return out, fmt.Errorf("encode a timing-out key: %w", err)
	}
	slices.SortFunc(dues, func(a, b due) int {
		return cmp.Or(cmp.Compare(a.v.ms, b.v.ms), bytes.Compare(a.enc, b.enc))
	})
	dues = slices.CompactFunc(dues, func(a, b due) bool { return bytes.Equal(a.enc, b.enc) })
	for _, d := range dues {
		s = State[S]{value: d.v.state, exists: true, timingOut: true}
		tk.Node = id
		if u, ok := fn(t, d.key, Optional[V]{}, &s); ok {
			out = append(out, u)
		}
		st.Delete(d.key)
	}
	return out, nil
}

// buildIdle indexes every key by its last update time: after the initial
// state or a checkpoint was loaded.
func (n *mapWithStateNode[K, V, S, U]) buildIdle(ctx context.Context, j *engine.Job, op string) error {
	idle := make([]idleIndex[K], n.ks.n)
	err := j.Run(ctx, op, n.ks.n, func(ctx context.Context, tk *engine.Task) error {
		byTime := make(map[int64][]K)
		for k, v := range n.ks.stores[tk.Index].All() {
			byTime[v.ms] = append(byTime[v.ms], k)
		}
		x := &idle[tk.Index]
		for _, at := range slices.Sorted(maps.Keys(byTime)) {
			x.times = append(x.times, at)
			x.keys = append(x.keys, byTime[at])
		}
		return nil
	})
	if err != nil {
		return err
	}
	n.idle = idle
	return nil
}

// idleIndex lists the keys of one partition by the batch time they were
// last updated at, oldest first, so that timeouts find idle keys without
// scanning the state. Entries go stale when a key is updated again or
// removed; the state itself says whether an entry is current.
type idleIndex[K comparable] struct {
	times []int64 // ascending
	keys  [][]K   // keys[i] were updated at times[i]
}

// add records that k was updated at ms, the current batch time, which is
// never before the times already indexed.
func (x *idleIndex[K]) add(ms int64, k K) {
	if n := len(x.times); n > 0 && x.times[n-1] == ms {
		x.keys[n-1] = append(x.keys[n-1], k)
		return
	}
	x.times = append(x.times, ms)
	x.keys = append(x.keys, []K{k})
}

// expire calls f for every key indexed at a time before threshold, oldest
// time first, and drops those entries.
func (x *idleIndex[K]) expire(threshold int64, f func(ms int64, k K)) {
	i := 0
	for ; i < len(x.times) && x.times[i] < threshold; i++ {
		for _, k := range x.keys[i] {
			f(x.times[i], k)
		}
	}
	clear(x.keys[:i])
	x.times, x.keys = x.times[i:], x.keys[i:]
}

// stamped is a MapWithState state with the batch time (Unix ms) of its last
// update.
type stamped[S any] struct {
	ms    int64
	state S
}

// stampedCodec encodes a stamped state as its time, 8 bytes big-endian,
// followed by the state in the inner codec's encoding.
type stampedCodec[S any] struct{ inner state.Codec[S] }

func (c stampedCodec[S]) Encode(v stamped[S]) ([]byte, error) { return c.AppendEncode(nil, v) }

func (c stampedCodec[S]) AppendEncode(dst []byte, v stamped[S]) ([]byte, error) {
	n := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, uint64(v.ms))
	out, err := state.AppendEncode(c.inner, dst, v.state)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

func (c stampedCodec[S]) Decode(b []byte) (stamped[S], error) {
	if len(b) < 8 {
		return stamped[S]{}, fmt.Errorf("%w: a mapWithState state of %d bytes is shorter than its 8-byte time", state.ErrDecode, len(b))
	}
	s, err := c.inner.Decode(b[8:])
	if err != nil {
		return stamped[S]{}, err
	}
	return stamped[S]{ms: int64(binary.BigEndian.Uint64(b)), state: s}, nil
}
