package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// runUntil runs a real-clock job over a checkpoint dir until it has run n
// batches, stopping it gracefully, and returns the batch times and the
// queue elements each batch saw.
func runUntil(t *testing.T, dir string, n int, log io.Writer) (times []time.Time, seen []int) {
	t.Helper()
	in := make([][]int, 50)
	for i := range in {
		in[i] = []int{i + 1}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := engine.NewContext(time.Second, engine.WithCheckpoint(dir), engine.WithLogger(slog.New(slog.NewTextHandler(log, nil))))
	require.NoError(t, err)
	defer c.Close()
	dstream.ForEachBatch(dstream.Queue(c, in), func(_ context.Context, b dstream.Batch[int]) error {
		times = append(times, b.Time)
		seen = slices.AppendSeq(seen, b.All())
		if len(times) == n {
			cancel() // graceful: this batch finishes and commits
		}
		return nil
	})
	require.NoError(t, c.Run(ctx))
	return times, seen
}

// TestDowntimeIsNotReplayed stops a real-clock job, lets an hour pass, and
// restarts it: the job goes on at the next batch time after now, not at
// each of the 3,600 batch times it missed, and its input goes on where it
// stopped.
func TestDowntimeIsNotReplayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		times, seen := runUntil(t, dir, 3, io.Discard)
		require.Equal(t, []int{1, 2, 3}, seen)
		for i := 1; i < len(times); i++ {
			require.Equal(t, time.Second, times[i].Sub(times[i-1]), "consecutive batch times")
		}

		time.Sleep(time.Hour) // the job is down for an hour of fake time
		restart := time.Now()

		var log bytes.Buffer
		times2, seen2 := runUntil(t, dir, 2, &log)
		require.Equal(t, []int{4, 5}, seen2, "the input goes on where it stopped")
		require.Contains(t, log.String(), "batch times missed while the job was down are not run")
		require.Contains(t, log.String(), fmt.Sprintf("first_missed_ms=%d missed=3600 next_ms=%d", times[2].Add(time.Second).UnixMilli(), times2[0].UnixMilli()),
			"the log says which batch times are skipped")
		require.True(t, times2[0].After(restart), "first batch after the restart at %v is at %v", restart, times2[0])
		require.LessOrEqual(t, times2[0].Sub(restart), time.Second, "no missed batch time is replayed")
		require.Zero(t, times2[0].Sub(times[0])%time.Second, "batch times stay aligned to the same zero")
	})
}
