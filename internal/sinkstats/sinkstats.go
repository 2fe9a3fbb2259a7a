// Package sinkstats holds the counters every sink keeps and reports them
// as the engine's metrics, under the same names for every kind of sink.
package sinkstats

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// WriteBuckets are the upper bounds, in seconds, of the buckets of the
// per-batch write time: from 1 ms to 30 s.
var WriteBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Counters are a sink's counters. The zero value is ready; its methods are
// safe for concurrent use.
type Counters struct {
	Records     atomic.Int64 // records of the batches written
	Batches     atomic.Int64 // batches written
	Failures    atomic.Int64 // batches that failed
	DeadLetters atomic.Int64 // elements the encode function rejected
	Skipped     atomic.Int64 // re-run batches found already written

	mu      sync.Mutex
	count   uint64
	sum     float64
	buckets [16]uint64 // per bucket of WriteBuckets, then above the last
}

// ObserveWrite records how long the sink took over one batch.
func (c *Counters) ObserveWrite(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(WriteBuckets) && s > WriteBuckets[i] {
		i++
	}
	c.mu.Lock()
	c.count++
	c.sum += s
	c.buckets[i]++
	c.mu.Unlock()
}

// Metrics returns the counters as the metrics sink_records_total,
// sink_batches_total, sink_failures_total, sink_dead_letters_total,
// sink_skipped_batches_total and the histogram sink_write_seconds, each
// labelled sink=name.
func (c *Counters) Metrics(name string) []engine.Metric {
	l := map[string]string{"sink": name}
	h := &engine.Histogram{Buckets: make(map[float64]uint64, len(WriteBuckets))}
	c.mu.Lock()
	h.Count, h.Sum = c.count, c.sum
	var cum uint64
	for i, ub := range WriteBuckets {
		cum += c.buckets[i]
		h.Buckets[ub] = cum
	}
	c.mu.Unlock()
	counter := func(name, help string, v int64) engine.Metric {
		return engine.Metric{Name: name, Help: help, Kind: engine.CounterMetric, Labels: l, Value: float64(v)}
	}
	return []engine.Metric{
		counter("sink_records_total", "Records the sink wrote, in the batches it wrote (dead letters apart).", c.Records.Load()),
		counter("sink_batches_total", "Batches the sink wrote.", c.Batches.Load()),
		counter("sink_failures_total", "Batches the sink failed to write, which failed the batch.", c.Failures.Load()),
		counter("sink_dead_letters_total", "Elements the sink's encode function rejected, sent to its dead-letter destination or only counted.", c.DeadLetters.Load()),
		counter("sink_skipped_batches_total", "Batches re-run after a restart that an exactly-once sink found already written and did not write again.", c.Skipped.Load()),
		{Name: "sink_write_seconds", Help: "Time the sink took over each batch it ran, from encoding its elements to the commit, failed and skipped batches included.",
			Kind: engine.HistogramMetric, Labels: l, Histogram: h},
	}
}
