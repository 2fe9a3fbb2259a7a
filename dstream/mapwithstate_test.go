package dstream_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// The cases named "MapWithStateSuite/…" port Spark's MapWithStateSuite
// (streaming/src/test/scala/org/apache/spark/streaming/MapWithStateSuite.scala),
// keeping Spark's names. Spark's Option[V] is Optional[V] here, its
// Option[U] results are (U, bool), and state.getOption.getOrElse(0) is
// state.Get() with the zero default. Not ported: "type inferencing and
// class tags" (Go's type inference is checked by the compiler) and
// "checkpoint durations" (Sluice checkpoints every batch, as a delta).

// runMapWithState is Spark's getOperationOutput: it pairs every input word
// with 1, maps the pairs with spec and collects the mapped stream and the
// state snapshots for numBatches batches.
func runMapWithState[S, U any](t *testing.T, parallelism int, input [][]string, spec dstream.StateSpec[string, int, S, U], numBatches int) ([]dstream.Batch[U], []dstream.Batch[dstream.KV[string, S]]) {
	t.Helper()
	c := newTestContext(t, parallelism)
	m := dstream.MapWithState(dstream.Map(dstream.Queue(c, input), pairOne), spec)
	out, snaps := collect(m.Stream), collect(m.StateSnapshots())
	require.NoError(t, c.RunBatches(t.Context(), numBatches))
	return *out, *snaps
}

// testMapWithState is Spark's testOperation of MapWithStateSuite: outputs
// and state snapshots compared per batch, in any order.
func testMapWithState[S, U any](input [][]string, spec dstream.StateSpec[string, int, S, U], outputs [][]U, states [][]dstream.KV[string, S]) func(*testing.T, int) {
	return func(t *testing.T, parallelism int) {
		require.Len(t, states, len(outputs))
		out, snaps := runMapWithState(t, parallelism, input, spec, len(outputs))
		verifyOutput(t, outputs, out, unordered)
		verifyOutput(t, states, snaps, unordered)
	}
}

// runningCount is the mapping function of Spark's "basic operations" cases:
// the state keeps a running count, which is returned.
func runningCount(key string, value dstream.Optional[int], state *dstream.State[int]) int {
	n, _ := state.Get()
	n += value.Value
	state.Update(n)
	return n
}

func TestMapWithState(t *testing.T) {
	input := [][]string{{}, {"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b"}, {"a"}, {}}
	states := [][]kvsi{
		{},
		{{"a", 1}},
		{{"a", 2}, {"b", 1}},
		{{"a", 3}, {"b", 2}, {"c", 1}},
		{{"a", 4}, {"b", 3}, {"c", 1}},
		{{"a", 5}, {"b", 3}, {"c", 1}},
		{{"a", 5}, {"b", 3}, {"c", 1}},
	}

	runCases(t, []opCase{
		{name: "MapWithStateSuite/mapWithState - basic operations with simple API", run: testMapWithState(input,
			dstream.NewSimpleStateSpec(runningCount),
			[][]int{{}, {1}, {2, 1}, {3, 2, 1}, {4, 3}, {5}, {}},
			states)},
		{name: "MapWithStateSuite/mapWithState - basic operations with advanced API", run: testMapWithState(input,
			dstream.NewStateSpec(func(_ time.Time, key string, value dstream.Optional[int], state *dstream.State[int]) (string, bool) {
				runningCount(key, value, state)
				return strings.Repeat(key, 2), true
			}),
			[][]string{{}, {"aa"}, {"aa", "bb"}, {"aa", "bb", "cc"}, {"aa", "bb"}, {"aa"}, {}},
			states)},
		{name: "MapWithStateSuite/mapWithState - states as mapped data", run: testMapWithState(input,
			dstream.NewStateSpec(func(_ time.Time, key string, value dstream.Optional[int], state *dstream.State[int]) (kvsi, bool) {
				return dstream.Pair(key, runningCount(key, value, state)), true
			}),
			[][]kvsi{{}, {{"a", 1}}, {{"a", 2}, {"b", 1}}, {{"a", 3}, {"b", 2}, {"c", 1}}, {{"a", 4}, {"b", 3}}, {{"a", 5}}, {}},
			states)},
		{name: "MapWithStateSuite/mapWithState - initial states, with nothing returned as from mapping function", run: testMapWithState(input,
			dstream.NewStateSpec(func(_ time.Time, key string, value dstream.Optional[int], state *dstream.State[int]) (int, bool) {
				runningCount(key, value, state)
				return 0, false
			}).WithInitialState(map[string]int{"a": 5, "b": 10, "c": -20, "d": 0}),
			make([][]int, len(input)),
			[][]kvsi{
				{{"a", 5}, {"b", 10}, {"c", -20}, {"d", 0}},
				{{"a", 6}, {"b", 10}, {"c", -20}, {"d", 0}},
				{{"a", 7}, {"b", 11}, {"c", -20}, {"d", 0}},
				{{"a", 8}, {"b", 12}, {"c", -19}, {"d", 0}},
				{{"a", 9}, {"b", 13}, {"c", -19}, {"d", 0}},
				{{"a", 10}, {"b", 13}, {"c", -19}, {"d", 0}},
				{{"a", 10}, {"b", 13}, {"c", -19}, {"d", 0}},
			})},
		{name: "MapWithStateSuite/mapWithState - state removing", run: testMapWithState(
			[][]string{{}, {"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b", "c"}, {"a", "b"}, {"a"}, {}},
			dstream.NewStateSpec(func(_ time.Time, key string, value dstream.Optional[int], state *dstream.State[int]) (string, bool) {
				if state.Exists() {
					state.Remove()
					return key, true
				}
				state.Update(value.Value)
				return "", false
			}).WithPartitions(1),
			[][]string{{}, {}, {"a"}, {"b"}, {"a", "c"}, {"b"}, {"a"}, {}},
			[][]kvsi{{}, {{"a", 1}}, {{"b", 1}}, {{"a", 1}, {"c", 1}}, {{"b", 1}}, {{"a", 1}}, {}, {}})},
		{name: "MapWithStateSuite/mapWithState - state timing out", run: func(t *testing.T, p int) {
			input := append([][]string{{"a", "b", "c"}, {"a", "b"}, {"a"}, {}, {}, {"a"}}, slices.Repeat([][]string{{"a"}}, 20)...)
			out, snaps := runMapWithState(t, p, input, dstream.NewStateSpec(idleReporter).WithTimeout(3*time.Second), 20)
			var all []string
			for _, b := range out {
				all = append(all, slices.Collect(b.All())...)
			}
			slices.Sort(all)
			require.Equal(t, []string{"b", "c"}, all, "b and c are returned once each, when they time out")
			require.True(t, slices.ContainsFunc(snaps, func(b dstream.Batch[kvsi]) bool {
				return sameElements(slices.Collect(b.All()), []kvsi{{"a", 1}, {"b", 1}, {"c", 1}})
			}), "a, b and c have state at one time")
			require.ElementsMatch(t, []kvsi{{"a", 1}}, slices.Collect(snaps[len(snaps)-1].All()), "finally only a has state")
		}},
		// Spark only looks for timeouts when it checkpoints the state;
		// Sluice does every batch: a key last updated at t times out at the
		// first batch after t + timeout.
		{name: "timeouts fire at the first batch past the timeout", run: testMapWithState(
			[][]string{{"a", "b", "c"}, {"a", "b"}, {"a"}, {}, {}, {"a"}, {}},
			dstream.NewStateSpec(idleReporter).WithTimeout(3*time.Second),
			[][]string{{}, {}, {}, {}, {"c"}, {"b"}, {}},
			[][]kvsi{
				{{"a", 1}, {"b", 1}, {"c", 1}},
				{{"a", 1}, {"b", 1}, {"c", 1}},
				{{"a", 1}, {"b", 1}, {"c", 1}},
				{{"a", 1}, {"b", 1}, {"c", 1}},
				{{"a", 1}, {"b", 1}},
				{{"a", 1}},
				{{"a", 1}},
			})},
		{name: "initial states time out from the first batch", run: testMapWithState(
			[][]string{{}, {}, {"x"}},
			dstream.NewStateSpec(idleReporter).WithTimeout(time.Second).WithInitialState(map[string]int{"x": 7, "y": 8}),
			[][]string{{}, {}, {"y"}},
			[][]kvsi{{{"x", 7}, {"y", 8}}, {{"x", 7}, {"y", 8}}, {{"x", 1}}})},
		{name: "records of a key are mapped in input order", run: testMapWithState(
			[][]string{{"k", "k", "k"}, {"k"}},
			dstream.NewSimpleStateSpec(func(key string, value dstream.Optional[int], state *dstream.State[int]) []int {
				n, _ := state.Get()
				state.Update(n + 1)
				return []int{n + 1}
			}),
			[][][]int{{{1}, {2}, {3}}, {{4}}},
			[][]kvsi{{{"k", 3}}, {{"k", 4}}})},
	})
}

// idleReporter is the mapping function of Spark's "state timing out":
// records set the state to 1, and a timing-out key returns itself.
func idleReporter(_ time.Time, key string, value dstream.Optional[int], state *dstream.State[int]) (string, bool) {
	if value.Valid {
		state.Update(1)
	}
	return key, state.IsTimingOut()
}

func sameElements[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	count := make(map[T]int)
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		count[x]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

// observation is what a mapping function saw of its state.
type observation struct {
	Batch        int
	Value        dstream.Optional[int]
	Exists       bool
	Get          int
	GetOK        bool
	TimingOut    bool
	UpdatePanics bool
	RemovePanics bool
	String       string
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}

func TestState(t *testing.T) {
	observe := func(batch int, value dstream.Optional[int], s *dstream.State[int]) observation {
		v, ok := s.Get()
		return observation{Batch: batch, Value: value, Exists: s.Exists(), Get: v, GetOK: ok, TimingOut: s.IsTimingOut(), String: s.String()}
	}

	// Spark's case drives StateImpl directly; its wrap and
	// wrapTimingOutState steps are what MapWithState does before each call,
	// so they are checked through the operator below.
	t.Run("MapWithStateSuite/state - get, exists, update, remove, ", func(t *testing.T) {
		var s dstream.State[int]
		require.Equal(t, observation{String: "<state not set>"}, observe(0, dstream.Optional[int]{}, &s))
		s.Update(2)
		require.Equal(t, observation{Exists: true, Get: 2, GetOK: true, String: "2"}, observe(0, dstream.Optional[int]{}, &s))

		var r dstream.State[int]
		r.Update(2)
		r.Remove()
		require.Equal(t, observation{String: "<state not set>"}, observe(0, dstream.Optional[int]{}, &r))
		require.PanicsWithValue(t, "dstream: State.Remove called twice in the same call", r.Remove)
		require.PanicsWithValue(t, "dstream: State.Update after State.Remove in the same call; a removed state cannot be updated",
			func() { r.Update(-1) })
	})

	t.Run("wrapped and timing-out states", func(t *testing.T) {
		var seen []observation // one partition: calls come one at a time
		c := newTestContext(t, 2)
		m := dstream.MapWithState(dstream.Map(dstream.Queue(c, [][]string{{"a"}, {"a"}, {}}), pairOne),
			dstream.NewStateSpec(func(tm time.Time, _ string, value dstream.Optional[int], s *dstream.State[int]) (int, bool) {
				o := observe(int(tm.Unix()), value, s)
				if s.IsTimingOut() {
					o.UpdatePanics = panics(func() { s.Update(-1) })
					o.RemovePanics = panics(s.Remove)
				} else {
					n, _ := s.Get()
					s.Update(n + 1)
				}
				seen = append(seen, o)
				return 0, false
			}).WithTimeout(time.Second).WithPartitions(1))
		collect(m.Stream)
		require.NoError(t, c.RunBatches(t.Context(), 4))
		require.Equal(t, []observation{
			{Batch: 1, Value: dstream.Some(1), String: "<state not set>"},
			{Batch: 2, Value: dstream.Some(1), Exists: true, Get: 1, GetOK: true, String: "1"},
			{Batch: 4, Exists: true, Get: 2, GetOK: true, TimingOut: true, UpdatePanics: true, RemovePanics: true, String: "2"},
		}, seen)
	})
}

// TestMapWithStateTouchesOnlyKeysWithData checks that a batch calls the
// function once per record, whatever the size of the state.
func TestMapWithStateTouchesOnlyKeysWithData(t *testing.T) {
	initial := make(map[string]int)
	for i := range 1000 {
		initial[fmt.Sprintf("k%03d", i)] = i
	}
	c := newTestContext(t, 1)
	calls := 0
	m := dstream.MapWithState(dstream.Map(dstream.Queue(c, [][]string{{"k001", "k002", "k001"}, {}, {"new"}}), pairOne),
		dstream.NewSimpleStateSpec(func(key string, value dstream.Optional[int], s *dstream.State[int]) int {
			calls++
			return runningCount(key, value, s)
		}).WithInitialState(initial))
	out := collect(m.Stream)
	counts := collect(dstream.Count(m.StateSnapshots()))
	require.NoError(t, c.RunBatches(t.Context(), 3))
	require.Equal(t, 4, calls)
	verifyOutput(t, [][]int{{2, 3, 3}, {}, {1}}, *out, ordered)
	verifyOutput(t, [][]int64{{1000}, {1000}, {1001}}, *counts, ordered)
}

func TestMapWithStateErrors(t *testing.T) {
	tests := []struct {
		name  string
		spec  dstream.StateSpec[string, int, int, int]
		input [][]string
		want  []string
	}{
		{
			name:  "negative timeout",
			spec:  dstream.NewSimpleStateSpec(runningCount).WithTimeout(-time.Second),
			input: [][]string{{"a"}},
			want:  []string{`operator "mapWithState-1"`, "timeout -1s"},
		},
		{
			name:  "negative partitions",
			spec:  dstream.NewSimpleStateSpec(runningCount).WithPartitions(-1),
			input: [][]string{{"a"}},
			want:  []string{`operator "mapWithState-1"`, "partitions -1"},
		},
		{
			name: "update of a timing-out state",
			spec: dstream.NewSimpleStateSpec(func(key string, value dstream.Optional[int], s *dstream.State[int]) int {
				s.Update(1)
				return 0
			}).WithTimeout(time.Second),
			input: [][]string{{"a"}},
			want:  []string{`operator "mapWithState-1"`, "State.Update on a state that is timing out"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestContext(t, 2)
			collect(dstream.MapWithState(dstream.Map(dstream.Queue(c, tc.input), pairOne), tc.spec).Stream)
			err := c.RunBatches(t.Context(), 4)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	require.PanicsWithValue(t, "dstream: MapWithState (make the spec with NewStateSpec) got a nil function", func() {
		c := newTestContext(t, 1)
		dstream.MapWithState(dstream.Map(dstream.Queue(c, [][]string{}), pairOne), dstream.StateSpec[string, int, int, int]{})
	})
}

func TestMapWithStateCheckpoint(t *testing.T) {
	// Spark's testCheckpointedOperation runs the first half of the batches,
	// stops, and restarts from the checkpoint for the rest.
	t.Run("MapWithStateSuite/mapWithState - driver failure recovery", func(t *testing.T) {
		input := [][]string{{}, {"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b"}, {"a"}, {}}
		build := func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
			return dstream.MapWithState(dstream.Map(s, pairOne), dstream.NewSimpleStateSpec(runningCount)).StateSnapshots()
		}
		dir := t.TempDir()
		got := ckptRun(t, dir, input, build, len(input)/2)
		got = append(got, ckptRun(t, dir, input, build, len(input)-len(input)/2)...)
		verifyOutput(t, [][]kvsi{
			{},
			{{"a", 1}},
			{{"a", 2}, {"b", 1}},
			{{"a", 3}, {"b", 2}, {"c", 1}},
			{{"a", 4}, {"b", 3}, {"c", 1}},
			{{"a", 5}, {"b", 3}, {"c", 1}},
			{{"a", 5}, {"b", 3}, {"c", 1}},
		}, got, unordered)
	})

	// With timeouts, an interrupted run emits what an uninterrupted one does:
	// the mapped elements, timing-out calls included, and the states.
	t.Run("timeouts across restarts", func(t *testing.T) {
		input := randomWords(3, 30, 20)
		for i := range input {
			input[i] = input[i][:min(len(input[i]), 4)] // sparse: keys go idle
		}
		build := func(parts int) func(*dstream.Stream[string]) *dstream.Stream[string] {
			return func(s *dstream.Stream[string]) *dstream.Stream[string] {
				m := dstream.MapWithState(dstream.Map(s, pairOne),
					dstream.NewStateSpec(func(tm time.Time, key string, value dstream.Optional[int], st *dstream.State[int]) (string, bool) {
						n, _ := st.Get()
						if st.IsTimingOut() {
							return fmt.Sprintf("timeout %s=%d", key, n), true
						}
						st.Update(n + value.Value)
						if n+value.Value == 3 {
							st.Remove() // a third record starts the key over
						}
						return fmt.Sprintf("%s=%d", key, n+value.Value), true
					}).WithTimeout(3*time.Second).WithInitialState(map[string]int{"w01": 1, "init": 5}).WithPartitions(parts))
				states := dstream.Map(m.StateSnapshots(), func(kv kvsi) string { return "state " + kv.String() })
				return dstream.Union(m.Stream, states)
			}
		}
		want := ckptRun(t, "", input, build(2), 30)
		var timeouts int
		for _, b := range want {
			for x := range b.All() {
				if strings.HasPrefix(x, "timeout ") {
					timeouts++
				}
			}
		}
		require.Greater(t, timeouts, 5, "the input makes keys time out")

		dir := t.TempDir()
		var got []dstream.Batch[string]
		for i, parts := range []int{2, 3, 1} {
			got = append(got, ckptRun(t, dir, input, build(parts), []int{10, 12, 8}[i])...)
			requireSnapshotsAndDeltas(t, dir, "mapWithState-1")
		}
		requireSameBatches(t, want, got)
	})
}

// TestMapWithStateStreams checks the streams' plumbing: StateSnapshots
// returns one stream, and naming the mapped stream names the operator.
func TestMapWithStateStreams(t *testing.T) {
	c := newTestContext(t, 2)
	m := dstream.MapWithState(dstream.Map(dstream.Queue(c, [][]string{{"a"}}), pairOne), dstream.NewSimpleStateSpec(runningCount))
	require.Same(t, m.StateSnapshots(), m.StateSnapshots())
	m.Name("counts")
	require.Equal(t, "counts", m.Node().Meta().Name())
	var kinds []string
	for _, n := range c.Nodes() {
		kinds = append(kinds, n.Meta().Kind)
	}
	require.Equal(t, []string{"queue", "map", "mapWithState", "stateSnapshots"}, kinds)
	_ = engine.Node(m.Node())
}
