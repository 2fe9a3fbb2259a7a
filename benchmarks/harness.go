package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/pgtest"
	"github.com/sluicehq/sluice/kafkasource"
)

// harness holds the broker, the input and the figures of one run.
type harness struct {
	cfg      config
	progress io.Writer
	broker   *kafkasource.Embedded
	dir      string // scratch dir for checkpoints
	ownDir   bool   // dir was made by the harness and is removed on close
	started  time.Time
	loadAvg  [2]string // /proc/loadavg at the start and at the end
	// loadAfter is /proc/loadavg at the end of each workload.
	loadAfter map[string]string

	produceRate float64 // records/s the producer loaded the pass-through input at
	passRate    float64 // Sluice's pass-through rate, once measured
	scaleSeq    int     // numbers the scale-out workloads' groups, fresh for every run
	// scaleLines is what the word count of the wordcount-scaleout
	// workload's input comes to.
	scaleLines *lineTruth

	results     []result
	latencies   []latencyResult
	checkpoints []checkpointResult
	batchCosts  []batchCostResult
	skipped     []string // what could not be measured, and how to make it measurable
}

func newHarness(cfg config, progress io.Writer) (*harness, error) {
	h := &harness{cfg: cfg, progress: progress, started: time.Now(), dir: cfg.dir, loadAfter: map[string]string{}}
	h.loadAvg[0] = loadAverage()
	if h.dir == "" {
		d, err := os.MkdirTemp("", "sluice-bench-")
		if err != nil {
			return nil, fmt.Errorf("benchmarks: scratch dir: %w", err)
		}
		h.dir, h.ownDir = d, true
	} else if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return nil, fmt.Errorf("benchmarks: scratch dir %s: %w", h.dir, err)
	}
	b, err := kafkasource.StartEmbedded()
	if err != nil {
		return nil, errors.Join(err, h.removeDir())
	}
	h.broker = b
	return h, nil
}

func (h *harness) close() error {
	pgtest.Stop()
	return errors.Join(h.broker.Close(), h.removeDir())
}

// skip records and logs a figure that could not be measured, with why.
func (h *harness) skip(why string) {
	h.skipped = append(h.skipped, why)
	h.logf("skipped %s", why)
}

func (h *harness) removeDir() error {
	if !h.ownDir {
		return nil
	}
	return os.RemoveAll(h.dir)
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.progress, "%8.1fs  "+format+"\n", append([]any{time.Since(h.started).Seconds()}, args...)...)
}

// limits caps each partition's share of a batch so that an input of n
// records is read in cfg.batches batches; 0 batches is no cap.
func (h *harness) limits(n int) kafkasource.RateLimits { return h.limitsIn(n, h.cfg.batches) }

// limitsIn caps each partition's share of a batch so that an input of n
// records is read in batches batches; 0 batches is no cap.
func (h *harness) limitsIn(n, batches int) kafkasource.RateLimits {
	if batches == 0 {
		return kafkasource.RateLimits{}
	}
	perPart := (n + h.cfg.partitions - 1) / h.cfg.partitions
	perBatch := (perPart + batches - 1) / batches
	rate := math.Ceil(float64(perBatch) / h.cfg.batch.Seconds())
	return kafkasource.RateLimits{MaxRatePerPartition: max(int64(rate), 1)}
}

// sluiceJob is one run of a Sluice job over an input topic.
type sluiceJob struct {
	topic       string
	records     int // records in the topic: the job runs until it has read them all
	parallelism int
	checkpoint  bool
	// batches is how many batches the records are cut into; 0 is
	// cfg.batches.
	batches int
	// listen, when set, receives every completed batch's BatchInfo.
	listen func(engine.BatchInfo)
	// build adds the job's graph over the records and an output.
	build func(recs *dstream.Stream[kafkasource.Record])
}

// runSluice runs job on the manual clock until it has read every record of
// its topic, batch after batch as fast as they go, and returns the time
// from creating the job to the end of its last batch.
func (h *harness) runSluice(ctx context.Context, job sluiceJob) (time.Duration, error) {
	start := time.Now()
	// The batches run in one RunBatches call, as Run runs them, so that a
	// batch's commit is made durable while the next one runs; the listener
	// stops the call once every record is read, or after 10 empty batches.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var consumed int64
	idle := 0
	opts := []engine.Option{
		engine.WithManualClock(time.Unix(0, 0)),
		engine.WithParallelism(job.parallelism),
		engine.WithListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
			consumed += info.Records
			if job.listen != nil {
				job.listen(info)
			}
			idle++
			if info.Records > 0 {
				idle = 0
			}
			if consumed >= int64(job.records) || idle == 10 {
				stop()
			}
		}}),
	}
	batches := job.batches
	if batches == 0 {
		batches = h.cfg.batches
	}
	if job.checkpoint {
		dir, err := os.MkdirTemp(h.dir, "ckpt-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		opts = append(opts, engine.WithCheckpoint(dir))
	}
	c, err := engine.NewContext(h.cfg.batch, opts...)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	recs, err := kafkasource.NewDirectStream(c, []string{job.topic},
		kafkasource.WithBrokers(h.broker.Addrs()...),
		kafkasource.WithResetPolicy(kafkasource.Earliest),
		kafkasource.WithRateLimits(h.limitsIn(job.records, batches)))
	if err != nil {
		return 0, err
	}
	job.build(recs)
	if err := c.RunBatches(runCtx, math.MaxInt); err != nil && (!errors.Is(err, context.Canceled) || ctx.Err() != nil) {
		return 0, err
	}
	if consumed < int64(job.records) {
		return 0, fmt.Errorf("%w: %s, %d of %d records after 10 empty batches", errShortRead, job.topic, consumed, job.records)
	}
	return time.Since(start), nil
}

// runKgo reads every record of topic with franz-go's direct consumer
// (ConsumePartitions from the start, read committed), hands each fetch to
// each, and returns the time from creating the client to the end of the
// last fetch's handling.
func (h *harness) runKgo(ctx context.Context, topic string, records int, each func(kgo.Fetches)) (time.Duration, error) {
	start := time.Now()
	parts := make(map[int32]kgo.Offset, h.cfg.partitions)
	for p := range int32(h.cfg.partitions) {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var total int
	for total < records {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		total += fs.NumRecords()
		each(fs)
	}
	return time.Since(start), nil
}

// runner is one side of a comparison: it reads an input of records and
// returns how long it took.
type runner func(ctx context.Context) (time.Duration, error)

// compare runs the runners in turn, cfg.repeat times, so that they share the
// machine's load alike, and returns each one's median rate over records.
func (h *harness) compare(ctx context.Context, records int, runs ...runner) ([]float64, error) {
	rates := make([][]float64, len(runs))
	for range h.cfg.repeat {
		if err := rateOnce(ctx, records, rates, runs); err != nil {
			return nil, err
		}
	}
	return medians(rates), nil
}

// rateOnce runs each runner once and appends its rate over records to
// rates[i].
func rateOnce(ctx context.Context, records int, rates [][]float64, runs []runner) error {
	for i, r := range runs {
		d, err := r(ctx)
		if err != nil {
			return err
		}
		rates[i] = append(rates[i], float64(records)/d.Seconds())
	}
	return nil
}

func medians(xss [][]float64) []float64 {
	med := make([]float64, len(xss))
	for i, xs := range xss {
		med[i] = median(xs)
	}
	return med
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// loadAverage returns the first three fields of /proc/loadavg, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	var a, b5, c string
	if _, err := fmt.Sscan(string(b), &a, &b5, &c); err != nil {
		return "unknown"
	}
	return a + " " + b5 + " " + c
}
