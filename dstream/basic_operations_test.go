package dstream_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// The cases below port Spark's BasicOperationsSuite
// (streaming/src/test/scala/org/apache/spark/streaming/BasicOperationsSuite.scala)
// for the stateless operators, keeping Spark's test names. Spark's tuples
// are KV, Joined, Optional and Grouped here. The updateStateByKey, slice and
// rdd-cleanup tests belong to the windowed and stateful operators.
//
// Spark's "... with input stream return None" tests feed a null batch, for
// which Spark's test input stream returns no RDD, and expect the job to
// fail. A Queue has no such state: a nil entry is an empty batch, and a
// stream produces nothing at a time only when the time is off its slide,
// which Union and TransformWith rule out at start by requiring equal slides.
// The ports therefore check that the nil batch flows through as an empty one.

type (
	kvsi = dstream.KV[string, int]
	kvss = dstream.KV[string, string]
)

func pairOne(x string) kvsi { return dstream.Pair(x, 1) }
func pairX(x string) kvss   { return dstream.Pair(x, "x") }
func sum(a, b int) int      { return a + b }
func evens(x int) bool      { return x%2 == 0 }
func itoas(x int) []string  { return []string{strconv.Itoa(x)} }
func plus(n int) func(int) int {
	return func(x int) int { return x + n }
}

// glom gathers each partition into one element, as Spark's glom.
func glom(s *dstream.Stream[int]) *dstream.Stream[[]int] {
	return dstream.Transform(s, func(_ context.Context, b dstream.Batch[int]) (dstream.Batch[[]int], error) {
		parts := make([][][]int, len(b.Parts))
		for i, p := range b.Parts {
			parts[i] = [][]int{slices.Clone(p)}
		}
		return dstream.Batch[[]int]{Time: b.Time, Parts: parts}, nil
	})
}

// unionBatches concatenates two batches' partitions, as RDD.union.
func unionBatches[T any](_ context.Context, x, y dstream.Batch[T]) (dstream.Batch[T], error) {
	return dstream.Batch[T]{Parts: append(slices.Clone(x.Parts), y.Parts...)}, nil
}

// joinBatches is an inner join of two keyed batches, as RDD.join.
func joinBatches(_ context.Context, x dstream.Batch[kvsi], y dstream.Batch[kvss]) (dstream.Batch[dstream.KV[string, dstream.Joined[int, string]]], error) {
	right := make(map[string][]string)
	for kv := range y.All() {
		right[kv.Key] = append(right[kv.Key], kv.Value)
	}
	var out []dstream.KV[string, dstream.Joined[int, string]]
	for kv := range x.All() {
		for _, w := range right[kv.Key] {
			out = append(out, dstream.Pair(kv.Key, dstream.Joined[int, string]{Left: kv.Value, Right: w}))
		}
	}
	return dstream.Batch[dstream.KV[string, dstream.Joined[int, string]]]{Parts: [][]dstream.KV[string, dstream.Joined[int, string]]{out}}, nil
}

func TestBasicOperations(t *testing.T) {
	ints := [][]int{seq(1, 4), seq(5, 8), seq(9, 12)}
	words := [][]string{{"a", "a", "b"}, {"", ""}, {}}
	keyed1 := [][]string{{"a", "b"}, {"a", ""}, {""}, {}}
	keyed2 := [][]string{{"a", "b"}, {"b", ""}, {}, {""}}
	unions := [][]int{seq(1, 4), seq(101, 104), seq(201, 204)}
	some, none := dstream.Some[int], dstream.Optional[int]{}
	someX, noneX := dstream.Some("x"), dstream.Optional[string]{}
	type (
		joined    = dstream.KV[string, dstream.Joined[int, string]]
		leftOuter = dstream.KV[string, dstream.Joined[int, dstream.Optional[string]]]
		rightOut  = dstream.KV[string, dstream.Joined[dstream.Optional[int], string]]
		fullOuter = dstream.KV[string, dstream.Joined[dstream.Optional[int], dstream.Optional[string]]]
		grouped   = dstream.KV[string, dstream.Grouped[int, string]]
	)

	runCases(t, []opCase{
		{name: "BasicOperationsSuite/map", run: testOperation(ints,
			func(s *dstream.Stream[int]) *dstream.Stream[string] { return dstream.Map(s, strconv.Itoa) },
			mapBatches(ints, itoas), ordered)},
		{name: "BasicOperationsSuite/flatMap", run: testOperation(ints,
			func(s *dstream.Stream[int]) *dstream.Stream[int] {
				return dstream.FlatMap(s, func(x int) []int { return []int{x, x * 2} })
			},
			mapBatches(ints, func(x int) []int { return []int{x, x * 2} }), ordered)},
		{name: "BasicOperationsSuite/filter", run: testOperation(ints,
			func(s *dstream.Stream[int]) *dstream.Stream[int] { return dstream.Filter(s, evens) },
			mapBatches(ints, func(x int) []int {
				if evens(x) {
					return []int{x}
				}
				return nil
			}), ordered)},
		// Spark asserts 2 input partitions; glom is a Transform that makes
		// each partition one element.
		{name: "BasicOperationsSuite/glom", parallelisms: []int{2}, run: testOperation(ints, glom,
			[][][]int{{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}, {{9, 10}, {11, 12}}}, ordered)},
		{name: "glom with 3 partitions", parallelisms: []int{3}, run: testOperation(ints, glom,
			[][][]int{{{1}, {2}, {3, 4}}, {{5}, {6}, {7, 8}}, {{9}, {10}, {11, 12}}}, ordered)},
		{name: "BasicOperationsSuite/mapPartitions", parallelisms: []int{2}, run: testOperation(ints,
			func(s *dstream.Stream[int]) *dstream.Stream[int] {
				return dstream.MapPartitions(s, func(in iter.Seq[int]) iter.Seq[int] {
					return func(yield func(int) bool) {
						n := 0
						for x := range in {
							n += x
						}
						yield(n)
					}
				})
			},
			[][]int{{3, 7}, {11, 15}, {19, 23}}, unordered)},
		{name: "BasicOperationsSuite/groupByKey", run: testOperation(words,
			func(s *dstream.Stream[string]) *dstream.Stream[dstream.KV[string, []int]] {
				return dstream.GroupByKey(dstream.Map(s, pairOne))
			},
			[][]dstream.KV[string, []int]{{{"a", []int{1, 1}}, {"b", []int{1}}}, {{"", []int{1, 1}}}, {}}, unordered)},
		{name: "BasicOperationsSuite/reduceByKey", run: testOperation(words,
			func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
				return dstream.ReduceByKey(dstream.Map(s, pairOne), sum)
			},
			[][]kvsi{{{"a", 2}, {"b", 1}}, {{"", 2}}, {}}, unordered)},
		{name: "BasicOperationsSuite/reduce", run: testOperation(ints,
			func(s *dstream.Stream[int]) *dstream.Stream[int] { return dstream.Reduce(s, sum) },
			[][]int{{10}, {26}, {42}}, ordered)},
		{name: "BasicOperationsSuite/count", run: testOperation([][]int{{}, seq(1, 1), seq(1, 2), seq(1, 3), seq(1, 4)},
			dstream.Count[int],
			[][]int64{{0}, {1}, {2}, {3}, {4}}, ordered)},
		{name: "BasicOperationsSuite/countByValue", run: testOperation([][]int{seq(1, 1), {1, 1, 1}, seq(1, 2), {1, 1, 2, 2}},
			dstream.CountByValue[int],
			[][]dstream.KV[int, int64]{{{1, 1}}, {{1, 3}}, {{1, 1}, {2, 1}}, {{2, 2}, {1, 2}}}, unordered)},
		{name: "BasicOperationsSuite/mapValues", run: testOperation(words,
			func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
				return dstream.MapValues(dstream.ReduceByKey(dstream.Map(s, pairOne), sum), plus(10))
			},
			[][]kvsi{{{"a", 12}, {"b", 11}}, {{"", 12}}, {}}, unordered)},
		{name: "BasicOperationsSuite/flatMapValues", run: testOperation(words,
			func(s *dstream.Stream[string]) *dstream.Stream[kvsi] {
				return dstream.FlatMapValues(dstream.ReduceByKey(dstream.Map(s, pairOne), sum),
					func(x int) []int { return []int{x, x + 10} })
			},
			[][]kvsi{{{"a", 2}, {"a", 12}, {"b", 1}, {"b", 11}}, {{"", 2}, {"", 12}}, {}}, unordered)},
		{name: "BasicOperationsSuite/union", run: testOperation(unions,
			func(s *dstream.Stream[int]) *dstream.Stream[int] { return dstream.Union(s, dstream.Map(s, plus(4))) },
			[][]int{seq(1, 8), seq(101, 108), seq(201, 208)}, ordered)},
		{name: "BasicOperationsSuite/union with input stream return None", run: testOperation(append(slices.Clone(unions), nil),
			func(s *dstream.Stream[int]) *dstream.Stream[int] { return dstream.Union(s, dstream.Map(s, plus(4))) },
			[][]int{seq(1, 8), seq(101, 108), seq(201, 208), {}}, ordered)},
		{name: "BasicOperationsSuite/StreamingContext.union", run: testOperation(unions,
			func(s *dstream.Stream[int]) *dstream.Stream[int] {
				return dstream.Union(s, dstream.Map(s, plus(4)), dstream.Map(s, plus(8)))
			},
			[][]int{seq(1, 12), seq(101, 112), seq(201, 212)}, ordered)},
		{name: "BasicOperationsSuite/transform", run: testOperation(ints,
			func(s *dstream.Stream[int]) *dstream.Stream[string] {
				return dstream.Transform(s, func(_ context.Context, b dstream.Batch[int]) (dstream.Batch[string], error) {
					parts := make([][]string, len(b.Parts))
					for i, p := range b.Parts {
						for _, x := range p {
							parts[i] = append(parts[i], strconv.Itoa(x))
						}
					}
					return dstream.Batch[string]{Parts: parts}, nil
				})
			},
			mapBatches(ints, itoas), ordered)},
		{name: "BasicOperationsSuite/transform with input stream return None", run: testOperation([][]int{seq(1, 4), seq(5, 8), nil},
			func(s *dstream.Stream[int]) *dstream.Stream[string] {
				return dstream.Transform(s, func(_ context.Context, b dstream.Batch[int]) (dstream.Batch[string], error) {
					var out []string
					for x := range b.All() {
						out = append(out, strconv.Itoa(x))
					}
					return dstream.Batch[string]{Parts: [][]string{out}}, nil
				})
			},
			[][]string{{"1", "2", "3", "4"}, {"5", "6", "7", "8"}, {}}, ordered)},
		{name: "BasicOperationsSuite/transformWith", run: testOperation2(keyed1, keyed2,
			func(s1, s2 *dstream.Stream[string]) *dstream.Stream[joined] {
				return dstream.TransformWith(dstream.Map(s1, pairOne), dstream.Map(s2, pairX), joinBatches)
			},
			[][]joined{{{"a", dstream.Joined[int, string]{1, "x"}}, {"b", dstream.Joined[int, string]{1, "x"}}}, {{"", dstream.Joined[int, string]{1, "x"}}}, {}, {}},
			unordered)},
		{name: "BasicOperationsSuite/transformWith with input stream return None", run: testOperation2(
			[][]string{{"a", "b"}, {"a", ""}, {""}, nil}, [][]string{{"a", "b"}, {"b", ""}, {}, nil},
			func(s1, s2 *dstream.Stream[string]) *dstream.Stream[string] {
				return dstream.TransformWith(s1, s2, unionBatches[string])
			},
			[][]string{{"a", "b", "a", "b"}, {"a", "b", "", ""}, {""}, {}}, unordered)},
		// Sluice has no n-ary transform; the three-stream transform is two
		// nested TransformWith, each a union of the batches.
		{name: "BasicOperationsSuite/StreamingContext.transform", run: testOperation(unions,
			func(s *dstream.Stream[int]) *dstream.Stream[int] {
				two := dstream.TransformWith(s, dstream.Map(s, plus(4)), unionBatches[int])
				return dstream.TransformWith(two, dstream.Map(s, plus(8)), unionBatches[int])
			},
			[][]int{seq(1, 12), seq(101, 112), seq(201, 212)}, ordered)},
		{name: "BasicOperationsSuite/StreamingContext.transform with input stream return None", run: testOperation(append(slices.Clone(unions), nil),
			func(s *dstream.Stream[int]) *dstream.Stream[int] {
				two := dstream.TransformWith(s, dstream.Map(s, plus(4)), unionBatches[int])
				return dstream.TransformWith(two, dstream.Map(s, plus(8)), unionBatches[int])
			},
			[][]int{seq(1, 12), seq(101, 112), seq(201, 212), {}}, ordered)},
		{name: "BasicOperationsSuite/cogroup", run: testOperation2(
			[][]string{{"a", "a", "b"}, {"a", ""}, {""}, {}}, [][]string{{"a", "a", "b"}, {"b", ""}, {}, {}},
			func(s1, s2 *dstream.Stream[string]) *dstream.Stream[grouped] {
				return dstream.Cogroup(dstream.Map(s1, pairOne), dstream.Map(s2, pairX))
			},
			[][]grouped{
				{{"a", dstream.Grouped[int, string]{[]int{1, 1}, []string{"x", "x"}}}, {"b", dstream.Grouped[int, string]{[]int{1}, []string{"x"}}}},
				{{"a", dstream.Grouped[int, string]{Left: []int{1}}}, {"b", dstream.Grouped[int, string]{Right: []string{"x"}}}, {"", dstream.Grouped[int, string]{[]int{1}, []string{"x"}}}},
				{{"", dstream.Grouped[int, string]{Left: []int{1}}}},
				{},
			}, unordered)},
		{name: "BasicOperationsSuite/join", run: testOperation2(keyed1, keyed2,
			func(s1, s2 *dstream.Stream[string]) *dstream.Stream[joined] {
				return dstream.Join(dstream.Map(s1, pairOne), dstream.Map(s2, pairX))
			},
			[][]joined{{{"a", dstream.Joined[int, string]{1, "x"}}, {"b", dstream.Joined[int, string]{1, "x"}}}, {{"", dstream.Joined[int, string]{1, "x"}}}, {}, {}},
			unordered)},
		{name: "BasicOperationsSuite/leftOuterJoin", run: testOperation2(keyed1, keyed2,
			func(s1, s2 *dstream.Stream[string]) *dstream.Stream[leftOuter] {
				return dstream.LeftOuterJoin(dstream.Map(s1, pairOne), dstream.Map(s2, pairX))
			},
			[][]leftOuter{
				{{"a", dstream.Joined[int, dstream.Optional[string]]{1, someX}}, {"b", dstream.Joined[int, dstream.Optional[string]]{1, someX}}},
				{{"", dstream.Joined[int, dstream.Optional[string]]{1, someX}}, {"a", dstream.Joined[int, dstream.Optional[string]]{1, noneX}}},
				{{"", dstream.Joined[int, dstream.Optional[string]]{1, noneX}}},
				{},
			}, unordered)},
		{name: "BasicOperationsSuite/rightOuterJoin", run: testOperation2(keyed1, keyed2,
			func(s1, s2 *dstream.Stream[string]) *dstream.Stream[rightOut] {
				return dstream.RightOuterJoin(dstream.Map(s1, pairOne), dstream.Map(s2, pairX))
			},
			[][]rightOut{
				{{"a", dstream.Joined[dstream.Optional[int], string]{some(1), "x"}}, {"b", dstream.Joined[dstream.Optional[int], string]{some(1), "x"}}},
				{{"", dstream.Joined[dstream.Optional[int], string]{some(1), "x"}}, {"b", dstream.Joined[dstream.Optional[int], string]{none, "x"}}},
				{},
				{{"", dstream.Joined[dstream.Optional[int], string]{none, "x"}}},
			}, unordered)},
		{name: "BasicOperationsSuite/fullOuterJoin", run: testOperation2(keyed1, keyed2,
			func(s1, s2 *dstream.Stream[string]) *dstream.Stream[fullOuter] {
				return dstream.FullOuterJoin(dstream.Map(s1, pairOne), dstream.Map(s2, pairX))
			},
			[][]fullOuter{
				{{"a", dstream.Joined[dstream.Optional[int], dstream.Optional[string]]{some(1), someX}}, {"b", dstream.Joined[dstream.Optional[int], dstream.Optional[string]]{some(1), someX}}},
				{{"", dstream.Joined[dstream.Optional[int], dstream.Optional[string]]{some(1), someX}}, {"a", dstream.Joined[dstream.Optional[int], dstream.Optional[string]]{some(1), noneX}}, {"b", dstream.Joined[dstream.Optional[int], dstream.Optional[string]]{none, someX}}},
				{{"", dstream.Joined[dstream.Optional[int], dstream.Optional[string]]{some(1), noneX}}},
				{{"", dstream.Joined[dstream.Optional[int], dstream.Optional[string]]{none, someX}}},
			}, unordered)},
		// A word count end to end: a fused FlatMap and Map into a shuffle,
		// an empty batch, and a batch after the queue ran out.
		{name: "word count over a queue", run: testOperation([][]string{{"a b", "b c"}, {}, {"c c"}},
			func(s *dstream.Stream[string]) *dstream.Stream[string] {
				return toStrings(dstream.ReduceByKey(dstream.Map(dstream.FlatMap(s, strings.Fields), pairOne), sum))
			},
			[][]string{{"(a,1)", "(b,2)", "(c,1)"}, {}, {"(c,2)"}, {}}, unordered)},
	})
}

// TestRepartition ports Spark's two repartition cases: the output has the
// requested number of partitions and every input element, whatever the
// input's partition count. Sluice's Repartition also keeps the order.
func TestRepartition(t *testing.T) {
	input := [][]int{seq(1, 100), seq(101, 200), seq(201, 300)}
	tests := []struct {
		name                 string
		inputParts, outParts int
	}{
		{"BasicOperationsSuite/repartition (more partitions)", 2, 5},
		{"BasicOperationsSuite/repartition (fewer partitions)", 5, 2},
		{"repartition (same partitions)", 3, 3},
		{"repartition (one partition)", 3, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestContext(t, tc.inputParts)
			in := dstream.Queue(c, input)
			gotIn := collect(in)
			got := collect(dstream.Repartition(in, tc.outParts))
			require.NoError(t, c.RunBatches(t.Context(), len(input)))
			require.Len(t, *gotIn, len(input))
			require.Len(t, *got, len(input))
			for i, b := range *got {
				require.Len(t, (*gotIn)[i].Parts, tc.inputParts, "input partitions of batch %d", i)
				require.Len(t, b.Parts, tc.outParts, "output partitions of batch %d", i)
				for p, part := range b.Parts {
					require.InDelta(t, len(input[i])/tc.outParts, len(part), 1, "size of partition %d of batch %d", p, i)
				}
				require.Equal(t, input[i], slices.Collect(b.All()), "elements of batch %d", i)
			}
		})
	}
}

// TestTransformError ports Spark's "transform with NULL": a transform that
// cannot produce a batch fails it. In Go the function returns an error (or
// panics), and RunBatches returns a *engine.BatchError naming the batch time
// and the transform.
func TestTransformError(t *testing.T) {
	errNoBatch := errors.New("no batch")
	fail := func(context.Context, dstream.Batch[int]) (dstream.Batch[int], error) {
		return dstream.Batch[int]{}, errNoBatch
	}
	tests := []struct {
		name    string
		build   func(s *dstream.Stream[int]) *dstream.Stream[int]
		wantErr error  // nil: the batch succeeds, empty
		wantMsg string // in the error's message
	}{
		{"BasicOperationsSuite/transform with NULL", func(s *dstream.Stream[int]) *dstream.Stream[int] {
			return dstream.Transform(s, fail)
		}, errNoBatch, "no batch"},
		{"transform panics", func(s *dstream.Stream[int]) *dstream.Stream[int] {
			return dstream.Transform(s, func(context.Context, dstream.Batch[int]) (dstream.Batch[int], error) { panic("boom") })
		}, nil, "panic: boom"},
		{"transformWith returns an error", func(s *dstream.Stream[int]) *dstream.Stream[int] {
			return dstream.TransformWith(s, dstream.Map(s, plus(1)), func(context.Context, dstream.Batch[int], dstream.Batch[int]) (dstream.Batch[int], error) {
				return dstream.Batch[int]{}, errNoBatch
			})
		}, errNoBatch, "no batch"},
		// The zero Batch has no partitions: an empty batch, not a failure.
		{"transform with zero Batch", func(s *dstream.Stream[int]) *dstream.Stream[int] {
			return dstream.Transform(s, func(context.Context, dstream.Batch[int]) (dstream.Batch[int], error) {
				return dstream.Batch[int]{}, nil
			})
		}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var op string
			got, err := runOperation(t, 2, [][]int{seq(1, 4)}, func(s *dstream.Stream[int]) *dstream.Stream[int] {
				tr := tc.build(s)
				op = tr.Node().Meta().Name()
				return tr
			}, 1)
			if tc.wantMsg == "" {
				require.NoError(t, err)
				verifyOutput(t, [][]int{{}}, got, ordered)
				return
			}
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
			var be *engine.BatchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, op, be.Op)
			require.Equal(t, int64(1000), be.Time.UnixMilli())
			require.Contains(t, err.Error(), fmt.Sprintf("batch 1000 ms failed in operator %q", op))
			require.Contains(t, err.Error(), tc.wantMsg)
			require.Empty(t, got)
		})
	}
}

// TestPartitions checks that Partitions sets the partition count of keyed
// operators, joins included, without changing their results, and that a
// count below 1 or an unkeyed stream is refused when the graph is built.
func TestPartitions(t *testing.T) {
	words := [][]string{{"a", "b", "c", "a", "d", "e"}}
	tests := []struct {
		name  string
		parts int
		build func(s *dstream.Stream[string], n int) *dstream.Stream[string]
		want  []string
	}{
		{"reduceByKey", 4, func(s *dstream.Stream[string], n int) *dstream.Stream[string] {
			return toStrings(dstream.ReduceByKey(dstream.Map(s, pairOne), sum).Partitions(n))
		}, []string{"(a,2)", "(b,1)", "(c,1)", "(d,1)", "(e,1)"}},
		{"groupByKey", 1, func(s *dstream.Stream[string], n int) *dstream.Stream[string] {
			return toStrings(dstream.GroupByKey(dstream.Map(s, pairOne)).Partitions(n))
		}, []string{"(a,[1 1])", "(b,[1])", "(c,[1])", "(d,[1])", "(e,[1])"}},
		{"countByValue", 5, func(s *dstream.Stream[string], n int) *dstream.Stream[string] {
			return toStrings(dstream.CountByValue(s).Partitions(n))
		}, []string{"(a,2)", "(b,1)", "(c,1)", "(d,1)", "(e,1)"}},
		{"join", 3, func(s *dstream.Stream[string], n int) *dstream.Stream[string] {
			return toStrings(dstream.Join(dstream.Map(s, pairOne), dstream.Map(s, pairX)).Partitions(n))
		}, []string{"(a,(1,x))", "(a,(1,x))", "(a,(1,x))", "(a,(1,x))", "(b,(1,x))", "(c,(1,x))", "(d,(1,x))", "(e,(1,x))"}},
		{"cogroup", 3, func(s *dstream.Stream[string], n int) *dstream.Stream[string] {
			return toStrings(dstream.Cogroup(dstream.Map(s, pairOne), dstream.Map(s, pairX)).Partitions(n))
		}, []string{"(a,{[1 1] [x x]})", "(b,{[1] [x]})", "(c,{[1] [x]})", "(d,{[1] [x]})", "(e,{[1] [x]})"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestContext(t, 2)
			got := collect(tc.build(dstream.Queue(c, words), tc.parts))
			require.NoError(t, c.RunBatches(t.Context(), 1))
			require.Len(t, *got, 1)
			require.Len(t, (*got)[0].Parts, tc.parts, "partitions")
			require.ElementsMatch(t, tc.want, slices.Collect((*got)[0].All()))
		})
	}

	c := newTestContext(t, 2)
	s := dstream.Map(dstream.Queue(c, words), pairOne)
	for name, f := range map[string]func(){
		"reduceByKey with 0":  func() { dstream.ReduceByKey(s, sum).Partitions(0) },
		"join with 0":         func() { dstream.Join(s, s).Partitions(0) },
		"cogroup with -1":     func() { dstream.Cogroup(s, s).Partitions(-1) },
		"map is not keyed":    func() { dstream.Map(s, func(kv kvsi) int { return kv.Value }).Partitions(2) },
		"filter is not keyed": func() { dstream.Filter(s, func(kvsi) bool { return true }).Partitions(2) },
	} {
		require.Panics(t, f, name)
	}
}

// toStrings maps a stream's elements to their fmt.Sprint form, which keeps
// the partitions: a narrow operator.
func toStrings[T any](s *dstream.Stream[T]) *dstream.Stream[string] {
	return dstream.Map(s, func(x T) string { return fmt.Sprint(x) })
}
