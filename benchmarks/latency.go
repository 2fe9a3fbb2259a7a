package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// latencyResult is one latency run: records produced at a fixed rate, each
// stamped by the producer, and the time the output operation saw them.
type latencyResult struct {
	BatchMS      int64   `json:"batch_ms"`
	Checkpoint   bool    `json:"checkpoint"`
	TargetRate   float64 `json:"target_rate"`   // records/s asked of the producer
	ProducedRate float64 `json:"produced_rate"` // records/s it produced
	DurationMS   int64   `json:"duration_ms"`
	Records      int64   `json:"records"` // records measured, after the warm-up
	Batches      int     `json:"batches"`
	P50MS        float64 `json:"p50_ms"`
	P99MS        float64 `json:"p99_ms"`
	MaxMS        float64 `json:"max_ms"`
	// MaxSchedulingDelayMS is the longest any batch waited for the one
	// before it, and MeanProcessingMS the mean time batches ran.
	MaxSchedulingDelayMS float64 `json:"max_scheduling_delay_ms"`
	MeanProcessingMS     float64 `json:"mean_processing_ms"`
}

// latency runs one real-clock job per batch interval of cfg.latencyBatches
// at the configured rate, or at half the sustainable rate measured in this
// run.
func (h *harness) latency(ctx context.Context) error {
	rate := h.cfg.latencyRate
	if rate == 0 {
		if h.passRate == 0 {
			d, err := h.passJob(h.cfg.parallelism)(ctx)
			if err != nil {
				return err
			}
			h.passRate = float64(h.cfg.records) / d.Seconds()
		}
		rate = sustainable(h.produceRate, h.passRate) / 2
		h.logf("latency rate %s: half of %s sustained producing (%s alone) and reading (%s alone) at once",
			fmtRate(rate), fmtRate(2*rate), fmtRate(h.produceRate), fmtRate(h.passRate))
	}
	for _, b := range h.cfg.latencyBatches {
		lr, err := h.latencyRun(ctx, b, rate)
		if err != nil {
			return fmt.Errorf("latency with %v batches: %w", b, err)
		}
		h.latencies = append(h.latencies, lr)
		bms := float64(b) / float64(time.Millisecond)
		fig := fmt.Sprintf("latency %%s, %v batches, %s in (%s produced)", b, fmtRate(rate), fmtRate(lr.ProducedRate))
		p50 := result{Workload: "latency", Label: fmt.Sprintf("p50, %v batches", b), Figure: fmt.Sprintf(fig, "p50"), Unit: unitMS, Sluice: lr.P50MS, Better: "lower"}
		p50.against(bms, "batch interval")
		h.add(p50)
		p99 := result{Workload: "latency", Label: fmt.Sprintf("p99, %v batches", b), Figure: fmt.Sprintf(fig, "p99"), Unit: unitMS, Sluice: lr.P99MS, Better: "lower"}
		p99.against(bms, "batch interval")
		if b <= 100*time.Millisecond {
			// Short batches are where a batch's fixed cost shows.
			p99.goal("≤ 1.5× batch interval", lr.P99MS <= 1.5*bms)
		} else {
			p99.goal("≤ 2× batch interval", lr.P99MS <= 2*bms)
		}
		h.add(p99)
	}
	return nil
}

// latencyDuration is how long a run with batch interval b produces.
func (h *harness) latencyDuration(b time.Duration) time.Duration {
	if h.cfg.latencyDuration > 0 {
		return h.cfg.latencyDuration
	}
	if h.cfg.quick {
		return min(max(20*b, 3*time.Second), 6*time.Second)
	}
	return min(max(50*b, 10*time.Second), 30*time.Second)
}

// latencyRun produces to a fresh topic at rate for the run's duration while
// a job with batch interval b reads it on the real clock; the output
// operation measures every record's latency from its producer timestamp.
func (h *harness) latencyRun(ctx context.Context, b time.Duration, rate float64) (latencyResult, error) {
	lr := latencyResult{BatchMS: b.Milliseconds(), Checkpoint: h.cfg.checkpoint != "off", TargetRate: rate}
	topic := fmt.Sprintf("latency-%d", b.Milliseconds())
	if err := h.broker.CreateTopic(ctx, topic, int32(h.cfg.partitions)); err != nil {
		return lr, err
	}
	var (
		batches    int
		maxSched   time.Duration
		processing time.Duration
	)
	opts := []engine.Option{
		engine.WithParallelism(h.cfg.parallelism),
		engine.WithListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
			batches++
			maxSched = max(maxSched, info.SchedulingDelay)
			processing += info.ProcessingDelay
		}}),
	}
	if lr.Checkpoint {
		dir, err := os.MkdirTemp(h.dir, "ckpt-")
		if err != nil {
			return lr, err
		}
		defer os.RemoveAll(dir)
		opts = append(opts, engine.WithCheckpoint(dir))
	}
	c, err := engine.NewContext(b, opts...)
	if err != nil {
		return lr, err
	}
	defer c.Close()
	recs, err := kafkasource.NewDirectStream(c, []string{topic},
		kafkasource.WithBrokers(h.broker.Addrs()...), kafkasource.WithResetPolicy(kafkasource.Earliest))
	if err != nil {
		return lr, err
	}

	// The first batch also connects to the broker: records before the end
	// of the first batch interval are not measured.
	warmup := max(b, 500*time.Millisecond)
	start := time.Now()
	measureFrom := start.Add(warmup)
	hist := &histogram{}
	drained := newDrain()
	dstream.ForEachBatch(recs, func(_ context.Context, bt dstream.Batch[kafkasource.Record]) error {
		now := time.Now()
		for _, p := range bt.Parts {
			for i := range p {
				if ts := p[i].Timestamp; !ts.Before(measureFrom) {
					hist.add(now.Sub(ts))
				}
			}
		}
		drained.saw(int64(bt.Len()))
		return nil
	})

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(runCtx) }()

	d := h.latencyDuration(b)
	produced, perr := h.produceAt(runCtx, topic, rate, d)
	lr.ProducedRate = float64(produced) / d.Seconds()
	lr.DurationMS = d.Milliseconds()
	if perr == nil {
		// Wait for the job to read what was produced, or to fail.
		select {
		case <-drained.reach(produced):
		case err := <-runErr:
			return lr, errors.Join(errors.New("the job stopped before it read every record"), err)
		case <-time.After(10*b + 10*time.Second):
			perr = fmt.Errorf("the job read %d of %d records within %v of the end of production", drained.seen.Load(), produced, 10*b+10*time.Second)
		case <-ctx.Done():
			perr = ctx.Err()
		}
	}
	stop()
	if err := errors.Join(perr, <-runErr); err != nil {
		return lr, err
	}
	lr.Records = hist.n
	if lr.Records == 0 {
		return lr, fmt.Errorf("no record was produced after the %v warm-up", warmup)
	}
	lr.Batches = batches
	lr.P50MS, lr.P99MS, lr.MaxMS = hist.quantile(0.5), hist.quantile(0.99), hist.max()
	lr.MaxSchedulingDelayMS = ms(maxSched)
	lr.MeanProcessingMS = ms(processing) / float64(max(batches, 1))
	return lr, nil
}

// produceAt produces records to topic at rate records/s for d, each stamped
// with the time it was handed to the producer, spread round-robin over the
// partitions, and returns how many it produced once all are acknowledged.
func (h *harness) produceAt(ctx context.Context, topic string, rate float64, d time.Duration) (int64, error) {
	cl, err := h.producer()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var (
		mu    sync.Mutex
		first error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		}
	}
	value := []byte("latency-payload-latency-payload-latency-payload-")
	parts := int64(h.cfg.partitions)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var sent int64
	for {
		now := time.Now()
		el := now.Sub(start)
		if el >= d || ctx.Err() != nil {
			break
		}
		for due := int64(rate * el.Seconds()); sent < due; sent++ {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(sent % parts), Value: value, Timestamp: now}, promise)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return sent, err
	}
	mu.Lock()
	defer mu.Unlock()
	return sent, first
}

// drain tells when the output operation has seen a number of records.
type drain struct {
	seen   atomic.Int64
	mu     sync.Mutex
	target int64
	done   chan struct{}
}

func newDrain() *drain { return &drain{target: -1, done: make(chan struct{})} }

func (d *drain) saw(n int64) {
	s := d.seen.Add(n)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.target >= 0 && s >= d.target {
		d.closeDone()
	}
}

// reach returns a channel closed once the output has seen n records.
func (d *drain) reach(n int64) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.target = n
	if d.seen.Load() >= n {
		d.closeDone()
	}
	return d.done
}

func (d *drain) closeDone() {
	select {
	case <-d.done:
	default:
		close(d.done)
	}
}

// histogram counts latencies in 1 ms buckets (Kafka timestamps have
// millisecond resolution) up to a minute; longer ones count in the last.
type histogram struct {
	buckets [60_000]int64
	n       int64
}

func (h *histogram) add(d time.Duration) {
	i := max(int(d/time.Millisecond), 0)
	h.buckets[min(i, len(h.buckets)-1)]++
	h.n++
}

// quantile returns the q-quantile in ms: the bucket where the running count
// reaches q of all.
func (h *histogram) quantile(q float64) float64 {
	want := int64(q*float64(h.n) + 0.5)
	var run int64
	for i, c := range h.buckets {
		run += c
		if run >= max(want, 1) {
			return float64(i)
		}
	}
	return float64(len(h.buckets) - 1)
}

func (h *histogram) max() float64 {
	for i := len(h.buckets) - 1; i >= 0; i-- {
		if h.buckets[i] > 0 {
			return float64(i)
		}
	}
	return 0
}
