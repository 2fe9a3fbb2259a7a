package engine_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/engine"
)

// testNode is a node with no work of its own, for [engine.Job.Memo].
type testNode struct{ meta engine.Meta }

func (n *testNode) Meta() *engine.Meta { return &n.meta }

// TestBatchInfoBreakdown checks how BatchInfo splits a batch's time: an
// output computes a stream whose two tasks, run in parallel, each read for
// 30 ms and compute for 10 ms, then writes for 5 ms itself. In a synctest
// bubble the clock moves only by those sleeps, so the figures are exact:
// 30 ms reading (three quarters of the stage's 40 ms), 10 ms computing,
// 5 ms output, nothing planned or checkpointed.
func TestBatchInfoBreakdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newManual(t, 2)
		stream := &testNode{meta: engine.Meta{Kind: "testStream"}}
		c.Register(stream)
		var log batchLog
		c.AddListener(&log)
		out := newOutput(c, nil)
		out.run = func(ctx context.Context, j *engine.Job) error {
			_, err := j.Memo(stream, func() (any, error) {
				return nil, j.Run(ctx, "testStream", 2, func(ctx context.Context, tk *engine.Task) error {
					time.Sleep(30 * time.Millisecond) // reading
					tk.AddReadTime(30 * time.Millisecond)
					time.Sleep(10 * time.Millisecond) // computing
					return nil
				})
			})
			if err != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond) // the output's own write
			return nil
		}
		require.NoError(t, c.RunBatches(t.Context(), 1))
		_, done := log.snapshot()
		require.Len(t, done, 1)
		info := done[0]
		require.Equal(t, time.Duration(0), info.PlanningDelay, "planning")
		require.Equal(t, 30*time.Millisecond, info.ReadingDelay, "reading")
		require.Equal(t, 10*time.Millisecond, info.ComputingDelay, "computing")
		require.Equal(t, 5*time.Millisecond, info.OutputDelay, "output")
		require.Equal(t, time.Duration(0), info.CheckpointDelay, "checkpoint")
		require.Equal(t, 45*time.Millisecond, info.ProcessingDelay, "processing")
	})
}
