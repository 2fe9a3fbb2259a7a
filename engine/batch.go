package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// ErrFailed is returned by Run and RunBatches after a batch of the same
// context failed: the state of a failed batch may be half-applied, so the job
// must be restarted from its checkpoint with a new Context.
var ErrFailed = errors.New("engine: an earlier batch of this context failed; close it and start a new Context (with a checkpoint it resumes from the last committed batch)")

// runBatch runs the batch at time t: plan every source, tick stateful nodes,
// run outputs in order, commit, then tell sources. Batches never overlap: the
// caller runs them one at a time.
func (c *Context) runBatch(t time.Time) error {
	if c.failed != nil {
		return errors.Join(ErrFailed, c.failed)
	}
	if c.hard.Err() != nil {
		return ErrClosed // Close was called while Run or RunBatches went on
	}
	startedAt := time.Now()
	var sched time.Duration
	if !c.manual {
		sched = max(startedAt.Sub(t), 0)
		if c.ckpt == nil || !c.ckpt.isRecovered(t) {
			c.noteStart(t, sched, startedAt)
		}
	}
	ctx := c.hard
	j := newJob(c, t)
	info := BatchInfo{Time: t, SchedulingDelay: sched, OutputOps: len(c.outputs)}
	err := c.execBatch(ctx, j, &info)
	info.Records = j.Records()
	info.ProcessingDelay = time.Since(startedAt)
	info.TotalDelay = info.SchedulingDelay + info.ProcessingDelay
	info.Sources = j.sourceInfos()
	if err != nil {
		var be *BatchError
		if !errors.As(err, &be) {
			be = &BatchError{Time: t, Err: err}
		}
		info.Err = be
		c.failed = be
		c.logger.Error("batch failed", slog.Int64("time_ms", t.UnixMilli()), slog.String("error", be.Error()))
		c.notify(func(l Listener) { l.BatchCompleted(info) })
		return be
	}
	c.mu.Lock()
	c.lastBatch = t
	c.mu.Unlock()
	c.next = t.Add(c.batch)
	if c.ckpt != nil {
		// Batch times between recorded ones planned no input: skip them.
		if nt, ok := c.ckpt.nextPlanned(); ok {
			c.next = nt
		}
	}
	if c.ckpt != nil && c.ckpt.replayDone() && !c.manual {
		// The batches recorded before a restart have run again.
		c.skipDowntime()
	}
	c.logger.Debug("batch completed",
		slog.Int64("time_ms", t.UnixMilli()),
		slog.Int64("records", info.Records),
		slog.Duration("scheduling_delay", info.SchedulingDelay),
		slog.Duration("processing", info.ProcessingDelay),
		slog.Int("outputs_ok", info.OutputOpsSucceeded),
		slog.Int("outputs", info.OutputOps))
	c.notify(func(l Listener) { l.BatchCompleted(info) })
	return nil
}

// skipDowntime moves the next batch time of a restarted real-clock job past
// the batch times missed while it was down: they are not run one by one
// (the next batch takes the backlog), and an Info line says which.
func (c *Context) skipDowntime() {
	now := time.Now()
	if !c.next.Before(now) {
		return
	}
	next := c.zero.Add(now.Sub(c.zero).Truncate(c.batch) + c.batch)
	c.logger.Info("batch times missed while the job was down are not run; the next batch takes their input",
		slog.Int64("first_missed_ms", c.next.UnixMilli()),
		slog.Int64("missed", int64(next.Sub(c.next)/c.batch)),
		slog.Int64("next_ms", next.UnixMilli()))
	c.next = next
}

func (c *Context) execBatch(ctx context.Context, j *Job, info *BatchInfo) error {
	t := j.Time
	start := time.Now()
	recorded, err := c.planSources(ctx, j)
	info.PlanningDelay = time.Since(start)
	if recorded != nil {
		// The planned input is written while the batch reads and computes;
		// nothing may leave the batch before it is durable.
		defer func() { _ = recorded() }()
	}
	if err != nil {
		return err
	}
	info.Records = j.Records()
	c.notify(func(l Listener) { l.BatchStarted(*info) })
	defer func() {
		// Computing is the outermost Memo computes plus the tickers; the
		// part of it that source tasks spent reading is reading instead.
		info.ReadingDelay = j.readTime
		info.ComputingDelay = max(info.ComputingDelay+j.computeTime-j.readTime, 0)
	}()
	start = time.Now()
	for _, tk := range c.tickers {
		if err := recovered(func() error { return tk.Tick(ctx, j) }); err != nil {
			return batchErr(t, tk, err)
		}
	}
	info.ComputingDelay = time.Since(start) - j.computeTime // Memo computes are added once, below
	if recorded != nil {
		if err := c.prepareOutputs(ctx, j, info); err != nil {
			return err
		}
		start := time.Now()
		err := recorded()
		info.CheckpointDelay += time.Since(start)
		if err != nil {
			return &BatchError{Time: t, Op: "checkpoint", Err: err}
		}
	}
	start = time.Now()
	computed := j.computeTime
	for _, o := range c.outputs {
		err := recovered(func() error { return o.RunOutput(ctx, j) })
		info.OutputDelay = time.Since(start) - (j.computeTime - computed)
		if err != nil {
			return batchErr(t, o, err)
		}
		info.OutputOpsSucceeded++
	}
	if c.ckpt != nil {
		start := time.Now()
		err := c.ckpt.commit(ctx, j)
		info.CheckpointDelay += time.Since(start)
		var be *BatchError
		if errors.As(err, &be) {
			return be // the commit of the batch before failed
		}
		if err != nil {
			return &BatchError{Time: t, Op: "checkpoint", Err: err}
		}
	}
	for _, s := range c.sources {
		if err := s.Commit(ctx, j); err != nil {
			return batchErr(t, s, err)
		}
	}
	c.publish(ctx, j)
	return nil
}

// publish calls Publish on the sources that implement [Publisher]: at once
// without a checkpoint, else once the batch's commit is durable.
func (c *Context) publish(ctx context.Context, j *Job) {
	var ps []Publisher
	for _, s := range c.sources {
		if p, ok := s.(Publisher); ok {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return
	}
	run := func() error {
		for _, p := range ps {
			p.Publish(ctx, j)
		}
		return nil
	}
	if c.ckpt == nil {
		_ = run()
		return
	}
	c.ckpt.queue(run)
}

// settle waits for the commits still being made durable in the background.
// It returns err when a batch failed, and logs the failure of one of those
// commits, if another, beside it; otherwise it returns the failure of one of
// those commits, which fails the context as a failed batch does, or else err
// (a cancelled context's error, or nil).
func (c *Context) settle(err error) error {
	if c.ckpt == nil {
		return err
	}
	serr := c.ckpt.settle()
	if serr == nil {
		return err
	}
	var be *BatchError
	if !errors.As(serr, &be) {
		be = &BatchError{Op: "checkpoint", Err: serr}
	}
	var failed *BatchError
	if errors.As(err, &failed) { // a failed batch already failed the context
		if !errors.Is(err, serr) && !errors.Is(err, ErrFailed) { // ErrFailed: an earlier call logged it
			c.logger.Error("checkpoint commit failed in the background", slog.Int64("time_ms", be.Time.UnixMilli()), slog.String("error", be.Error()))
		}
		return err
	}
	if c.failed == nil {
		c.failed = be
		c.logger.Error("batch failed", slog.Int64("time_ms", be.Time.UnixMilli()), slog.String("error", be.Error()))
	}
	return be
}

// prepareOutputs computes, in order, what the outputs that implement
// [Preparer] will write, while the batch's planned input is being recorded.
func (c *Context) prepareOutputs(ctx context.Context, j *Job, info *BatchInfo) error {
	start := time.Now()
	computed := j.computeTime
	defer func() { info.ComputingDelay += time.Since(start) - (j.computeTime - computed) }()
	for _, o := range c.outputs {
		p, ok := o.(Preparer)
		if !ok {
			continue
		}
		if err := recovered(func() error { return p.PrepareOutput(ctx, j) }); err != nil {
			return batchErr(j.Time, o, err)
		}
	}
	return nil
}

// planSources fixes every source's input for the batch, or re-adopts the
// plans a checkpoint recorded for it before a crash. With a checkpoint, the
// new plans are recorded in the background: recorded, when not nil, waits
// until they are durable.
func (c *Context) planSources(ctx context.Context, j *Job) (recorded func() error, err error) {
	if c.ckpt != nil {
		if plans, ok := c.ckpt.recoveredPlans(j.Time); ok {
			for _, s := range c.sources {
				if err := s.Replan(ctx, j, plans[s.Meta().Name()]); err != nil {
					return nil, batchErr(j.Time, s, err)
				}
			}
			return nil, nil
		}
	}
	plans := make(map[string][]byte, len(c.sources))
	for _, s := range c.sources {
		p, err := s.Plan(ctx, j)
		if err != nil {
			return nil, batchErr(j.Time, s, err)
		}
		plans[s.Meta().Name()] = p
	}
	if c.ckpt == nil {
		return nil, nil
	}
	return c.ckpt.writePlans(j.Time, plans, j.sourceInfos(), j.Records()), nil
}

// recovered calls f, a node's work on the goroutine that drives the batch,
// and returns a panic in it as an error, as [Job.Run] does for tasks: a
// panicking output function fails the batch, not the process.
func recovered(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return f()
}

func batchErr(t time.Time, n Node, err error) error {
	var be *BatchError
	if errors.As(err, &be) {
		return be
	}
	op := n.Meta().Name()
	var te *TaskError
	if errors.As(err, &te) {
		op = te.Op
	}
	return &BatchError{Time: t, Op: op, Err: err}
}

func (c *Context) notify(f func(Listener)) {
	for _, l := range *c.lsnap.Load() {
		f(l)
	}
}
