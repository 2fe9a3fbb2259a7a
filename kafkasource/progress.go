package kafkasource

import (
	"cmp"
	"slices"

	"github.com/sluicehq/sluice/engine"
)

// PartitionProgress is how far a direct stream has read one partition.
type PartitionProgress struct {
	TopicPartition
	// Committed is the next offset to read, as of the last committed batch
	// (the offset committed to the group, with [WithGroup]).
	Committed int64
	// End is the partition's end that the brokers gave when the last batch
	// was planned: its last stable offset, since records are read committed.
	// After a restart that re-runs a recorded batch, and before the next
	// plan asks the brokers, it is the end of that batch's range.
	End int64
}

// Lag returns End − Committed, the records the stream has yet to read of
// what the partition held at the last plan; never negative.
func (p PartitionProgress) Lag() int64 { return max(p.End-p.Committed, 0) }

// ProgressOf returns the progress of every partition the direct stream node
// n reads (in group mode, the input and repartition partitions of the tasks
// its member owns), sorted by topic and partition, and true; or nil and
// false when n is not a direct stream's node. It never waits for the brokers or for the
// batch in flight, and is safe to call while batches run.
func ProgressOf(n engine.Node) ([]PartitionProgress, bool) {
	d, ok := n.(*directNode)
	if !ok {
		return nil, false
	}
	return d.progress(), true
}

func (n *directNode) progress() []PartitionProgress {
	n.mu.Lock()
	out := make([]PartitionProgress, 0, len(n.positions))
	for tp, off := range n.positions {
		out = append(out, PartitionProgress{TopicPartition: tp, Committed: off, End: max(n.ends[tp], off)})
	}
	for tp, off := range n.xpos {
		out = append(out, PartitionProgress{TopicPartition: tp, Committed: off, End: max(n.xends[tp], off)})
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b PartitionProgress) int { return compareTP(a.TopicPartition, b.TopicPartition) })
	return out
}

func compareTP(a, b TopicPartition) int {
	if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

var _ engine.MetricsReporter = (*directNode)(nil)

// Metrics reports the stream's counters: records lost to retention
// ("kafka_records_lost_total"), fetch requests sent, broker requests
// retried, failed group commits and, in group mode, batches given up on a
// lost group session. The per-partition offsets and lag are
// given by [ProgressOf].
func (n *directNode) Metrics() []engine.Metric {
	c := func(name, help string, v int64) engine.Metric {
		return engine.Metric{Name: name, Help: help, Kind: engine.CounterMetric, Value: float64(v)}
	}
	return append([]engine.Metric{
		c("kafka_records_lost_total", "Records deleted (by retention or DeleteRecords) before the stream read them, and skipped.", n.lost.Load()),
		c("kafka_fetches_total", "Fetch requests sent.", n.r.fetches.Load()),
		c("kafka_request_retries_total", "Broker requests retried after an error.", n.k.retries.Load()),
		c("kafka_group_commit_failures_total", "Batches whose offsets could not be committed to the group.", n.commitFailures.Load()),
		c("kafka_batches_given_up_total", "Batches given up in group mode because the group ended the member's session while they ran: their transaction aborted.", n.givenUp.Load()),
	}, n.taskMetrics()...)
}

// Membership names the group and the member a direct stream in group mode
// ([AsMember]) reads as.
type Membership struct {
	Group  string
	Member string
}

// MembershipOf returns the membership of the direct stream node n and
// true, or false when n is not a direct stream's node in group mode.
func MembershipOf(n engine.Node) (Membership, bool) {
	d, ok := n.(*directNode)
	if !ok || !d.cfg.groupMode {
		return Membership{}, false
	}
	return Membership{Group: d.cfg.group, Member: d.cfg.memberName}, true
}
