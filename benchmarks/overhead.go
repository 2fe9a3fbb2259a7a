package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// emptyWarmup is how many batches run before the timed ones: the first
// fixes the starting offsets.
const emptyWarmup = 3

// overhead measures whole batches that read nothing from an empty topic of
// cfg.partitions partitions, with checkpoints off and on.
func (h *harness) overhead(ctx context.Context) error {
	var offMean float64
	for _, ck := range h.cfg.checkpointModes() {
		mean, p99, ckpt, err := h.emptyBatches(ctx, ck)
		if err != nil {
			return err
		}
		fig := fmt.Sprintf("empty batch, %d partitions, checkpoints %s (p99 %s; checkpoint part %s)",
			h.cfg.partitions, onOff(ck), fmtValue(p99, unitMS), fmtValue(ckpt, unitMS))
		r := result{Workload: "overhead", Label: "empty batch, checkpoints " + onOff(ck), Figure: fig, Unit: unitBatch, Sluice: mean, Better: "lower"}
		if !ck {
			offMean = mean
		} else {
			if offMean > 0 {
				r.against(offMean, "checkpoints off")
			}
			r.goal("≤ 2 ms", mean <= 2)
		}
		h.add(r)
	}
	return nil
}

// emptyBatches runs cfg.emptyBatches empty batches after a warm-up and
// returns the mean and p99 milliseconds per batch and the mean checkpoint
// part.
func (h *harness) emptyBatches(ctx context.Context, checkpoint bool) (mean, p99, ckpt float64, err error) {
	var ckptDelay time.Duration
	opts := []engine.Option{
		engine.WithManualClock(time.Unix(0, 0)),
		engine.WithParallelism(h.cfg.parallelism),
		engine.WithListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) { ckptDelay += info.CheckpointDelay }}),
	}
	if checkpoint {
		dir, err := os.MkdirTemp(h.dir, "ckpt-")
		if err != nil {
			return 0, 0, 0, err
		}
		defer os.RemoveAll(dir)
		opts = append(opts, engine.WithCheckpoint(dir))
	}
	c, err := engine.NewContext(h.cfg.batch, opts...)
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.Close()
	recs, err := kafkasource.NewDirectStream(c, []string{topicEmpty},
		kafkasource.WithBrokers(h.broker.Addrs()...), kafkasource.WithGroup("bench-empty-"+onOff(checkpoint)))
	if err != nil {
		return 0, 0, 0, err
	}
	read := 0
	dstream.ForEachBatch(recs, func(_ context.Context, b dstream.Batch[kafkasource.Record]) error {
		read += b.Len()
		return nil
	})
	if err := c.RunBatches(ctx, emptyWarmup); err != nil {
		return 0, 0, 0, err
	}
	ckptDelay = 0
	times := make([]float64, h.cfg.emptyBatches)
	var total time.Duration
	for i := range times {
		start := time.Now()
		if err := c.RunBatches(ctx, 1); err != nil {
			return 0, 0, 0, err
		}
		d := time.Since(start)
		total += d
		times[i] = ms(d)
	}
	if read != 0 {
		return 0, 0, 0, fmt.Errorf("read %d records from the empty topic", read)
	}
	n := float64(len(times))
	return ms(total) / n, quantile(times, 0.99), ms(ckptDelay) / n, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// quantile returns the q-quantile of xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
