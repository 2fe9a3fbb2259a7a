package dstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/window"
)

// The cases below port Spark's WindowOperationsSuite
// (streaming/src/test/scala/org/apache/spark/streaming/WindowOperationsSuite.scala),
// keeping its test names, input and expected output, and its batch (1 s),
// window and slide durations; as in Spark's testOperation, a case runs
// len(expected) × slide/batch batches and compares each emitted window.
// The reduceByWindow cases come from Spark's JavaAPISuite, which is where
// Spark tests that operator. Spark's "window - persistence level" checks
// RDD storage levels, which Sluice does not have; its checkpoint-interval
// settings (.checkpoint(Seconds(100))) likewise have no counterpart. The
// checkpoint tests here instead stop a job, restore it from its checkpoint
// and compare with a run that was never interrupted.

type winKV = dstream.KV[string, int]

func winAdd(a, b int) int { return a + b }
func winSub(a, b int) int { return a - b }

// winSeconds returns n seconds.
func winSeconds(n int) time.Duration { return time.Duration(n) * time.Second }

// testWindowOperation returns a case body in the shape of Spark's
// testOperation(input, operation, expectedOutput, numBatches, useSet) with
// numBatches = len(expected) × slide / batch.
func testWindowOperation[T, U any](input [][]T, operation func(*dstream.Stream[T]) *dstream.Stream[U], expected [][]U, slide time.Duration, o order) func(*testing.T, int) {
	return func(t *testing.T, parallelism int) {
		got, err := runOperation(t, parallelism, input, operation, len(expected)*int(slide/testBatch))
		require.NoError(t, err)
		verifyWindowed(t, expected, got, slide, o)
	}
}

func winPairs(pairs ...any) []winKV {
	out := make([]winKV, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, dstream.Pair(pairs[i].(string), pairs[i+1].(int)))
	}
	return out
}

var (
	largerSlideInput = [][]winKV{
		winPairs("a", 1),
		winPairs("a", 2), // 1st window from here
		winPairs("a", 3),
		winPairs("a", 4), // 2nd window from here
		winPairs("a", 5),
		winPairs("a", 6), // 3rd window from here
		{},
		{}, // 4th window from here
	}
	largerSlideReduceOutput = [][]winKV{
		winPairs("a", 3),
		winPairs("a", 10),
		winPairs("a", 18),
		winPairs("a", 11),
	}
	bigInput = [][]winKV{
		winPairs("a", 1),
		winPairs("a", 1, "b", 1),
		winPairs("a", 1, "b", 1, "c", 1),
		winPairs("a", 1, "b", 1),
		winPairs("a", 1),
		{},
		winPairs("a", 1),
		winPairs("a", 1, "b", 1),
		winPairs("a", 1, "b", 1, "c", 1),
		winPairs("a", 1, "b", 1),
		winPairs("a", 1),
		{},
	}
	bigGroupByOutput = [][]dstream.KV[string, []int]{
		{{"a", []int{1}}},
		{{"a", []int{1, 1}}, {"b", []int{1}}},
		{{"a", []int{1, 1}}, {"b", []int{1, 1}}, {"c", []int{1}}},
		{{"a", []int{1, 1}}, {"b", []int{1, 1}}, {"c", []int{1}}},
		{{"a", []int{1, 1}}, {"b", []int{1}}},
		{{"a", []int{1}}},
		{{"a", []int{1}}},
		{{"a", []int{1, 1}}, {"b", []int{1}}},
		{{"a", []int{1, 1}}, {"b", []int{1, 1}}, {"c", []int{1}}},
		{{"a", []int{1, 1}}, {"b", []int{1, 1}}, {"c", []int{1}}},
		{{"a", []int{1, 1}}, {"b", []int{1}}},
		{{"a", []int{1}}},
	}
	bigReduceOutput = [][]winKV{
		winPairs("a", 1),
		winPairs("a", 2, "b", 1),
		winPairs("a", 2, "b", 2, "c", 1),
		winPairs("a", 2, "b", 2, "c", 1),
		winPairs("a", 2, "b", 1),
		winPairs("a", 1),
		winPairs("a", 1),
		winPairs("a", 2, "b", 1),
		winPairs("a", 2, "b", 2, "c", 1),
		winPairs("a", 2, "b", 2, "c", 1),
		winPairs("a", 2, "b", 1),
		winPairs("a", 1),
	}
	// With an inverse function but no filter, keys stay at 0 once their
	// values have left the window.
	bigReduceInvOutput = [][]winKV{
		winPairs("a", 1),
		winPairs("a", 2, "b", 1),
		winPairs("a", 2, "b", 2, "c", 1),
		winPairs("a", 2, "b", 2, "c", 1),
		winPairs("a", 2, "b", 1, "c", 0),
		winPairs("a", 1, "b", 0, "c", 0),
		winPairs("a", 1, "b", 0, "c", 0),
		winPairs("a", 2, "b", 1, "c", 0),
		winPairs("a", 2, "b", 2, "c", 1),
		winPairs("a", 2, "b", 2, "c", 1),
		winPairs("a", 2, "b", 1, "c", 0),
		winPairs("a", 1, "b", 0, "c", 0),
	}
)

func TestWindowOperationsSuite(t *testing.T) {
	seq6 := [][]int{{0}, {1}, {2}, {3}, {4}, {5}}
	window := func(w, s int) func(*dstream.Stream[int]) *dstream.Stream[int] {
		return func(st *dstream.Stream[int]) *dstream.Stream[int] {
			return dstream.Window(st, winSeconds(w), winSeconds(s))
		}
	}
	cases := []opCase{
		// testWindow: window 2 s and slide 1 s unless given.
		{name: "window - basic window", run: testWindowOperation(seq6, window(2, 1),
			[][]int{{0}, {0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}}, winSeconds(1), ordered)},
		{name: "window - tumbling window", run: testWindowOperation(seq6, window(2, 2),
			[][]int{{0, 1}, {2, 3}, {4, 5}}, winSeconds(2), ordered)},
		{name: "window - larger window", run: testWindowOperation(seq6, window(4, 2),
			[][]int{{0, 1}, {0, 1, 2, 3}, {2, 3, 4, 5}, {4, 5}}, winSeconds(2), ordered)},
		{name: "window - non-overlapping window", run: testWindowOperation(seq6, window(2, 3),
			[][]int{{1, 2}, {4, 5}}, winSeconds(3), ordered)},
		// JavaAPISuite's window cases.
		{name: "JavaAPISuite testWindow", run: testWindowOperation([][]int{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}},
			window(2, 1), [][]int{{1, 2, 3}, {4, 5, 6, 1, 2, 3}, {7, 8, 9, 4, 5, 6}, {7, 8, 9}}, winSeconds(1), unordered)},
		{name: "JavaAPISuite testWindowWithSlideDuration", run: testWindowOperation(
			[][]int{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}, {13, 14, 15}, {16, 17, 18}}, window(4, 2),
			[][]int{{1, 2, 3, 4, 5, 6}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}, {13, 14, 15, 16, 17, 18}},
			winSeconds(2), ordered)},
	}

	// The reduceByKeyAndWindow cases, run without an inverse function, with
	// one, and with one and a filter; only the outputs of "key removed from
	// window" and "big test" differ between the forms.
	type reduceCase struct {
		name          string
		input         [][]winKV
		plain, inv    [][]winKV
		window, slide int
	}
	reduceCases := []reduceCase{
		{"basic reduction", [][]winKV{winPairs("a", 1, "a", 3)}, [][]winKV{winPairs("a", 4)}, nil, 2, 1},
		{"key already in window and new value added into window", [][]winKV{winPairs("a", 1), winPairs("a", 1)},
			[][]winKV{winPairs("a", 1), winPairs("a", 2)}, nil, 2, 1},
		{"new key added into window", [][]winKV{winPairs("a", 1), winPairs("a", 1, "b", 1)},
			[][]winKV{winPairs("a", 1), winPairs("a", 2, "b", 1)}, nil, 2, 1},
		{"key removed from window", [][]winKV{winPairs("a", 1), winPairs("a", 1), {}, {}},
			[][]winKV{winPairs("a", 1), winPairs("a", 2), winPairs("a", 1), {}},
			[][]winKV{winPairs("a", 1), winPairs("a", 2), winPairs("a", 1), winPairs("a", 0)}, 2, 1},
		{"larger slide time", largerSlideInput, largerSlideReduceOutput, nil, 4, 2},
		{"big test", bigInput, bigReduceOutput, bigReduceInvOutput, 2, 1},
	}
	for _, rc := range reduceCases {
		w, s := winSeconds(rc.window), winSeconds(rc.slide)
		inv := rc.inv
		if inv == nil {
			inv = rc.plain
		}
		cases = append(cases,
			opCase{name: "reduceByKeyAndWindow - " + rc.name, run: testWindowOperation(rc.input,
				func(st *dstream.Stream[winKV]) *dstream.Stream[winKV] {
					return dstream.ReduceByKeyAndWindow(st, winAdd, w, s)
				}, rc.plain, s, unordered)},
			opCase{name: "reduceByKeyAndWindow with inverse function - " + rc.name, run: testWindowOperation(rc.input,
				func(st *dstream.Stream[winKV]) *dstream.Stream[winKV] {
					return dstream.ReduceByKeyAndWindowInv(st, winAdd, winSub, w, s, nil)
				}, inv, s, unordered)})
	}
	nonZero := func(kv winKV) bool { return kv.Value != 0 }
	cases = append(cases,
		opCase{name: "reduceByKeyAndWindow with inverse and filter functions - big test", run: testWindowOperation(bigInput,
			func(st *dstream.Stream[winKV]) *dstream.Stream[winKV] {
				return dstream.ReduceByKeyAndWindowInv(st, winAdd, winSub, winSeconds(2), winSeconds(1), nonZero)
			}, bigReduceOutput, winSeconds(1), unordered)},
		opCase{name: "groupByKeyAndWindow", run: testWindowOperation(bigInput,
			func(st *dstream.Stream[winKV]) *dstream.Stream[dstream.KV[string, []int]] {
				return dstream.GroupByKeyAndWindow(st, winSeconds(2), winSeconds(1))
			}, bigGroupByOutput, winSeconds(1), unordered)},
		opCase{name: "countByWindow", run: testWindowOperation([][]int{{1}, {1}, {1, 2}, {0}, {}, {}},
			func(st *dstream.Stream[int]) *dstream.Stream[int64] {
				return dstream.CountByWindow(st, winSeconds(2), winSeconds(1))
			}, [][]int64{{1}, {2}, {3}, {3}, {1}, {0}}, winSeconds(1), unordered)},
		opCase{name: "countByValueAndWindow", run: testWindowOperation([][]string{{"a"}, {"b", "b"}, {"a", "b"}},
			func(st *dstream.Stream[string]) *dstream.Stream[dstream.KV[string, int64]] {
				return dstream.CountByValueAndWindow(st, winSeconds(2), winSeconds(1))
			}, [][]dstream.KV[string, int64]{{{"a", 1}}, {{"a", 1}, {"b", 2}}, {{"a", 1}, {"b", 3}}}, winSeconds(1), unordered)},
	)

	// JavaAPISuite's testReduceByWindow, with and without the inverse.
	reduceByWindowIn := [][]int{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}
	reduceByWindowOut := [][]int{{6}, {21}, {39}, {24}}
	cases = append(cases,
		opCase{name: "JavaAPISuite testReduceByWindowWithInverse", run: testWindowOperation(reduceByWindowIn,
			func(st *dstream.Stream[int]) *dstream.Stream[int] {
				return dstream.ReduceByWindowInv(st, winAdd, winSub, winSeconds(2), winSeconds(1))
			}, reduceByWindowOut, winSeconds(1), ordered)},
		opCase{name: "JavaAPISuite testReduceByWindowWithoutInverse", run: testWindowOperation(reduceByWindowIn,
			func(st *dstream.Stream[int]) *dstream.Stream[int] {
				return dstream.ReduceByWindow(st, winAdd, winSeconds(2), winSeconds(1))
			}, reduceByWindowOut, winSeconds(1), ordered)},
	)
	runCases(t, cases)
}

// TestWindowEdges covers what Spark's suite leaves out: windows over a
// windowed stream, empty windows of the non-inverse forms, and the
// incremental forms before any data.
func TestWindowEdges(t *testing.T) {
	cases := []opCase{
		{name: "window of a window", run: testWindowOperation([][]int{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}},
			func(s *dstream.Stream[int]) *dstream.Stream[int] {
				return dstream.Window(dstream.Window(s, winSeconds(2), winSeconds(2)), winSeconds(4), winSeconds(2))
			}, [][]int{{1, 2}, {1, 2, 3, 4}, {3, 4, 5, 6}, {5, 6, 7, 8}}, winSeconds(2), ordered)},
		{name: "reduce by key over a windowed stream", run: testWindowOperation(largerSlideInput,
			func(s *dstream.Stream[winKV]) *dstream.Stream[winKV] {
				return dstream.ReduceByKeyAndWindowInv(dstream.Window(s, winSeconds(2), winSeconds(2)), winAdd, winSub, winSeconds(4), winSeconds(4), nil)
			}, [][]winKV{winPairs("a", 10), winPairs("a", 11)}, winSeconds(4), unordered)},
		{name: "slide larger than window, incremental", run: testWindowOperation(largerSlideInput,
			func(s *dstream.Stream[winKV]) *dstream.Stream[winKV] {
				return dstream.ReduceByKeyAndWindowInv(s, winAdd, winSub, winSeconds(1), winSeconds(3), nil)
			}, [][]winKV{winPairs("a", 3), winPairs("a", 6)}, winSeconds(3), unordered)},
		{name: "empty windows emit empty batches", run: testWindowOperation([][]winKV{{}, winPairs("a", 1), {}, {}},
			func(s *dstream.Stream[winKV]) *dstream.Stream[winKV] {
				return dstream.ReduceByKeyAndWindow(s, winAdd, winSeconds(1), winSeconds(1))
			}, [][]winKV{{}, winPairs("a", 1), {}, {}}, winSeconds(1), unordered)},
		{name: "countByWindow emits nothing before the first element", run: testWindowOperation([][]int{{}, {}, {7}},
			func(s *dstream.Stream[int]) *dstream.Stream[int64] {
				return dstream.CountByWindow(s, winSeconds(2), winSeconds(1))
			}, [][]int64{{}, {}, {1}, {1}, {0}}, winSeconds(1), ordered)},
		{name: "reduceByWindow without inverse drops empty windows", run: testWindowOperation([][]int{{}, {2}, {}, {}},
			func(s *dstream.Stream[int]) *dstream.Stream[int] {
				return dstream.ReduceByWindow(s, winAdd, winSeconds(2), winSeconds(1))
			}, [][]int{{}, {2}, {2}, {}}, winSeconds(1), ordered)},
	}
	runCases(t, cases)
}

// TestIncrementalMatchesRecomputation checks, over random input and
// several windows, that the incremental form with a "non-zero" filter equals
// the form that recombines the window, and that GroupByKeyAndWindow's groups
// sum to it.
func TestIncrementalMatchesRecomputation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	input := make([][]winKV, 40)
	for i := range input {
		for range rng.IntN(8) {
			input[i] = append(input[i], dstream.Pair(string(rune('a'+rng.IntN(6))), 1+rng.IntN(5)))
		}
	}
	specs := []struct{ window, slide int }{{1, 1}, {3, 1}, {4, 2}, {6, 3}, {2, 3}, {10, 5}}
	for _, sp := range specs {
		for _, par := range []int{1, 3} {
			t.Run(fmt.Sprintf("window=%ds,slide=%ds,parallelism=%d", sp.window, sp.slide, par), func(t *testing.T) {
				c := newTestContext(t, par)
				src := dstream.Queue(c, input)
				w, s := winSeconds(sp.window), winSeconds(sp.slide)
				plain := collect(dstream.ReduceByKeyAndWindow(src, winAdd, w, s))
				inc := collect(dstream.ReduceByKeyAndWindowInv(src, winAdd, winSub, w, s, func(kv winKV) bool { return kv.Value != 0 }))
				groups := collect(dstream.GroupByKeyAndWindow(src, w, s))
				require.NoError(t, c.RunBatches(t.Context(), len(input)))
				require.Len(t, *plain, len(input)/sp.slide)
				require.Equal(t, len(*plain), len(*inc))
				require.Equal(t, len(*plain), len(*groups))
				for i := range *plain {
					want := slices.Collect((*plain)[i].All())
					require.ElementsMatch(t, want, slices.Collect((*inc)[i].All()), "window %d", i)
					var summed []winKV
					for g := range (*groups)[i].All() {
						total := 0
						for _, v := range g.Value {
							total += v
						}
						summed = append(summed, dstream.Pair(g.Key, total))
					}
					require.ElementsMatch(t, want, summed, "groups of window %d", i)
				}
			})
		}
	}
}

// TestIncrementalCostIndependentOfWindowLength counts the calls of the
// reduce and inverse functions per batch once the window is full: with an
// inverse they depend on the keys entering and leaving the window, not on
// how many batches it spans.
func TestIncrementalCostIndependentOfWindowLength(t *testing.T) {
	const batches, keys = 60, 5
	input := make([][]winKV, batches)
	for i := range input {
		for k := range keys {
			input[i] = append(input[i], dstream.Pair(strconv.Itoa(k), 1), dstream.Pair(strconv.Itoa(k), 2))
		}
	}
	callsPerBatch := func(window int) []int {
		c := newTestContext(t, 2)
		var calls atomic.Int64 // the functions run in parallel tasks
		add := func(a, b int) int { calls.Add(1); return a + b }
		sub := func(a, b int) int { calls.Add(1); return a - b }
		var perBatch []int
		dstream.ForEachBatch(dstream.ReduceByKeyAndWindowInv(dstream.Queue(c, input), add, sub, winSeconds(window), winSeconds(1), nil),
			func(context.Context, dstream.Batch[winKV]) error {
				perBatch = append(perBatch, int(calls.Swap(0)))
				return nil
			})
		require.NoError(t, c.RunBatches(t.Context(), batches))
		return perBatch[window+1:] // once the window is full and panes leave it
	}
	short, long := callsPerBatch(2), callsPerBatch(40)
	require.NotEmpty(t, long)
	for _, n := range append(short, long...) {
		// Per key: one map-side combine, one inverse, one reduce.
		require.Equal(t, 3*keys, n)
	}
}

func TestWindowValidation(t *testing.T) {
	type build func(s *dstream.Stream[winKV])
	out := func(st *dstream.Stream[winKV]) {
		dstream.ForEachBatch(st, func(context.Context, dstream.Batch[winKV]) error { return nil })
	}
	s := winSeconds
	cases := []struct {
		name  string
		batch time.Duration
		build build
		want  []string
	}{
		{"window not a multiple of the batch", s(2), func(st *dstream.Stream[winKV]) { out(dstream.Window(st, s(3), s(2))) },
			[]string{`window-1 (window 3s, slide 2s) reads a stream sliding every 2s`, "window length 3s is not a multiple of the parent's slide 2s; use 2s or 4s"}},
		{"slide not a multiple of the batch", s(2), func(st *dstream.Stream[winKV]) {
			out(dstream.ReduceByKeyAndWindow(st, winAdd, s(4), s(3)))
		}, []string{"reduceByKeyAndWindow-1 (window 4s, slide 3s)", "slide 3s is not a multiple"}},
		{"zero slide", s(1), func(st *dstream.Stream[winKV]) {
			out(dstream.ReduceByKeyAndWindowInv(st, winAdd, winSub, s(4), 0, nil))
		}, []string{"reduceByKeyAndWindowInv-1 (window 4s, slide 0s)", "slide 0s must be positive"}},
		{"negative window", s(1), func(st *dstream.Stream[winKV]) {
			dstream.ForEachBatch(dstream.GroupByKeyAndWindow(st, -s(1), s(1)).Name("groups"),
				func(context.Context, dstream.Batch[dstream.KV[string, []int]]) error { return nil })
		}, []string{"groups (window -1s, slide 1s)", "window length -1s must be positive"}},
		{"window over a windowed stream", s(1), func(st *dstream.Stream[winKV]) {
			out(dstream.Window(dstream.Window(st, s(2), s(2)), s(3), s(2)))
		}, []string{"window-2 (window 3s, slide 2s) reads a stream sliding every 2s", "use 2s or 4s"}},
		{"countByWindow", s(1), func(st *dstream.Stream[winKV]) {
			dstream.ForEachBatch(dstream.CountByWindow(st, s(1)/2, s(1)), func(context.Context, dstream.Batch[int64]) error { return nil })
		}, []string{"countByWindow-1 (window 500ms, slide 1s)", "use 1s"}},
		{"countByValueAndWindow", s(1), func(st *dstream.Stream[winKV]) {
			dstream.ForEachBatch(dstream.CountByValueAndWindow(st, s(2), 1500*time.Millisecond),
				func(context.Context, dstream.Batch[dstream.KV[winKV, int64]]) error { return nil })
		}, []string{"countByValueAndWindow-1 (window 2s, slide 1.5s)", "use 1s or 2s"}},
		{"reduceByWindow", s(1), func(st *dstream.Stream[winKV]) {
			add := func(a, b winKV) winKV { return a }
			dstream.ForEachBatch(dstream.ReduceByWindowInv(st, add, add, 0, s(1)), func(context.Context, dstream.Batch[winKV]) error { return nil })
		}, []string{"reduceByWindowInv-1 (window 0s, slide 1s)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := engine.NewContext(tc.batch, engine.WithManualClock(time.Unix(0, 0)))
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, c.Close()) })
			tc.build(dstream.Queue(c, [][]winKV{winPairs("a", 1)}))
			err = c.RunBatches(t.Context(), 1)
			require.ErrorIs(t, err, window.ErrInvalid)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestWindowFailures(t *testing.T) {
	t.Run("filter drops a key that still has values", func(t *testing.T) {
		c := newTestContext(t, 2)
		keepNone := func(kv winKV) bool { return kv.Key != "a" }
		st := dstream.ReduceByKeyAndWindowInv(dstream.Queue(c, [][]winKV{winPairs("a", 1)}), winAdd, winSub, winSeconds(2), winSeconds(1), keepNone).Name("counts")
		got := collect(st)
		err := c.RunBatches(t.Context(), 3)
		require.ErrorIs(t, err, window.ErrFilteredKey)
		var be *engine.BatchError
		require.ErrorAs(t, err, &be)
		require.Equal(t, time.Unix(3, 0), be.Time)
		require.ErrorContains(t, err, `"counts"`)
		require.Len(t, *got, 2)
	})
	t.Run("panic in reduce", func(t *testing.T) {
		c := newTestContext(t, 2)
		boom := func(a, b int) int { panic("boom") }
		collect(dstream.ReduceByKeyAndWindow(dstream.Queue(c, [][]winKV{winPairs("a", 1, "a", 2)}), boom, winSeconds(2), winSeconds(1)))
		err := c.RunBatches(t.Context(), 1)
		require.ErrorContains(t, err, `"reduceByKeyAndWindow-1"`)
		require.ErrorContains(t, err, "boom")
	})
	t.Run("nil functions panic", func(t *testing.T) {
		c := newTestContext(t, 1)
		s := dstream.Queue(c, [][]winKV{})
		require.Panics(t, func() { dstream.ReduceByKeyAndWindow(s, nil, winSeconds(1), winSeconds(1)) })
		require.Panics(t, func() { dstream.ReduceByKeyAndWindowInv(s, winAdd, nil, winSeconds(1), winSeconds(1), nil) })
		require.Panics(t, func() { dstream.ReduceByWindow[winKV](s, nil, winSeconds(1), winSeconds(1)) })
	})
}

func TestWindowPartitionsAndCodecs(t *testing.T) {
	c := newTestContext(t, 3)
	src := dstream.Queue(c, [][]winKV{winPairs("a", 1, "b", 2, "c", 3)})
	parts := map[string]int{}
	record := func(name string) func(context.Context, dstream.Batch[winKV]) error {
		return func(_ context.Context, b dstream.Batch[winKV]) error { parts[name] = len(b.Parts); return nil }
	}
	dstream.ForEachBatch(dstream.ReduceByKeyAndWindow(src, winAdd, winSeconds(1), winSeconds(1)), record("default"))
	dstream.ForEachBatch(dstream.ReduceByKeyAndWindowInv(src, winAdd, winSub, winSeconds(1), winSeconds(1), nil).Partitions(5), record("five"))
	dstream.ForEachBatch(dstream.WindowCodecs(dstream.ReduceByKeyAndWindow(src, winAdd, winSeconds(1), winSeconds(1)), state.String(), state.Int()), record("codecs"))
	counts := dstream.CountByWindow(src, winSeconds(1), winSeconds(1))
	var countParts int
	dstream.ForEachBatch(counts, func(_ context.Context, b dstream.Batch[int64]) error { countParts = len(b.Parts); return nil })
	require.NoError(t, c.RunBatches(t.Context(), 1))
	require.Equal(t, map[string]int{"default": 3, "five": 5, "codecs": 3}, parts)
	require.Equal(t, 1, countParts)

	require.PanicsWithValue(t, "dstream: countByWindow emits one value per window and has one partition", func() { counts.Partitions(2) })
	require.Panics(t, func() { dstream.WindowCodecs(src, state.String(), state.Int()) }, "not a windowed stream")
	require.Panics(t, func() { dstream.WindowRecordCodec(src, state.Gob[winKV]()) }, "not a windowed stream")
	require.Panics(t, func() { dstream.Window(src, winSeconds(1), winSeconds(1)).Partitions(2) })
}

// The checkpoint round trips: each windowed operator runs some batches
// with a checkpoint, stops, and a new context with the same graph over the
// same directory runs the rest; the windows it emits must equal those of a
// run that was never interrupted.

// winPoint is a key type whose in-process hash is seeded per process, so a
// restore must route it by its encoding.
type winPoint struct{ X, Y int }

type windowRoundTrip struct {
	name string
	// build registers the graph under test on c and returns, per emitted
	// batch, a canonical line.
	build func(c *engine.Context) *[]string
}

func windowLines[T any](s *dstream.Stream[T], sorted bool) *[]string {
	var out []string
	dstream.ForEachBatch(s, func(_ context.Context, b dstream.Batch[T]) error {
		var xs []string
		for x := range b.All() {
			xs = append(xs, fmt.Sprint(x))
		}
		if sorted {
			slices.Sort(xs)
		}
		out = append(out, fmt.Sprintf("%d: %s", b.Time.Unix(), strings.Join(xs, " ")))
		return nil
	})
	return &out
}

func windowRoundTripCases() []windowRoundTrip {
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([][]string, 16)
	kvs := make([][]winKV, len(words))
	pts := make([][]dstream.KV[winPoint, int], len(words))
	for i := range words {
		if i%7 == 5 {
			continue // an empty batch now and then
		}
		for range 1 + rng.IntN(6) {
			w := string(rune('a' + rng.IntN(8)))
			words[i] = append(words[i], w)
			kvs[i] = append(kvs[i], dstream.Pair(w, 1+rng.IntN(9)))
			pts[i] = append(pts[i], dstream.Pair(winPoint{rng.IntN(3), rng.IntN(3)}, 1))
		}
	}
	w4, s2, s1 := winSeconds(4), winSeconds(2), winSeconds(1)
	nonZero := func(kv winKV) bool { return kv.Value != 0 }
	return []windowRoundTrip{
		{"Window", func(c *engine.Context) *[]string {
			return windowLines(dstream.Window(dstream.Queue(c, words), w4, s2).Name("op"), false)
		}},
		{"ReduceByKeyAndWindow", func(c *engine.Context) *[]string {
			return windowLines(dstream.ReduceByKeyAndWindow(dstream.Queue(c, kvs), winAdd, w4, s1).Name("op"), true)
		}},
		{"ReduceByKeyAndWindowInv", func(c *engine.Context) *[]string {
			return windowLines(dstream.ReduceByKeyAndWindowInv(dstream.Queue(c, kvs), winAdd, winSub, w4, s2, nil).Name("op"), true)
		}},
		{"ReduceByKeyAndWindowInv with filter", func(c *engine.Context) *[]string {
			return windowLines(dstream.ReduceByKeyAndWindowInv(dstream.Queue(c, kvs), winAdd, winSub, winSeconds(5), s1, nonZero).Name("op"), true)
		}},
		{"ReduceByKeyAndWindowInv with struct keys", func(c *engine.Context) *[]string {
			return windowLines(dstream.ReduceByKeyAndWindowInv(dstream.Queue(c, pts), winAdd, winSub, w4, s1, nil).Name("op"), true)
		}},
		{"GroupByKeyAndWindow", func(c *engine.Context) *[]string {
			return windowLines(dstream.GroupByKeyAndWindow(dstream.Queue(c, kvs), w4, s2).Name("op"), true)
		}},
		{"GroupByKeyAndWindow with codecs", func(c *engine.Context) *[]string {
			g := dstream.GroupByKeyAndWindow(dstream.Queue(c, kvs), w4, s1).Name("op")
			return windowLines(dstream.WindowCodecs(g, state.String(), state.JSON[[]int]()), true)
		}},
		{"CountByWindow", func(c *engine.Context) *[]string {
			return windowLines(dstream.CountByWindow(dstream.Queue(c, words), w4, s1).Name("op"), false)
		}},
		{"CountByValueAndWindow", func(c *engine.Context) *[]string {
			return windowLines(dstream.CountByValueAndWindow(dstream.Queue(c, words), w4, s2).Name("op"), true)
		}},
		{"ReduceByWindow", func(c *engine.Context) *[]string {
			lens := dstream.Map(dstream.Queue(c, words), func(ws string) int { return len(ws) })
			return windowLines(dstream.ReduceByWindow(lens, winAdd, w4, s2).Name("op"), false)
		}},
		{"ReduceByWindowInv", func(c *engine.Context) *[]string {
			lens := dstream.Map(dstream.Queue(c, words), func(ws string) int { return len(ws) })
			return windowLines(dstream.WindowRecordCodec(dstream.ReduceByWindowInv(lens, winAdd, winSub, w4, s1).Name("op"), state.Int()), false)
		}},
	}
}

func TestWindowCheckpointRoundTrip(t *testing.T) {
	const total = 16
	runs := []struct {
		name         string
		stopAfter    int
		par1, par2   int
		opts         []engine.CheckpointOption
		wantSnapshot bool
	}{
		// Deltas only, the default snapshot interval never reached; the
		// restart falls between two emissions of the 2-second slides.
		{name: "deltas", stopAfter: 5, par1: 2, par2: 2},
		// Snapshots due at every commit, written in the background: the
		// restore reads a snapshot and the deltas written after it.
		{name: "snapshot and deltas", stopAfter: 9, par1: 2, par2: 2, opts: []engine.CheckpointOption{engine.SnapshotEvery(1)}, wantSnapshot: true},
		// The restarted job has another parallelism (keyed windows keep the
		// partitioning of their checkpoint), and stops after one batch,
		// before the first emission of the 2-second slides.
		{name: "parallelism changed", stopAfter: 1, par1: 3, par2: 1},
	}
	for _, tc := range windowRoundTripCases() {
		for _, run := range runs {
			t.Run(tc.name+"/"+run.name, func(t *testing.T) {
				t.Parallel() // the commits wait on fsync
				base := newTestContext(t, run.par1)
				want := tc.build(base)
				require.NoError(t, base.RunBatches(t.Context(), total))

				dir := t.TempDir()
				c1 := newWindowCheckpointContext(t, dir, run.par1, run.opts...)
				got1 := tc.build(c1)
				if run.wantSnapshot {
					// Let the first background snapshot land so that a
					// later commit adopts it.
					waitForWindowSnapshot(t, c1, dir, "op")
				}
				require.NoError(t, c1.RunBatches(t.Context(), run.stopAfter))
				require.NoError(t, c1.Close())
				if run.wantSnapshot {
					m := lastWindowManifest(t, dir)
					files := windowManifestFiles(t, m, "op")
					require.Equal(t, "snapshot", files[0].Kind, "the restore starts from a snapshot")
					require.Greater(t, len(files), 1, "and applies deltas after it")
				}

				c2 := newWindowCheckpointContext(t, dir, run.par2, run.opts...)
				got2 := tc.build(c2)
				require.NoError(t, c2.RunBatches(t.Context(), total-run.stopAfter))
				require.NotEmpty(t, *want)
				require.Equal(t, *want, append(*got1, *got2...))
			})
		}
	}
}

func newWindowCheckpointContext(t *testing.T, dir string, parallelism int, opts ...engine.CheckpointOption) *engine.Context {
	t.Helper()
	c, err := engine.NewContext(testBatch,
		engine.WithManualClock(time.Unix(0, 0)),
		engine.WithParallelism(parallelism),
		engine.WithCheckpoint(dir), engine.WithCheckpointOptions(opts...))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// waitForWindowSnapshot makes the first batch of c wait, once it has completed,
// until a background snapshot of operator op is on disk.
func waitForWindowSnapshot(t *testing.T, c *engine.Context, dir, op string) {
	first := true
	c.AddListener(engine.ListenerFuncs{Completed: func(engine.BatchInfo) {
		if !first {
			return
		}
		first = false
		require.Eventually(t, func() bool {
			matches, _ := filepath.Glob(filepath.Join(dir, "state", op, "*.snapshot"))
			return len(matches) > 0
		}, 30*time.Second, time.Millisecond, "background snapshot of %s", op)
	}})
}

func lastWindowManifest(t *testing.T, dir string) engine.Manifest {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "commits"))
	require.NoError(t, err)
	var newest int64 = -1
	for _, e := range entries {
		if ms, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && ms > newest {
			newest = ms
		}
	}
	require.GreaterOrEqual(t, newest, int64(0), "a commit exists")
	body, err := state.ReadFile(state.OSFS{}, filepath.Join(dir, "commits", strconv.FormatInt(newest, 10)), state.KindCommit)
	require.NoError(t, err)
	var m engine.Manifest
	require.NoError(t, json.Unmarshal(body, &m))
	return m
}

func windowManifestFiles(t *testing.T, m engine.Manifest, op string) []engine.FileRef {
	t.Helper()
	for _, o := range m.Operators {
		if o.Name == op {
			return o.Files
		}
	}
	t.Fatalf("operator %s not in the manifest of batch %d", op, m.BatchMS)
	return nil
}

func TestWindowCheckpointMismatch(t *testing.T) {
	dir := t.TempDir()
	input := [][]winKV{winPairs("a", 1), winPairs("b", 2)}
	c1 := newWindowCheckpointContext(t, dir, 2)
	collect(dstream.ReduceByKeyAndWindow(dstream.Queue(c1, input), winAdd, winSeconds(2), winSeconds(1)).Name("op"))
	require.NoError(t, c1.RunBatches(t.Context(), 2))
	require.NoError(t, c1.Close())

	// The same name on an operator of another kind is refused at start.
	c2, err := engine.NewContext(testBatch, engine.WithManualClock(time.Unix(0, 0)), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Close() })
	collect(dstream.ReduceByKeyAndWindowInv(dstream.Queue(c2, input), winAdd, winSub, winSeconds(2), winSeconds(1), nil).Name("op"))
	err = c2.RunBatches(t.Context(), 1)
	require.ErrorContains(t, err, `operator "op" was checkpointed as a reduceByKeyAndWindow but this job builds a reduceByKeyAndWindowInv`)
}

// TestWindowCheckpointRefusesOtherSettings: a windowed operator's state
// holds only under the window length and slide that wrote it (a restored
// incremental window shortened from 3 s to 1 s would never take out the
// panes of its older 2 s and count them for ever), so a job that builds the
// operator with another length or slide is refused at start with both named;
// the same settings resume. Every windowed operator records them.
func TestWindowCheckpointRefusesOtherSettings(t *testing.T) {
	input := [][]winKV{winPairs("a", 1), winPairs("a", 1), winPairs("b", 1), {}, {}, {}, {}}
	inv := func(length, slide time.Duration) func(*engine.Context) {
		return func(c *engine.Context) {
			collect(dstream.ReduceByKeyAndWindowInv(dstream.Queue(c, input), winAdd, winSub, length, slide, nil).Name("op"))
		}
	}
	plain := func(length, slide time.Duration) func(*engine.Context) {
		return func(c *engine.Context) {
			collect(dstream.Window(dstream.Queue(c, input), length, slide).Name("op"))
		}
	}
	for _, tc := range []struct {
		name         string
		build, other func(*engine.Context)
		refused      string
	}{
		{"incremental window shortened", inv(winSeconds(3), winSeconds(1)), inv(winSeconds(1), winSeconds(1)),
			`operator "op" was checkpointed with window 3s, slide 1s but this job builds it with window 1s, slide 1s`},
		{"incremental window sliding otherwise", inv(winSeconds(2), winSeconds(1)), inv(winSeconds(2), winSeconds(2)),
			`operator "op" was checkpointed with window 2s, slide 1s but this job builds it with window 2s, slide 2s`},
		{"window lengthened", plain(winSeconds(2), winSeconds(1)), plain(winSeconds(4), winSeconds(1)),
			`operator "op" was checkpointed with window 2s, slide 1s but this job builds it with window 4s, slide 1s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c1 := newWindowCheckpointContext(t, dir, 2)
			tc.build(c1)
			require.NoError(t, c1.RunBatches(t.Context(), 3))
			require.NoError(t, c1.Close())
			require.NotEmpty(t, windowManifestParams(t, lastWindowManifest(t, dir), "op"), "the commit records the settings")

			c2 := newWindowCheckpointContext(t, dir, 2)
			tc.other(c2)
			err := c2.RunBatches(t.Context(), 1)
			require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
			require.ErrorContains(t, err, tc.refused)
			require.ErrorContains(t, err, "or start with a fresh checkpoint dir")

			c3 := newWindowCheckpointContext(t, dir, 2)
			tc.build(c3)
			require.NoError(t, c3.RunBatches(t.Context(), 1), "the settings it was written with resume")
		})
	}
}

// TestWindowCheckpointWithoutSettings: a commit written before operators
// recorded their settings holds none, and restores under any.
func TestWindowCheckpointWithoutSettings(t *testing.T) {
	input := [][]winKV{winPairs("a", 1), winPairs("b", 1), {}}
	dir := t.TempDir()
	c1 := newWindowCheckpointContext(t, dir, 2)
	collect(dstream.ReduceByKeyAndWindowInv(dstream.Queue(c1, input), winAdd, winSub, winSeconds(2), winSeconds(1), nil).Name("op"))
	require.NoError(t, c1.RunBatches(t.Context(), 2))
	require.NoError(t, c1.Close())
	commits, err := filepath.Glob(filepath.Join(dir, "commits", "*"))
	require.NoError(t, err)
	for _, p := range commits {
		body, err := state.ReadFile(state.OSFS{}, p, state.KindCommit)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(body, &m))
		for _, op := range m["operators"].([]any) {
			delete(op.(map[string]any), "params")
		}
		body, err = json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, state.WriteFile(state.OSFS{}, p, state.KindCommit, body))
	}
	c2 := newWindowCheckpointContext(t, dir, 2)
	collect(dstream.ReduceByKeyAndWindowInv(dstream.Queue(c2, input), winAdd, winSub, winSeconds(3), winSeconds(1), nil).Name("op"))
	require.NoError(t, c2.RunBatches(t.Context(), 1))
}

func windowManifestParams(t *testing.T, m engine.Manifest, op string) string {
	t.Helper()
	for _, o := range m.Operators {
		if o.Name == op {
			return o.Params
		}
	}
	t.Fatalf("operator %s not in the manifest of batch %d", op, m.BatchMS)
	return ""
}

func TestSliceCodecThroughCheckpoint(t *testing.T) {
	// GroupByKeyAndWindow's default codec encodes groups element by element;
	// a restored window holds the same groups, empty strings included.
	input := [][]dstream.KV[string, string]{
		{dstream.Pair("k", ""), dstream.Pair("k", "x")},
		{dstream.Pair("k", "yz")},
		{},
		{dstream.Pair("j", "")},
	}
	build := func(c *engine.Context) *[]dstream.Batch[dstream.KV[string, []string]] {
		return collect(dstream.GroupByKeyAndWindow(dstream.Queue(c, input), winSeconds(3), winSeconds(1)).Name("g"))
	}
	dir := t.TempDir()
	c1 := newWindowCheckpointContext(t, dir, 1)
	build(c1)
	require.NoError(t, c1.RunBatches(t.Context(), 2))
	require.NoError(t, c1.Close())
	c2 := newWindowCheckpointContext(t, dir, 1)
	got := build(c2)
	require.NoError(t, c2.RunBatches(t.Context(), 2))
	require.Len(t, *got, 2)
	groups := func(b dstream.Batch[dstream.KV[string, []string]]) map[string][]string {
		m := map[string][]string{}
		for kv := range b.All() {
			m[kv.Key] = kv.Value
		}
		return m
	}
	require.Equal(t, map[string][]string{"k": {"", "x", "yz"}}, groups((*got)[0]))
	require.Equal(t, map[string][]string{"k": {"yz"}, "j": {""}}, groups((*got)[1]))
}
