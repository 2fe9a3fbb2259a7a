package dstream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// The cases named "BasicOperationsSuite/updateStateByKey…" port the
// updateStateByKey tests of Spark's BasicOperationsSuite
// (streaming/src/test/scala/org/apache/spark/streaming/BasicOperationsSuite.scala),
// keeping Spark's names. Spark's Option[S] state is (state, exists) here and
// None as a result is false. Spark feeds a null batch in "object lifecycle",
// for which its test stream returns no RDD and updateStateByKey calls the
// function with no values for every key; a nil Queue batch is an empty batch,
// which does the same.

// runningSum is Spark's updateFunc of the updateStateByKey tests:
// Some(values.sum + state.getOrElse(0)).
func runningSum(values []int, state int, _ bool) (int, bool) {
	for _, v := range values {
		state += v
	}
	return state, true
}

// stateObject is Spark's StateObject of "updateStateByKey - object
// lifecycle": a counter and the number of batches in a row without values.
type stateObject struct {
	Counter       int
	ExpireCounter int
}

func TestUpdateStateByKey(t *testing.T) {
	input := [][]string{{"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b"}, {"a"}, {}}
	withInitial := [][]kvsi{
		{{"a", 2}, {"c", 2}},
		{{"a", 3}, {"b", 1}, {"c", 2}},
		{{"a", 4}, {"b", 2}, {"c", 3}},
		{{"a", 5}, {"b", 3}, {"c", 3}},
		{{"a", 6}, {"b", 3}, {"c", 3}},
		{{"a", 6}, {"b", 3}, {"c", 3}},
	}
	initial := map[string]int{"a": 1, "c": 2}
	type kvsl = dstream.KV[string, int64]

	runCases(t, []opCase{
		{name: "BasicOperationsSuite/updateStateByKey", run: testOperation(input,
			func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
				return dstream.UpdateStateByKey(dstream.Map(s, pairOne), runningSum)
			},
			[][]kvsi{
				{{"a", 1}},
				{{"a", 2}, {"b", 1}},
				{{"a", 3}, {"b", 2}, {"c", 1}},
				{{"a", 4}, {"b", 3}, {"c", 1}},
				{{"a", 5}, {"b", 3}, {"c", 1}},
				{{"a", 5}, {"b", 3}, {"c", 1}},
			}, unordered)},
		{name: "BasicOperationsSuite/updateStateByKey - simple with initial value RDD", run: testOperation(input,
			func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
				return dstream.UpdateStateByKeyWith(dstream.Map(s, pairOne), runningSum,
					dstream.StateOptions[string, int]{Initial: initial})
			},
			withInitial, unordered)},
		{name: "BasicOperationsSuite/updateStateByKey - testing time stamps as input", run: testOperation(input,
			func(s *dstream.Stream[string]) *dstream.Stream[kvsl] {
				pairs := dstream.Map(s, func(w string) dstream.KV[string, int] { return dstream.Pair(w, 1) })
				return dstream.UpdateStateByKeyWithTime(pairs,
					func(t time.Time, _ string, values []int, state int64, _ bool) (int64, bool) {
						// Update only if the key has values in the batch.
						if len(values) > 0 {
							return t.UnixMilli() + state, true
						}
						return state, true
					},
					dstream.StateOptions[string, int64]{Initial: map[string]int64{"a": 0, "c": 0}, Partitions: 2})
			},
			[][]kvsl{
				{{"a", 1000}, {"c", 0}},
				{{"a", 3000}, {"b", 2000}, {"c", 0}},
				{{"a", 6000}, {"b", 5000}, {"c", 3000}},
				{{"a", 10000}, {"b", 9000}, {"c", 3000}},
				{{"a", 15000}, {"b", 9000}, {"c", 3000}},
				{{"a", 15000}, {"b", 9000}, {"c", 3000}},
			}, unordered)},
		// Spark's iterator-form update with an explicit partitioner is the
		// same operator with a partition count here.
		{name: "BasicOperationsSuite/updateStateByKey - with initial value RDD", run: testOperation(input,
			func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
				return dstream.UpdateStateByKeyWith(dstream.Map(s, pairOne), runningSum,
					dstream.StateOptions[string, int]{Initial: initial}).Partitions(2)
			},
			withInitial, unordered)},
		{name: "BasicOperationsSuite/updateStateByKey - object lifecycle", run: testOperation(
			[][]string{{"a", "b"}, nil, {"a", "c", "a"}, {"c"}, nil, nil},
			func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
				// The state is dropped when seen without new values twice in a row.
				objects := dstream.UpdateStateByKey(dstream.Map(s, pairOne),
					func(values []int, obj stateObject, _ bool) (stateObject, bool) {
						n := 0
						for _, v := range values {
							n += v
						}
						if n == 0 {
							obj.ExpireCounter++
						} else {
							obj.Counter += n
							obj.ExpireCounter = 0
						}
						return obj, obj.ExpireCounter != 2
					})
				return dstream.MapValues(objects, func(o stateObject) int { return o.Counter })
			},
			[][]kvsi{
				{{"a", 1}, {"b", 1}},
				{{"a", 1}, {"b", 1}},
				{{"a", 3}, {"c", 1}},
				{{"a", 3}, {"c", 2}},
				{{"c", 2}},
				{},
			}, unordered)},
		{name: "values keep input order per partition, partitions in order", run: testOperation(
			[][]int{seq(1, 7), seq(8, 9), nil},
			func(s *dstream.Stream[int]) *dstream.Stream[dstream.KV[string, []int]] {
				pairs := dstream.Map(s, func(x int) dstream.KV[string, int] { return dstream.Pair(fmt.Sprint(x%2), x) })
				return dstream.UpdateStateByKey(pairs, func(values []int, seen []int, _ bool) ([]int, bool) {
					return append(seen, values...), true
				})
			},
			[][]dstream.KV[string, []int]{
				{{"0", []int{2, 4, 6}}, {"1", []int{1, 3, 5, 7}}},
				{{"0", []int{2, 4, 6, 8}}, {"1", []int{1, 3, 5, 7, 9}}},
				{{"0", []int{2, 4, 6, 8}}, {"1", []int{1, 3, 5, 7, 9}}},
			}, unordered)},
		{name: "one partition emits keys in ascending order", run: testOperation(
			[][]string{{"d", "b", "a", "c", "b"}, {"e"}},
			func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
				return dstream.UpdateStateByKey(dstream.Map(s, pairOne), runningSum).Partitions(1)
			},
			[][]kvsi{
				{{"a", 1}, {"b", 2}, {"c", 1}, {"d", 1}},
				{{"a", 1}, {"b", 2}, {"c", 1}, {"d", 1}, {"e", 1}},
			}, ordered)},
	})
}

// TestUpdateStateByKeyCallsEveryKey checks the calls themselves: one per key
// in state or with data, every batch, with no values for keys without data.
func TestUpdateStateByKeyCallsEveryKey(t *testing.T) {
	type call struct {
		Key    string
		Values int
		Exists bool
	}
	for _, p := range defaultParallelisms {
		t.Run(fmt.Sprintf("parallelism=%d", p), func(t *testing.T) {
			c := newTestContext(t, p)
			var calls [][]call
			pairs := dstream.Map(dstream.Queue(c, [][]string{{"a", "a"}, {"b"}, nil, {"c"}}), pairOne)
			st := dstream.UpdateStateByKeyWithTime(pairs, func(tm time.Time, key string, values []int, n int, exists bool) (int, bool) {
				i := int(tm.Sub(time.Unix(0, 0))/testBatch) - 1
				for len(calls) <= i {
					calls = append(calls, nil)
				}
				calls[i] = append(calls[i], call{key, len(values), exists})
				n += len(values)
				return n, key != "b" || len(values) > 0 // b goes when it has no data
			}, dstream.StateOptions[string, int]{Partitions: 1}) // one task: calls need no lock
			got := collect(st)
			require.NoError(t, c.RunBatches(t.Context(), 5))
			require.Equal(t, [][]call{
				{{"a", 2, false}},
				{{"a", 0, true}, {"b", 1, false}},
				{{"a", 0, true}, {"b", 0, true}},
				{{"a", 0, true}, {"c", 1, false}},
				{{"a", 0, true}, {"c", 0, true}},
			}, calls)
			verifyOutput(t, [][]kvsi{
				{{"a", 2}},
				{{"a", 2}, {"b", 1}},
				{{"a", 2}},
				{{"a", 2}, {"c", 1}},
				{{"a", 2}, {"c", 1}},
			}, *got, ordered)
		})
	}
}

func TestUpdateStateByKeyErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(c *engine.Context) *dstream.Stream[kvsi]
		want  []string
	}{
		{
			name: "negative partitions",
			build: func(c *engine.Context) *dstream.Stream[kvsi] {
				return dstream.UpdateStateByKeyWith(dstream.Map(dstream.Queue(c, [][]string{{"a"}}), pairOne), runningSum,
					dstream.StateOptions[string, int]{Partitions: -2})
			},
			want: []string{`operator "updateStateByKey-1"`, "Partitions -2"},
		},
		{
			name: "panic in update",
			build: func(c *engine.Context) *dstream.Stream[kvsi] {
				return dstream.UpdateStateByKey(dstream.Map(dstream.Queue(c, [][]string{{"a"}, {"a"}}), pairOne),
					func(values []int, n int, exists bool) (int, bool) {
						if len(values) > 0 && exists {
							panic("update failed")
						}
						return 0, true
					}).Name("totals")
			},
			want: []string{`operator "totals"`, "update failed"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestContext(t, 2)
			collect(tc.build(c))
			err := c.RunBatches(t.Context(), 3)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	require.PanicsWithValue(t, "dstream: UpdateStateByKey got a nil function", func() {
		c := newTestContext(t, 1)
		dstream.UpdateStateByKey[string, int, int](dstream.Map(dstream.Queue(c, [][]string{}), pairOne), nil)
	})
}

// ckptRun runs build over a queue of input in a manual-clock context with
// parallelism 2 and a checkpoint in dir (none when dir is empty) for n
// batches, closes the context, and returns what the output collected. With a
// checkpoint holding earlier batches, the run resumes after them.
func ckptRun[T, U any](t *testing.T, dir string, input [][]T, build func(*dstream.Stream[T]) *dstream.Stream[U], n int) []dstream.Batch[U] {
	t.Helper()
	opts := []engine.Option{engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(2)}
	if dir != "" {
		// Snapshots every other delta: restores read a snapshot and deltas.
		opts = append(opts, engine.WithCheckpoint(dir), engine.WithCheckpointOptions(engine.SnapshotEvery(2), engine.KeepCommits(3)))
	}
	c, err := engine.NewContext(testBatch, opts...)
	require.NoError(t, err)
	got := collect(build(dstream.Queue(c, input)))
	require.NoError(t, c.RunBatches(t.Context(), n))
	require.NoError(t, c.Close())
	return *got
}

// requireSameBatches checks that two runs emitted the same batches: the same
// times and, within each batch, the same elements in any order (partition
// counts may differ between the runs).
func requireSameBatches[U any](t *testing.T, want, got []dstream.Batch[U]) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Time, got[i].Time, "batch %d", i)
		require.ElementsMatch(t, slices.Collect(want[i].All()), slices.Collect(got[i].All()), "batch %d (%v ms)", i, want[i].Time.UnixMilli())
	}
}

// requireSnapshotsAndDeltas checks that the operator's checkpoint directory
// holds both kinds of state file.
func requireSnapshotsAndDeltas(t *testing.T, dir, op string) {
	t.Helper()
	entries, err := os.ReadDir(dir + "/state/" + op)
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, e := range entries {
		_, kind, _ := strings.Cut(e.Name(), ".")
		kinds[kind] = true
	}
	require.True(t, kinds["snapshot"] && kinds["delta"], "state files of %s: %v", op, entries)
}

// randomWords returns n batches of up to 12 words drawn from vocab words,
// the same for the same seed.
func randomWords(seed uint64, n, vocab int) [][]string {
	rng := rand.New(rand.NewPCG(seed, seed))
	in := make([][]string, n)
	for i := range in {
		for range rng.IntN(13) {
			in[i] = append(in[i], fmt.Sprintf("w%02d", rng.IntN(vocab)))
		}
	}
	return in
}

// decay is an update function that exercises every kind of change: keys
// with data add it, keys without data above 10 lose 1, and the others are
// removed when even and left as they are when odd.
func decay(values []int, n int, _ bool) (int, bool) {
	if len(values) > 0 {
		for _, v := range values {
			n += v
		}
		return n, true
	}
	switch {
	case n > 10:
		return n - 1, true
	case n%2 == 0:
		return n, false
	}
	return n, true
}

func TestUpdateStateByKeyCheckpointRoundTrip(t *testing.T) {
	input := randomWords(7, 30, 25)
	initial := map[string]int{"w00": 40, "zz": 3}
	build := func(parts int) func(*dstream.Stream[string]) *dstream.Stream[kvsi] {
		return func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
			return dstream.UpdateStateByKeyWith(dstream.Map(s, pairOne), decay,
				dstream.StateOptions[string, int]{Initial: initial, Partitions: parts})
		}
	}
	want := ckptRun(t, "", input, build(2), 30)

	tests := []struct {
		name  string
		parts []int // partition count of each run
		runs  []int // batches of each run
	}{
		{"same partitions", []int{2, 2}, []int{11, 19}},
		// The first checkpoint holds the initial state; no snapshot yet.
		{"restart after the first batch", []int{2, 2, 2}, []int{1, 1, 28}},
		{"partitions change between runs", []int{2, 3, 1}, []int{9, 10, 11}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var got []dstream.Batch[kvsi]
			for i, n := range tc.runs {
				got = append(got, ckptRun(t, dir, input, build(tc.parts[i]), n)...)
			}
			requireSnapshotsAndDeltas(t, dir, "updateStateByKey-1")
			requireSameBatches(t, want, got)
		})
	}
}

// wordKey is a key that is not a basic type: it hashes with a per-process
// seed and is ordered by its encoding, so its checkpoints restore through
// re-partitioning.
type wordKey struct {
	Word string
	Len  int
}

func TestUpdateStateByKeyCheckpointStructKeys(t *testing.T) {
	input := randomWords(11, 20, 15)
	type kvw = dstream.KV[wordKey, int]
	build := func(s *dstream.Stream[string]) *dstream.Stream[kvw] {
		pairs := dstream.Map(s, func(w string) kvw { return dstream.Pair(wordKey{w, len(w)}, 1) })
		return dstream.UpdateStateByKeyWith(pairs, decay,
			dstream.StateOptions[wordKey, int]{KeyCodec: state.JSON[wordKey](), StateCodec: state.Int()})
	}
	want := ckptRun(t, "", input, build, 20)
	dir := t.TempDir()
	got := ckptRun(t, dir, input, build, 8)
	got = append(got, ckptRun(t, dir, input, build, 7)...)
	got = append(got, ckptRun(t, dir, input, build, 5)...)
	requireSameBatches(t, want, got)
	require.NotEmpty(t, slices.Collect(got[len(got)-1].All()))
}

func TestUpdateStateByKeyCheckpointIgnoresInitialState(t *testing.T) {
	dir := t.TempDir()
	build := func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
		return dstream.UpdateStateByKeyWith(dstream.Map(s, pairOne), runningSum,
			dstream.StateOptions[string, int]{Initial: map[string]int{"a": 10}})
	}
	input := [][]string{{"a"}, {"a"}, {"b"}}
	first := ckptRun(t, dir, input, build, 2)
	second := ckptRun(t, dir, input, build, 1)
	verifyOutput(t, [][]kvsi{{{"a", 11}}, {{"a", 12}}, {{"a", 12}, {"b", 1}}}, append(first, second...), unordered)
}

// TestUpdateStateByKeyReadTwice checks that a stream read by two outputs
// sees one update per batch.
func TestUpdateStateByKeyReadTwice(t *testing.T) {
	c := newTestContext(t, 2)
	calls := 0
	st := dstream.UpdateStateByKeyWith(dstream.Map(dstream.Queue(c, [][]string{{"a", "b"}, {"a"}}), pairOne),
		func(values []int, n int, exists bool) (int, bool) {
			calls++
			return runningSum(values, n, exists)
		}, dstream.StateOptions[string, int]{Partitions: 1})
	a, b := collect(st), collect(dstream.Count(st))
	require.NoError(t, c.RunBatches(context.Background(), 2))
	require.Equal(t, 4, calls, "two keys in each of two batches")
	verifyOutput(t, [][]kvsi{{{"a", 1}, {"b", 1}}, {{"a", 2}, {"b", 1}}}, *a, ordered)
	verifyOutput(t, [][]int64{{2}, {2}}, *b, ordered)
}

// TestUpdateStateByKeyOverWindow checks that state over a windowed stream
// updates at the window's slide only, as Spark's StateDStream computes at
// the times its parent is valid.
func TestUpdateStateByKeyOverWindow(t *testing.T) {
	runCases(t, []opCase{{name: "every other batch", run: func(t *testing.T, p int) {
		c := newTestContext(t, p)
		words := dstream.Window(dstream.Queue(c, [][]string{{"a"}, {"b"}, {"a"}, {}, {}, {}}), 2*time.Second, 2*time.Second)
		totals := collect(dstream.UpdateStateByKey(dstream.Map(words, pairOne), runningSum))
		require.NoError(t, c.RunBatches(t.Context(), 6))
		verifyWindowed(t, [][]kvsi{{{"a", 1}, {"b", 1}}, {{"a", 2}, {"b", 1}}, {{"a", 2}, {"b", 1}}}, *totals, 2*time.Second, unordered)
	}}})
}

// TestInitialStateSurvivesRestartBeforeFirstUpdate stops a job after a
// batch at which the stateful operator's windowed parent emitted nothing,
// so the initial state was not applied yet and the checkpoint holds no
// state for the operator: the restarted job must still start from the
// initial state, as the uninterrupted one does.
func TestInitialStateSurvivesRestartBeforeFirstUpdate(t *testing.T) {
	input := [][]string{{"a"}, {"a", "b"}, {"b"}, {"a"}}
	windowed := func(s *dstream.Stream[string]) *dstream.Stream[dstream.KV[string, int]] {
		return dstream.Map(dstream.Window(s, 2*time.Second, 2*time.Second), pairOne)
	}
	initial := map[string]int{"a": 10, "z": 5}
	cases := []struct {
		name  string
		build func(*dstream.Stream[string]) *dstream.Stream[kvsi]
	}{
		{"UpdateStateByKey", func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
			return dstream.UpdateStateByKeyWith(windowed(s), runningSum, dstream.StateOptions[string, int]{Initial: initial})
		}},
		{"MapWithState", func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
			return dstream.MapWithState(windowed(s), dstream.NewSimpleStateSpec(runningCount).WithInitialState(initial)).StateSnapshots()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := ckptRun(t, "", input, tc.build, len(input))
			require.Len(t, want, 2)
			dir := t.TempDir()
			got := ckptRun(t, dir, input, tc.build, 1)
			require.Empty(t, got, "the window emits at even batches")
			got = append(got, ckptRun(t, dir, input, tc.build, len(input)-1)...)
			requireSameBatches(t, want, got)
		})
	}
}
