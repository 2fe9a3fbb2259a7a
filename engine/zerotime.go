package engine

import (
	"fmt"
	"path/filepath"
	"time"
)

// WithZeroTime fixes the context's zero time at zero, overriding the
// default of the start time rounded down to the batch interval (or the
// manual clock's start). Batch times are zero + k·interval, k ≥ 1, and a
// windowed stream emits at the times t where t − zero is a multiple of its
// slide, so two contexts given the same zero time and intervals agree on
// every batch and window boundary however far apart they start. The Unix
// epoch, time.Unix(0, 0), is a zero time every process knows: the
// members of one job in group mode need that, so that a task moving from
// one member to another keeps its records in the same windows.
//
// With the real clock the first batch is the first batch time after the
// start (after zero, if zero is later). With [WithManualClock] the start
// must be zero + k·interval, k ≥ 0, and batch k has time start + k·interval
// as without WithZeroTime. The zero time is recorded in the checkpoint
// ([WithCheckpoint]); a checkpoint that counts from another zero time is
// refused with an error matching [ErrCheckpointMismatch], where without
// WithZeroTime the job adopts the checkpoint's. zero must be a whole number
// of milliseconds, as checkpoints record it.
func WithZeroTime(zero time.Time) Option {
	return func(c *config) error {
		if zero.IsZero() {
			return fmt.Errorf("engine: WithZeroTime got the zero time.Time; pass an instant such as time.Unix(0, 0)")
		}
		if zero.UnixNano()%int64(time.Millisecond) != 0 {
			return fmt.Errorf("engine: zero time %s is not a whole number of milliseconds, which checkpoints record; pass one that is, such as time.Unix(0, 0)", stampNano(zero))
		}
		c.zero, c.zeroSet = zero.Round(0), true
		return nil
	}
}

// Distributed is implemented by sources through which a job runs as one of
// several processes sharing its input, such as a member of a Kafka consumer
// group (group mode). When the context starts and one of its sources
// reports Distributed() true, its zero time is the Unix epoch unless
// [WithZeroTime] set another one: every member of the job then cuts the
// same batches and emits windows at the same times without asking the
// others.
type Distributed interface {
	Source
	Distributed() bool
}

// zeroOrigin says where a fixed zero time comes from, for messages.
type zeroOrigin int

const (
	zeroStart  zeroOrigin = iota // the start, rounded down to the interval: not fixed
	zeroOption                   // WithZeroTime
	zeroGroup                    // a Distributed source: the epoch
)

func (c *Context) zeroFixed() bool { return c.zeroFrom != zeroStart }

// fixZero makes the zero time the epoch when a source runs the job on
// several processes and no zero time was given. With a manual clock the
// start is already a multiple of the interval from the epoch.
func (c *Context) fixZero() {
	if c.zeroFixed() {
		return
	}
	for _, s := range c.sources {
		if d, ok := s.(Distributed); ok && d.Distributed() {
			c.mu.Lock()
			c.zero, c.zeroFrom = time.Unix(0, 0), zeroGroup
			c.mu.Unlock()
			return
		}
	}
}

// firstBatch returns the time of the first batch of a context that starts
// without committed batches.
func (c *Context) firstBatch() time.Time {
	switch {
	case !c.zeroFixed():
		return c.zero.Add(c.batch)
	case c.manual:
		return c.manualStart.Add(c.batch)
	}
	now := time.Now()
	if now.Before(c.zero) {
		return c.zero.Add(c.batch)
	}
	return c.zero.Add(now.Sub(c.zero).Truncate(c.batch) + c.batch)
}

// matchZero refuses a checkpoint that counts batches from another zero time
// than the one the job was given.
func (k *checkpointer) matchZero(zeroMS int64) error {
	c := k.c
	if !c.zeroFixed() || zeroMS == c.zero.UnixMilli() {
		return nil
	}
	how := "WithZeroTime gave it"
	if c.zeroFrom == zeroGroup {
		how = "it runs in group mode, whose members count from the Unix epoch"
	}
	return fmt.Errorf("%w: checkpoint dir %s counts batches from zero time %s (its %s says so) but this job's zero time is %s (%s); give the job the checkpoint's zero time with WithZeroTime or start with a fresh checkpoint dir",
		ErrCheckpointMismatch, k.dir, stampMS(zeroMS), filepath.Join(k.dir, formatFile), stampMS(c.zero.UnixMilli()), how)
}

// stampMS writes a time in milliseconds since the epoch as UTC and as the
// number, as checkpoints record it.
func stampMS(ms int64) string {
	return fmt.Sprintf("%s (%d ms)", time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00"), ms)
}

func stampNano(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}
