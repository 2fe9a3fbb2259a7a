package engine_test

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// emitted is one window a windowed stream emitted: its batch time and its
// elements in order.
type emitted struct {
	at   time.Time
	data []int
}

// windowsOf runs a 1 s manual-clock job whose batch k = 1, 2, … (time
// start + k s) gets in[k-1], windowed by w and slide, for batches batches,
// and returns the windows it emitted.
func windowsOf(t *testing.T, start time.Time, in [][]int, w, slide time.Duration, batches int, opts ...engine.Option) []emitted {
	t.Helper()
	c, err := engine.NewContext(time.Second, append([]engine.Option{engine.WithManualClock(start), engine.WithParallelism(1)}, opts...)...)
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	var out []emitted
	dstream.ForEachBatch(dstream.Window(dstream.Queue(c, in), w, slide), func(_ context.Context, b dstream.Batch[int]) error {
		out = append(out, emitted{at: b.Time, data: slices.Collect(b.All())})
		return nil
	})
	require.NoError(t, c.RunBatches(context.Background(), batches))
	return out
}

// numbers returns n batches holding 0, 1, …, n−1, one each.
func numbers(n int) [][]int {
	in := make([][]int, n)
	for i := range in {
		in[i] = []int{i}
	}
	return in
}

// TestZeroTimeSharedByContextsStartedApart runs one input on two contexts:
// the first from the zero time, the second taking over the input's later
// part 5 s later, as a member that gains a task does. With the same zero
// time both emit their windows at the same times, and every window the
// second sees whole holds the same records as the first's; with each
// context's own start as its zero time they do not.
func TestZeroTimeSharedByContextsStartedApart(t *testing.T) {
	zero := time.Unix(1_000, 0)
	const late = 5 // the second context starts 5 batches later
	in := numbers(20)
	w, slide := 4*time.Second, 2*time.Second

	first := windowsOf(t, zero, in, w, slide, len(in), engine.WithZeroTime(zero))
	second := windowsOf(t, zero.Add(late*time.Second), in[late:], w, slide, len(in)-late, engine.WithZeroTime(zero))
	require.NotEmpty(t, second)
	byTime := make(map[time.Time][]int)
	for _, e := range first {
		require.Zero(t, e.at.Sub(zero)%slide, "window at %v is a multiple of the slide from the zero time", e.at)
		byTime[e.at] = e.data
	}
	whole := 0
	for _, e := range second {
		want, ok := byTime[e.at]
		require.True(t, ok, "the second context emits at %v, where the first emits too", e.at)
		if e.at.Add(-w).Before(zero.Add(late * time.Second)) {
			continue // the window reaches back before the second context's start
		}
		require.Equal(t, want, e.data, "window at %v", e.at)
		whole++
	}
	require.Equal(t, (len(in)-late)/int(slide/time.Second)-1, whole, "every whole window is compared")

	apart := windowsOf(t, zero.Add(late*time.Second), in[late:], w, slide, len(in)-late)
	require.NotEmpty(t, apart)
	for _, e := range apart {
		_, ok := byTime[e.at]
		require.False(t, ok, "without a common zero time the second context emits at %v, between the first's windows", e.at)
	}
}

// TestZeroTimeRealClock starts two real-clock contexts 1.7 s apart on fake
// time, both with the Unix epoch as zero time, and checks that their batch
// times are the same grid and their 3 s windows end at the same times.
func TestZeroTimeRealClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(300 * time.Millisecond) // fake time: start off the grid
		run := func(batches int) (batchTimes, windowTimes []time.Time) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			c, err := engine.NewContext(time.Second, engine.WithZeroTime(time.Unix(0, 0)), engine.WithParallelism(1))
			require.NoError(t, err)
			defer c.Close()
			src := dstream.Queue(c, make([][]int, batches))
			dstream.ForEachBatch(src, func(_ context.Context, b dstream.Batch[int]) error {
				mu.Lock()
				defer mu.Unlock()
				batchTimes = append(batchTimes, b.Time)
				if len(batchTimes) == batches {
					cancel()
				}
				return nil
			})
			dstream.ForEachBatch(dstream.Window(src, 3*time.Second, 3*time.Second), func(_ context.Context, b dstream.Batch[int]) error {
				mu.Lock()
				defer mu.Unlock()
				windowTimes = append(windowTimes, b.Time)
				return nil
			})
			require.NoError(t, c.Run(ctx))
			require.Equal(t, time.Unix(0, 0), c.Zero().Local())
			return batchTimes, windowTimes
		}
		var wg sync.WaitGroup
		var aBatches, aWindows, bBatches, bWindows []time.Time
		wg.Go(func() { aBatches, aWindows = run(12) })
		time.Sleep(1700 * time.Millisecond) // fake time: the second starts 1.7 s later
		startB := time.Now()
		wg.Go(func() { bBatches, bWindows = run(8) })
		wg.Wait()

		require.True(t, bBatches[0].After(startB) && bBatches[0].Sub(startB) <= time.Second,
			"the second's first batch %v is the first batch time after its start %v", bBatches[0], startB)
		require.Subset(t, aBatches, bBatches, "the second's batch times are among the first's")
		require.NotEmpty(t, bWindows)
		for _, at := range append(slices.Clone(aWindows), bWindows...) {
			require.Zero(t, at.UnixMilli()%3000, "window at %v ends on a multiple of its slide from the epoch", at)
		}
		require.Subset(t, aWindows, bWindows, "the second's windows end where the first's do")
	})
}

// openWindowed starts a 1 s manual-clock job from start over the checkpoint
// dir whose 4 s windows slide every 2 s, and returns it with the windows it
// emits; the caller closes it.
func openWindowed(t *testing.T, dir string, start time.Time, opts ...engine.Option) (*engine.Context, *[]emitted, error) {
	t.Helper()
	c, err := engine.NewContext(time.Second, append([]engine.Option{engine.WithManualClock(start), engine.WithParallelism(1), engine.WithCheckpoint(dir)}, opts...)...)
	require.NoError(t, err)
	out := new([]emitted)
	dstream.ForEachBatch(dstream.Window(dstream.Queue(c, numbers(20)), 4*time.Second, 2*time.Second), func(_ context.Context, b dstream.Batch[int]) error {
		*out = append(*out, emitted{at: b.Time, data: slices.Collect(b.All())})
		return nil
	})
	if err := c.Start(); err != nil {
		require.NoError(t, c.Close())
		return nil, nil, err
	}
	return c, out, nil
}

func TestZeroTimeCheckpoint(t *testing.T) {
	zero, start := time.Unix(1_000, 0), time.Unix(1_003, 0)
	dir := t.TempDir()
	c, out, err := openWindowed(t, dir, start, engine.WithZeroTime(zero))
	require.NoError(t, err)
	require.NoError(t, c.RunBatches(context.Background(), 5))
	require.NoError(t, c.Close())
	require.Equal(t, time.Unix(1_004, 0), (*out)[0].at, "the first window is at the first multiple of the slide from the zero time")

	t.Run("another zero time is refused", func(t *testing.T) {
		_, _, err := openWindowed(t, dir, start, engine.WithZeroTime(zero.Add(-2*time.Second)))
		require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
		require.ErrorContains(t, err, "counts batches from zero time 1970-01-01T00:16:40.000Z (1000000 ms)")
		require.ErrorContains(t, err, "this job's zero time is 1970-01-01T00:16:38.000Z (998000 ms) (WithZeroTime gave it)")
	})
	t.Run("the start as zero time is refused", func(t *testing.T) {
		_, _, err := openWindowed(t, dir, start, engine.WithZeroTime(start))
		require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
		require.ErrorContains(t, err, "(1000000 ms)")
		require.ErrorContains(t, err, "(1003000 ms)")
	})
	t.Run("group mode's epoch is refused", func(t *testing.T) {
		dir := t.TempDir()
		open := func(group bool) (*engine.Context, error) {
			c, err := engine.NewContext(time.Second, engine.WithManualClock(start), engine.WithCheckpoint(dir))
			require.NoError(t, err)
			newGroupOutput(c, group)
			return c, c.RunBatches(context.Background(), 1)
		}
		c, err := open(false)
		require.NoError(t, err)
		require.NoError(t, c.Close())
		c, err = open(true)
		defer c.Close()
		require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
		require.ErrorContains(t, err, "counts batches from zero time 1970-01-01T00:16:43.000Z (1003000 ms)")
		require.ErrorContains(t, err, "this job's zero time is 1970-01-01T00:00:00.000Z (0 ms) (it runs in group mode, whose members count from the Unix epoch)")
	})
	t.Run("the same zero time resumes", func(t *testing.T) {
		c, out, err := openWindowed(t, dir, start, engine.WithZeroTime(zero))
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.RunBatches(context.Background(), 2))
		require.Equal(t, []emitted{{at: time.Unix(1_010, 0), data: []int{3, 4, 5, 6}}}, *out,
			"batch 7 (1 010 s) holds input 6 and its window the three before")
	})
	t.Run("no zero time adopts the checkpoint's", func(t *testing.T) {
		c, out, err := openWindowed(t, dir, start)
		require.NoError(t, err)
		defer c.Close()
		require.Equal(t, zero, c.Zero().Local())
		require.NoError(t, c.RunBatches(context.Background(), 2))
		require.Equal(t, []emitted{{at: time.Unix(1_012, 0), data: []int{5, 6, 7, 8}}}, *out)
	})
}

// groupSource is a source that, when group is set, runs the job as one of
// several processes; it brings no input.
type groupSource struct {
	meta  engine.Meta
	group bool
}

func (s *groupSource) Meta() *engine.Meta                                { return &s.meta }
func (s *groupSource) Plan(context.Context, *engine.Job) ([]byte, error) { return nil, nil }
func (s *groupSource) Replan(context.Context, *engine.Job, []byte) error { return nil }
func (s *groupSource) Commit(context.Context, *engine.Job) error         { return nil }
func (s *groupSource) Distributed() bool                                 { return s.group }

var _ engine.Distributed = (*groupSource)(nil)

// newGroupOutput registers a group source and an output over it that
// records batch times.
func newGroupOutput(c *engine.Context, group bool) *[]time.Time {
	src := &groupSource{meta: engine.Meta{Kind: "groupSource"}, group: group}
	c.Register(src)
	times := new([]time.Time)
	o := &testOutput{meta: engine.Meta{Kind: "testOutput", Parents: []engine.Node{src}}, run: func(_ context.Context, j *engine.Job) error {
		*times = append(*times, j.Time)
		return nil
	}}
	c.Register(o)
	return times
}

func TestDistributedSourceMakesTheEpochTheZeroTime(t *testing.T) {
	t.Run("by default", func(t *testing.T) {
		c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1_003, 0)))
		require.NoError(t, err)
		defer c.Close()
		times := newGroupOutput(c, true)
		require.NoError(t, c.RunBatches(context.Background(), 2))
		require.Equal(t, time.Unix(0, 0), c.Zero().Local())
		require.Equal(t, []time.Time{time.Unix(1_004, 0), time.Unix(1_005, 0)}, *times, "batch times count from the manual clock's start")
	})
	t.Run("unless WithZeroTime gives another", func(t *testing.T) {
		zero := time.Unix(1_001, 0)
		c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1_003, 0)), engine.WithZeroTime(zero))
		require.NoError(t, err)
		defer c.Close()
		newGroupOutput(c, true)
		require.NoError(t, c.Start())
		require.Equal(t, zero, c.Zero())
	})
}

func TestWithZeroTimeRefusesBadInput(t *testing.T) {
	cases := []struct {
		name string
		opts []engine.Option
		want string
	}{
		{"zero time.Time", []engine.Option{engine.WithZeroTime(time.Time{})}, "WithZeroTime got the zero time.Time; pass an instant such as time.Unix(0, 0)"},
		{"below a millisecond", []engine.Option{engine.WithZeroTime(time.Unix(0, 1500))}, "zero time 1970-01-01T00:00:00.0000015Z is not a whole number of milliseconds"},
		{"manual start before the zero time", []engine.Option{engine.WithZeroTime(time.Unix(10, 0)), engine.WithManualClock(time.Unix(5, 0))},
			"manual clock start 1970-01-01T00:00:05Z is not a multiple of the batch interval 2s after the zero time 1970-01-01T00:00:10Z"},
		{"manual start off the zero time's grid", []engine.Option{engine.WithZeroTime(time.Unix(10, 0)), engine.WithManualClock(time.Unix(13, 0))},
			"manual clock start 1970-01-01T00:00:13Z is not a multiple of the batch interval 2s after the zero time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := engine.NewContext(2*time.Second, tc.opts...)
			require.ErrorContains(t, err, tc.want)
		})
	}
	c, err := engine.NewContext(2*time.Second, engine.WithZeroTime(time.Unix(11, 0)), engine.WithManualClock(time.Unix(13, 0)))
	require.NoError(t, err, "a zero time off the epoch's grid, and a start on its own")
	require.NoError(t, c.Close())
}

// sparkWindows computes, from Spark's definition, the windows of a stream
// whose batch i = 1, 2, … (time zero + i·1 s) holds in[i-1]: at every
// emission time t = zero + j·slide, j ≥ 1, up to zero + last·1 s, the
// batches in (t − w, t], in order. It is the reference the runs below are
// held to; TestZeroTimeSparkWindows anchors it to Spark's own expected
// outputs first.
func sparkWindows[T any](in [][]T, w, slide time.Duration, last int) map[time.Time][][]T {
	zero := time.Unix(0, 0)
	out := make(map[time.Time][][]T)
	for t := slide; t <= time.Duration(last)*time.Second; t += slide {
		var win [][]T
		for i := range in {
			at := time.Duration(i+1) * time.Second
			if at > t-w && at <= t {
				win = append(win, in[i])
			}
		}
		out[zero.Add(t)] = win
	}
	return out
}

// sumByKey sums the values of each key in a window's batches, keeping only
// keys that have values: Spark's reduceByKeyAndWindow(_ + _).
func sumByKey(win [][]dstream.KV[string, int]) map[string]int {
	m := map[string]int{}
	for _, b := range win {
		for _, kv := range b {
			m[kv.Key] += kv.Value
		}
	}
	return m
}

// TestZeroTimeSparkWindows ports cases of Spark's WindowOperationsSuite to a
// zero time that is not the start: the job starts d batches after its zero
// time, which in Spark's terms is the suite's input after d empty batches.
// For d = 0 the reference reproduces the suite's expected output; for every
// d the windows the job emits are the reference's at the same times, and
// when d·1 s is a multiple of the slide they are the suite's expected
// output itself.
func TestZeroTimeSparkWindows(t *testing.T) {
	seq6 := [][]int{{0}, {1}, {2}, {3}, {4}, {5}}
	windowCases := []struct {
		name     string
		w, slide int
		expected [][]int
	}{
		{"window - basic window", 2, 1, [][]int{{0}, {0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}}},
		{"window - tumbling window", 2, 2, [][]int{{0, 1}, {2, 3}, {4, 5}}},
		{"window - larger window", 4, 2, [][]int{{0, 1}, {0, 1, 2, 3}, {2, 3, 4, 5}, {4, 5}}},
		{"window - non-overlapping window", 2, 3, [][]int{{1, 2}, {4, 5}}},
	}
	for _, wc := range windowCases {
		w, slide := winDur(wc.w), winDur(wc.slide)
		t.Run(wc.name, func(t *testing.T) {
			var anchor [][]int
			ref := sparkWindows(seq6, w, slide, len(wc.expected)*wc.slide)
			for _, at := range sortedTimes(ref) {
				anchor = append(anchor, slices.Concat(ref[at]...))
			}
			require.Equal(t, wc.expected, anchor, "the reference gives Spark's expected output")

			for d := range 2*wc.slide + 1 {
				prefixed := append(make([][]int, d), seq6...)
				n := len(seq6) + wc.w
				ref := sparkWindows(prefixed, w, slide, d+n)
				start := time.Unix(int64(d), 0)
				got := windowsOf(t, start, seq6, w, slide, n, engine.WithZeroTime(time.Unix(0, 0)))
				var want []emitted
				for _, at := range sortedTimes(ref) {
					if at.After(start) {
						want = append(want, emitted{at: at, data: append([]int{}, slices.Concat(ref[at]...)...)})
					}
				}
				require.Equal(t, want, nonNil(got), "started %d s after the zero time", d)
				if d%wc.slide == 0 {
					var data [][]int
					for _, e := range got[:len(wc.expected)] {
						data = append(data, e.data)
					}
					require.Equal(t, wc.expected, data, "started %d s after the zero time, a multiple of the slide", d)
				}
			}
		})
	}

	kv := func(pairs ...any) []dstream.KV[string, int] {
		var out []dstream.KV[string, int]
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, dstream.Pair(pairs[i].(string), pairs[i+1].(int)))
		}
		return out
	}
	largerSlideInput := [][]dstream.KV[string, int]{kv("a", 1), kv("a", 2), kv("a", 3), kv("a", 4), kv("a", 5), kv("a", 6), {}, {}}
	bigInput := [][]dstream.KV[string, int]{
		kv("a", 1), kv("a", 1, "b", 1), kv("a", 1, "b", 1, "c", 1), kv("a", 1, "b", 1), kv("a", 1), {},
		kv("a", 1), kv("a", 1, "b", 1), kv("a", 1, "b", 1, "c", 1), kv("a", 1, "b", 1), kv("a", 1), {},
	}
	reduceCases := []struct {
		name     string
		in       [][]dstream.KV[string, int]
		w, slide int
		expected []map[string]int
	}{
		{"reduceByKeyAndWindow - larger slide time", largerSlideInput, 4, 2,
			[]map[string]int{{"a": 3}, {"a": 10}, {"a": 18}, {"a": 11}}},
		{"reduceByKeyAndWindow with inverse and filter functions - big test", bigInput, 2, 1, []map[string]int{
			{"a": 1}, {"a": 2, "b": 1}, {"a": 2, "b": 2, "c": 1}, {"a": 2, "b": 2, "c": 1}, {"a": 2, "b": 1}, {"a": 1},
			{"a": 1}, {"a": 2, "b": 1}, {"a": 2, "b": 2, "c": 1}, {"a": 2, "b": 2, "c": 1}, {"a": 2, "b": 1}, {"a": 1},
		}},
	}
	for _, rc := range reduceCases {
		w, slide := winDur(rc.w), winDur(rc.slide)
		t.Run(rc.name, func(t *testing.T) {
			var anchor []map[string]int
			ref := sparkWindows(rc.in, w, slide, len(rc.expected)*rc.slide)
			for _, at := range sortedTimes(ref) {
				anchor = append(anchor, sumByKey(ref[at]))
			}
			require.Equal(t, rc.expected, anchor, "the reference gives Spark's expected output")

			for d := range 2*rc.slide + 1 {
				for _, inverse := range []bool{false, true} {
					n := len(rc.in) + rc.w
					ref := sparkWindows(append(make([][]dstream.KV[string, int], d), rc.in...), w, slide, d+n)
					start := time.Unix(int64(d), 0)
					got := reducedWindowsOf(t, start, rc.in, w, slide, n, inverse)
					want := map[time.Time]map[string]int{}
					for at, win := range ref {
						if at.After(start) {
							want[at] = sumByKey(win)
						}
					}
					require.Equal(t, want, got, "started %d s after the zero time, inverse %v", d, inverse)
				}
			}
		})
	}
}

// reducedWindowsOf runs ReduceByKeyAndWindow (or its incremental form with
// an inverse and a filter of zeros) like windowsOf, with the Unix epoch as
// zero time, and returns each emitted window's sums.
func reducedWindowsOf(t *testing.T, start time.Time, in [][]dstream.KV[string, int], w, slide time.Duration, batches int, inverse bool) map[time.Time]map[string]int {
	t.Helper()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(start), engine.WithParallelism(2), engine.WithZeroTime(time.Unix(0, 0)))
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	add := func(a, b int) int { return a + b }
	src := dstream.Queue(c, in)
	var s *dstream.Stream[dstream.KV[string, int]]
	if inverse {
		s = dstream.ReduceByKeyAndWindowInv(src, add, func(a, b int) int { return a - b }, w, slide,
			func(kv dstream.KV[string, int]) bool { return kv.Value != 0 })
	} else {
		s = dstream.ReduceByKeyAndWindow(src, add, w, slide)
	}
	out := map[time.Time]map[string]int{}
	dstream.ForEachBatch(s, func(_ context.Context, b dstream.Batch[dstream.KV[string, int]]) error {
		m := map[string]int{}
		for kv := range b.All() {
			m[kv.Key] = kv.Value
		}
		out[b.Time] = m
		return nil
	})
	require.NoError(t, c.RunBatches(context.Background(), batches))
	return out
}

func winDur(s int) time.Duration { return time.Duration(s) * time.Second }

// sortedTimes returns the keys of m in time order.
func sortedTimes[V any](m map[time.Time]V) []time.Time {
	return slices.SortedFunc(maps.Keys(m), time.Time.Compare)
}

// nonNil returns the windows with empty data as empty, not nil, slices, as
// the reference builds them.
func nonNil(in []emitted) []emitted {
	for i := range in {
		if in[i].data == nil {
			in[i].data = []int{}
		}
	}
	return in
}
