package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
)

// In group mode the direct stream keeps the job's exchanges
// ([engine.Exchanger]): each exchange named by a node of the job
// ([engine.Exchanging]) is a repartition topic ([RepartitionTopic]) with
// one partition per task. The group assigns partition p of it with task p.
// A batch's records for task p are produced to partition p in the batch's
// transaction; each batch of the member owning task p reads what was
// committed to partition p since the previous batch read it, read
// committed, and commits where it stopped as the group's offset, in the
// same transaction.

// RepartitionTopic is the repartition topic of the exchange named exchange
// in the job of group: `<group>-<exchange>-repartition`.
func RepartitionTopic(group, exchange string) string {
	return group + "-" + exchange + "-repartition"
}

// collectExchanges names the repartition topic of every exchange a node of
// the context reads, and returns them sorted.
func (n *directNode) collectExchanges() ([]string, error) {
	n.xtopics = make(map[string]string)
	for _, nd := range n.ec.Nodes() {
		x, ok := nd.(engine.Exchanging)
		if !ok {
			continue
		}
		for _, name := range x.Exchanges() {
			topic := RepartitionTopic(n.cfg.group, name)
			if name == "" || !validTopicName(topic) {
				return nil, fmt.Errorf("kafkasource: the repartition topic %q of exchange %q, read by operator %q, is not a valid Kafka topic name (letters, digits, '.', '_' and '-', at most 249 characters); rename the stream it exchanges with Name, or the group", topic, name, nd.Meta().Name())
			}
			n.xtopics[name] = topic
		}
	}
	return slices.Sorted(maps.Values(n.xtopics)), nil
}

// ensureRepartition creates topic with one partition per task, or checks
// that the topic that exists has that many.
func (n *directNode) ensureRepartition(ctx context.Context, topic string, tasks int32) error {
	var created bool
	err := n.k.retry(ctx, "creating the repartition topic "+strconv.Quote(topic), func(ctx context.Context) (string, error) {
		_, err := n.k.adm.CreateTopic(ctx, tasks, -1, nil, topic)
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return "", nil
		}
		created = err == nil
		return "", err
	})
	if err != nil {
		return fmt.Errorf("kafkasource: cannot create the repartition topic %q: %w", topic, err)
	}
	if created {
		n.logger.Info("kafkasource: created the repartition topic", "topic", topic, "partitions", tasks)
		return nil
	}
	parts, err := n.topicPartitions(ctx, "repartition", topic)
	if err != nil {
		return err
	}
	if parts != tasks {
		return fmt.Errorf("kafkasource: the repartition topic %q has %d partitions but the job has %d tasks (the input topics' partitions); delete the topic, and the exchanged records not read yet with it, or give the input topics %d partitions", topic, parts, tasks, parts)
	}
	return nil
}

// topicPartitions returns the partition count of topic, a topic of the
// kind given (for errors) that exists.
func (n *directNode) topicPartitions(ctx context.Context, kind, topic string) (int32, error) {
	var parts int32
	err := n.k.retry(ctx, "describing the "+kind+" topic "+strconv.Quote(topic), func(ctx context.Context) (string, error) {
		td, err := n.k.adm.ListTopics(ctx, topic)
		if err != nil {
			return "", err
		}
		d, ok := td[topic]
		if !ok || d.Err != nil {
			return "", fmt.Errorf("topic %q: %w", topic, errors.Join(d.Err, kerr.UnknownTopicOrPartition))
		}
		parts = int32(len(d.Partitions))
		return "", nil
	})
	if err != nil {
		return 0, fmt.Errorf("kafkasource: cannot describe the %s topic %q: %w", kind, topic, err)
	}
	return parts, nil
}

// ExchangeWrite produces a record with key and value to partition task of
// exchange's repartition topic, in the member's transaction of batch j: it
// commits or aborts with the batch. A record that fails to be written
// fails the batch's commit at the latest. Safe for concurrent use.
func (n *directNode) ExchangeWrite(j *engine.Job, exchange string, task int, key, value []byte) error {
	topic, ok := n.xtopics[exchange]
	if !ok {
		return fmt.Errorf("kafkasource: no operator of the job reads the exchange %q, so it has no repartition topic; name it in the Exchanges of the operator that reads it", exchange)
	}
	if tasks := n.TaskCount(); task < 0 || task >= tasks {
		return fmt.Errorf("kafkasource: exchange %q got a record for task %d, but the job has tasks 0 to %d; write to task keyhash.Partition(hash, TaskCount())", exchange, task, tasks-1)
	}
	if n.plannedFor != j.Time.UnixNano() {
		return fmt.Errorf("kafkasource: exchange %q got a record for batch %d ms, which is not the batch in flight; write from the batch's Tick", exchange, j.Time.UnixMilli())
	}
	n.txn.Produce(&kgo.Record{Topic: topic, Partition: int32(task), Key: key, Value: value}) // the caller hands them over
	n.xwritten.Add(1)
	n.xbytes.Add(int64(len(key) + len(value)))
	return nil
}

// exchangeMetrics are the metrics of group mode's repartition topics.
func (n *directNode) exchangeMetrics() []engine.Metric {
	return []engine.Metric{
		{Name: "kafka_repartition_records_written_total", Help: "Exchanged records produced to the repartition topics.", Kind: engine.CounterMetric, Value: float64(n.xwritten.Load())},
		{Name: "kafka_repartition_bytes_written_total", Help: "Bytes of key and value of the exchanged records produced to the repartition topics.", Kind: engine.CounterMetric, Value: float64(n.xbytes.Load())},
		{Name: "kafka_repartition_records_read_total", Help: "Exchanged records read from the repartition topics.", Kind: engine.CounterMetric, Value: float64(n.xread.Load())},
	}
}
