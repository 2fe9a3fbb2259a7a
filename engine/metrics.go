package engine

// MetricKind says how a [Metric]'s value behaves over time.
type MetricKind int

const (
	// CounterMetric only grows (records read, failures), from 0 when the
	// node was created.
	CounterMetric MetricKind = iota
	// GaugeMetric goes up and down (lag, keys in state).
	GaugeMetric
	// HistogramMetric counts observations (such as the time each batch
	// took to write) in buckets; its values are in [Metric].Histogram.
	HistogramMetric
)

// Histogram is the value of a [HistogramMetric]: how many observations
// there were, their sum, and for each bucket's upper bound how many
// observations were at most that bound (cumulative counts, as Prometheus
// histograms hold them).
type Histogram struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64
}

// Metric is one value a node reports for monitoring, such as a Kafka
// source's lag on one partition or a sink's records written.
type Metric struct {
	// Name is the metric's name without a prefix, in snake case with its
	// unit last, such as "kafka_lag_records" or "sink_records_total".
	// Monitoring adds the "sluice_" prefix and the node's name as the
	// "operator" label.
	Name string
	// Help says in one sentence what the value counts.
	Help string
	Kind MetricKind
	// Labels distinguish values of one name within a node, such as
	// "topic" and "partition". Their set must stay bounded.
	Labels map[string]string
	// Value is the value of a counter or a gauge.
	Value float64
	// Histogram is the value of a HistogramMetric, nil otherwise.
	Histogram *Histogram
}

// MetricsReporter is implemented by nodes that report metrics. Metrics is
// called from monitoring goroutines while batches run, so it must be safe
// for concurrent use and must not block on the batch in flight.
type MetricsReporter interface {
	Node
	Metrics() []Metric
}
