package dstream_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// This file is a small harness in the shape of Spark's
// TestSuiteBase.testOperation: feed input batches through a Queue, build the
// operation under test on the queue's stream, run a manual-clock context for
// as many batches as are expected, collect every batch the operation emits
// and compare it with the expected batches.

// testBatch is the batch interval of harness contexts, as Spark's
// TestSuiteBase.batchDuration.
const testBatch = time.Second

// defaultParallelisms are the parallelisms every harness case runs with
// unless it names its own: 2 is Spark's numInputPartitions, 1 and 3 check
// that results do not depend on the partitioning.
var defaultParallelisms = []int{1, 2, 3}

// order says how verifyOutput compares a batch with its expected elements.
type order int

const (
	// ordered compares element by element, in Batch.All order.
	ordered order = iota
	// unordered compares as multisets, as Spark's useSet = true does for
	// keyed outputs whose keys come in no set order.
	unordered
)

// newTestContext returns a manual-clock context starting at the Unix epoch
// (aligned to testBatch), with the given parallelism, closed when t ends.
func newTestContext(t testing.TB, parallelism int) *engine.Context {
	t.Helper()
	c, err := engine.NewContext(testBatch,
		engine.WithManualClock(time.Unix(0, 0)),
		engine.WithParallelism(parallelism))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// collect registers an output on s that records a deep copy of every batch
// it emits, partitions included, and returns where the copies go.
func collect[U any](s *dstream.Stream[U]) *[]dstream.Batch[U] {
	var got []dstream.Batch[U]
	dstream.ForEachBatch(s, func(_ context.Context, b dstream.Batch[U]) error {
		parts := make([][]U, len(b.Parts))
		for i, p := range b.Parts {
			parts[i] = slices.Clone(p)
		}
		got = append(got, dstream.Batch[U]{Time: b.Time, Parts: parts})
		return nil
	})
	return &got
}

// runOperation runs operation over a queue of input for numBatches batches
// and returns the batches it emitted and RunBatches' error.
func runOperation[T, U any](t testing.TB, parallelism int, input [][]T, operation func(*dstream.Stream[T]) *dstream.Stream[U], numBatches int) ([]dstream.Batch[U], error) {
	t.Helper()
	c := newTestContext(t, parallelism)
	got := collect(operation(dstream.Queue(c, input)))
	err := c.RunBatches(t.Context(), numBatches)
	return *got, err
}

// runOperation2 is runOperation for an operation of two input streams.
func runOperation2[T1, T2, U any](t testing.TB, parallelism int, input1 [][]T1, input2 [][]T2, operation func(*dstream.Stream[T1], *dstream.Stream[T2]) *dstream.Stream[U], numBatches int) ([]dstream.Batch[U], error) {
	t.Helper()
	c := newTestContext(t, parallelism)
	got := collect(operation(dstream.Queue(c, input1), dstream.Queue(c, input2)))
	err := c.RunBatches(t.Context(), numBatches)
	return *got, err
}

// verifyOutput checks that got holds one batch per expected batch, at the
// manual clock's times 1 s, 2 s, …, each with the expected elements.
func verifyOutput[U any](t testing.TB, expected [][]U, got []dstream.Batch[U], o order) {
	t.Helper()
	verifyWindowed(t, expected, got, testBatch, o)
}

// verifyWindowed is verifyOutput for a stream that emits every slide: the
// batches are expected at the times slide, 2·slide, … after the manual
// clock's zero.
func verifyWindowed[U any](t testing.TB, expected [][]U, got []dstream.Batch[U], slide time.Duration, o order) {
	t.Helper()
	require.Len(t, got, len(expected), "number of output batches")
	for i, want := range expected {
		b := got[i]
		require.Equal(t, time.Unix(0, 0).Add(time.Duration(i+1)*slide), b.Time, "time of output batch %d", i)
		elems := slices.Collect(b.All())
		switch o {
		case ordered:
			require.Equal(t, orNil(want), orNil(elems), "output batch %d (%v ms)", i, b.Time.UnixMilli())
		case unordered:
			require.ElementsMatch(t, want, elems, "output batch %d (%v ms)", i, b.Time.UnixMilli())
		default:
			panic(fmt.Sprintf("unknown order %d", o))
		}
	}
}

func orNil[U any](xs []U) []U {
	if len(xs) == 0 {
		return nil
	}
	return xs
}

// testOperation returns a case body that runs operation over input for
// len(expected) batches and verifies the output, as Spark's
// testOperation(input, operation, expectedOutput, useSet).
func testOperation[T, U any](input [][]T, operation func(*dstream.Stream[T]) *dstream.Stream[U], expected [][]U, o order) func(*testing.T, int) {
	return func(t *testing.T, parallelism int) {
		got, err := runOperation(t, parallelism, input, operation, len(expected))
		require.NoError(t, err)
		verifyOutput(t, expected, got, o)
	}
}

// testOperation2 is testOperation for an operation of two input streams.
func testOperation2[T1, T2, U any](input1 [][]T1, input2 [][]T2, operation func(*dstream.Stream[T1], *dstream.Stream[T2]) *dstream.Stream[U], expected [][]U, o order) func(*testing.T, int) {
	return func(t *testing.T, parallelism int) {
		got, err := runOperation2(t, parallelism, input1, input2, operation, len(expected))
		require.NoError(t, err)
		verifyOutput(t, expected, got, o)
	}
}

// opCase is one row of a harness table: a name (Spark's test name for
// ported cases), the parallelisms to run it with (defaultParallelisms when
// nil) and its body.
type opCase struct {
	name         string
	parallelisms []int
	run          func(t *testing.T, parallelism int)
}

// runCases runs every case once per parallelism, as subtest
// "<name>/parallelism=<n>".
func runCases(t *testing.T, cases []opCase) {
	t.Helper()
	for _, tc := range cases {
		ps := tc.parallelisms
		if ps == nil {
			ps = defaultParallelisms
		}
		for _, p := range ps {
			t.Run(fmt.Sprintf("%s/parallelism=%d", tc.name, p), func(t *testing.T) { tc.run(t, p) })
		}
	}
}

// fixedSource is a source whose input is fixed by the batch time, so it
// keeps no position: it reports records(j) records for batch j when it plans
// or replans j, and a batch without input leaves nothing to checkpoint, as
// an idle Kafka source does.
type fixedSource struct {
	meta    engine.Meta
	records func(j *engine.Job) int
}

func (s *fixedSource) Meta() *engine.Meta { return &s.meta }

func (s *fixedSource) Plan(_ context.Context, j *engine.Job) ([]byte, error) {
	j.AddRecords(int64(s.records(j)))
	return nil, nil
}

func (s *fixedSource) Replan(ctx context.Context, j *engine.Job, _ []byte) error {
	_, err := s.Plan(ctx, j)
	return err
}

func (s *fixedSource) Commit(context.Context, *engine.Job) error { return nil }

// ones pairs every word with a count of 1.
func ones(s *dstream.Stream[string]) *dstream.Stream[dstream.KV[string, int64]] {
	return dstream.Map(s, func(w string) dstream.KV[string, int64] { return dstream.Pair(w, int64(1)) })
}

func add(a, b int64) int64 { return a + b }
func sub(a, b int64) int64 { return a - b }

// addCount is an update function that keeps a running count. Keys without
// data keep their state unchanged.
func addCount(values []int64, n int64, _ bool) (int64, bool) {
	for _, v := range values {
		n += v
	}
	return n, true
}

// mapBatches applies f to every element of every batch, as Spark's tests
// derive expected output with input.map(_.map(f)).
func mapBatches[T, U any](batches [][]T, f func(T) []U) [][]U {
	out := make([][]U, len(batches))
	for i, b := range batches {
		for _, x := range b {
			out[i] = append(out[i], f(x)...)
		}
	}
	return out
}

// seq returns the integers from lo to hi inclusive, as Scala's lo to hi.
func seq(lo, hi int) []int {
	var xs []int
	for x := lo; x <= hi; x++ {
		xs = append(xs, x)
	}
	return xs
}

// TestHarness checks the harness itself: a mismatch in ordered or
// unordered comparison, or a missing batch, fails the check.
func TestHarness(t *testing.T) {
	batch := func(i int, xs ...int) dstream.Batch[int] {
		return dstream.Batch[int]{Time: time.Unix(int64(i), 0), Parts: [][]int{xs}}
	}
	tests := []struct {
		name     string
		expected [][]int
		got      []dstream.Batch[int]
		o        order
		ok       bool
	}{
		{"ordered equal", [][]int{{1, 2}, {}}, []dstream.Batch[int]{batch(1, 1, 2), batch(2)}, ordered, true},
		{"ordered reordered", [][]int{{1, 2}}, []dstream.Batch[int]{batch(1, 2, 1)}, ordered, false},
		{"unordered reordered", [][]int{{1, 2}}, []dstream.Batch[int]{batch(1, 2, 1)}, unordered, true},
		{"unordered counts duplicates", [][]int{{1, 1}}, []dstream.Batch[int]{batch(1, 1)}, unordered, false},
		{"missing batch", [][]int{{1}, {}}, []dstream.Batch[int]{batch(1, 1)}, ordered, false},
		{"wrong time", [][]int{{1}}, []dstream.Batch[int]{batch(2, 1)}, ordered, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			func() {
				defer func() { _ = recover() }() // FailNow of the recorder panics to stop verifyOutput
				verifyOutput(rec, tc.expected, tc.got, tc.o)
			}()
			require.Equal(t, !tc.ok, rec.failed)
		})
	}
}

// recorder is a testing.TB that records a failure instead of failing the
// test that runs it.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) FailNow()              { r.failed = true; panic(r) }
func (r *recorder) Helper()               {}
