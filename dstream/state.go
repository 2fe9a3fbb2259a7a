package dstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/keyhash"
	"github.com/sluicehq/sluice/state"
)

// StateOptions configures [UpdateStateByKeyWith] and
// [UpdateStateByKeyWithTime]. The zero value gives the defaults.
type StateOptions[K comparable, S any] struct {
	// Initial is the state the operator starts with, as Spark's initialRDD:
	// the update function sees these keys at the first batch like any key
	// in state. It is ignored when the job resumes from a checkpoint, which
	// holds the state as it was. The default is no state.
	Initial map[K]S
	// Partitions is how many partitions (and tasks) hold the state, keys
	// spread by hash, overriding the default of the context's parallelism.
	// [Stream.Partitions] on the result sets it too. A checkpoint written
	// with another count restores: keys are re-partitioned. In group mode
	// the state has one partition per task and Partitions is not used.
	Partitions int
	// KeyCodec and StateCodec encode keys and states in the store and in
	// checkpoints, overriding the default of state.CodecFor, which is fast
	// for strings, numbers and bools and uses gob for anything else. States
	// are decoded and encoded every batch, so a struct state deserves a fast
	// codec of its own. A key or state type the default codec cannot carry
	// whole (a struct with an unexported field, which gob drops; an
	// interface; a func) is refused when the context starts, naming the
	// field: export it, or pass a codec here.
	KeyCodec   state.Codec[K]
	StateCodec state.Codec[S]
}

// UpdateStateByKey returns a stream of the state of every key, kept across
// batches and updated with update, as Spark's updateStateByKey.
//
// At every batch, update is called once for every key in state and once for
// every new key with data in the batch: values holds the key's values of
// the batch (empty, and nil, when it has none), in input order within each
// input partition, partitions in order; state and exists are the key's
// state and whether it has one. update returns the new state and true to
// keep it, or false to remove the key. The stream's batch holds every key
// still in state after the update, with its state: partition by partition,
// each partition in ascending key order (by encoding for keys that are not
// strings or numbers).
//
// The calls for one partition run one after another in its task; partitions
// run in parallel. update must not keep values after it returns. States are
// stored encoded (see [StateOptions]), so update gets a decoded copy and
// must return what it wants kept.
//
// The state is kept in the context's parallelism of partitions by key hash
// (see [Stream.Partitions]). With a checkpoint it is saved after every batch
// as a delta of the keys that changed, and in full from time to time in the
// background. The operator's default name is "updateStateByKey-<n>".
func UpdateStateByKey[K comparable, V, S any](s *Stream[KV[K, V]], update func(values []V, state S, exists bool) (S, bool)) *Stream[KV[K, S]] {
	return UpdateStateByKeyWith(s, update, StateOptions[K, S]{})
}

// UpdateStateByKeyWith is [UpdateStateByKey] with options: an initial
// state, a partition count and codecs.
func UpdateStateByKeyWith[K comparable, V, S any](s *Stream[KV[K, V]], update func(values []V, state S, exists bool) (S, bool), opts StateOptions[K, S]) *Stream[KV[K, S]] {
	mustFn(update == nil, "UpdateStateByKey")
	return updateStateByKey(s, func(_ time.Time, _ K, values []V, state S, exists bool) (S, bool) {
		return update(values, state, exists)
	}, opts)
}

// UpdateStateByKeyWithTime is [UpdateStateByKeyWith] with an update function
// that also gets the batch time and the key, as Spark's updateStateByKey
// with a (Time, K, Seq[V], Option[S]) => Option[S] function.
func UpdateStateByKeyWithTime[K comparable, V, S any](s *Stream[KV[K, V]], update func(t time.Time, key K, values []V, state S, exists bool) (S, bool), opts StateOptions[K, S]) *Stream[KV[K, S]] {
	mustFn(update == nil, "UpdateStateByKeyWithTime")
	return updateStateByKey(s, update, opts)
}

func updateStateByKey[K comparable, V, S any](s *Stream[KV[K, V]], update func(time.Time, K, []V, S, bool) (S, bool), opts StateOptions[K, S]) *Stream[KV[K, S]] {
	n := &updateStateNode[K, V, S]{
		parent:  s,
		update:  update,
		initial: opts.Initial,
		parts:   opts.Partitions,
		ks:      newKeyedState(opts.KeyCodec, opts.StateCodec),
		codecs: []codecCheck{
			defaultCodec(opts.KeyCodec, "key", "StateOptions.KeyCodec (UpdateStateByKeyWith)"),
			defaultCodec(opts.StateCodec, "state", "StateOptions.StateCodec (UpdateStateByKeyWith)"),
		},
	}
	n.inputs = []keyedRef{s}
	n.x = readExchange(s, n.Meta(), &n.groupCheck, groupCombiner[V](), listValueCodec[V]())
	out := keepsKeying(derive[KV[K, S]]("updateStateByKey", n, s), s)
	n.x.attach(n, out)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[KV[K, S]], error) {
		if err := n.advance(ctx, j); err != nil {
			return nil, err
		}
		return stateData(n.ks, func(k K, v S) KV[K, S] { return KV[K, S]{k, v} }), nil
	}
	return out
}

// updateStateNode is the node of UpdateStateByKey: it ticks every batch to
// fold the parent's batch into the state, and checkpoints the state.
type updateStateNode[K comparable, V, S any] struct {
	node
	groupCheck
	parent  *Stream[KV[K, V]]
	update  func(time.Time, K, []V, S, bool) (S, bool)
	initial map[K]S
	parts   int
	ks      *keyedState[K, S]
	codecs  []codecCheck // the types encoded with the default codec
	last    time.Time    // the batch the state was last advanced to
	x       *exchangeReader[K, V, []V]
}

var (
	_ engine.Ticker          = (*updateStateNode[int, int, int])(nil)
	_ engine.Stateful        = (*updateStateNode[int, int, int])(nil)
	_ engine.Validator       = (*updateStateNode[int, int, int])(nil)
	_ engine.MetricsReporter = (*updateStateNode[int, int, int])(nil)
	_ engine.TaskStateful    = (*updateStateNode[int, int, int])(nil)
)

// Metrics reports the keys in state ("state_keys").
func (n *updateStateNode[K, V, S]) Metrics() []engine.Metric { return n.ks.metrics() }

func (n *updateStateNode[K, V, S]) setPartitions(p int) { n.parts = p }

// Validate refuses key and state types the default codec cannot carry,
// fixes the partition count and creates the empty state.
func (n *updateStateNode[K, V, S]) Validate() error {
	if err := checkCodecs(n.meta.Name(), n.codecs...); err != nil {
		return err
	}
	if err := n.validateGroup(&n.meta); err != nil {
		return err
	}
	if n.group != nil {
		if n.initial != nil {
			return fmt.Errorf("dstream: operator %q has an initial state (StateOptions.Initial), which group mode cannot place in the tasks its keys belong to; drop it, or run the job in single-process mode", n.meta.Name())
		}
		n.ks.group = n.group // stores are made once the tasks are known
		return nil
	}
	p, err := statePartitions(n.meta.Name(), "StateOptions.Partitions", n.parts, n.meta.Context())
	if err != nil {
		return err
	}
	n.ks.init(p, n.initial != nil)
	return nil
}

// SaveTask passes put the keys of task's state changed since its last
// SaveTask or RestoreTask (see tasks.go for the records).
func (n *updateStateNode[K, V, S]) SaveTask(task int, put func(key, value []byte) error) error {
	return n.ks.saveTask(n.meta.Name(), task, put)
}

// RestoreTask replaces task's state with the records load passes.
func (n *updateStateNode[K, V, S]) RestoreTask(task int, load func(apply func(key, value []byte) error) error) error {
	return n.ks.restoreTask(n.meta.Name(), task, load)
}

// DropTask forgets task's state.
func (n *updateStateNode[K, V, S]) DropTask(task int) { n.ks.dropTask(task) }

// Tick folds the parent's batch into the state.
func (n *updateStateNode[K, V, S]) Tick(ctx context.Context, j *engine.Job) error {
	return n.advance(ctx, j)
}

// advance brings the state to batch j, once per batch: whichever of Tick
// and compute comes first does the work.
func (n *updateStateNode[K, V, S]) advance(ctx context.Context, j *engine.Job) error {
	if n.last.Equal(j.Time) {
		return nil
	}
	in, err := n.parent.get(ctx, j)
	if err != nil || in == nil {
		return err // the parent emits nothing now, and neither does the state
	}
	n.last = j.Time
	op, id := n.meta.Name(), n.meta.ID()
	ks := n.ks
	if err := groupInput(op, ks, in); err != nil {
		return err
	}
	defer ks.countKeys()
	defer ks.forgetChanges(j.Context())
	if err := applyInitial(ctx, j, op, ks, n.initial, identity[S]); err != nil {
		return err
	}
	n.initial = nil
	groups, err := keyedShuffle(ctx, j, op, id, n.x, in, ks.n, ks.hash, groupCombiner[V]())
	if err != nil {
		return err
	}
	return j.Run(ctx, op, ks.n, func(ctx context.Context, tk *engine.Task) error {
		g := groups[tk.Index]
		keys := make([]K, len(g))
		for i, kv := range g {
			keys[i] = kv.Key
		}
		tk.Node = id
		return ks.stores[tk.Index].UpdateAll(keys, func(i int, k K, st S, exists bool) (S, bool) {
			var values []V
			if i >= 0 {
				values = g[i].Value
			}
			return n.update(j.Time, k, values, st, exists)
		})
	})
}

// SaveState writes the keys changed since the last checkpoint, and a full
// snapshot when one is due.
func (n *updateStateNode[K, V, S]) SaveState(w engine.StateWriter) error {
	return n.ks.save(w)
}

// RestoreState replaces the state with the checkpoint's. A checkpoint that
// holds no state for the operator was taken before the initial state was
// applied, which is then still to do.
func (n *updateStateNode[K, V, S]) RestoreState(r engine.StateReader) error {
	if err := n.ks.restore(r); err != nil {
		return err
	}
	if !n.ks.initialPending {
		n.initial = nil
	}
	return nil
}

// statePartitions resolves a stateful operator's partition count: parts
// when set, the context's parallelism otherwise.
func statePartitions(op, option string, parts int, c *engine.Context) (int, error) {
	switch {
	case parts < 0:
		return 0, fmt.Errorf("dstream: operator %q has %s %d; pass a positive count, or 0 for the context's parallelism", op, option, parts)
	case parts == 0:
		return c.Parallelism(), nil
	}
	return parts, nil
}

// keyedState is the state of a keyed stateful operator: one [state.Store]
// per partition, keys spread by hash as the operator's shuffle spreads its
// input, so that partition i's task owns store i alone.
type keyedState[K comparable, V any] struct {
	keys   state.Codec[K]
	values state.Codec[V]
	hash   func(K) uint64
	stable bool // hash gives the same partition in every process
	n      int
	stores []*state.Store[K, V]
	// initialPending says the initial state is still to be applied: at
	// the first batch, unless a checkpoint restored the state first.
	initialPending bool
	// full says the next save must write every key: the stores were
	// loaded in bulk, which leaves no pending changes behind.
	full bool
	// held is the number of keys in the stores after the last batch or
	// restore, for metrics read while batches run.
	held atomic.Int64
	// group is the task source in group mode, where store p holds task p
	// (see tasks.go); nil in single-process mode.
	group engine.TaskSource
}

func newKeyedState[K comparable, V any](keys state.Codec[K], values state.Codec[V]) *keyedState[K, V] {
	if keys == nil {
		keys = state.CodecFor[K]()
	}
	if values == nil {
		values = state.CodecFor[V]()
	}
	return &keyedState[K, V]{keys: keys, values: values, hash: keyhash.For[K](), stable: stableHash[K]()}
}

// stableHash reports whether [keyhash.For] hashes K with a fixed function,
// so that a key falls in the same partition in every process. Other types
// are hashed with a per-process seed: their checkpoints are re-partitioned
// on restore.
func stableHash[K comparable]() bool {
	var zero K
	switch any(zero).(type) {
	case string, int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8, float64, bool:
		return true
	}
	return false
}

// init creates n empty partitions. It runs when the job starts.
func (ks *keyedState[K, V]) init(n int, hasInitial bool) {
	ks.n = n
	ks.stores = ks.newStores(n)
	ks.initialPending = hasInitial
}

func (ks *keyedState[K, V]) newStores(n int) []*state.Store[K, V] {
	stores := make([]*state.Store[K, V], n)
	for i := range stores {
		stores[i] = state.NewStore(ks.keys, ks.values)
	}
	return stores
}

// partition returns the partition that holds k: the one the shuffle sends k
// to.
func (ks *keyedState[K, V]) partition(k K) int {
	if ks.n == 1 {
		return 0
	}
	return keyhash.Partition(ks.hash(k), ks.n)
}

// applyInitial stores the initial state, each value converted by conv, the
// first time it is called after the job starts (unless a checkpoint was
// restored), one task per partition. It loads each partition in bulk, as a
// checkpoint restore does: the values end up side by side in key order,
// which keeps the passes over the whole state that UpdateStateByKey makes
// every batch cache-friendly, and the next checkpoint writes the state in
// full.
func applyInitial[K comparable, S, V any](ctx context.Context, j *engine.Job, op string, ks *keyedState[K, V], initial map[K]S, conv func(S) V) error {
	if !ks.initialPending {
		return nil
	}
	ks.initialPending = false
	if len(initial) == 0 {
		return nil
	}
	ks.full = true
	return j.Run(ctx, op, ks.n, func(ctx context.Context, tk *engine.Task) error {
		sorted := state.NewStore(ks.keys, ks.values)
		for k, v := range initial {
			if ks.partition(k) != tk.Index {
				continue
			}
			if err := sorted.Set(k, conv(v)); err != nil {
				return fmt.Errorf("initial state: %w", err)
			}
		}
		var buf bytes.Buffer
		if err := sorted.WriteSnapshot(&buf); err != nil {
			return fmt.Errorf("initial state: %w", err)
		}
		return ks.stores[tk.Index].ReadSnapshot(&buf)
	})
}

// stateData returns the state as a stream's data: partition i yields
// item(k, v) for each key of store i in key order, decoding as it goes. It
// reads the stores as they are, so it is valid during the batch that made it.
func stateData[K comparable, V, T any](ks *keyedState[K, V], item func(K, V) T) *data[T] {
	if ks.group != nil {
		ks.initTasks()
	}
	stores := ks.stores
	d := &data[T]{n: len(stores), each: func(tk *engine.Task, i int, yield func(T) bool) bool {
		for k, v := range stores[i].All() {
			if !yield(item(k, v)) {
				return false
			}
		}
		return true
	}}
	if ks.group != nil {
		return byTask(d, len(stores))
	}
	return d
}

// Checkpoint encoding of a keyedState. A snapshot or a delta is
//
//	"SLKS" | version (1 byte, 1) | kind (1 byte: 1 snapshot, 2 delta)
//	| uvarint partition count n | n store snapshots or deltas, partition 0 first
//
// in the encodings of [state.Store.WriteSnapshot] and [state.Store.WriteDelta].
// A delta file of kind snapshot replaces everything before it: it is what the
// first checkpoint after a bulk load writes.
const (
	keyedStateMagic    = "SLKS"
	keyedStateVersion  = 1
	keyedStateSnapshot = 1
	keyedStateDelta    = 2
)

func keyedStateKind(kind byte) string {
	if kind == keyedStateSnapshot {
		return "snapshot"
	}
	return "delta"
}

// forgetChanges drops the change sets of the stores when no checkpoint will
// ever read them, so they do not grow towards every key.
func (ks *keyedState[K, V]) forgetChanges(c *engine.Context) {
	if c.Checkpointing() || ks.group != nil {
		return
	}
	for _, st := range ks.stores {
		if st.Changed() > 0 {
			st.ResetChanges()
		}
	}
}

// save writes a delta of the keys changed since the last save (nothing when
// none changed; every key, as a full replacement, after a bulk load), and
// hands the engine a snapshot of clones when it wants one.
func (ks *keyedState[K, V]) save(w engine.StateWriter) error {
	changed := 0
	for _, st := range ks.stores {
		changed += st.Changed()
	}
	var err error
	switch {
	case ks.full:
		err = w.WriteDelta(func(out io.Writer) error {
			return ks.write(out, keyedStateSnapshot, ks.stores, (*state.Store[K, V]).WriteSnapshot)
		})
	case changed > 0:
		err = w.WriteDelta(func(out io.Writer) error {
			return ks.write(out, keyedStateDelta, ks.stores, (*state.Store[K, V]).WriteDelta)
		})
	}
	if err != nil {
		return err
	}
	ks.full = false
	if changed > 0 {
		for _, st := range ks.stores {
			st.ResetChanges()
		}
	}
	if w.SnapshotDue() {
		clones := make([]*state.Store[K, V], len(ks.stores))
		for i, st := range ks.stores {
			clones[i] = st.Clone()
		}
		w.WriteSnapshot(func(out io.Writer) error {
			return ks.write(out, keyedStateSnapshot, clones, (*state.Store[K, V]).WriteSnapshot)
		})
	}
	return nil
}

func (ks *keyedState[K, V]) write(out io.Writer, kind byte, stores []*state.Store[K, V], each func(*state.Store[K, V], io.Writer) error) error {
	hdr := append([]byte(keyedStateMagic), keyedStateVersion, kind)
	hdr = binary.AppendUvarint(hdr, uint64(len(stores)))
	if _, err := out.Write(hdr); err != nil {
		return err
	}
	for _, st := range stores {
		if err := each(st, out); err != nil {
			return err
		}
	}
	return nil
}

// restore replaces the state with a checkpoint's: its snapshot, then its
// deltas (a delta may hold every key, replacing what came before it). A
// checkpoint without a file for the operator leaves the state as it is,
// initial state still pending: the first save after the initial state is
// applied writes every key, so no file means it was not applied. When
// every file was written with this job's partition count and the key hash
// is the same in every process, partition i restores from partition i's
// sections. Otherwise the sections are merged into one store (deltas apply
// to it whatever partition wrote them) and its keys are spread over this
// job's partitions.
// countKeys records the number of keys the stores hold, for [keyedState.metrics].
func (ks *keyedState[K, V]) countKeys() {
	var n int
	for _, st := range ks.stores {
		n += st.Len()
	}
	ks.held.Store(int64(n))
}

// metrics reports the keys held as of the last batch.
func (ks *keyedState[K, V]) metrics() []engine.Metric {
	return []engine.Metric{{Name: "state_keys", Help: "Keys the operator holds in its state, as of the last batch.", Kind: engine.GaugeMetric, Value: float64(ks.held.Load())}}
}

func (ks *keyedState[K, V]) restore(r engine.StateReader) error {
	defer ks.countKeys()
	rs := &restoring[K, V]{ks: ks, stores: ks.newStores(ks.n)}
	snap, err := r.Snapshot()
	if err != nil {
		return err
	}
	files := 0
	if snap != nil {
		files++
		if err := rs.read(bytes.NewReader(snap), true); err != nil {
			return err
		}
	}
	err = r.Deltas(func(rd io.Reader) error {
		files++
		br, ok := rd.(byteStream)
		if !ok {
			br = bufio.NewReader(rd)
		}
		return rs.read(br, false)
	})
	if err != nil {
		return err
	}
	if files == 0 {
		return nil
	}
	ks.initialPending, ks.full = false, false
	if rs.union != nil {
		rs.stores = ks.newStores(ks.n)
		for k, v := range rs.union.All() {
			if err := rs.stores[ks.partition(k)].Set(k, v); err != nil {
				return err
			}
		}
		for _, st := range rs.stores {
			st.ResetChanges() // what the checkpoint holds is not a change
		}
	}
	ks.stores = rs.stores
	return nil
}

// restoring is a restore in progress: per-partition stores, or one store
// holding every key once the files' layout differs from the job's.
type restoring[K comparable, V any] struct {
	ks     *keyedState[K, V]
	stores []*state.Store[K, V]
	union  *state.Store[K, V]
}

// read applies one snapshot or delta file.
func (rs *restoring[K, V]) read(br byteStream, snapshotFile bool) error {
	ks := rs.ks
	kind, n, err := readKeyedStateHeader(br)
	if err != nil {
		return err
	}
	if snapshotFile && kind != keyedStateSnapshot {
		return fmt.Errorf("%w: a keyed state snapshot file holds a %s", state.ErrCorrupt, keyedStateKind(kind))
	}
	full := kind == keyedStateSnapshot
	if full { // everything before is replaced
		rs.stores, rs.union = ks.newStores(ks.n), nil
	}
	if rs.union == nil && (n != ks.n || !ks.stable) {
		rs.union = state.NewStore(ks.keys, ks.values)
		for _, st := range rs.stores {
			if err := copyStore(rs.union, st); err != nil {
				return err
			}
		}
	}
	// Partitions' trees are built in parallel once every section is decoded.
	var installs []func()
	defer func() {
		var wg sync.WaitGroup
		for _, install := range installs {
			wg.Go(install)
		}
		wg.Wait()
	}()
	for i := range n {
		switch {
		case full && rs.union != nil:
			part := state.NewStore(ks.keys, ks.values)
			err = part.ReadSnapshot(br)
			if err == nil {
				err = copyStore(rs.union, part)
			}
		case full:
			var install func()
			install, err = rs.stores[i].DecodeSnapshot(br)
			if err == nil {
				installs = append(installs, install)
			}
		case rs.union != nil:
			err = rs.union.ApplyDelta(br)
		default:
			err = rs.stores[i].ApplyDelta(br)
		}
		if err != nil {
			return fmt.Errorf("dstream: keyed state %s, partition %d of %d: %w", keyedStateKind(kind), i, n, err)
		}
	}
	return requireEnd(br, kind)
}

type byteStream interface {
	io.Reader
	io.ByteReader
}

// copyStore sets every key of from in to.
func copyStore[K comparable, V any](to, from *state.Store[K, V]) error {
	for k, v := range from.All() {
		if err := to.Set(k, v); err != nil {
			return err
		}
	}
	return nil
}

// readKeyedStateHeader reads the header of a snapshot or delta and returns
// its kind and partition count.
func readKeyedStateHeader(r byteStream) (byte, int, error) {
	var h [len(keyedStateMagic) + 2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, fmt.Errorf("%w: keyed state header is cut short", state.ErrCorrupt)
	}
	kind := h[len(keyedStateMagic)+1]
	switch {
	case string(h[:len(keyedStateMagic)]) != keyedStateMagic:
		return 0, 0, fmt.Errorf("%w: keyed state starts with %q, not %q", state.ErrCorrupt, h[:len(keyedStateMagic)], keyedStateMagic)
	case h[len(keyedStateMagic)] != keyedStateVersion:
		return 0, 0, fmt.Errorf("%w: keyed state has version %d; this build reads version %d", state.ErrCorrupt, h[len(keyedStateMagic)], keyedStateVersion)
	case kind != keyedStateSnapshot && kind != keyedStateDelta:
		return 0, 0, fmt.Errorf("%w: keyed state has unknown kind %d", state.ErrCorrupt, kind)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n == 0 || n > 1<<20 {
		return 0, 0, fmt.Errorf("%w: keyed state %s has a bad partition count", state.ErrCorrupt, keyedStateKind(kind))
	}
	return kind, int(n), nil
}

func requireEnd(r io.ByteReader, kind byte) error {
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: keyed state %s has trailing bytes", state.ErrCorrupt, keyedStateKind(kind))
	}
	return nil
}
