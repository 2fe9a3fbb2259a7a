package engine_test

import (
	"context"
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
