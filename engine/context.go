package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/state"
)

// Errors returned by [Context] methods.
var (
	ErrClosed  = errors.New("engine: context is closed; start a new Context to run more batches")
	ErrRunning = errors.New("engine: context is already running batches; call Run or RunBatches from one goroutine at a time")
	ErrNoGraph = errors.New("engine: the job has no output operation; add one (ForEachBatch, Print, SaveAsTextFiles) before running")
)

// Output is a node that runs an output operation once per batch, in the order
// outputs were registered.
type Output interface {
	Node
	RunOutput(ctx context.Context, j *Job) error
}

// Preparer is implemented by outputs that can compute what they will write
// apart from writing it. With a checkpoint, a batch's planned input is
// recorded in the background while the batch computes: the engine calls
// PrepareOutput on every output that implements Preparer, in registration
// order, then waits until the record is durable, then calls RunOutput on
// every output in order. An output's effects thus never come before the
// record of the input they derive from, whether or not it implements
// Preparer; one that does lets its computing overlap the disk write.
// PrepareOutput must have no effect outside the batch; RunOutput may find
// what it computed in the [Job] (see [Job.Memo]).
type Preparer interface {
	Output
	PrepareOutput(ctx context.Context, j *Job) error
}

// Option configures a [Context].
type Option func(*config) error

type config struct {
	name        string
	parallelism int
	checkpoint  string
	manual      bool
	start       time.Time
	zero        time.Time
	zeroSet     bool
	logger      *slog.Logger
	listeners   []Listener
	ckptOpts    []CheckpointOption
}

// WithParallelism sets how many tasks of a stage run at once, overriding the
// default of runtime.GOMAXPROCS(0). It is also the default partition count of
// keyed operators and of the Queue source. n must be at least 1.
func WithParallelism(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("engine: parallelism %d is not positive; pass 1 or more to WithParallelism", n)
		}
		c.parallelism = n
		return nil
	}
}

// WithCheckpoint enables durable checkpoints in dir: keyed state, window
// buffers and source positions are committed together after every batch, so
// a restarted job resumes exactly where it stopped. By default there is no
// checkpoint and a restarted job starts afresh. Tune checkpoints with
// [WithCheckpointOptions].
func WithCheckpoint(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("engine: checkpoint dir is empty; pass a directory path to WithCheckpoint")
		}
		c.checkpoint = dir
		return nil
	}
}

// WithCheckpointOptions tunes the checkpoints [WithCheckpoint] enables:
// [KeepCommits], [SnapshotEvery], [CheckpointEvery], [RollbackOnCorrupt],
// [CheckpointFS]. Without WithCheckpoint it has no effect.
func WithCheckpointOptions(opts ...CheckpointOption) Option {
	return func(c *config) error {
		c.ckptOpts = append(c.ckptOpts, opts...)
		return nil
	}
}

// WithManualClock makes batch times advance only through
// [Context.RunBatches]: batch k = 1, 2, … has time start + k·interval. start
// must be a multiple of the batch interval from the Unix epoch, as the real
// clock's batch times are (from the zero time, with [WithZeroTime]). For
// tests; the default is the real clock.
func WithManualClock(start time.Time) Option {
	return func(c *config) error {
		c.manual = true
		c.start = start
		return nil
	}
}

// WithJobName names the job, overriding the default of no name. The name
// identifies the job to the outside world: it labels its metrics and status
// page, and outputs that must recognise a restarted job as the same one
// (transactional Kafka writers derive their transactional IDs from it) use
// it. It may hold ASCII letters, digits, '.', '_' and '-', at most 200 of
// them, so that it can be part of a Kafka topic name or transactional ID.
func WithJobName(name string) Option {
	return func(c *config) error {
		if err := checkJobName(name); err != nil {
			return err
		}
		c.name = name
		return nil
	}
}

func checkJobName(name string) error {
	if name == "" || len(name) > 200 {
		return fmt.Errorf("engine: job name %q must have 1 to 200 characters; pass a name such as \"pagepopularity\" to WithJobName", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("engine: job name %q holds %q; use ASCII letters, digits, '.', '_' and '-' in WithJobName", name, r)
		}
	}
	return nil
}

// WithLogger sets the logger, overriding the default that discards
// everything. Each batch logs one Debug line.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("engine: WithLogger got a nil logger; pass a *slog.Logger")
		}
		c.logger = l
		return nil
	}
}

// WithListener adds a listener of batch events. See also [Context.AddListener].
func WithListener(l Listener) Option {
	return func(c *config) error {
		c.listeners = append(c.listeners, l)
		return nil
	}
}

// Context is a streaming job: its batch interval, its graph of nodes and the
// runtime that runs one batch after another. Build the graph (package dstream
// does it), then call [Context.Run] or, with a manual clock,
// [Context.RunBatches]. A Context is not reused after Close.
//
// Batches run one at a time in time order; inside a batch the tasks of every
// stage run in parallel, at most the parallelism at once.
type Context struct {
	name        string
	batch       time.Duration
	parallelism int
	manual      bool
	logger      *slog.Logger
	ckptDir     string
	ckptOpts    []CheckpointOption

	mu        sync.Mutex // guards listeners and the fields below
	idle      *sync.Cond // signalled on mu when running turns false
	listeners []Listener
	lsnap     atomic.Pointer[[]Listener] // a copy of listeners for notify, replaced on change
	running   bool
	closed    bool

	nodes       []Node
	outputs     []Output
	sources     []Source
	tickers     []Ticker
	closers     []func() error
	started     bool
	startedAt   time.Time // wall-clock time the context started; under mu
	zero        time.Time
	zeroFrom    zeroOrigin // how the zero time was fixed, if it was
	manualStart time.Time  // the manual clock's start
	next        time.Time  // time of the next batch to run
	startErr    error
	hard        context.Context
	hardStop    context.CancelFunc
	ckpt        *checkpointer
	ckptLocked  bool // LockCheckpoint took the checkpoint's lock
	ckptStats   ckptStats
	lastBatch   time.Time   // time of the last completed batch
	late        lateness    // whether batches start more than an interval late
	failed      error       // the error of a failed batch; the context runs no more
	values      map[any]any // see SetValue; under mu
}

// NewContext returns a context whose batches are batch apart.
func NewContext(batch time.Duration, opts ...Option) (*Context, error) {
	if batch <= 0 {
		return nil, fmt.Errorf("engine: batch interval %v is not positive; pass a duration such as 1*time.Second", batch)
	}
	cfg := config{parallelism: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Context{
		name:        cfg.name,
		batch:       batch,
		parallelism: cfg.parallelism,
		manual:      cfg.manual,
		logger:      cfg.logger,
		listeners:   cfg.listeners,
		ckptDir:     cfg.checkpoint,
		ckptOpts:    cfg.ckptOpts,
	}
	switch {
	case cfg.zeroSet && cfg.manual:
		if d := cfg.start.Sub(cfg.zero); d < 0 || d%batch != 0 {
			return nil, fmt.Errorf("engine: manual clock start %s is not a multiple of the batch interval %v after the zero time %s; pass a start such as the zero time itself", stampNano(cfg.start), batch, stampNano(cfg.zero))
		}
	case cfg.manual:
		if !alignDown(cfg.start, batch).Equal(cfg.start) {
			return nil, fmt.Errorf("engine: manual clock start %v is not a multiple of the batch interval %v from the Unix epoch; pass an aligned start such as time.Unix(0, 0)", cfg.start, batch)
		}
	}
	if cfg.manual {
		c.zero, c.manualStart = cfg.start.Round(0), cfg.start.Round(0)
	}
	if cfg.zeroSet {
		c.zero, c.zeroFrom = cfg.zero, zeroOption
	}
	c.storeListeners()
	c.idle = sync.NewCond(&c.mu)
	c.hard, c.hardStop = context.WithCancel(context.Background())
	return c, nil
}

// alignDown rounds t down to a multiple of d counted from the Unix epoch, as
// Spark aligns batch times, and drops its monotonic clock reading.
// (time.Time.Truncate counts from year 1, which differs for intervals that
// do not divide a day, such as 7 s.)
func alignDown(t time.Time, d time.Duration) time.Time {
	r := time.Duration(t.UnixNano() % int64(d))
	if r < 0 {
		r += d
	}
	return t.Add(-r).Round(0)
}

// LockCheckpoint takes the lock of the checkpoint directory now, instead of
// when the context starts, so that a program can make sure no other job
// uses the directory before it starts anything else, such as a broker
// whose files live beside the checkpoint. The lock is held until
// [Context.Close]. An error matches [state.ErrLocked] when another job
// holds the lock, and names its pid. LockCheckpoint does nothing without a
// checkpoint, or when called again.
func (c *Context) LockCheckpoint() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.ckptDir == "" || c.ckptLocked {
		return nil
	}
	if c.started {
		return errors.New("engine: LockCheckpoint after the context started; call it before Run or RunBatches")
	}
	release, err := state.LockDir(c.ckptDir)
	if err != nil {
		return fmt.Errorf("engine: checkpoint dir: %w", err)
	}
	c.ckptLocked = true
	c.closers = append(c.closers, release)
	return nil
}

// Start validates the job's graph and, with a checkpoint, takes the
// checkpoint's lock and restores the job from it, without running a
// batch; Run and RunBatches then go on from there. A program calls it to
// report a refused checkpoint (another job holds it, or it does not match
// the job) before it announces that it runs. Later calls return the first
// call's result.
func (c *Context) Start() error {
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.release()
	return c.start()
}

// Checkpointing reports whether the context was given a checkpoint
// directory. Stateful nodes use it to skip change tracking that only
// checkpoints read.
func (c *Context) Checkpointing() bool { return c.ckptDir != "" }

// JobName returns the name set with [WithJobName], or "" when none was.
func (c *Context) JobName() string { return c.name }

// BatchInterval returns the batch interval.
func (c *Context) BatchInterval() time.Duration { return c.batch }

// Parallelism returns the most tasks that run at once, and the default
// partition count.
func (c *Context) Parallelism() int { return c.parallelism }

// Logger returns the context's logger.
func (c *Context) Logger() *slog.Logger { return c.logger }

// StartTime returns when the context started (its first Start, Run or
// RunBatches), on the wall clock even with a manual clock, or the zero time
// before it has. A restarted job's start is its new context's.
func (c *Context) StartTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startedAt
}

// Zero returns the zero time of batch times. It is known once the context
// starts (at once with [WithZeroTime] or a manual clock, which a
// [Distributed] source or a checkpoint may change when it starts).
func (c *Context) Zero() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.zero
}

// Register adds n to the graph. Parents must be registered first. Sources,
// outputs and tickers are recognised by the interfaces n implements.
// Register panics when the context has already started: the graph is fixed
// then.
func (c *Context) Register(n Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		panic("engine: Register called after the context started; build the whole graph first")
	}
	m := n.Meta()
	if m.id != 0 {
		panic("engine: node registered twice")
	}
	for _, p := range m.Parents {
		if p.Meta().ctx != c {
			panic("engine: a parent of " + m.Kind + " belongs to another context")
		}
	}
	for _, other := range c.nodes {
		if other.Meta().Kind == m.Kind {
			m.ordinal++
		}
	}
	m.ordinal++
	c.nodes = append(c.nodes, n)
	m.id = len(c.nodes)
	m.ctx = c
	if m.Slide == 0 {
		if len(m.Parents) > 0 {
			m.Slide = m.Parents[0].Meta().Slide
		} else {
			m.Slide = c.batch
		}
	}
	if s, ok := n.(Source); ok {
		c.sources = append(c.sources, s)
	}
	if o, ok := n.(Output); ok {
		c.outputs = append(c.outputs, o)
	}
}

// AddListener adds a listener of batch events.
func (c *Context) AddListener(l Listener) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listeners = append(c.listeners, l)
	c.storeListeners()
}

// storeListeners publishes a copy of the listeners for notify, which reads
// it without locking or copying; mu is held.
func (c *Context) storeListeners() {
	ls := slices.Clone(c.listeners)
	c.lsnap.Store(&ls)
}

// OnClose registers f to run when the context closes, after the nodes close.
func (c *Context) OnClose(f func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closers = append(c.closers, f)
}

// Nodes returns the registered nodes in registration order.
func (c *Context) Nodes() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Node(nil), c.nodes...)
}

// start validates the graph, restores a checkpoint and fixes the zero time.
// It runs once; later calls return the first result.
func (c *Context) start() error {
	if c.started {
		return c.startErr
	}
	c.mu.Lock()
	c.started = true
	c.startedAt = time.Now()
	c.mu.Unlock()
	c.startErr = c.doStart()
	return c.startErr
}

func (c *Context) doStart() error {
	if len(c.outputs) == 0 {
		return ErrNoGraph
	}
	names := make(map[string]Node)
	for _, n := range c.nodes {
		name := n.Meta().Name()
		if other, dup := names[name]; dup {
			return fmt.Errorf("engine: two operators are named %q (a %s and a %s); give them different names with Name",
				name, other.Meta().Kind, n.Meta().Kind)
		}
		names[name] = n
	}
	c.fixZero()
	if !c.manual && !c.zeroFixed() {
		c.mu.Lock()
		c.zero = alignDown(time.Now(), c.batch)
		c.mu.Unlock()
	}
	for _, n := range c.nodes {
		if v, ok := n.(Validator); ok {
			if err := v.Validate(); err != nil {
				return err
			}
		}
	}
	// Tick only the nodes some output depends on.
	reach := make(map[int]bool)
	var walk func(n Node)
	walk = func(n Node) {
		m := n.Meta()
		if reach[m.id] {
			return
		}
		reach[m.id] = true
		for _, p := range m.Parents {
			walk(p)
		}
	}
	for _, o := range c.outputs {
		walk(o)
	}
	for _, n := range c.nodes {
		if t, ok := n.(Ticker); ok && reach[n.Meta().id] {
			c.tickers = append(c.tickers, t)
		}
	}
	c.next = c.firstBatch()
	if c.ckptDir != "" {
		ck, err := openCheckpointer(c, c.ckptDir, c.ckptOpts...)
		if err != nil {
			return err
		}
		c.ckpt = ck
		c.OnClose(ck.close)
	}
	return nil
}

func (c *Context) acquire() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.running {
		return ErrRunning
	}
	c.running = true
	return nil
}

func (c *Context) release() {
	c.mu.Lock()
	c.running = false
	c.idle.Broadcast()
	c.mu.Unlock()
}

// Run runs batches on the real clock until ctx is done or a batch fails.
// When ctx is cancelled during a batch, that batch finishes, outputs and
// commit included, and Run returns nil once the commit is durable: a
// graceful stop. A failed batch makes Run return a [*BatchError] naming the
// batch time and the operator; so does a checkpoint commit that fails in
// the background (operator "checkpoint"), found by the next batch's commit
// or before Run returns. With a manual clock Run is an error: use
// [Context.RunBatches].
func (c *Context) Run(ctx context.Context) error {
	if c.manual {
		return errors.New("engine: Run needs the real clock, but the context has a manual clock; advance it with RunBatches")
	}
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.release()
	if err := c.start(); err != nil {
		return err
	}
	return c.settle(c.run(ctx))
}

func (c *Context) run(ctx context.Context) error {
	for {
		if err := c.waitUntil(ctx, c.next); err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			return nil // stopped between batches
		}
		if err := c.runBatch(c.next); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// RunBatches runs exactly n more batches, one after another, and returns
// when they are done and, with a checkpoint, their commits are durable, or
// when one fails (a commit failing in the background included, as in
// [Context.Run]). With a manual clock the batches run at once; with the
// real clock each waits for its time. Cancelling ctx stops before the next
// batch, not during one, and returns ctx's error.
func (c *Context) RunBatches(ctx context.Context, n int) error {
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.release()
	if err := c.start(); err != nil {
		return err
	}
	return c.settle(c.runBatches(ctx, n))
}

func (c *Context) runBatches(ctx context.Context, n int) error {
	for range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !c.manual {
			if err := c.waitUntil(ctx, c.next); err != nil {
				return err
			}
		}
		if err := c.runBatch(c.next); err != nil {
			return err
		}
	}
	return nil
}

// LastBatch returns the time of the last batch that completed, or the zero
// time when none has.
func (c *Context) LastBatch() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastBatch
}

func (c *Context) waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.hard.Done():
		return ErrClosed
	}
}

// Close releases the sources, stores and the checkpoint lock. It is
// idempotent. A batch still running is cancelled, and a Run or RunBatches
// still going returns ErrClosed instead of starting another batch. Close
// waits for that batch to end before it releases anything, so it must not
// be called from inside a batch (an output operation or a listener); cancel
// Run's context there instead.
func (c *Context) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.hardStop()
	c.mu.Lock()
	for c.running {
		c.idle.Wait()
	}
	nodes := append([]Node(nil), c.nodes...)
	closers := append([]func() error(nil), c.closers...)
	c.mu.Unlock()
	var errs []error
	for i := len(nodes) - 1; i >= 0; i-- {
		if cl, ok := nodes[i].(Closer); ok {
			errs = append(errs, cl.Close())
		}
	}
	for i := len(closers) - 1; i >= 0; i-- {
		errs = append(errs, closers[i]())
	}
	return errors.Join(errs...)
}
