package dstream_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// This file runs jobs in group mode without Kafka: taskSource is a source
// that splits its input into tasks and owns, at every batch, the tasks a
// schedule gives its member. runMembers runs one job as two members whose
// tasks move between them mid-run, moving the tasks' state as a Kafka
// source would through a changelog (SaveTask after every batch, DropTask
// on the old owner, RestoreTask on the new one, the records kept in
// memory), and compares what the members emit together with a
// single-process run of the same job on the same input.

// taskSource is a source of records of tasks: input[k][p] is what task p
// reads at batch k+1. Each owned task reads two partitions (two input
// topics), the first half of its records and the second.
type taskSource[T any] struct {
	meta        engine.Meta
	input       [][][]T
	tasks       int
	distributed bool
	owns        func(k int) []int // the tasks owned at batch k (1, 2, …)
}

var _ engine.TaskSource = (*taskSource[int])(nil)

func (s *taskSource[T]) Meta() *engine.Meta { return &s.meta }
func (s *taskSource[T]) Distributed() bool  { return s.distributed }
func (s *taskSource[T]) TaskCount() int     { return s.tasks }

func (s *taskSource[T]) Plan(ctx context.Context, j *engine.Job) ([]byte, error) { return nil, nil }
func (s *taskSource[T]) Replan(ctx context.Context, j *engine.Job, plan []byte) error {
	return nil
}
func (s *taskSource[T]) Commit(ctx context.Context, j *engine.Job) error { return nil }

func batchIndex(j *engine.Job) int { return int(j.Time.Sub(time.Unix(0, 0)) / testBatch) }

func (s *taskSource[T]) owned(j *engine.Job) []int {
	if s.owns == nil {
		return allTasks(s.tasks)
	}
	return s.owns(batchIndex(j))
}

func (s *taskSource[T]) PartitionTasks(j *engine.Job) []int {
	var ts []int
	for _, p := range s.owned(j) {
		ts = append(ts, p, p)
	}
	return ts
}

func (s *taskSource[T]) read(ctx context.Context, j *engine.Job) ([][]T, error) {
	k := batchIndex(j) - 1
	var parts [][]T
	for _, p := range s.owned(j) {
		var xs []T
		if k < len(s.input) {
			xs = s.input[k][p]
		}
		parts = append(parts, slices.Clone(xs[:len(xs)/2]), slices.Clone(xs[len(xs)/2:]))
	}
	return parts, nil
}

func allTasks(n int) []int {
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	return xs
}

func newTaskSource[T any](c *engine.Context, src *taskSource[T]) *dstream.Stream[T] {
	return dstream.NewSource(c, src, "taskSource", src.read)
}

// record is one changelog record.
type record struct{ key, value []byte }

// member is one process of a job in group mode.
type member[U any] struct {
	c   *engine.Context
	got *[]dstream.Batch[U]
}

// runMembers runs build over input as two members, member owner[k][p]
// owning task p at batch k+1, and as one process; it returns what the
// members emitted together, batch by batch, and what the single process
// emitted.
func runMembers[T, U any](t *testing.T, tasks int, input [][][]T, owner [][]int, batches int, build func(*dstream.Stream[T]) *dstream.Stream[U]) (group, single [][]U) {
	t.Helper()
	return runGroup(t, nil, tasks, input, owner, batches, build)
}

// runGroup is runMembers whose members' source is an exchanger keeping its
// exchanges in x, when x is not nil (see exchange_test.go).
func runGroup[T, U any](t *testing.T, x *memExchange, tasks int, input [][][]T, owner [][]int, batches int, build func(*dstream.Stream[T]) *dstream.Stream[U]) (group, single [][]U) {
	t.Helper()
	ownerAt := func(k int) []int { // batch k (1, 2, …) of the schedule, the last one after it
		return owner[min(k, len(owner))-1]
	}
	members := make([]member[U], 2)
	for m := range members {
		c, err := engine.NewContext(testBatch, engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(2))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, c.Close()) })
		src := &taskSource[T]{input: input, tasks: tasks, distributed: true, owns: func(k int) []int {
			var ts []int
			for p, o := range ownerAt(k) {
				if o == m {
					ts = append(ts, p)
				}
			}
			return ts
		}}
		var in *dstream.Stream[T]
		if x != nil {
			in = dstream.NewSource(c, &exchangingSource[T]{taskSource: src, x: x}, "taskSource", src.read)
		} else {
			in = newTaskSource(c, src)
		}
		members[m] = member[U]{c: c, got: collect(build(in))}
		require.NoError(t, c.Start())
	}
	// changelog[operator][task] holds the records SaveTask gave, oldest first.
	changelog := map[string][][]record{}
	stateful := func(c *engine.Context) []engine.TaskStateful {
		var ns []engine.TaskStateful
		for _, n := range c.Nodes() {
			if ts, ok := n.(engine.TaskStateful); ok {
				ns = append(ns, ts)
			}
		}
		return ns
	}
	for k := 1; k <= batches; k++ {
		for p := range tasks {
			from, to := -1, ownerAt(k)[p]
			if k > 1 {
				from = ownerAt(k - 1)[p]
			}
			if from == to || from < 0 {
				continue
			}
			for _, n := range stateful(members[from].c) {
				n.DropTask(p)
			}
			for _, n := range stateful(members[to].c) {
				recs := changelog[n.Meta().Name()]
				var log []record
				if recs != nil {
					log = recs[p]
				}
				err := n.RestoreTask(p, func(apply func(key, value []byte) error) error {
					for _, r := range log {
						if err := apply(r.key, r.value); err != nil {
							return err
						}
					}
					return nil
				})
				require.NoError(t, err)
			}
		}
		for m := range members {
			require.NoError(t, members[m].c.RunBatches(t.Context(), 1))
			for p, o := range ownerAt(k) {
				if o != m {
					continue
				}
				for _, n := range stateful(members[m].c) {
					name := n.Meta().Name()
					if changelog[name] == nil {
						changelog[name] = make([][]record, tasks)
					}
					err := n.SaveTask(p, func(key, value []byte) error {
						changelog[name][p] = append(changelog[name][p], record{key, value})
						return nil
					})
					require.NoError(t, err)
				}
			}
		}
	}
	byTime := map[time.Time][]U{}
	for _, m := range members {
		for _, b := range *m.got {
			byTime[b.Time] = append(byTime[b.Time], slices.Collect(b.All())...)
		}
	}
	times := make([]time.Time, 0, len(byTime))
	for tm := range byTime {
		times = append(times, tm)
	}
	slices.SortFunc(times, time.Time.Compare)
	for _, tm := range times {
		group = append(group, byTime[tm])
	}

	c := newTestContext(t, 3)
	got := collect(build(newTaskSource(c, &taskSource[T]{input: input, tasks: tasks})))
	require.NoError(t, c.RunBatches(t.Context(), batches))
	for _, b := range *got {
		single = append(single, slices.Collect(b.All()))
	}
	return group, single
}

// keyedInput returns batches of records keyed "k0" … "k<keys-1>", key i
// in task i % tasks, values counting up from 1 across the run; each
// batch has perBatch records, none in batches listed in empty.
func keyedInput(batches, tasks, keys, perBatch int, empty ...int) [][][]dstream.KV[string, int] {
	in := make([][][]dstream.KV[string, int], batches)
	v := 0
	for k := range in {
		in[k] = make([][]dstream.KV[string, int], tasks)
		if slices.Contains(empty, k+1) {
			continue
		}
		for i := range perBatch {
			key := (k*7 + i*3) % keys
			v++
			in[k][key%tasks] = append(in[k][key%tasks], dstream.Pair(fmt.Sprintf("k%d", key), v))
		}
	}
	return in
}

// moving is a schedule of 4 tasks over two members in which every task
// changes hands at least once, a member owns nothing for a while, and one
// task moves back.
var moving = [][]int{
	{0, 0, 1, 1},
	{0, 0, 1, 1},
	{0, 1, 1, 1},
	{1, 1, 1, 1},
	{0, 0, 0, 1},
	{0, 1, 0, 1},
	{1, 0, 0, 0},
	{1, 0, 1, 0},
}

func TestGroupModeMatchesSingleProcess(t *testing.T) {
	type kv = dstream.KV[string, int]
	sum := func(a, b int) int { return a + b }
	cases := []struct {
		name  string
		empty []int // batches without input
		build func(s *dstream.Stream[kv]) *dstream.Stream[kv]
	}{
		{"ReduceByKey", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKey(dstream.CoPartitioned(s), sum)
		}},
		{"UpdateStateByKey", []int{4}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.UpdateStateByKey(dstream.CoPartitioned(s), func(vs []int, st int, ok bool) (int, bool) {
				for _, v := range vs {
					st += v
				}
				return st, true
			})
		}},
		{"UpdateStateByKey removing keys", []int{3}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			// A key's state is the sum of its values, removed when a batch
			// has no value for it or the sum passes 60.
			return dstream.UpdateStateByKey(dstream.CoPartitioned(s), func(vs []int, st int, ok bool) (int, bool) {
				if len(vs) == 0 {
					return 0, false
				}
				for _, v := range vs {
					st += v
				}
				return st, st <= 60
			})
		}},
		{"UpdateStateByKey after Filter and ReduceByKey", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			odd := dstream.Filter(dstream.CoPartitioned(s), func(x kv) bool { return x.Value%2 == 1 })
			return dstream.UpdateStateByKey(dstream.ReduceByKey(odd, sum), func(vs []int, st int, ok bool) (int, bool) {
				return st + len(vs), true
			})
		}},
		{"Transform keeping the partitions, then CoPartitioned", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			// Each partition reversed: the partitions keep their tasks.
			rev := dstream.Transform(s, func(_ context.Context, b dstream.Batch[kv]) (dstream.Batch[kv], error) {
				out := dstream.Batch[kv]{Time: b.Time}
				for _, p := range b.Parts {
					r := slices.Clone(p)
					slices.Reverse(r)
					out.Parts = append(out.Parts, r)
				}
				return out, nil
			})
			return dstream.ReduceByKey(dstream.CoPartitioned(rev), func(a, b int) int { return a*2 + b })
		}},
		{"Join of UpdateStateByKey and its input", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			in := dstream.CoPartitioned(s)
			totals := dstream.UpdateStateByKey(in, func(vs []int, st int, ok bool) (int, bool) {
				for _, v := range vs {
					st += v
				}
				return st, true
			})
			joined := dstream.Join(in, totals)
			return dstream.MapValues(joined, func(j dstream.Joined[int, int]) int { return j.Left*1000 + j.Right })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := keyedInput(len(moving)+2, 4, 10, 12, tc.empty...)
			group, single := runMembers(t, 4, input, moving, len(input), tc.build)
			require.Len(t, group, len(single), "output batches")
			for i := range single {
				require.ElementsMatch(t, single[i], group[i], "output batch %d", i+1)
			}
		})
	}
}

func TestGroupModeSaveTaskGivesOnlyChanges(t *testing.T) {
	type kv = dstream.KV[string, int]
	c, err := engine.NewContext(testBatch, engine.WithManualClock(time.Unix(0, 0)))
	require.NoError(t, err)
	defer c.Close()
	// Batch 1 sets k0 and k2 (task 0) and k1 (task 1); batch 2 changes k0
	// only; batch 3 changes k0 and removes the keys without values.
	input := [][][]kv{
		{{dstream.Pair("k0", 1), dstream.Pair("k2", 1)}, {dstream.Pair("k1", 1)}},
		{{dstream.Pair("k0", 1)}, nil},
		{{dstream.Pair("k0", 1)}, nil},
	}
	src := &taskSource[kv]{input: input, tasks: 2, distributed: true}
	counts := dstream.UpdateStateByKeyWithTime(dstream.CoPartitioned(newTaskSource(c, src)), func(tm time.Time, _ string, vs []int, st int, ok bool) (int, bool) {
		return st + len(vs), len(vs) > 0 || tm.Before(time.Unix(3, 0))
	}, dstream.StateOptions[string, int]{})
	collect(counts)
	node := counts.Node().(engine.TaskStateful)
	saved := func(task int) map[string]string {
		got := map[string]string{}
		require.NoError(t, node.SaveTask(task, func(k, v []byte) error {
			if v == nil {
				got[string(k)] = "deleted"
			} else {
				got[string(k)] = fmt.Sprintf("v%d:%s", v[0], v[1:])
			}
			return nil
		}))
		return got
	}
	require.NoError(t, c.RunBatches(t.Context(), 1))
	enc := func(n int) string {
		b, err := state.CodecFor[int]().Encode(n)
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, map[string]string{"k0": "v1:" + enc(1), "k2": "v1:" + enc(1)}, saved(0))
	require.Equal(t, map[string]string{"k1": "v1:" + enc(1)}, saved(1))
	require.Empty(t, saved(0), "nothing changed since the last SaveTask")
	require.NoError(t, c.RunBatches(t.Context(), 1))
	require.Equal(t, map[string]string{"k0": "v1:" + enc(2)}, saved(0))
	require.Empty(t, saved(1))
	require.NoError(t, c.RunBatches(t.Context(), 1))
	require.Equal(t, map[string]string{"k0": "v1:" + enc(3), "k2": "deleted"}, saved(0))
	require.Equal(t, map[string]string{"k1": "deleted"}, saved(1))

	// A restored task holds the records' state and has no changes to save.
	err = node.RestoreTask(1, func(apply func(k, v []byte) error) error {
		for _, r := range []record{{[]byte("k5"), []byte("\x01" + enc(7))}, {[]byte("k6"), []byte("\x01" + enc(1))}, {[]byte("k6"), nil}} {
			if err := apply(r.key, r.value); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, saved(1))
	err = node.RestoreTask(1, func(apply func(k, v []byte) error) error {
		return apply([]byte("k5"), []byte("\x09"+enc(7)))
	})
	require.ErrorContains(t, err, `operator "updateStateByKey-1" restoring task 1`)
	require.ErrorContains(t, err, "version 9; this build reads version 1")
	require.Error(t, node.SaveTask(2, func(k, v []byte) error { return nil }), "task 2 of a job of 2 tasks")
}

func TestGroupModeDataThatLostItsTasks(t *testing.T) {
	type kv = dstream.KV[string, int]
	cases := []struct {
		name  string
		build func(s *dstream.Stream[kv]) *dstream.Stream[kv]
	}{
		{"Repartition", func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.CoPartitioned(dstream.Repartition(s, 3))
		}},
		{"Transform to one partition", func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			one := dstream.Transform(s, func(_ context.Context, b dstream.Batch[kv]) (dstream.Batch[kv], error) {
				return dstream.Batch[kv]{Time: b.Time, Parts: [][]kv{slices.Collect(b.All())}}, nil
			})
			return dstream.CoPartitioned(one)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := engine.NewContext(testBatch, engine.WithManualClock(time.Unix(0, 0)))
			require.NoError(t, err)
			defer c.Close()
			s := newTaskSource(c, &taskSource[kv]{input: keyedInput(1, 2, 4, 4), tasks: 2, distributed: true})
			collect(dstream.ReduceByKey(tc.build(s), func(a, b int) int { return a + b }))
			err = c.RunBatches(t.Context(), 1)
			require.ErrorContains(t, err, `dstream: operator "reduceByKey-1" runs in group mode but reads data that lost its tasks (through Repartition, a Transform that changed the partition count, or a stream of another source); key the stream before it leaves its tasks`)
		})
	}
}

func TestGroupModeRefusals(t *testing.T) {
	type kv = dstream.KV[string, int]
	sum := func(a, b int) int { return a + b }
	count := func(vs []int, st int, ok bool) (int, bool) { return st + len(vs), true }
	cases := []struct {
		name  string
		build func(s *dstream.Stream[kv])
		want  string // "" when the job starts
	}{
		{"ReduceByKey without CoPartitioned", func(s *dstream.Stream[kv]) {
			collect(dstream.ReduceByKey(s, sum))
		}, `dstream: operator "reduceByKey-1" (reduceByKey) keys a stream that is not known to be keyed like the job's input, and its source "taskSource-1" cannot repartition it; when its records are keyed by the input's key with Kafka's default partitioner assert it with dstream.CoPartitioned(s), otherwise read it with a Kafka source in group mode, which repartitions through a topic`},
		{"CoPartitioned then Map drops the mark", func(s *dstream.Stream[kv]) {
			m := dstream.Map(dstream.CoPartitioned(s), func(x kv) kv { return dstream.Pair(x.Key+"!", x.Value) })
			collect(dstream.UpdateStateByKey(m, count).Name("counts"))
		}, `operator "counts" (updateStateByKey) keys a stream that is not known to be keyed like the job's input`},
		{"CoPartitioned kept by Filter, MapValues, FlatMapValues and Union", func(s *dstream.Stream[kv]) {
			in := dstream.CoPartitioned(s)
			f := dstream.Filter(in, func(kv) bool { return true })
			mv := dstream.MapValues(f, func(v int) int { return v + 1 })
			fmv := dstream.FlatMapValues(mv, func(v int) []int { return []int{v, v} })
			collect(dstream.UpdateStateByKey(dstream.Union(fmv, in), count))
		}, ""},
		{"Union with a stream not marked", func(s *dstream.Stream[kv]) {
			m := dstream.Map(s, func(x kv) kv { return x })
			collect(dstream.ReduceByKey(dstream.Union(dstream.CoPartitioned(s), m), sum))
		}, `operator "reduceByKey-1" (reduceByKey) keys a stream that is not known`},
		{"Join of a marked and an unmarked stream", func(s *dstream.Stream[kv]) {
			m := dstream.Map(s, func(x kv) kv { return x })
			collect(dstream.Join(dstream.CoPartitioned(s), m))
		}, `dstream: operator "join-1" (join) joins streams that group mode has not keyed alike; join streams that are all keyed like the job's input (assert it with dstream.CoPartitioned(s)) or all made by keyed operators, which repartition their input, or run the job in single-process mode`},
		{"CountByValue", func(s *dstream.Stream[kv]) {
			collect(dstream.CountByValue(dstream.CoPartitioned(s)))
		}, `dstream: operator "countByValue-1" (countByValue) keys a stream that is not known to be keyed like the job's input, and its source "taskSource-1" cannot repartition it`},
		{"UpdateStateByKey with an initial state", func(s *dstream.Stream[kv]) {
			collect(dstream.UpdateStateByKeyWith(dstream.CoPartitioned(s), count, dstream.StateOptions[string, int]{Initial: map[string]int{"a": 1}}))
		}, `dstream: operator "updateStateByKey-1" has an initial state (StateOptions.Initial), which group mode cannot place in the tasks its keys belong to; drop it, or run the job in single-process mode`},
		{"MapWithState with an initial state", func(s *dstream.Stream[kv]) {
			spec := dstream.NewSimpleStateSpec(runningCount).WithInitialState(map[string]int{"a": 1})
			collect(dstream.MapWithState(dstream.CoPartitioned(s), spec).Stream)
		}, `dstream: operator "mapWithState-1" has an initial state (StateSpec.WithInitialState), which group mode cannot place in the tasks its keys belong to; drop it, or run the job in single-process mode`},
		{"MapWithState without CoPartitioned", func(s *dstream.Stream[kv]) {
			collect(dstream.MapWithState(s, dstream.NewSimpleStateSpec(runningCount)).Stream)
		}, `dstream: operator "mapWithState-1" (mapWithState) keys a stream that is not known to be keyed like the job's input`},
		{"CountByValueAndWindow", func(s *dstream.Stream[kv]) {
			collect(dstream.CountByValueAndWindow(dstream.CoPartitioned(s), 2*testBatch, testBatch))
		}, `dstream: operator "countByValueAndWindow-1" (countByValueAndWindow) keys a stream that is not known to be keyed like the job's input, and its source "taskSource-1" cannot repartition it`},
		{"CountByWindow", func(s *dstream.Stream[kv]) {
			collect(dstream.CountByWindow(s, 2*testBatch, testBatch))
		}, `dstream: operator "countByWindow-1" (countByWindow) reduces every record of a window together, across the tasks that group mode spreads over several processes; key the stream like the job's input (dstream.CoPartitioned) and window it with ReduceByKeyAndWindow instead`},
		{"ReduceByWindow", func(s *dstream.Stream[kv]) {
			collect(dstream.ReduceByWindow(s, func(a, b kv) kv { return a }, 2*testBatch, testBatch))
		}, `dstream: operator "reduceByWindow-1" (reduceByWindow) reduces every record of a window together`},
		{"ReduceByKeyAndWindow without CoPartitioned", func(s *dstream.Stream[kv]) {
			collect(dstream.ReduceByKeyAndWindow(s, winAdd, 2*testBatch, testBatch))
		}, `dstream: operator "reduceByKeyAndWindow-1" (reduceByKeyAndWindow) keys a stream that is not known to be keyed like the job's input`},
		{"Window of records", func(s *dstream.Stream[kv]) {
			collect(dstream.Window(s, 2*testBatch, testBatch))
		}, `dstream: operator "window-1" (window) keeps the records of past batches, which do not move with their tasks in group mode; window a keyed stream with ReduceByKeyAndWindow or GroupByKeyAndWindow instead`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, distributed := range []bool{true, false} {
				c, err := engine.NewContext(testBatch, engine.WithManualClock(time.Unix(0, 0)))
				require.NoError(t, err)
				tc.build(newTaskSource(c, &taskSource[kv]{tasks: 2, distributed: distributed}))
				err = c.Start()
				if tc.want == "" || !distributed {
					require.NoError(t, err, "distributed %v", distributed)
				} else {
					require.ErrorContains(t, err, tc.want)
					require.NotContains(t, err.Error(), "\n", "one sentence")
				}
				require.NoError(t, c.Close())
			}
		})
	}
}

// wordsByTask pairs every word of input with 1, the word's task being
// taskOf(word) of tasks.
func wordsByTask(input [][]string, tasks int, taskOf func(string) int) [][][]kvsi {
	out := make([][][]kvsi, len(input))
	for k, words := range input {
		out[k] = make([][]kvsi, tasks)
		for _, w := range words {
			out[k][taskOf(w)] = append(out[k][taskOf(w)], pairOne(w))
		}
	}
	return out
}

// swapping moves the two tasks of a job between its two members at almost
// every batch.
var swapping = [][]int{{0, 1}, {1, 0}, {1, 1}, {0, 0}, {0, 1}, {1, 0}, {0, 1}, {1, 1}, {0, 0}}

// abTasks puts "a" in task 0 and every other word in task 1.
func abTasks(w string) int {
	if w == "a" {
		return 0
	}
	return 1
}

func TestGroupModeMapWithState(t *testing.T) {
	type kv = dstream.KV[string, int]
	sumState := func(_ time.Time, key string, v dstream.Optional[int], st *dstream.State[int]) (kv, bool) {
		n, _ := st.Get()
		if st.IsTimingOut() {
			return dstream.Pair(key, -n), true
		}
		st.Update(n + v.Value)
		if n+v.Value > 40 {
			st.Remove()
		}
		return dstream.Pair(key, n+v.Value), true
	}
	cases := []struct {
		name  string
		empty []int
		build func(s *dstream.Stream[kv]) *dstream.Stream[kv]
	}{
		{"mapped records", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.MapWithState(dstream.CoPartitioned(s), dstream.NewStateSpec(sumState)).Stream
		}},
		{"state snapshots", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.MapWithState(dstream.CoPartitioned(s), dstream.NewStateSpec(sumState)).StateSnapshots()
		}},
		{"timeouts", []int{3, 4, 5, 7}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.MapWithState(dstream.CoPartitioned(s), dstream.NewStateSpec(sumState).WithTimeout(2*testBatch)).Stream
		}},
		{"timeouts, state snapshots", []int{3, 4, 5, 7}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.MapWithState(dstream.CoPartitioned(s), dstream.NewStateSpec(sumState).WithTimeout(2*testBatch)).StateSnapshots()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Few records a batch and keys that are sometimes idle.
			input := keyedInput(len(moving)+3, 4, 12, 5, tc.empty...)
			group, single := runMembers(t, 4, input, moving, len(input), tc.build)
			require.Len(t, group, len(single), "output batches")
			for i := range single {
				require.ElementsMatch(t, single[i], group[i], "output batch %d", i+1)
			}
		})
	}

	// Spark's MapWithStateSuite cases with "a" in one task and the other
	// words in the other, the tasks swapping members at almost every batch.
	input := [][]string{{}, {"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b"}, {"a"}, {}}
	t.Run("MapWithStateSuite/mapWithState - states as mapped data", func(t *testing.T) {
		group, single := runMembers(t, 2, wordsByTask(input, 2, abTasks), swapping, len(input), func(s *dstream.Stream[kvsi]) *dstream.Stream[kvsi] {
			return dstream.MapWithState(dstream.CoPartitioned(s), dstream.NewStateSpec(func(_ time.Time, key string, value dstream.Optional[int], state *dstream.State[int]) (kvsi, bool) {
				return dstream.Pair(key, runningCount(key, value, state)), true
			})).Stream
		})
		want := [][]kvsi{{}, {{"a", 1}}, {{"a", 2}, {"b", 1}}, {{"a", 3}, {"b", 2}, {"c", 1}}, {{"a", 4}, {"b", 3}}, {{"a", 5}}, {}}
		for i := range want {
			require.ElementsMatch(t, want[i], group[i], "group mode, batch %d", i+1)
			require.ElementsMatch(t, want[i], single[i], "single process, batch %d", i+1)
		}
	})
	t.Run("MapWithStateSuite/mapWithState - state removing", func(t *testing.T) {
		input := [][]string{{}, {"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b", "c"}, {"a", "b"}, {"a"}, {}}
		group, single := runMembers(t, 2, wordsByTask(input, 2, abTasks), swapping, len(input), func(s *dstream.Stream[kvsi]) *dstream.Stream[kvsi] {
			return dstream.MapWithState(dstream.CoPartitioned(s), dstream.NewStateSpec(func(_ time.Time, key string, value dstream.Optional[int], state *dstream.State[int]) (int, bool) {
				if state.Exists() {
					state.Remove()
					return 0, false
				}
				state.Update(value.Value)
				return 0, false
			})).StateSnapshots()
		})
		want := [][]kvsi{{}, {{"a", 1}}, {{"b", 1}}, {{"a", 1}, {"c", 1}}, {{"b", 1}}, {{"a", 1}}, {}, {}}
		for i := range want {
			require.ElementsMatch(t, want[i], group[i], "group mode, batch %d", i+1)
			require.ElementsMatch(t, want[i], single[i], "single process, batch %d", i+1)
		}
	})
	t.Run("MapWithStateSuite/mapWithState - state timing out", func(t *testing.T) {
		// Spark's case in Sluice's form ("timeouts fire at the first batch
		// past the timeout" in mapwithstate_test.go).
		input := [][]string{{"a", "b", "c"}, {"a", "b"}, {"a"}, {}, {}, {"a"}, {}}
		group, single := runMembers(t, 2, wordsByTask(input, 2, abTasks), swapping, len(input), func(s *dstream.Stream[kvsi]) *dstream.Stream[string] {
			return dstream.MapWithState(dstream.CoPartitioned(s), dstream.NewStateSpec(idleReporter).WithTimeout(3*time.Second)).Stream
		})
		want := [][]string{{}, {}, {}, {}, {"c"}, {"b"}, {}}
		for i := range want {
			require.ElementsMatch(t, want[i], group[i], "group mode, batch %d", i+1)
			require.ElementsMatch(t, want[i], single[i], "single process, batch %d", i+1)
		}
	})
}

// kvsByTask splits the records of every batch into tasks by key.
func kvsByTask(input [][]kvsi, tasks int, taskOf func(string) int) [][][]kvsi {
	out := make([][][]kvsi, len(input))
	for k, kvs := range input {
		out[k] = make([][]kvsi, tasks)
		for _, kv := range kvs {
			p := taskOf(kv.Key)
			out[k][p] = append(out[k][p], kv)
		}
	}
	return out
}

func TestGroupModeKeyedWindows(t *testing.T) {
	type kv = dstream.KV[string, int]
	sum := func(a, b int) int { return a + b }
	sub := func(a, b int) int { return a - b }
	nonZero := func(x kv) bool { return x.Value != 0 }
	// fold sums a group's values in an order-sensitive way, so that
	// comparing folds compares the groups' orders too.
	fold := func(vs []int) int {
		h := 0
		for _, v := range vs {
			h = h*31 + v
		}
		return h
	}
	cases := []struct {
		name  string
		empty []int
		build func(s *dstream.Stream[kv]) *dstream.Stream[kv]
	}{
		{"ReduceByKeyAndWindow", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindow(dstream.CoPartitioned(s), sum, 3*testBatch, testBatch)
		}},
		{"ReduceByKeyAndWindow sliding by 2", []int{5, 6}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindow(dstream.CoPartitioned(s), sum, 4*testBatch, 2*testBatch)
		}},
		{"ReduceByKeyAndWindowInv", []int{6}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindowInv(dstream.CoPartitioned(s), sum, sub, 3*testBatch, testBatch, nil)
		}},
		{"ReduceByKeyAndWindowInv with a filter", []int{5, 6, 7}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindowInv(dstream.CoPartitioned(s), sum, sub, 2*testBatch, testBatch, nonZero)
		}},
		{"ReduceByKeyAndWindowInv sliding by 2", []int{4}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindowInv(dstream.CoPartitioned(s), sum, sub, 4*testBatch, 2*testBatch, nonZero)
		}},
		{"GroupByKeyAndWindow", []int{6}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.MapValues(dstream.GroupByKeyAndWindow(dstream.CoPartitioned(s), 3*testBatch, testBatch), fold)
		}},
		{"UpdateStateByKey of ReduceByKeyAndWindowInv", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			w := dstream.ReduceByKeyAndWindowInv(dstream.CoPartitioned(s), sum, sub, 2*testBatch, testBatch, nil)
			return dstream.UpdateStateByKey(w, func(vs []int, st int, _ bool) (int, bool) {
				for _, v := range vs {
					st = max(st, v)
				}
				return st, true
			})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := keyedInput(len(moving)+4, 4, 10, 8, tc.empty...)
			group, single := runMembers(t, 4, input, moving, len(input), tc.build)
			require.Len(t, group, len(single), "output batches")
			require.NotEmpty(t, single)
			for i := range single {
				require.ElementsMatch(t, single[i], group[i], "output batch %d", i+1)
			}
		})
	}

	// Spark's WindowOperationsSuite "big test" cases with "a" in one task and
	// "b" and "c" in the other, the tasks swapping members at almost every
	// batch.
	big := kvsByTask(bigInput, 2, abTasks)
	spark := []struct {
		name  string
		build func(s *dstream.Stream[kv]) *dstream.Stream[kv]
		want  [][]kv
	}{
		{"WindowOperationsSuite/reduceByKeyAndWindow - big test", func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindow(dstream.CoPartitioned(s), winAdd, winSeconds(2), winSeconds(1))
		}, bigReduceOutput},
		{"WindowOperationsSuite/reduceByKeyAndWindow with inverse function - big test", func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindowInv(dstream.CoPartitioned(s), winAdd, winSub, winSeconds(2), winSeconds(1), nil)
		}, bigReduceInvOutput},
		{"WindowOperationsSuite/reduceByKeyAndWindow with inverse and filter functions - big test", func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindowInv(dstream.CoPartitioned(s), winAdd, winSub, winSeconds(2), winSeconds(1), nonZero)
		}, bigReduceOutput},
		{"WindowOperationsSuite/groupByKeyAndWindow", func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.MapValues(dstream.GroupByKeyAndWindow(dstream.CoPartitioned(s), winSeconds(2), winSeconds(1)), fold)
		}, func() [][]kv {
			out := make([][]kv, len(bigGroupByOutput))
			for i, b := range bigGroupByOutput {
				for _, g := range b {
					out[i] = append(out[i], dstream.Pair(g.Key, fold(g.Value)))
				}
			}
			return out
		}()},
	}
	for _, tc := range spark {
		t.Run(tc.name, func(t *testing.T) {
			group, single := runMembers(t, 2, big, swapping, len(big), tc.build)
			require.Len(t, group, len(tc.want))
			for i := range tc.want {
				require.ElementsMatch(t, tc.want[i], group[i], "group mode, batch %d", i+1)
				require.ElementsMatch(t, tc.want[i], single[i], "single process, batch %d", i+1)
			}
		})
	}
}

func TestGroupModeWindowChangelogStaysSmall(t *testing.T) {
	type kv = dstream.KV[string, int]
	const batches = 12
	input := keyedInput(batches, 2, 6, 6)
	for _, inverse := range []bool{false, true} {
		t.Run(fmt.Sprintf("inverse %v", inverse), func(t *testing.T) {
			c, err := engine.NewContext(testBatch, engine.WithManualClock(time.Unix(0, 0)))
			require.NoError(t, err)
			defer c.Close()
			s := dstream.CoPartitioned(newTaskSource(c, &taskSource[kv]{input: input, tasks: 2, distributed: true}))
			var w *dstream.Stream[kv]
			if inverse {
				w = dstream.ReduceByKeyAndWindowInv(s, winAdd, winSub, 2*testBatch, testBatch, nil)
			} else {
				w = dstream.ReduceByKeyAndWindow(s, winAdd, 2*testBatch, testBatch)
			}
			collect(w)
			node := w.Node().(engine.TaskStateful)
			// log[task] is the task's changelog once compacted.
			log := []map[string][]byte{{}, {}}
			puts := 0
			for range batches {
				require.NoError(t, c.RunBatches(t.Context(), 1))
				for p := range log {
					require.NoError(t, node.SaveTask(p, func(k, v []byte) error {
						puts++
						if v == nil {
							delete(log[p], string(k))
						} else {
							log[p][string(k)] = v
						}
						return nil
					}))
				}
			}
			last := time.Unix(batches, 0)
			for p, recs := range log {
				for k := range recs {
					if k[0] != 1 { // a pane
						continue
					}
					at := time.UnixMilli(int64(binary.BigEndian.Uint64([]byte(k[1:9]))))
					require.True(t, at.After(last.Add(-2*testBatch)), "task %d keeps a pane at %v, before the window at %v", p, at, last)
				}
			}
			require.Positive(t, puts)
		})
	}
}
