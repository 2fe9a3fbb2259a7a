package dstream

import (
	"context"
	"fmt"
	"reflect"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// Group mode
//
// When a stream's source is an [engine.TaskSource] whose Distributed()
// reports true (a Kafka source reading as a member of its group), the job
// runs in group mode: each partition of the source's data belongs to a task
// (task p is partition p of every input topic), and the member owns some
// of the tasks. The data of a stream carries the task of each partition,
// and the operators that keep partitions (Map, Filter, FlatMap, MapValues,
// MapPartitions, Union, a Transform that keeps the partition count) keep it.
//
// Keyed operators then have one partition per task, partition p holding
// the keys of task p. Over a stream keyed like the job's input (see
// [CoPartitioned]) each map task combines its records by key as in
// single-process mode and hands them to the partition of its own task,
// with no hash and no exchange between tasks. Over any other stream a
// keyed operator of one stream reads through the stream's exchange (see
// exchange.go), when the source is an [engine.Exchanger]; otherwise, and
// for joins, it is refused when the context starts. The partitions of
// tasks the member does not own are empty.
//
// Stateful keyed operators keep their state per task and implement
// [engine.TaskStateful], through which the source saves the changes of a
// task's state with every batch, restores a task it gains and drops one it
// lost. Their records:
//
//	UpdateStateByKey, MapWithState:
//	  key:   the key, in the operator's key codec
//	  value: version (1 byte, 1) | the state in the operator's state codec
//	         (MapWithState: the state's codec encoding after its last
//	         update time, as its checkpoints hold it)
//
// Keyed windows write their panes as records too (see windowtasks.go). A
// nil value deletes a key, as in a compacted topic. Window of records and
// the windows over a whole stream (CountByWindow, ReduceByWindow…) are
// refused in group mode.

// taskRecordVersion leads every value of a per-task state record, so that
// the encoding can change and old records still be read.
const taskRecordVersion = 1

// keyedRef is what a stream says of its keying, whatever its type.
type keyedRef interface{ keying() keying }

// keying is how a keyed stream's records are spread over the tasks in
// group mode.
type keying uint8

const (
	notKeyed      keying = iota // not known: a keyed operator repartitions it
	inputKeyed                  // like the job's input (CoPartitioned)
	exchangeKeyed               // by the key's stable hash, as an exchange spreads them
)

// CoPartitioned returns s marked as keyed like the job's input: its
// records are keyed by the key of the input records they come from, which
// the input's producers wrote with Kafka's default partitioner, so that
// all records of a key come from one task. In group mode a keyed operator
// (ReduceByKey, UpdateStateByKey, keyed windows, MapWithState, …) over a
// stream not known to be keyed so repartitions it through an exchange of
// the source, a batch later; the mark spares the exchange. Key-preserving
// operators (Filter, MapValues, FlatMapValues, Union, keyed operators and
// keyed windows) keep the mark, others (Map, FlatMap, Transform, …) drop
// it. The output of a keyed operator that repartitioned its input is keyed
// by the exchange, and a keyed operator over it (through key-preserving
// operators) needs no exchange of its own. A join needs both its streams
// keyed alike: both marked, or both the outputs of keyed operators. The
// assertion is not checked: records keyed otherwise would split a key's
// state between tasks. It changes nothing in single-process mode.
// CoPartitioned marks s itself and returns it.
func CoPartitioned[K comparable, V any](s *Stream[KV[K, V]]) *Stream[KV[K, V]] {
	s.coPart = true
	return s
}

func (s *Stream[T]) keying() keying {
	if s.coPart {
		return inputKeyed
	}
	if len(s.keyedAs) == 0 {
		return notKeyed
	}
	k := s.keyedAs[0].keying()
	for _, r := range s.keyedAs[1:] {
		if r.keying() != k {
			return notKeyed
		}
	}
	if k == notKeyed && s.exchanged != nil && s.exchanged.source() != nil {
		return exchangeKeyed // made by a keyed operator reading an exchange
	}
	return k
}

// keepsKeying makes out keyed like ins when they all are keyed alike.
func keepsKeying[T any](out *Stream[T], ins ...keyedRef) *Stream[T] {
	out.keyedAs = append(out.keyedAs, ins...)
	return out
}

// taskSourceOf returns the distributed task source a node reads from, or
// nil in single-process mode.
func taskSourceOf(m *engine.Meta) engine.TaskSource {
	seen := make(map[engine.Node]bool)
	var find func(ps []engine.Node) engine.TaskSource
	find = func(ps []engine.Node) engine.TaskSource {
		for _, p := range ps {
			if seen[p] {
				continue
			}
			seen[p] = true
			if ts, ok := p.(engine.TaskSource); ok && ts.Distributed() {
				return ts
			}
			if ts := find(p.Meta().Parents); ts != nil {
				return ts
			}
		}
		return nil
	}
	return find(m.Parents)
}

// groupCheck is what a keyed operator knows of group mode: the streams it
// keys, checked when the context starts, and the task source, found then.
type groupCheck struct {
	inputs []keyedRef
	group  engine.TaskSource // nil in single-process mode
	// exch is the exchange of the operator's input, for an operator of
	// one input in group mode (see exchange.go); keyType and keyStable
	// say whether its key can be repartitioned.
	exch      exchangeUse
	keyType   reflect.Type
	keyStable bool
}

// validateGroup finds whether the operator runs in group mode and refuses
// it there when one of its inputs is not known to be keyed like the job's
// input and cannot be repartitioned.
func (g *groupCheck) validateGroup(m *engine.Meta) error {
	g.group = taskSourceOf(m)
	if g.group == nil {
		return nil
	}
	if len(g.inputs) > 1 {
		k := g.inputs[0].keying()
		for _, in := range g.inputs[1:] {
			if in.keying() != k || k == notKeyed {
				return fmt.Errorf("dstream: operator %q (%s) joins streams that group mode has not keyed alike; join streams that are all keyed like the job's input (assert it with dstream.CoPartitioned(s)) or all made by keyed operators, which repartition their input, or run the job in single-process mode", m.Name(), m.Kind)
			}
		}
		return nil
	}
	for _, in := range g.inputs {
		switch {
		case in.keying() != notKeyed:
		case g.exch == nil:
			return fmt.Errorf("dstream: operator %q (%s) keys a stream that is not known to be keyed like the job's input, which group mode needs; when its records are keyed by the input's key with Kafka's default partitioner assert it with dstream.CoPartitioned(s)", m.Name(), m.Kind)
		case g.exch.source() == nil:
			return fmt.Errorf("dstream: operator %q (%s) keys a stream that is not known to be keyed like the job's input, and its source %q cannot repartition it; when its records are keyed by the input's key with Kafka's default partitioner assert it with dstream.CoPartitioned(s), otherwise read it with a Kafka source in group mode, which repartitions through a topic", m.Name(), m.Kind, g.group.Meta().Name())
		case !g.keyStable:
			return fmt.Errorf("dstream: operator %q (%s) repartitions its stream by key in group mode, but its key type %v has no hash that is the same in every process; key it by a string, an integer, a float64 or a bool", m.Name(), m.Kind, g.keyType)
		}
	}
	return nil
}

// refuseInGroup returns an error when the operator runs in group mode,
// saying why with reason.
func refuseInGroup(m *engine.Meta, reason string) error {
	if taskSourceOf(m) == nil {
		return nil
	}
	return fmt.Errorf("dstream: operator %q (%s) %s", m.Name(), m.Kind, reason)
}

// groupTasks checks that in carries its tasks in group mode and returns
// their count (0 in single-process mode).
func groupTasks[T any](op string, g engine.TaskSource, in *data[T]) (int, error) {
	if g == nil {
		return 0, nil
	}
	if in.tasks == nil {
		return 0, fmt.Errorf("dstream: operator %q runs in group mode but reads data that lost its tasks (through Repartition, a Transform that changed the partition count, or a stream of another source); key the stream before it leaves its tasks", op)
	}
	return in.ntasks, nil
}

// sourceTasks sets the tasks of a source's data in group mode.
func sourceTasks[T any](src engine.Node, j *engine.Job, d *data[T]) error {
	ts, ok := src.(engine.TaskSource)
	if !ok || !ts.Distributed() {
		return nil
	}
	tasks, n := ts.PartitionTasks(j), ts.TaskCount()
	if len(tasks) != d.n {
		return fmt.Errorf("dstream: source %q reports the tasks of %d partitions for a batch of %d", src.Meta().Name(), len(tasks), d.n)
	}
	for i, t := range tasks {
		if t < 0 || t >= n {
			return fmt.Errorf("dstream: source %q puts partition %d in task %d, outside its %d tasks", src.Meta().Name(), i, t, n)
		}
	}
	if tasks == nil {
		tasks = []int{} // a member that owns no task reads nothing, in group mode still
	}
	d.tasks, d.ntasks = tasks, n
	return nil
}

// byTask returns parts, one partition per task, as data that carries its
// tasks when n > 0 (group mode).
func byTask[T any](d *data[T], n int) *data[T] {
	if n > 0 && d.n == n {
		d.tasks, d.ntasks = identityTasks(n), n
	}
	return d
}

func identityTasks(n int) []int {
	ts := make([]int, n)
	for i := range ts {
		ts[i] = i
	}
	return ts
}

// shuffleByTask is shuffle in group mode: map task i combines its records
// by key and hands them to partition in.tasks[i]; partition p merges the
// combined keys of the map tasks of task p, in map-task order.
func shuffleByTask[K comparable, V, C any](ctx context.Context, j *engine.Job, op string, id int, in *data[KV[K, V]], cb combiner[V, C]) ([][]KV[K, C], error) {
	n := in.ntasks
	combined := make([][]KV[K, C], in.n)
	err := j.Run(ctx, op, in.n, func(ctx context.Context, tk *engine.Task) error {
		keys, cs := combinePartition(tk, id, in, cb)
		combined[tk.Index] = splitByKey(keys, cs, 1, nil)[0] // the task's keys, paired
		return nil
	})
	if err != nil {
		return nil, err
	}
	from := make([][]int, n)
	for i, t := range in.tasks {
		from[t] = append(from[t], i)
	}
	out := make([][]KV[K, C], n)
	err = j.Run(ctx, op, n, func(ctx context.Context, tk *engine.Task) error {
		p := tk.Index
		switch len(from[p]) {
		case 0:
		case 1:
			out[p] = combined[from[p][0]]
		default:
			lists := make([][]KV[K, C], len(from[p]))
			for i, m := range from[p] {
				lists[i] = combined[m]
			}
			out[p] = mergeCombined(lists, cb)
		}
		return nil
	})
	return out, err
}

// initTasks creates the state of a keyed operator in group mode, one
// empty store per task, once the task count is known: at the first batch,
// SaveTask, RestoreTask or DropTask after the context started.
func (ks *keyedState[K, V]) initTasks() int {
	if ks.stores == nil {
		ks.n = ks.group.TaskCount()
		ks.stores = ks.newStores(ks.n)
	}
	return ks.n
}

// taskStore returns the store of task, or an error naming op when the
// task is outside the job's tasks.
func (ks *keyedState[K, V]) taskStore(op string, task int) (*state.Store[K, V], error) {
	if n := ks.initTasks(); task < 0 || task >= n {
		return nil, fmt.Errorf("dstream: operator %q was asked for task %d of a job of %d tasks", op, task, n)
	}
	return ks.stores[task], nil
}

// saveTask passes put the keys of task changed since its last save or
// restore, each value led by taskRecordVersion, and forgets the changes.
// put may keep key and value.
func (ks *keyedState[K, V]) saveTask(op string, task int, put func(key, value []byte) error) error {
	st, err := ks.taskStore(op, task)
	if err != nil {
		return err
	}
	// Records are carved from shared blocks: one allocation for many.
	var block []byte
	err = st.EachChange(func(k, v []byte) error {
		n := len(k)
		if v != nil {
			n += 1 + len(v)
		}
		if cap(block)-len(block) < n {
			block = make([]byte, 0, max(n, 64<<10))
		}
		rec := block[len(block) : len(block)+n : len(block)+n]
		block = block[:len(block)+n]
		copy(rec, k)
		if v == nil {
			return put(rec, nil)
		}
		rec[len(k)] = taskRecordVersion
		copy(rec[len(k)+1:], v)
		return put(rec[:len(k):len(k)], rec[len(k):])
	})
	if err != nil {
		return err
	}
	st.ResetChanges()
	return nil
}

// restoreTask replaces task's store with the records load passes, loaded
// in bulk as a checkpoint restore does.
func (ks *keyedState[K, V]) restoreTask(op string, task int, load func(apply func(key, value []byte) error) error) error {
	if _, err := ks.taskStore(op, task); err != nil {
		return err
	}
	defer ks.countKeys()
	st := state.NewStore(ks.keys, ks.values)
	err := st.Load(func(apply func(key, value []byte) error) error {
		return load(func(k, v []byte) error {
			if v == nil {
				return apply(k, nil)
			}
			if len(v) == 0 || v[0] != taskRecordVersion {
				return fmt.Errorf("%w: a record of task %d has %s; this build reads version %d", state.ErrCorrupt, task, taskVersionSeen(v), taskRecordVersion)
			}
			return apply(k, v[1:])
		})
	})
	if err != nil {
		return fmt.Errorf("dstream: operator %q restoring task %d: %w", op, task, err)
	}
	ks.stores[task] = st
	return nil
}

func taskVersionSeen(v []byte) string {
	if len(v) == 0 {
		return "an empty value"
	}
	return fmt.Sprintf("version %d", v[0])
}

// dropTask empties task's store.
func (ks *keyedState[K, V]) dropTask(task int) {
	if n := ks.initTasks(); task < 0 || task >= n {
		return
	}
	ks.stores[task] = state.NewStore(ks.keys, ks.values)
	ks.countKeys()
}

// groupInput checks, in group mode, that in carries its tasks, as many as
// ks has, creating the stores the first time.
func groupInput[K comparable, V, T any](op string, ks *keyedState[K, V], in *data[T]) error {
	if ks.group == nil {
		return nil
	}
	n, err := groupTasks(op, ks.group, in)
	if err != nil {
		return err
	}
	if have := ks.initTasks(); n != have {
		return fmt.Errorf("dstream: operator %q holds the state of %d tasks but its input has %d; group mode needs the partition counts of the input topics to stay as they were", op, have, n)
	}
	return nil
}

// taskCount returns the number of tasks in group mode, 0 otherwise.
func (ks *keyedState[K, V]) taskCount() int {
	if ks.group == nil {
		return 0
	}
	return ks.initTasks()
}
