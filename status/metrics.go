package status

import (
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/engine"
)

// delayBuckets are the histogram buckets of batch delays, in seconds: from
// 1 ms to about 2 minutes.
var delayBuckets = prometheus.ExponentialBuckets(0.001, 2, 18)

// metrics is the Prometheus collector of one job: batch counters and
// histograms updated by the listener, per-partition progress read from the
// history, and the metrics of every node implementing
// [engine.MetricsReporter], read at scrape time.
type metrics struct {
	ctx  *engine.Context
	hist *history

	batches    *prometheus.CounterVec
	ok, failed prometheus.Counter // the batches counters of each outcome
	records    prometheus.Counter
	processing prometheus.Histogram
	scheduling prometheus.Histogram
	total      prometheus.Histogram
	checkpoint prometheus.Histogram
	lastBatch  prometheus.Gauge

	committed, end, lag *prometheus.Desc

	lastCommit, ckptBytes, ckptCommits, stateBytes *prometheus.Desc

	tasks taskDescs
}

func newMetrics(c *engine.Context, h *history) *metrics {
	labels := prometheus.Labels{}
	if name := c.JobName(); name != "" {
		labels["job_name"] = name
	}
	hist := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: name, Help: help, Buckets: delayBuckets, ConstLabels: labels,
		})
	}
	parts := []string{"source", "topic", "partition"}
	m := &metrics{
		ctx:  c,
		hist: h,
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_batches_total", Help: "Batches run, by outcome (succeeded or failed).", ConstLabels: labels,
		}, []string{"outcome"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_input_records_total", Help: "Input records the sources planned for completed batches.", ConstLabels: labels,
		}),
		processing: hist("sluice_batch_processing_seconds", "How long batches ran, from planning to commit."),
		scheduling: hist("sluice_batch_scheduling_delay_seconds", "How long batches waited after their time before they started."),
		total:      hist("sluice_batch_total_delay_seconds", "Scheduling delay plus processing time of batches."),
		checkpoint: hist("sluice_checkpoint_write_seconds", "Time batches spent on their checkpoint: waiting for their recorded input, saving state, and waiting for the previous batch's manifest, which is written in the background."),
		lastBatch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_last_completed_batch_timestamp_seconds", Help: "Batch time of the last batch that completed successfully, in Unix seconds.", ConstLabels: labels,
		}),
		committed:   prometheus.NewDesc("sluice_kafka_committed_offset", "Next offset of the partition to read, as of the last committed batch.", parts, labels),
		end:         prometheus.NewDesc("sluice_kafka_end_offset", "End (last stable offset) of the partition that the brokers gave when the last batch was planned.", parts, labels),
		lastCommit:  prometheus.NewDesc("sluice_last_committed_batch_timestamp_seconds", "Batch time of the newest batch the checkpoint holds, in Unix seconds: a restart resumes after it.", nil, labels),
		ckptBytes:   prometheus.NewDesc("sluice_checkpoint_written_bytes_total", "Bytes of checkpoint file bodies written: the format file, recorded input, state deltas and snapshots, and manifests.", nil, labels),
		ckptCommits: prometheus.NewDesc("sluice_checkpoint_commits_total", "Checkpoint commits written.", nil, labels),
		stateBytes:  prometheus.NewDesc("sluice_checkpoint_state_bytes", "Bytes of the state of the operator that the newest checkpoint commit refers to.", []string{"operator"}, labels),
		lag:         prometheus.NewDesc("sluice_kafka_lag_records", "Records of the partition not yet read: end offset minus committed offset.", parts, labels),
		tasks:       newTaskDescs(labels),
	}
	// Both outcomes are exported from the start, at 0, so that rates and
	// alerts on failures see a series before the first failure.
	m.ok = m.batches.WithLabelValues("succeeded")
	m.failed = m.batches.WithLabelValues("failed")
	return m
}

func (m *metrics) own() []prometheus.Collector {
	own := []prometheus.Collector{m.batches, m.records, m.processing, m.scheduling, m.total, m.lastBatch}
	if m.ctx.Checkpointing() {
		own = append(own, m.checkpoint) // a job without a checkpoint writes none
	}
	return own
}

// observe records a completed batch.
func (m *metrics) observe(info engine.BatchInfo) {
	if info.Err != nil {
		m.failed.Inc()
	} else {
		m.ok.Inc()
		m.lastBatch.Set(float64(info.Time.UnixNano()) / 1e9)
	}
	m.records.Add(float64(info.Records))
	m.processing.Observe(info.ProcessingDelay.Seconds())
	m.scheduling.Observe(info.SchedulingDelay.Seconds())
	m.total.Observe(info.TotalDelay.Seconds())
	if m.ctx.Checkpointing() {
		m.checkpoint.Observe(info.CheckpointDelay.Seconds())
	}
}

// Describe sends nothing: node metrics are only known at scrape time, which
// makes this an unchecked collector.
func (m *metrics) Describe(chan<- *prometheus.Desc) {}

// Collect sends the job's metrics.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.own() {
		c.Collect(ch)
	}
	for _, p := range lag(m.ctx) {
		lv := []string{p.Source, p.Topic, strconv.Itoa(int(p.Partition))}
		ch <- prometheus.MustNewConstMetric(m.committed, prometheus.GaugeValue, float64(p.Committed), lv...)
		ch <- prometheus.MustNewConstMetric(m.end, prometheus.GaugeValue, float64(p.End), lv...)
		ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(p.Lag()), lv...)
	}
	if m.ctx.Checkpointing() {
		st := m.ctx.CheckpointStats()
		if !st.LastCommit.IsZero() {
			ch <- prometheus.MustNewConstMetric(m.lastCommit, prometheus.GaugeValue, float64(st.LastCommit.UnixNano())/1e9)
		}
		ch <- prometheus.MustNewConstMetric(m.ckptBytes, prometheus.CounterValue, float64(st.BytesWritten))
		ch <- prometheus.MustNewConstMetric(m.ckptCommits, prometheus.CounterValue, float64(st.Commits))
		for op, n := range st.StateBytes {
			ch <- prometheus.MustNewConstMetric(m.stateBytes, prometheus.GaugeValue, float64(n), op)
		}
	}
	m.tasks.collect(m.ctx, ch)
	for _, n := range m.ctx.Nodes() {
		r, ok := n.(engine.MetricsReporter)
		if !ok {
			continue
		}
		op := n.Meta().Name()
		for _, x := range r.Metrics() {
			if metric, ok := nodeMetric(op, x, m.jobLabels()); ok {
				ch <- metric
			}
		}
	}
}

func (m *metrics) jobLabels() prometheus.Labels {
	if name := m.ctx.JobName(); name != "" {
		return prometheus.Labels{"job_name": name}
	}
	return nil
}

// nodeMetric turns a node's metric into a Prometheus one named
// "sluice_<name>" with the node's name as the "operator" label. A metric
// whose name or labels Prometheus rejects is dropped.
func nodeMetric(op string, x engine.Metric, constLabels prometheus.Labels) (prometheus.Metric, bool) {
	names := make([]string, 0, len(x.Labels)+1)
	for k := range x.Labels {
		if k != "operator" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	values := make([]string, 0, len(names)+1)
	for _, k := range names {
		values = append(values, x.Labels[k])
	}
	names = append(names, "operator")
	values = append(values, op)
	help := x.Help
	if help == "" {
		help = "Reported by the operator."
	}
	d := prometheus.NewDesc("sluice_"+x.Name, help, names, constLabels)
	var (
		metric prometheus.Metric
		err    error
	)
	switch x.Kind {
	case engine.HistogramMetric:
		if x.Histogram == nil {
			return nil, false
		}
		metric, err = prometheus.NewConstHistogram(d, x.Histogram.Count, x.Histogram.Sum, x.Histogram.Buckets, values...)
	case engine.CounterMetric:
		metric, err = prometheus.NewConstMetric(d, prometheus.CounterValue, x.Value, values...)
	default:
		metric, err = prometheus.NewConstMetric(d, prometheus.GaugeValue, x.Value, values...)
	}
	return metric, err == nil
}
