package window

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Cases ported from Spark's WindowOperationsSuite (streaming module). The
// suite's batch interval is one second; its window defaults are 2s and 1s.
// Batch k (k ≥ 1) at zero + k s holds input[k-1], and nothing once the input
// runs out; the test runs outputs × slide/batch batches and collects one
// output per emission.

type pair struct {
	k string
	v int
}

// sparkBatches calls add for every batch and emit at every emission time of
// spec, for as many batches as Spark's testOperation runs to get outputs
// outputs.
func sparkBatches[T any](t *testing.T, spec Spec, input [][]T, outputs int, add func(time.Time, []T), emit func(time.Time)) {
	t.Helper()
	require.NoError(t, spec.Validate())
	n := outputs * int(spec.Slide/spec.Parent)
	for k := 1; k <= n; k++ {
		now := zero.Add(time.Duration(k) * spec.Parent)
		var batch []T
		if k <= len(input) {
			batch = input[k-1]
		}
		add(now, batch)
		if spec.Emits(zero, now) {
			emit(now)
		}
	}
}

// reduceByKey sums a batch by key: the pane Spark's reduceByKeyAndWindow
// derives from each batch.
func reduceByKey(batch []pair) map[string]int {
	m := make(map[string]int)
	for _, p := range batch {
		m[p.k] += p.v
	}
	return m
}

func sum(a, b int) int { return a + b }
func sub(a, b int) int { return a - b }

func seconds(w, s int) Spec { return Spec{Window: sec(w), Slide: sec(s), Parent: sec(1)} }

var (
	largerSlideInput = [][]pair{
		{{"a", 1}},
		{{"a", 2}}, // 1st window from here
		{{"a", 3}},
		{{"a", 4}}, // 2nd window from here
		{{"a", 5}},
		{{"a", 6}}, // 3rd window from here
		{},
		{}, // 4th window from here
	}
	largerSlideReduceOutput = []map[string]int{{"a": 3}, {"a": 10}, {"a": 18}, {"a": 11}}

	bigInput = [][]pair{
		{{"a", 1}},
		{{"a", 1}, {"b", 1}},
		{{"a", 1}, {"b", 1}, {"c", 1}},
		{{"a", 1}, {"b", 1}},
		{{"a", 1}},
		{},
		{{"a", 1}},
		{{"a", 1}, {"b", 1}},
		{{"a", 1}, {"b", 1}, {"c", 1}},
		{{"a", 1}, {"b", 1}},
		{{"a", 1}},
		{},
	}
	bigReduceOutput = []map[string]int{
		{"a": 1},
		{"a": 2, "b": 1},
		{"a": 2, "b": 2, "c": 1},
		{"a": 2, "b": 2, "c": 1},
		{"a": 2, "b": 1},
		{"a": 1},
		{"a": 1},
		{"a": 2, "b": 1},
		{"a": 2, "b": 2, "c": 1},
		{"a": 2, "b": 2, "c": 1},
		{"a": 2, "b": 1},
		{"a": 1},
	}
	// With an inverse function and no filter, keys stay at 0 instead of
	// leaving the window.
	bigReduceInvOutput = []map[string]int{
		{"a": 1},
		{"a": 2, "b": 1},
		{"a": 2, "b": 2, "c": 1},
		{"a": 2, "b": 2, "c": 1},
		{"a": 2, "b": 1, "c": 0},
		{"a": 1, "b": 0, "c": 0},
		{"a": 1, "b": 0, "c": 0},
		{"a": 2, "b": 1, "c": 0},
		{"a": 2, "b": 2, "c": 1},
		{"a": 2, "b": 2, "c": 1},
		{"a": 2, "b": 1, "c": 0},
		{"a": 1, "b": 0, "c": 0},
	}
)

func TestSparkWindow(t *testing.T) {
	cases := []struct {
		name  string
		input [][]int
		want  [][]int
		spec  Spec
	}{
		{"window - basic window",
			[][]int{{0}, {1}, {2}, {3}, {4}, {5}},
			[][]int{{0}, {0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}}, seconds(2, 1)},
		{"window - tumbling window",
			[][]int{{0}, {1}, {2}, {3}, {4}, {5}},
			[][]int{{0, 1}, {2, 3}, {4, 5}}, seconds(2, 2)},
		{"window - larger window",
			[][]int{{0}, {1}, {2}, {3}, {4}, {5}},
			[][]int{{0, 1}, {0, 1, 2, 3}, {2, 3, 4, 5}, {4, 5}}, seconds(4, 2)},
		{"window - non-overlapping window",
			[][]int{{0}, {1}, {2}, {3}, {4}, {5}},
			[][]int{{1, 2}, {4, 5}}, seconds(2, 3)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b Buffer[int]
			var got [][]int
			sparkBatches(t, c.spec, c.input, len(c.want),
				func(now time.Time, batch []int) { b.Add(now, [][]int{batch}) },
				func(now time.Time) {
					var flat []int
					for _, part := range b.Window(c.spec, zero, now) {
						flat = append(flat, part...)
					}
					got = append(got, flat)
					require.LessOrEqual(t, b.Len(), int(c.spec.Window/c.spec.Parent), "batches held after an emission")
				})
			require.Equal(t, c.want, got)
		})
	}
}

func TestSparkReduceByKeyAndWindow(t *testing.T) {
	type testCase struct {
		name  string
		input [][]pair
		want  []map[string]int
		spec  Spec
	}
	// The cases Spark runs for both forms; only "big test" differs between
	// them (see bigReduceInvOutput).
	common := func(big []map[string]int, keyRemoved map[string]int) []testCase {
		return []testCase{
			{"basic reduction", [][]pair{{{"a", 1}, {"a", 3}}}, []map[string]int{{"a": 4}}, seconds(2, 1)},
			{"key already in window and new value added into window",
				[][]pair{{{"a", 1}}, {{"a", 1}}}, []map[string]int{{"a": 1}, {"a": 2}}, seconds(2, 1)},
			{"new key added into window",
				[][]pair{{{"a", 1}}, {{"a", 1}, {"b", 1}}}, []map[string]int{{"a": 1}, {"a": 2, "b": 1}}, seconds(2, 1)},
			{"key removed from window",
				[][]pair{{{"a", 1}}, {{"a", 1}}, {}, {}}, []map[string]int{{"a": 1}, {"a": 2}, {"a": 1}, keyRemoved}, seconds(2, 1)},
			{"larger slide time", largerSlideInput, largerSlideReduceOutput, seconds(4, 2)},
			{"big test", bigInput, big, seconds(2, 1)},
		}
	}

	for _, c := range common(bigReduceOutput, map[string]int{}) {
		t.Run("reduceByKeyAndWindow - "+c.name, func(t *testing.T) {
			var p Panes[string, int]
			var got []map[string]int
			sparkBatches(t, c.spec, c.input, len(c.want),
				func(now time.Time, batch []pair) { p.Add(now, reduceByKey(batch)) },
				func(now time.Time) { got = append(got, p.Window(c.spec, zero, now, sum)) })
			require.Equal(t, c.want, got)
		})
	}

	for _, c := range common(bigReduceInvOutput, map[string]int{"a": 0}) {
		t.Run("reduceByKeyAndWindow with inverse function - "+c.name, func(t *testing.T) {
			w := NewIncremental[string, int](sum, sub, nil)
			got := runIncremental(t, w, c.spec, c.input, len(c.want))
			require.Equal(t, c.want, got)
		})
	}

	t.Run("reduceByKeyAndWindow with inverse and filter functions - big test", func(t *testing.T) {
		w := NewIncremental(sum, sub, func(_ string, v int) bool { return v != 0 })
		got := runIncremental(t, w, seconds(2, 1), bigInput, len(bigReduceOutput))
		require.Equal(t, bigReduceOutput, got)
	})
}

func runIncremental(t *testing.T, w *Incremental[string, int], spec Spec, input [][]pair, outputs int) []map[string]int {
	t.Helper()
	var got []map[string]int
	sparkBatches(t, spec, input, outputs,
		func(now time.Time, batch []pair) { w.Add(now, reduceByKey(batch)) },
		func(now time.Time) {
			require.NoError(t, w.Step(spec, zero, now))
			out := make(map[string]int)
			for k, v := range w.All() {
				out[k] = v
			}
			got = append(got, out)
		})
	return got
}

func TestSparkGroupByKeyAndWindow(t *testing.T) {
	// Spark's "groupByKeyAndWindow" compares sets of values.
	want := []map[string][]int{
		{"a": {1}},
		{"a": {1}, "b": {1}},
		{"a": {1}, "b": {1}, "c": {1}},
		{"a": {1}, "b": {1}, "c": {1}},
		{"a": {1}, "b": {1}},
		{"a": {1}},
		{"a": {1}},
		{"a": {1}, "b": {1}},
		{"a": {1}, "b": {1}, "c": {1}},
		{"a": {1}, "b": {1}, "c": {1}},
		{"a": {1}, "b": {1}},
		{"a": {1}},
	}
	concat := func(a, b []int) []int { return append(slices.Clip(a), b...) }
	spec := seconds(2, 1)
	var p Panes[string, []int]
	var got []map[string][]int
	sparkBatches(t, spec, bigInput, len(want),
		func(now time.Time, batch []pair) {
			pane := make(map[string][]int)
			for _, kv := range batch {
				pane[kv.k] = append(pane[kv.k], kv.v)
			}
			p.Add(now, pane)
		},
		func(now time.Time) {
			out := p.Window(spec, zero, now, concat)
			for k, vs := range out {
				slices.Sort(vs)
				out[k] = slices.Compact(vs)
			}
			got = append(got, out)
		})
	require.Equal(t, want, got)
}

func TestSparkCountByWindow(t *testing.T) {
	t.Run("countByWindow", func(t *testing.T) {
		// Spark: map(_ => 1L).reduceByWindow(_ + _, _ - _, w, s), a single key
		// reduced with an inverse function, so an empty window counts 0.
		input := [][]int{{1}, {1}, {1, 2}, {0}, {}, {}}
		want := []int{1, 2, 3, 3, 1, 0}
		spec := seconds(2, 1)
		w := NewIncremental[struct{}, int](sum, sub, nil)
		var got []int
		sparkBatches(t, spec, input, len(want),
			func(now time.Time, batch []int) {
				var pane map[struct{}]int
				if len(batch) > 0 {
					pane = map[struct{}]int{{}: len(batch)}
				}
				w.Add(now, pane)
			},
			func(now time.Time) {
				require.NoError(t, w.Step(spec, zero, now))
				n, _ := w.Get(struct{}{})
				got = append(got, n)
			})
		require.Equal(t, want, got)
	})

	t.Run("countByValueAndWindow", func(t *testing.T) {
		// Spark: map((_, 1L)).reduceByKeyAndWindow(_ + _, _ - _, w, s, n, _._2 != 0).
		input := [][]string{{"a"}, {"b", "b"}, {"a", "b"}}
		want := []map[string]int{{"a": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 3}}
		spec := seconds(2, 1)
		w := NewIncremental(sum, sub, func(_ string, n int) bool { return n != 0 })
		var got []map[string]int
		sparkBatches(t, spec, input, len(want),
			func(now time.Time, batch []string) {
				pane := make(map[string]int)
				for _, v := range batch {
					pane[v]++
				}
				w.Add(now, pane)
			},
			func(now time.Time) {
				require.NoError(t, w.Step(spec, zero, now))
				out := make(map[string]int)
				for k, v := range w.All() {
					out[k] = v
				}
				got = append(got, out)
			})
		require.Equal(t, want, got)
	})
}
