package exampleutil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/sluicehq/sluice/state"
)

// Exit statuses of the examples.
const (
	ExitOK      = 0
	ExitFailure = 1 // the broker is unreachable, the checkpoint does not fit, a batch failed
	ExitUsage   = 2 // a bad flag
)

// Job is what an example's build function works with: the configuration,
// the engine context, the stream of Kafka records and where to print.
type Job struct {
	Config  Config
	Context *engine.Context
	// Records is the direct stream over the topic.
	Records *dstream.Stream[kafkasource.Record]
	// Out is where results print (standard output). Output operations and
	// the batch line run on the goroutine that drives batches, one after
	// another, so writes never interleave.
	Out io.Writer
	// Malformed counts the records of a batch that could not be parsed; the
	// batch line shows the count and the first one's reason.
	Malformed *Counter

	counters []*Counter
	sink     Sink
	dead     *deadLetters
}

// Counter returns a new counter shown in the batch line after the malformed
// count, for records a job skips on purpose.
func (j *Job) Counter(label string) *Counter {
	c := NewCounter(label)
	j.counters = append(j.counters, c)
	return c
}

// Save writes rows to the --save file of kind ("" for the main results) for
// the batch at t, and to the --sink, which learns no offset ranges: prefer
// [SaveBatch]. It does nothing without either.
func Save[T any](ctx context.Context, j *Job, kind string, t time.Time, rows []T) error {
	return save(ctx, j, kind, t, nil, rows)
}

// SaveBatch is [Save] from an output operation (dstream.ForEachBatchJob)
// of batch b: the --sink records the offset ranges of j.Records that b
// read beside its rows.
func SaveBatch[T any](ctx context.Context, j *Job, b *engine.Job, kind string, rows []T) error {
	return save(ctx, j, kind, b.Time, kafkasource.OffsetRangesOf(b, j.Records), rows)
}

func save[T any](ctx context.Context, j *Job, kind string, t time.Time, ranges []kafkasource.OffsetRange, rows []T) error {
	if j.sink == nil && j.Config.Save == "" {
		return nil
	}
	// Rows are encoded once, for both outputs; a row that cannot be is
	// dead-lettered rather than failing the batch on every run.
	lines, err := encodeRows(j.dead, kind, t, rows)
	if err != nil {
		return err
	}
	if j.sink != nil {
		if err := j.sink.Write(ctx, kind, t, ranges, lines); err != nil {
			return err
		}
	}
	if j.Config.Save == "" {
		return nil
	}
	return saveLines(SavePath(j.Config.Save, kind, t), lines)
}

// Main runs the example with the process's arguments and exits with its
// status. SIGINT and SIGTERM stop it gracefully: the batch in flight
// finishes and commits. Another signal a second or more after the first
// exits at once (the checkpoint still holds the last committed batch);
// duplicates within that second, as timeout(1) sends, are ignored.
func Main(spec Spec, build func(*Job) error) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sigs
		first := time.Now()
		cancel()
		for range sigs {
			if time.Since(first) >= time.Second {
				fmt.Fprintf(os.Stderr, "%s: interrupted again; exiting without waiting for the batch in flight (the checkpoint keeps the last committed batch)\n", spec.Name)
				os.Exit(130)
			}
		}
	}()
	code := Run(ctx, spec, os.Args[1:], os.Stdout, os.Stderr, build)
	cancel()
	os.Exit(code)
}

// Run parses args, starts the embedded broker (without --brokers) and the
// generator (with --generate), builds the job with build and runs it until
// ctx is done, --duration passes or --stop-when-idle sees the topic
// drained. It returns the exit status; every failure is told in one line
// on stderr.
func Run(ctx context.Context, spec Spec, args []string, stdout, stderr io.Writer, build func(*Job) error) int {
	cfg, err := ParseFlags(spec, args, stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		return ExitUsage
	}
	r := &runner{
		spec: spec, cfg: cfg, out: stdout,
		logger: newLogger(stderr, cfg),
	}
	if err := r.run(ctx, build); err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", spec.Name, oneLine(err))
		return ExitFailure
	}
	return ExitOK
}

type runner struct {
	spec   Spec
	cfg    Config
	out    io.Writer
	logger *slog.Logger

	// batch statistics, written by the listener on the batch goroutine
	batches, records int64
	idle             int
	stopWhy          string
	notes            []string // printed after the banner
}

var errIdle = errors.New("idle")

func (r *runner) run(ctx context.Context, build func(*Job) error) (err error) {
	cfg := r.cfg
	if cfg.Checkpoint != "" {
		if err := os.MkdirAll(cfg.Checkpoint, 0o755); err != nil {
			return fmt.Errorf("cannot create checkpoint dir %s: %v; pass another --checkpoint", cfg.Checkpoint, err)
		}
	}
	opts := []engine.Option{engine.WithLogger(slog.New(quietFailures{r.logger.Handler()})), engine.WithJobName(r.spec.Name)}
	if cfg.Parallelism > 0 {
		opts = append(opts, engine.WithParallelism(cfg.Parallelism))
	}
	if cfg.Checkpoint != "" {
		opts = append(opts, engine.WithCheckpoint(cfg.Checkpoint))
		if cfg.RollbackOnCorrupt {
			opts = append(opts, engine.WithCheckpointOptions(engine.RollbackOnCorrupt()))
		}
	}
	c, err := engine.NewContext(cfg.Batch, opts...)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// The checkpoint's lock comes first: a second instance on the same
	// --checkpoint must not open the embedded broker's files beside it.
	if err := c.LockCheckpoint(); err != nil {
		return err
	}
	// So is a checkpoint written at another --batch: before the broker
	// opens its files or a sink its database.
	if err := c.CheckBatchInterval(); err != nil {
		return r.runError(err)
	}
	// Output paths that cannot be written are found now, not at the first
	// batch.
	if err := checkSave(cfg.Save); err != nil {
		return err
	}
	if err := checkDeadLetter(cfg.DeadLetter); err != nil {
		return err
	}
	addrs := cfg.Brokers
	if cfg.Embedded() {
		broker, err := r.startBroker()
		if err != nil {
			return err
		}
		defer func() {
			if cerr := broker.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		addrs = broker.Addrs()
	} else if err := r.checkCluster(ctx); err != nil {
		return err
	}
	r.notes = append(r.notes, cfg.Security.notes()...)

	srcOpts := append([]kafkasource.Option{
		kafkasource.WithBrokers(addrs...),
		kafkasource.WithGroup(cfg.Group),
		kafkasource.WithRateLimits(kafkasource.RateLimits{MaxRatePerPartition: cfg.MaxRatePerPartition}),
		kafkasource.WithBackpressure(cfg.Backpressure),
		kafkasource.WithRetryTimeout(cfg.RetryTimeout),
		kafkasource.WithLogger(r.logger),
		kafkasource.WithClientOpts(cfg.Security.ClientOpts()...)}, cfg.StartOffsets.sourceOptions()...)
	srcOpts = append(srcOpts, cfg.memberOptions()...)
	records, err := kafkasource.NewDirectStream(c, []string{cfg.Topic}, srcOpts...)
	if err != nil {
		return err
	}
	records.Name("kafka")
	job := &Job{Config: cfg, Context: c, Records: records, Out: r.out, Malformed: NewCounter("malformed"),
		dead: &deadLetters{job: r.spec.Name, path: cfg.DeadLetter, logger: r.logger}}
	if cfg.Sink != "" {
		if job.sink, err = openSink(ctx, cfg.Sink, job, addrs); err != nil {
			return err
		}
		c.OnClose(job.sink.Close)
	}
	if err := build(job); err != nil {
		return err
	}
	if cfg.HTTP != "" {
		url, stop, err := serveStatus(c, cfg.HTTP, job.Malformed)
		if err != nil {
			return err
		}
		defer stop()
		r.notes = append(r.notes, "status page on "+url+" (Prometheus metrics on "+url+"metrics)")
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if cfg.Duration > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeoutCause(runCtx, cfg.Duration, errDuration)
		defer cancelT()
	}
	c.AddListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) { r.batchLine(job, info, cancel) }})

	// Restore the checkpoint before announcing that the job resumes it.
	if err := c.Start(); err != nil {
		return r.runError(err)
	}
	r.banner(addrs)
	// The generator starts once the checkpoint is restored: a run refused
	// at Start writes nothing to the topic.
	var wg sync.WaitGroup
	genCtx, stopGen := context.WithCancel(context.Background())
	defer func() { stopGen(); wg.Wait() }()
	if cfg.Generate > 0 {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(cfg.Topic),
			kgo.ProducerLinger(5 * time.Millisecond), kgo.WithLogger(nil)}, cfg.Security.ClientOpts()...)...)
		if err != nil {
			return fmt.Errorf("cannot create the generator's Kafka client: %v", err)
		}
		seed := uint64(time.Now().UnixNano())
		g := r.spec.Generator()
		wg.Go(func() {
			defer cl.Close()
			runGenerator(genCtx, cl, cfg.Generate, g, rand.New(rand.NewPCG(seed, seed>>1|1)), r.logger)
		})
	}

	err = c.Run(runCtx)
	stopGen()
	wg.Wait()
	if err != nil {
		return r.runError(err)
	}
	switch cause := context.Cause(runCtx); {
	case errors.Is(cause, errIdle):
		r.stopWhy = "the topic stayed drained for " + Plural(int64(cfg.StopWhenIdle), "batch", "batches")
	case errors.Is(cause, errDuration):
		r.stopWhy = "--duration " + cfg.Duration.String() + " passed"
	default:
		r.stopWhy = "interrupted"
	}
	resume := ""
	switch {
	case cfg.Member != "":
		resume = "; it left the group, whose other members take its tasks over; run it again with --member " + cfg.Member + " to rejoin"
	case cfg.Checkpoint != "":
		resume = "; run it again to resume from the checkpoint in " + cfg.Checkpoint
	}
	fmt.Fprintf(r.out, "%s: stopped (%s) after %s and %s%s\n", r.spec.Name, r.stopWhy,
		Plural(r.batches, "batch", "batches"), Plural(r.records, "record", "records"), resume)
	return nil
}

var errDuration = errors.New("duration passed")

// lockHolder finds "(pid N holds DIR/LOCK)" in a state.ErrLocked error.
var lockHolder = regexp.MustCompile(`\(pid \S+ holds [^)]*\)`)

func (r *runner) startBroker() (*kafkasource.Embedded, error) {
	cfg := r.cfg
	opts := []kafkasource.EmbeddedOption{
		kafkasource.EmbeddedListen(cfg.Listen),
		kafkasource.EmbeddedTopic(cfg.Topic, int32(cfg.Partitions)),
		kafkasource.EmbeddedLogger(r.logger),
	}
	if dir := cfg.BrokerDataDir(); dir != "" {
		opts = append(opts, kafkasource.EmbeddedDataDir(dir))
	}
	b, err := kafkasource.StartEmbedded(opts...)
	if errors.Is(err, kafkasource.ErrTopicPartitions) {
		return nil, fmt.Errorf("the embedded broker's log in %s has topic %q with another partition count than --partitions %d; pass the count it has, or a fresh --checkpoint dir",
			cfg.BrokerDataDir(), cfg.Topic, cfg.Partitions)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot start the embedded Kafka broker: %v", strings.TrimPrefix(err.Error(), "kafkasource: "))
	}
	return b, nil
}

// checkCluster makes sure the brokers answer, and, when the generator will
// write, that the topic exists.
func (r *runner) checkCluster(ctx context.Context) error {
	cfg := r.cfg
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.WithLogger(nil)}, cfg.Security.ClientOpts()...)...)
	if err != nil {
		return fmt.Errorf("cannot create a Kafka client for --brokers %s: %v", strings.Join(cfg.Brokers, ","), err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		if serr := cfg.Security.explainConnect(strings.Join(cfg.Brokers, ","), err); serr != nil {
			return serr
		}
		return fmt.Errorf("cannot reach Kafka at %s (%v); check --brokers and that the brokers run, or drop --brokers to use the embedded broker",
			strings.Join(cfg.Brokers, ","), err)
	}
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(pctx, cfg.Topic)
	if err != nil {
		return fmt.Errorf("cannot list topic %q at %s: %v", cfg.Topic, strings.Join(cfg.Brokers, ","), err)
	}
	if topics.Has(cfg.Topic) {
		return nil
	}
	if cfg.Generate == 0 {
		r.notes = append(r.notes, fmt.Sprintf("topic %q does not exist yet; the job reads it from its start once it does", cfg.Topic))
		return nil
	}
	resp, err := adm.CreateTopic(pctx, int32(cfg.Partitions), -1, nil, cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("cannot create topic %q for the generator at %s: %v; create it yourself or pass --generate 0", cfg.Topic, strings.Join(cfg.Brokers, ","), err)
	}
	return nil
}

func (r *runner) banner(addrs []string) {
	cfg, name := r.cfg, r.spec.Name
	if cfg.Embedded() {
		where := "in memory"
		if d := cfg.BrokerDataDir(); d != "" {
			where = "log in " + d
		}
		fmt.Fprintf(r.out, "%s: embedded Kafka broker on %s (%s), topic %q with %s\n",
			name, addrs[0], where, cfg.Topic, Plural(int64(cfg.Partitions), "partition", "partitions"))
	} else if cfg.Member != "" {
		fmt.Fprintf(r.out, "%s: reading topic %q from Kafka at %s as member %q of group %q, which shares the topic's partitions among its members\n",
			name, cfg.Topic, strings.Join(addrs, ","), cfg.Member, cfg.Group)
	} else {
		fmt.Fprintf(r.out, "%s: reading topic %q from Kafka at %s as group %q\n", name, cfg.Topic, strings.Join(addrs, ","), cfg.Group)
	}
	if cfg.Generate > 0 {
		fmt.Fprintf(r.out, "%s: generating %g records/s; add your own with: kcat -P -b %s -t %s%s\n", name, cfg.Generate, addrs[0], cfg.Topic, cfg.Security.kcatFlags())
	}
	var what []string
	what = append(what, "batch "+cfg.Batch.String())
	if r.spec.Windowed {
		what = append(what, fmt.Sprintf("window %v sliding every %v", cfg.Window, cfg.Slide))
	}
	if cfg.Checkpoint != "" {
		state := "checkpoint " + cfg.Checkpoint
		if entries, err := os.ReadDir(filepath.Join(cfg.Checkpoint, "commits")); err == nil && len(entries) > 0 {
			state = "resuming from checkpoint " + cfg.Checkpoint
		}
		what = append(what, state)
	} else if cfg.Member != "" {
		what = append(what, "offsets in the group, a copy of the state in "+cfg.StateDir)
	} else {
		what = append(what, "no checkpoint")
	}
	if cfg.Save != "" {
		what = append(what, "saving to "+cfg.Save+"-*.jsonl")
	}
	stop := "Ctrl-C stops"
	if cfg.Duration > 0 {
		stop = "stops after " + cfg.Duration.String()
	}
	switch {
	case cfg.StopWhenIdle == 1:
		stop += ", or once a batch reads nothing"
	case cfg.StopWhenIdle > 1:
		stop += fmt.Sprintf(", or once %d batches in a row read nothing", cfg.StopWhenIdle)
	}
	fmt.Fprintf(r.out, "%s: %s; %s\n", name, strings.Join(what, ", "), stop)
	for _, n := range r.notes {
		fmt.Fprintf(r.out, "%s: %s\n", name, n)
	}
}

// batchLine prints one line per completed batch and counts idle batches.
func (r *runner) batchLine(j *Job, info engine.BatchInfo, cancel context.CancelCauseFunc) {
	if info.Err != nil {
		return // Run returns the error, told in one line
	}
	r.batches++
	r.records += info.Records
	var b strings.Builder
	fmt.Fprintf(&b, "batch %s: %s", info.Time.Format("15:04:05.000"), Plural(info.Records, "record", "records"))
	for _, c := range append([]*Counter{j.Malformed}, j.counters...) {
		n, first := c.Take()
		fmt.Fprintf(&b, ", %d %s", n, c.Label())
		if first != "" {
			fmt.Fprintf(&b, " (first %s)", first)
		}
	}
	b.WriteString(j.dead.batchNote())
	fmt.Fprintf(&b, ", took %v", roundDuration(info.ProcessingDelay))
	if info.SchedulingDelay >= 100*time.Millisecond {
		fmt.Fprintf(&b, ", started %v late", roundDuration(info.SchedulingDelay))
	}
	fmt.Fprintln(r.out, b.String())

	if info.Records == 0 {
		r.idle++
	} else {
		r.idle = 0
	}
	if r.cfg.StopWhenIdle > 0 && r.idle >= r.cfg.StopWhenIdle {
		cancel(errIdle)
	}
}

func roundDuration(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// runError tells a failed run in one sentence, with advice that names the
// flags rather than the library options behind them.
func (r *runner) runError(err error) error {
	var be *engine.BatchError
	var oor *kafkasource.OffsetOutOfRangeError
	var corrupt *engine.CorruptCommitError
	var timeout *kafkasource.RetryTimeoutError
	if errors.Is(err, kafkasource.ErrSessionTimeout) {
		return fmt.Errorf("the broker refuses --session-timeout %v, which must lie within its group.min.session.timeout.ms and group.max.session.timeout.ms (6s and 30m unless configured otherwise; sluice-broker sets the least with --group-min-session-timeout); pass one within them",
			r.cfg.SessionTimeout)
	}
	if errors.Is(err, state.ErrLocked) && r.cfg.Member != "" {
		return fmt.Errorf("--checkpoint %s is the state dir of another running member %s; give each --member a --checkpoint dir of its own",
			r.cfg.StateDir, lockHolder.FindString(err.Error()))
	}
	if errors.As(err, &oor) {
		return fmt.Errorf("offset %d of %s[%d] is above its high watermark %d, so the topic was probably deleted and created again; run with a fresh --checkpoint dir and --start-offsets earliest (or --start-offsets %s:%d:OFFSET)",
			oor.Offset, oor.Topic, oor.Partition, oor.HighWatermark, oor.Topic, oor.Partition)
	}
	if errors.As(err, &corrupt) {
		return fmt.Errorf("%s; to restore the newest valid commit instead, run again with --rollback-on-corrupt", corrupt.Problem())
	}
	if errors.Is(err, engine.ErrCheckpointMismatch) {
		return fmt.Errorf("%s (for the flags: the same --batch, --window and --slide, or another --checkpoint dir)", strings.TrimPrefix(err.Error(), "engine: "))
	}
	if errors.As(err, &timeout) {
		batch := ""
		if errors.As(err, &be) {
			batch = "batch " + be.Time.Format("15:04:05.000") + " failed: "
		}
		return fmt.Errorf("%sthe broker kept failing past --retry-timeout: %s; check that the broker is up and reachable, or run again with a longer --retry-timeout (%s)",
			batch, timeout.Problem(), r.resumes())
	}
	if errors.As(err, &be) {
		where := ""
		if be.Op != "" {
			where = " in " + be.Op
		}
		return fmt.Errorf("batch %s failed%s: %v; %s",
			be.Time.Format("15:04:05.000"), where, be.Err, r.resumes())
	}
	return err
}

// resumes says where a run after a failed one resumes.
func (r *runner) resumes() string {
	if r.cfg.Member != "" {
		return "the group keeps the offsets of the last committed batch, so running again resumes from there"
	}
	return "the checkpoint keeps the last committed batch, so running again resumes from there"
}

// oneLine joins a multi-line error into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
