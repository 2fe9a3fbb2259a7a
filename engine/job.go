package engine

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Job is the run of one batch: its time, the values computed for it so far,
// and the means to run tasks in parallel. A Job is used by one batch only and
// is discarded when the batch ends.
type Job struct {
	// Time is the batch time.
	Time time.Time

	c       *Context
	memo    map[int]any
	records atomic.Int64

	// memoDepth counts the Memo computes under way, so that only the
	// outermost one is timed into computeTime; readTime sums each stage's
	// share of wall time its tasks spent reading input.
	memoDepth   int
	computeTime time.Duration
	readTime    time.Duration

	mu      sync.Mutex
	sources map[string]any
}

func newJob(c *Context, t time.Time) *Job {
	return &Job{Time: t, c: c, memo: make(map[int]any)}
}

// Context returns the engine context the job belongs to.
func (j *Job) Context() *Context { return j.c }

// Zero returns the context's zero time: batch times are zero + k·interval.
func (j *Job) Zero() time.Time { return j.c.zero }

// Parallelism returns the most tasks the job runs at once.
func (j *Job) Parallelism() int { return j.c.parallelism }

// AddRecords adds n to the batch's count of input records.
func (j *Job) AddRecords(n int64) { j.records.Add(n) }

// Records returns the input records counted so far.
func (j *Job) Records() int64 { return j.records.Load() }

// Report records what a source says about the batch (for example its offset
// ranges); output operations read it with [Job.SourceInfo], and listeners find
// it in [BatchInfo.Sources].
func (j *Job) Report(source string, info any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.sources == nil {
		j.sources = make(map[string]any)
	}
	j.sources[source] = info
}

// SourceInfo returns what the named source reported about the batch.
func (j *Job) SourceInfo(source string) (any, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := j.sources[source]
	return v, ok
}

func (j *Job) sourceInfos() map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.sources) == 0 {
		return nil
	}
	m := make(map[string]any, len(j.sources))
	for k, v := range j.sources {
		m[k] = v
	}
	return m
}

// Memo returns the value node n computed for this batch, computing it with
// compute the first time. Values are not shared between batches. Memo must be
// called from the goroutine that drives the batch, not from inside tasks.
func (j *Job) Memo(n Node, compute func() (any, error)) (any, error) {
	id := n.Meta().id
	if v, ok := j.memo[id]; ok {
		return v, nil
	}
	if j.memoDepth == 0 {
		start := time.Now()
		defer func() { j.computeTime += time.Since(start) }()
	}
	j.memoDepth++
	v, err := compute()
	j.memoDepth--
	if err != nil {
		return nil, err
	}
	j.memo[id] = v
	return v, nil
}

// Task is the handle of one running task. Fused chains of operators set
// Node to the ID of the operator whose function is running (see [Meta.ID]),
// so that a panic is reported against the right operator; it is an integer
// so that setting it per record costs a plain store.
type Task struct {
	// Index is the task's partition index within its stage.
	Index int
	// Node is the ID of the operator running inside the task, or 0 for the
	// stage's own operator.
	Node int

	ctx     context.Context
	err     error
	errNode int
	read    time.Duration
}

// AddReadTime adds d to the time the task spent reading its input (a
// source fetching and decoding its range). [BatchInfo.ReadingDelay] reports
// the wall time it amounts to.
func (t *Task) AddReadTime(d time.Duration) { t.read += d }

// Context returns the task's context, cancelled when another task of the
// stage fails or the context closes.
func (t *Task) Context() context.Context { return t.ctx }

// Fail records err as the task's failure, for code that runs inside a task
// but cannot return an error, such as a source reading its partition while
// it pushes records down a fused chain of operators. The task fails with the
// first error recorded, reported against the operator in Node at the time.
func (t *Task) Fail(err error) {
	if t.err == nil && err != nil {
		t.err, t.errNode = err, t.Node
	}
}

// Run runs n tasks of operator op in parallel, at most the context's
// parallelism at once, and waits for them. The first task to fail cancels the
// context the others see; Run returns that error wrapped in a [*TaskError].
// A panic in a task is recovered and returned as an error too.
func (j *Job) Run(ctx context.Context, op string, n int, task func(ctx context.Context, t *Task) error) error {
	if n == 0 {
		return nil
	}
	var st stageTimes
	start := time.Now()
	defer func() { j.addReadTime(time.Since(start), &st) }()
	if n == 1 || j.c.parallelism == 1 {
		for i := range n {
			if err := j.runTask(ctx, op, i, task, &st); err != nil {
				return err
			}
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.c.parallelism)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return j.runTask(gctx, op, i, task, &st) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// stageTimes sums, over the tasks of one stage, the time they ran and the
// part of it they spent reading input.
type stageTimes struct {
	mu         sync.Mutex
	task, read time.Duration
}

// addReadTime adds the stage's reading share of its wall time: wall scaled
// by the fraction of task time spent reading, exact when the tasks are
// alike and never more than the stage's wall time.
func (j *Job) addReadTime(wall time.Duration, st *stageTimes) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.read <= 0 || st.task <= 0 {
		return
	}
	j.readTime += time.Duration(float64(wall) * min(float64(st.read)/float64(st.task), 1))
}

func (j *Job) runTask(ctx context.Context, op string, i int, task func(context.Context, *Task) error, st *stageTimes) (err error) {
	t := &Task{Index: i, ctx: ctx}
	start := time.Now()
	defer func() {
		d := time.Since(start)
		st.mu.Lock()
		st.task += d
		st.read += t.read
		st.mu.Unlock()
	}()
	defer func() {
		if r := recover(); r != nil {
			err = &TaskError{Op: j.opName(op, t.Node), Task: i, Err: fmt.Errorf("panic: %v\n%s", r, debug.Stack())}
		}
	}()
	err = task(ctx, t)
	if err == nil && t.err != nil {
		return &TaskError{Op: j.opName(op, t.errNode), Task: i, Err: t.err}
	}
	if err != nil {
		if te, ok := err.(*TaskError); ok {
			return te
		}
		return &TaskError{Op: j.opName(op, t.Node), Task: i, Err: err}
	}
	return nil
}

// opName names the operator with the given node ID, or op when id is 0.
func (j *Job) opName(op string, id int) string {
	if id <= 0 || id > len(j.c.nodes) {
		return op
	}
	return j.c.nodes[id-1].Meta().Name()
}

// TaskError is the failure of one task of an operator.
type TaskError struct {
	Op   string // the operator's name
	Task int    // the task's partition index
	Err  error
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("operator %q, task %d: %v", e.Op, e.Task, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// BatchError is the failure of a batch: [Context.Run] and
// [Context.RunBatches] return it.
type BatchError struct {
	Time time.Time
	Op   string // the operator or output operation that failed, when known
	Err  error
}

func (e *BatchError) Error() string {
	ms := e.Time.UnixMilli()
	if te, ok := e.Err.(*TaskError); ok {
		return fmt.Sprintf("engine: batch %d ms failed in operator %q, task %d: %v", ms, te.Op, te.Task, te.Err)
	}
	if e.Op != "" {
		return fmt.Sprintf("engine: batch %d ms failed in operator %q: %v", ms, e.Op, e.Err)
	}
	return fmt.Sprintf("engine: batch %d ms failed: %v", ms, e.Err)
}

func (e *BatchError) Unwrap() error { return e.Err }
