package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/logtest"
)

// TestLateBatchesLogOnce checks that a job falling behind logs one WARN,
// not one per late batch, and one INFO once it has caught up. The second
// batch's output blocks until 4.5 intervals have passed (fake time in a
// synctest bubble), so batches 3 to 5 start 3.5, 2.5 and 1.5 intervals late
// and batch 6 starts half an interval late: caught up.
func TestLateBatchesLogOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		h := logtest.NewRecords()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		log := &batchLog{onCompleted: func(n int) {
			if n == 7 {
				cancel()
			}
		}}
		c, err := engine.NewContext(interval, engine.WithLogger(slog.New(h)), engine.WithListener(log))
		require.NoError(t, err)
		defer c.Close()
		var seen int
		dstream.ForEachBatch(dstream.Queue(c, make([][]int, 7)), func(context.Context, dstream.Batch[int]) error {
			seen++
			if seen == 2 {
				release := make(chan struct{})
				time.AfterFunc(interval*9/2, func() { close(release) }) // fake time
				<-release
			}
			return nil
		})
		require.NoError(t, c.Run(ctx))

		_, completed := log.snapshot()
		require.Len(t, completed, 7)
		var late []time.Duration
		for _, info := range completed {
			late = append(late, info.SchedulingDelay)
		}
		require.Equal(t, []time.Duration{0, 0, 7 * interval / 2, 5 * interval / 2, 3 * interval / 2, interval / 2, 0}, late)

		recs := h.Snapshot()
		require.Len(t, recs, 2, "one WARN when the job falls behind, one INFO when it catches up")
		require.Equal(t, slog.LevelWarn, recs[0].Level)
		require.Contains(t, recs[0].Message, "batches run late")
		a := logtest.Attrs(recs[0])
		require.Equal(t, completed[2].Time.UnixMilli(), a["time_ms"].Int64(), "the WARN names the first late batch")
		require.Equal(t, 7*interval/2, a["scheduling_delay"].Duration())
		require.Equal(t, interval, a["batch_interval"].Duration())

		require.Equal(t, slog.LevelInfo, recs[1].Level)
		require.Contains(t, recs[1].Message, "batches caught up")
		a = logtest.Attrs(recs[1])
		require.Equal(t, completed[5].Time.UnixMilli(), a["time_ms"].Int64(), "the INFO names the first batch on time again")
		require.Equal(t, int64(3), a["late_batches"].Int64())
		require.Equal(t, 7*interval/2, a["worst_scheduling_delay"].Duration())
		// From the first late batch's time to the start of the batch on
		// time: the batch after it ran 3.5 intervals late, that is 3 batch
		// times later plus half an interval.
		require.Equal(t, 7*interval/2, a["behind_for"].Duration())
	})
}

// TestRecoveredBatchesAreNotLate stops a job whose checkpoint commits
// every third batch after its fifth batch fails, so batches 4 and 5 are
// planned and not committed, and restarts it an hour later (fake time).
// Batches 4 and 5 run again first, at their own times, an hour late: one
// INFO at the restore names them, and no WARN says the job is behind,
// since it is not (Spark logs its "batches to reschedule" the same way).
// Their scheduling delay still reports the hour.
func TestRecoveredBatchesAreNotLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		dir := t.TempDir()
		in := make([][]int, 20)
		for i := range in {
			in[i] = []int{i + 1}
		}
		run := func(h slog.Handler, fail func(n int) bool, stopAfter int) (*batchLog, error) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := &batchLog{onCompleted: func(n int) {
				if n == stopAfter {
					cancel()
				}
			}}
			c, err := engine.NewContext(interval, engine.WithLogger(slog.New(h)), engine.WithListener(log),
				engine.WithCheckpoint(dir), engine.WithCheckpointOptions(engine.CheckpointEvery(3)))
			require.NoError(t, err)
			defer c.Close()
			n := 0
			dstream.ForEachBatch(dstream.Queue(c, in), func(context.Context, dstream.Batch[int]) error {
				if n++; fail(n) {
					return errors.New("output down")
				}
				return nil
			})
			return log, c.Run(ctx)
		}
		first, err := run(slog.DiscardHandler, func(n int) bool { return n == 5 }, -1)
		require.Error(t, err, "the fifth batch fails")
		_, done := first.snapshot()
		require.Len(t, done, 5)

		time.Sleep(time.Hour) // the job is down for an hour of fake time
		h := logtest.NewRecords()
		second, err := run(h, func(int) bool { return false }, 4)
		require.NoError(t, err)
		_, again := second.snapshot()
		require.Len(t, again, 4)
		require.Equal(t, []time.Time{done[3].Time, done[4].Time}, []time.Time{again[0].Time, again[1].Time},
			"batches 4 and 5 run again at their own times")
		for _, info := range again[:2] {
			require.GreaterOrEqual(t, info.SchedulingDelay, time.Hour, "a recovered batch's scheduling delay counts the downtime")
		}
		for _, info := range again[2:] {
			require.Less(t, info.SchedulingDelay, interval, "the batches after the recovered ones are on time")
		}

		var recovered []slog.Record
		for _, r := range h.Snapshot() {
			require.NotEqual(t, slog.LevelWarn, r.Level, "no WARN: %s", r.Message)
			require.NotContains(t, r.Message, "batches caught up")
			if strings.Contains(r.Message, "planned before the restart") {
				recovered = append(recovered, r)
			}
		}
		require.Len(t, recovered, 1, "one INFO names the recovered batches")
		a := logtest.Attrs(recovered[0])
		require.Equal(t, int64(2), a["batches"].Int64())
		require.Equal(t, done[3].Time.UnixMilli(), a["first_ms"].Int64())
		require.Equal(t, done[4].Time.UnixMilli(), a["last_ms"].Int64())
	})
}
