package engine

import (
	"log/slog"
	"time"
)

// lateness follows whether the job keeps up with its batch interval, so
// that falling behind and catching up each log one line, not one per batch.
type lateness struct {
	first   time.Time     // time of the first late batch; zero when on time
	batches int64         // late batches since then
	worst   time.Duration // their largest scheduling delay
}

// noteStart is called as the batch at time t starts, sched after its time.
// A batch that starts more than one batch interval late logs a WARN when
// the job was on time until then; the first batch that starts within one
// interval after that logs an INFO saying how long the job was behind: from
// the time of the first late batch until now.
//
// Batches planned before a restart and run again at their own times are
// not passed here: they start late by the downtime, not because the job
// cannot keep up, and the checkpoint's restore logs them once instead (as
// Spark's JobGenerator logs its "batches to reschedule").
func (c *Context) noteStart(t time.Time, sched time.Duration, now time.Time) {
	l := &c.late
	if sched > c.batch {
		if l.first.IsZero() {
			l.first = t
			c.logger.Warn("batches run late: this batch started more than one batch interval after its time; the job is behind (batches take longer than the interval, or the machine is overloaded)",
				slog.Int64("time_ms", t.UnixMilli()),
				slog.Duration("scheduling_delay", sched.Round(time.Millisecond)),
				slog.Duration("batch_interval", c.batch))
		}
		l.batches++
		l.worst = max(l.worst, sched)
		return
	}
	if l.first.IsZero() {
		return
	}
	c.logger.Info("batches caught up: this batch started within one batch interval of its time",
		slog.Int64("time_ms", t.UnixMilli()),
		slog.Duration("behind_for", now.Sub(l.first).Round(time.Millisecond)),
		slog.Int64("late_batches", l.batches),
		slog.Duration("worst_scheduling_delay", l.worst.Round(time.Millisecond)),
		slog.Int64("first_late_ms", l.first.UnixMilli()))
	*l = lateness{}
}
