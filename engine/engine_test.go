package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// testOutput is an output node whose work is a function, for driving the
// engine without package dstream.
type testOutput struct {
	meta engine.Meta
	run  func(ctx context.Context, j *engine.Job) error
}

func (o *testOutput) Meta() *engine.Meta                                 { return &o.meta }
func (o *testOutput) RunOutput(ctx context.Context, j *engine.Job) error { return o.run(ctx, j) }

var _ engine.Output = (*testOutput)(nil)

// newOutput registers an output running run with c.
func newOutput(c *engine.Context, run func(ctx context.Context, j *engine.Job) error) *testOutput {
	o := &testOutput{meta: engine.Meta{Kind: "testOutput"}, run: run}
	c.Register(o)
	return o
}

// newManual returns a manual-clock context from the Unix epoch with a 1 s
// batch, closed when t ends.
func newManual(t *testing.T, parallelism int, opts ...engine.Option) *engine.Context {
	t.Helper()
	c, err := engine.NewContext(time.Second,
		append([]engine.Option{engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(parallelism)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// batchLog records the listener events of a context. Listeners are called
// from the goroutine that runs batches; the mutex lets the test read.
type batchLog struct {
	mu                 sync.Mutex
	started, completed []engine.BatchInfo
	onCompleted        func(n int) // called with the number of completed batches
}

func (l *batchLog) BatchStarted(info engine.BatchInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started = append(l.started, info)
}

func (l *batchLog) BatchCompleted(info engine.BatchInfo) {
	l.mu.Lock()
	l.completed = append(l.completed, info)
	n := len(l.completed)
	l.mu.Unlock()
	if l.onCompleted != nil {
		l.onCompleted(n)
	}
}

func (l *batchLog) snapshot() (started, completed []engine.BatchInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]engine.BatchInfo(nil), l.started...), append([]engine.BatchInfo(nil), l.completed...)
}

// TestTasksRunConcurrently checks that the tasks of a stage run in parallel:
// the tasks of each wave of `parallelism` tasks wait on a barrier that opens
// only when all of them have started, which never happens if tasks run one
// by one (a guard timeout then fails the batch instead of hanging). It also
// checks that no more than `parallelism` tasks ever run at once.
func TestTasksRunConcurrently(t *testing.T) {
	tests := []struct {
		name               string
		parallelism, tasks int
	}{
		{"two tasks at parallelism 2", 2, 2},
		{"three tasks at parallelism 3", 3, 3},
		{"six tasks in waves of 2", 2, 6},
		{"six tasks in waves of 3", 3, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			guard, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			c := newManual(t, tc.parallelism)
			waves := make([]chan struct{}, tc.tasks/tc.parallelism)
			arrived := make([]atomic.Int32, len(waves))
			for i := range waves {
				waves[i] = make(chan struct{})
			}
			var running, peak, ran atomic.Int32
			out := newOutput(c, nil)
			out.run = func(ctx context.Context, j *engine.Job) error {
				return j.Run(ctx, out.Meta().Name(), tc.tasks, func(ctx context.Context, tk *engine.Task) error {
					n := running.Add(1)
					defer running.Add(-1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					ran.Add(1)
					w := tk.Index / tc.parallelism
					if arrived[w].Add(1) == int32(tc.parallelism) {
						close(waves[w])
					}
					select {
					case <-waves[w]:
						return nil
					case <-guard.Done():
						return fmt.Errorf("task %d: the other tasks of its wave never started; tasks ran one at a time", tk.Index)
					}
				})
			}
			require.NoError(t, c.RunBatches(guard, 1))
			require.Equal(t, int32(tc.tasks), ran.Load(), "tasks run")
			require.Equal(t, int32(tc.parallelism), peak.Load(), "most tasks running at once")
		})
	}
}

// TestFirstFailingTaskCancelsBatch checks that when one task fails, the
// others see their context cancelled, the batch fails with a
// *engine.BatchError naming the batch time and the operator, and the
// context refuses to run more batches.
func TestFirstFailingTaskCancelsBatch(t *testing.T) {
	guard, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	errBoom := errors.New("boom")
	c := newManual(t, 2)
	peerStarted := make(chan struct{})
	var peerCancelled atomic.Bool
	var op string
	out := newOutput(c, nil)
	out.run = func(ctx context.Context, j *engine.Job) error {
		return j.Run(ctx, op, 2, func(ctx context.Context, tk *engine.Task) error {
			if tk.Index == 0 {
				select {
				case <-peerStarted:
					return errBoom
				case <-guard.Done():
					return errors.New("task 1 never started")
				}
			}
			close(peerStarted)
			select {
			case <-ctx.Done():
				peerCancelled.Store(true)
				return ctx.Err()
			case <-guard.Done():
				return errors.New("task 1 was not cancelled when task 0 failed")
			}
		})
	}
	op = out.Meta().Name()

	err := c.RunBatches(guard, 3)
	require.ErrorIs(t, err, errBoom)
	require.True(t, peerCancelled.Load(), "the running peer saw its context cancelled")
	var be *engine.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, time.Unix(1, 0), be.Time)
	require.Equal(t, op, be.Op)
	require.Contains(t, err.Error(), fmt.Sprintf("batch 1000 ms failed in operator %q, task 0: boom", op))
	require.True(t, c.LastBatch().IsZero(), "no batch completed")

	err = c.RunBatches(guard, 1)
	require.ErrorIs(t, err, engine.ErrFailed)
	require.ErrorIs(t, err, errBoom, "ErrFailed comes with the error of the failed batch")
}

// TestBatchErrorNamesOperator checks that a failure anywhere in a fused
// chain, a shuffle or an output is reported against the operator whose
// function failed, with the batch time in ms, and that listeners see it.
func TestBatchErrorNamesOperator(t *testing.T) {
	errSink := errors.New("sink is full")
	input := [][]int{{1, 2, 3}, {4, 4, 5, 6}}
	// Each build returns the name of the operator that fails in batch 2.
	tests := []struct {
		name    string
		build   func(c *engine.Context) string
		wantErr error
		wantMsg string
	}{
		{"panic in Map fused with a Filter", func(c *engine.Context) string {
			m := dstream.Map(dstream.Queue(c, input), func(x int) int {
				if x == 5 {
					panic("map saw 5")
				}
				return x
			})
			dstream.ForEachBatch(dstream.Filter(m, func(int) bool { return true }), nop[int])
			return m.Node().Meta().Name()
		}, nil, "panic: map saw 5"},
		{"panic in Filter after a Map", func(c *engine.Context) string {
			m := dstream.Map(dstream.Queue(c, input), func(x int) int { return x })
			f := dstream.Filter(m, func(x int) bool {
				if x == 5 {
					panic("filter saw 5")
				}
				return true
			})
			dstream.ForEachBatch(f, nop[int])
			return f.Node().Meta().Name()
		}, nil, "panic: filter saw 5"},
		{"panic in ReduceByKey's function", func(c *engine.Context) string {
			pairs := dstream.Map(dstream.Queue(c, input), func(x int) dstream.KV[int, int] { return dstream.Pair(x, x) })
			r := dstream.ReduceByKey(pairs, func(a, b int) int { panic("reduce of a repeated key") })
			dstream.ForEachBatch(r, nop[dstream.KV[int, int]])
			return r.Node().Meta().Name()
		}, nil, "panic: reduce of a repeated key"},
		{"error from ForEachBatch", func(c *engine.Context) string {
			dstream.ForEachBatch(dstream.Queue(c, input), func(_ context.Context, b dstream.Batch[int]) error {
				if b.Len() == 4 {
					return errSink
				}
				return nil
			})
			return lastNode(c)
		}, errSink, "sink is full"},
		{"panic in ForEachBatch", func(c *engine.Context) string {
			dstream.ForEachBatch(dstream.Queue(c, input), func(_ context.Context, b dstream.Batch[int]) error {
				if b.Len() == 4 {
					panic("output panicked")
				}
				return nil
			})
			return lastNode(c)
		}, nil, "panic: output panicked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &batchLog{}
			c := newManual(t, 2, engine.WithListener(log))
			op := tc.build(c)
			err := c.RunBatches(t.Context(), 3)
			require.Error(t, err)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
			var be *engine.BatchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, op, be.Op)
			require.Equal(t, int64(2000), be.Time.UnixMilli())
			require.Contains(t, err.Error(), fmt.Sprintf("engine: batch 2000 ms failed in operator %q", op))
			require.Contains(t, err.Error(), tc.wantMsg)
			require.Equal(t, time.Unix(1, 0), c.LastBatch(), "batch 1 completed")

			_, completed := log.snapshot()
			require.Len(t, completed, 2)
			require.NoError(t, completed[0].Err)
			require.Equal(t, 1, completed[0].OutputOpsSucceeded)
			require.ErrorIs(t, completed[1].Err, err.(*engine.BatchError).Err)
			require.Equal(t, 0, completed[1].OutputOpsSucceeded)

			require.ErrorIs(t, c.RunBatches(t.Context(), 1), engine.ErrFailed)
		})
	}
}

func nop[T any](context.Context, dstream.Batch[T]) error { return nil }

func lastNode(c *engine.Context) string {
	nodes := c.Nodes()
	return nodes[len(nodes)-1].Meta().Name()
}

// TestGracefulStop runs the real clock in a synctest bubble (fake time) and
// cancels Run's context while the first batch's first output blocks, or
// while Run waits for the first batch: the batch in flight runs all its
// outputs exactly once, Run returns nil and no other batch starts.
func TestGracefulStop(t *testing.T) {
	tests := []struct {
		name         string
		cancelDuring bool // cancel while the output runs, or before the first batch is due
		wantBatches  int
	}{
		{"cancel during a batch", true, 1},
		{"cancel between batches", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log := &batchLog{}
				c, err := engine.NewContext(time.Second, engine.WithParallelism(2), engine.WithListener(log))
				require.NoError(t, err)
				q := dstream.Queue(c, [][]int{{1, 2}, {3}, {4}})
				entered, release := make(chan struct{}), make(chan struct{})
				var first, second int
				dstream.ForEachBatch(q, func(context.Context, dstream.Batch[int]) error {
					first++
					close(entered)
					<-release
					return nil
				})
				dstream.ForEachBatch(dstream.Map(q, func(x int) int { return x * 2 }), func(context.Context, dstream.Batch[int]) error {
					second++
					return nil
				})

				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- c.Run(ctx) }()
				if tc.cancelDuring {
					<-entered
					cancel()
					synctest.Wait()
					require.Empty(t, done, "Run returned while an output of its batch was running")
					require.ErrorIs(t, c.RunBatches(context.Background(), 1), engine.ErrRunning)
					close(release)
				} else {
					synctest.Wait() // Run waits for the first batch time
					cancel()
				}
				require.NoError(t, <-done)

				started, completed := log.snapshot()
				require.Len(t, started, tc.wantBatches)
				require.Len(t, completed, tc.wantBatches)
				require.Equal(t, tc.wantBatches, first, "runs of the first output")
				require.Equal(t, tc.wantBatches, second, "runs of the second output")
				for _, info := range completed {
					require.NoError(t, info.Err)
					require.Equal(t, 2, info.OutputOpsSucceeded)
				}

				require.NoError(t, c.Close())
				require.NoError(t, c.Close(), "Close is idempotent")
				require.ErrorIs(t, c.Run(context.Background()), engine.ErrClosed)
				require.ErrorIs(t, c.RunBatches(context.Background(), 1), engine.ErrClosed)
			})
		})
	}
}

// TestCloseStopsRun checks that Close, called while Run waits for the next
// batch, makes Run return ErrClosed instead of running batches over
// released resources.
func TestCloseStopsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &batchLog{}
		c, err := engine.NewContext(time.Second, engine.WithListener(log))
		require.NoError(t, err)
		dstream.ForEachBatch(dstream.Queue(c, [][]int{{1}, {2}}), nop[int])
		done := make(chan error, 1)
		go func() { done <- c.Run(context.Background()) }()
		synctest.Wait()
		require.NoError(t, c.Close())
		require.ErrorIs(t, <-done, engine.ErrClosed)
		_, completed := log.snapshot()
		require.Empty(t, completed)
	})
}

// TestRealClock runs the real clock in a synctest bubble, starting off the
// interval grid, with the second batch taking 1.5 intervals: batch times are
// multiples of the interval from the Unix epoch, consecutive and none
// skipped; the third batch starts late by half an interval and records it
// as its scheduling delay; listeners see every batch start and complete
// with its input records counted.
func TestRealClock(t *testing.T) {
	for _, interval := range []time.Duration{time.Second, 7 * time.Second, 250 * time.Millisecond} {
		t.Run(interval.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				time.Sleep(interval/3 + time.Millisecond) // fake time: start off the grid
				start := time.Now()
				input := [][]int{{1, 2}, {3, 4, 5}, {}, {6}, {7, 8, 9, 10}}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				log := &batchLog{onCompleted: func(n int) {
					if n == len(input) {
						cancel()
					}
				}}
				c, err := engine.NewContext(interval, engine.WithParallelism(2), engine.WithListener(log))
				require.NoError(t, err)
				defer c.Close()
				var seen int
				dstream.ForEachBatch(dstream.Queue(c, input), func(context.Context, dstream.Batch[int]) error {
					seen++
					if seen == 2 {
						time.Sleep(interval * 3 / 2) // fake time: the second batch's work takes 1.5 intervals
					}
					return nil
				})
				require.NoError(t, c.Run(ctx))

				started, completed := log.snapshot()
				require.Len(t, started, len(input))
				require.Len(t, completed, len(input))
				first := completed[0].Time
				require.Zero(t, first.UnixNano()%int64(interval), "batch time %v is a multiple of %v from the epoch", first, interval)
				require.True(t, first.After(start) && first.Sub(start) <= interval, "first batch %v is the first grid time after the start %v", first, start)
				wantSched := []time.Duration{0, 0, interval / 2, 0, 0}
				wantProc := []time.Duration{0, interval * 3 / 2, 0, 0, 0}
				for k, info := range completed {
					require.Equal(t, first.Add(time.Duration(k)*interval), info.Time, "batch %d", k)
					require.Equal(t, info.Time, started[k].Time, "started event of batch %d", k)
					require.Equal(t, int64(len(input[k])), info.Records, "records of batch %d", k)
					require.Equal(t, int64(len(input[k])), started[k].Records, "records of batch %d when it started", k)
					require.Equal(t, wantSched[k], info.SchedulingDelay, "scheduling delay of batch %d", k)
					require.Equal(t, wantSched[k], started[k].SchedulingDelay, "scheduling delay of batch %d when it started", k)
					require.Equal(t, wantProc[k], info.ProcessingDelay, "processing delay of batch %d", k)
					require.Equal(t, wantSched[k]+wantProc[k], info.TotalDelay, "total delay of batch %d", k)
					require.Equal(t, 1, info.OutputOps)
					require.Equal(t, 1, info.OutputOpsSucceeded)
					require.NoError(t, info.Err)
				}
				require.Equal(t, completed[len(completed)-1].Time, c.LastBatch())
			})
		})
	}
}

// TestLogger checks the one Debug line per completed batch, and the Error
// line of a failed batch, on an injected logger.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newManual(t, 2, engine.WithLogger(logger))
	require.Same(t, logger, c.Logger())
	errSink := errors.New("sink is full")
	dstream.ForEachBatch(dstream.Queue(c, [][]int{{1, 2, 3}, {}, {4}}), func(_ context.Context, b dstream.Batch[int]) error {
		if b.Time.Equal(time.Unix(3, 0)) {
			return errSink
		}
		return nil
	})
	require.ErrorIs(t, c.RunBatches(t.Context(), 3), errSink)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3, buf.String())
	for i, want := range []string{
		`level=DEBUG msg="batch completed" time_ms=1000 records=3 scheduling_delay=0s processing=`,
		`level=DEBUG msg="batch completed" time_ms=2000 records=0 scheduling_delay=0s processing=`,
		`level=ERROR msg="batch failed" time_ms=3000 error=`,
	} {
		require.Contains(t, lines[i], want)
	}
	require.Contains(t, lines[0], "outputs_ok=1 outputs=1")
	require.Contains(t, lines[2], "sink is full")
}

// TestNewContextOptions checks option validation, and that a manual clock
// aligned to the interval from the Unix epoch runs batches at start + k·B.
func TestNewContextOptions(t *testing.T) {
	tests := []struct {
		name    string
		batch   time.Duration
		opts    []engine.Option
		wantErr string // empty: valid
	}{
		{"manual clock at the epoch", time.Second, []engine.Option{engine.WithManualClock(time.Unix(0, 0))}, ""},
		{"manual clock at the epoch with a 7s interval", 7 * time.Second, []engine.Option{engine.WithManualClock(time.Unix(0, 0))}, ""},
		{"manual clock on a 1.5s grid", 1500 * time.Millisecond, []engine.Option{engine.WithManualClock(time.Unix(3, 0))}, ""},
		{"manual clock start not aligned", time.Second, []engine.Option{engine.WithManualClock(time.Unix(0, 500_000_000))}, "is not a multiple of the batch interval 1s"},
		{"manual clock start off a 1.5s grid", 1500 * time.Millisecond, []engine.Option{engine.WithManualClock(time.Unix(1, 0))}, "is not a multiple of the batch interval 1.5s"},
		{"manual clock start off a 7s grid", 7 * time.Second, []engine.Option{engine.WithManualClock(time.Unix(1, 0))}, "is not a multiple of the batch interval 7s"},
		{"zero batch interval", 0, nil, "batch interval 0s is not positive"},
		{"negative batch interval", -time.Second, nil, "batch interval -1s is not positive"},
		{"zero parallelism", time.Second, []engine.Option{engine.WithParallelism(0)}, "parallelism 0 is not positive"},
		{"nil logger", time.Second, []engine.Option{engine.WithLogger(nil)}, "nil logger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := engine.NewContext(tc.batch, tc.opts...)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Nil(t, c)
				return
			}
			require.NoError(t, err)
			defer c.Close()
			var times []time.Time
			dstream.ForEachBatch(dstream.Queue(c, [][]int{{1}}), func(_ context.Context, b dstream.Batch[int]) error {
				times = append(times, b.Time)
				return nil
			})
			require.NoError(t, c.RunBatches(t.Context(), 2))
			zero := c.Zero()
			require.Equal(t, []time.Time{zero.Add(tc.batch), zero.Add(2 * tc.batch)}, times)
			require.Zero(t, times[0].UnixNano()%int64(tc.batch), "batch times are multiples of the interval")
		})
	}
}

// TestStartErrors checks the errors a job gets when it starts: a manual
// clock with Run, a graph without outputs, two operators of one name.
func TestStartErrors(t *testing.T) {
	tests := []struct {
		name     string
		manual   bool
		build    func(c *engine.Context)
		run      func(c *engine.Context) error
		wantErr  error
		wantMsgs []string
	}{
		{"Run with a manual clock", true, func(c *engine.Context) { dstream.Print(dstream.Queue(c, [][]int{{1}}), 1) },
			func(c *engine.Context) error { return c.Run(context.Background()) },
			nil, []string{"Run needs the real clock", "RunBatches"}},
		{"no outputs with RunBatches", true, func(c *engine.Context) { dstream.Queue(c, [][]int{{1}}) },
			func(c *engine.Context) error { return c.RunBatches(context.Background(), 1) },
			engine.ErrNoGraph, nil},
		{"no outputs with Run", false, func(c *engine.Context) {},
			func(c *engine.Context) error { return c.Run(context.Background()) },
			engine.ErrNoGraph, nil},
		{"duplicate operator names", true, func(c *engine.Context) {
			q := dstream.Queue(c, [][]int{{1}})
			m := dstream.Map(q, func(x int) int { return x }).Name("twice")
			f := dstream.Filter(q, func(int) bool { return true }).Name("twice")
			dstream.ForEachBatch(dstream.Union(m, f), nop[int])
		}, func(c *engine.Context) error { return c.RunBatches(context.Background(), 1) },
			nil, []string{`two operators are named "twice"`, "map", "filter"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []engine.Option
			if tc.manual {
				opts = append(opts, engine.WithManualClock(time.Unix(0, 0)))
			}
			c, err := engine.NewContext(time.Second, opts...)
			require.NoError(t, err)
			defer c.Close()
			tc.build(c)
			err = tc.run(c)
			require.Error(t, err)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
			for _, m := range tc.wantMsgs {
				require.ErrorContains(t, err, m)
			}
			require.True(t, c.LastBatch().IsZero(), "no batch ran")
		})
	}
}

// TestCloseWaitsForRunningBatch calls Close while an output of a batch is
// still running: Close must not release the checkpoint lock (or the
// sources and stores) under the batch, which goes on to commit; it returns
// once the batch has ended, and the batch's commit is the last write.
func TestCloseWaitsForRunningBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithCheckpoint(dir))
		require.NoError(t, err)
		entered, release := make(chan struct{}), make(chan struct{})
		dstream.ForEachBatch(dstream.Queue(c, [][]int{{1}, {2}}), func(ctx context.Context, b dstream.Batch[int]) error {
			close(entered)
			<-release
			return nil
		})
		var once sync.Once
		unblock := func() { once.Do(func() { close(release) }) }
		defer unblock() // a failed check must not leave the batch blocked
		ran := make(chan error, 1)
		go func() { ran <- c.RunBatches(context.Background(), 1) }()
		<-entered
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		synctest.Wait()
		require.Empty(t, closed, "Close returned while a batch was running")
		_, err = state.LockDir(dir)
		require.ErrorIs(t, err, state.ErrLocked, "the checkpoint lock is held while the batch runs")

		unblock()
		require.NoError(t, <-ran, "the batch ran to its end")
		require.NoError(t, <-closed)
		unlock, err := state.LockDir(dir)
		require.NoError(t, err, "Close released the lock")
		require.NoError(t, unlock())
		_, _, err = engine.LoadCommit(state.OSFS{}, dir, 1000)
		require.NoError(t, err, "the batch committed before Close released the checkpoint")
	})
}

func TestWithJobName(t *testing.T) {
	c, err := engine.NewContext(time.Second, engine.WithJobName("page-popularity.v2"))
	require.NoError(t, err)
	require.Equal(t, "page-popularity.v2", c.JobName())
	c, err = engine.NewContext(time.Second)
	require.NoError(t, err)
	require.Equal(t, "", c.JobName())
	for _, bad := range []string{"", "a b", "ünï", strings.Repeat("x", 201), "a/b"} {
		_, err := engine.NewContext(time.Second, engine.WithJobName(bad))
		require.Error(t, err, "name %q", bad)
		require.Contains(t, err.Error(), "WithJobName")
	}
}
