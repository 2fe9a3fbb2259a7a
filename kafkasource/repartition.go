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

var _ engine.Exchanger = (*directNode)(nil)

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
	topics := slices.Sorted(maps.Values(n.xtopics))
	n.xsub = subscription{topics: append(slices.Clone(n.sub.topics), topics...)}
	n.xpos = make(map[TopicPartition]int64)
	return topics, nil
}

// ensureRepartition creates topic with one partition per task, or checks
// that the topic that exists has that many.
func (n *directNode) ensureRepartition(ctx context.Context, topic string, tasks int32) error {
	created, err := n.createTaskTopic(ctx, "repartition", topic, tasks, nil)
	if err != nil || created {
		return err
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

// createTaskTopic creates topic, a topic of the kind given (for logs and
// errors) with one partition per task and configs, and reports whether it
// did: false when the topic exists already.
func (n *directNode) createTaskTopic(ctx context.Context, kind, topic string, tasks int32, configs map[string]*string) (bool, error) {
	var created bool
	err := n.k.retry(ctx, "creating the "+kind+" topic "+strconv.Quote(topic), func(ctx context.Context) (string, error) {
		_, err := n.k.adm.CreateTopic(ctx, tasks, -1, configs, topic)
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return "", nil
		}
		created = err == nil
		return "", err
	})
	if err != nil {
		return false, fmt.Errorf("kafkasource: cannot create the %s topic %q: %w", kind, topic, err)
	}
	if created {
		n.logger.Info("kafkasource: created the "+kind+" topic", "topic", topic, "partitions", tasks)
	}
	return created, nil
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

// exchangeChunk is the most offsets of a repartition partition read at
// once, so that a task's records are not all held in memory together.
const exchangeChunk = 10_000

// splitExchanges returns the partitions of ps that are repartition topics'
// and removes them from ps.
func (n *directNode) splitExchanges(ps *partitions) *partitions {
	xps := &partitions{leaders: make(map[TopicPartition]int32), start: make(map[TopicPartition]int64), end: make(map[TopicPartition]int64)}
	if len(n.xtopics) == 0 {
		return xps
	}
	topics := make(map[string]bool, len(n.xtopics))
	for _, topic := range n.xtopics {
		topics[topic] = true
	}
	ps.leaders, ps.start, ps.end = maps.Clone(ps.leaders), maps.Clone(ps.start), maps.Clone(ps.end) // the client caches ps's maps
	for tp, l := range ps.leaders {
		if topics[tp.Topic] {
			xps.leaders[tp], xps.start[tp], xps.end[tp] = l, ps.start[tp], ps.end[tp]
			delete(ps.leaders, tp)
			delete(ps.start, tp)
			delete(ps.end, tp)
		}
	}
	return xps
}

// planExchanges plans, for every task the member owns in the batch being
// planned and every exchange, the range of the task's repartition
// partition the batch reads: from the position the member reached, or,
// for a task it gained, the group's committed offset (ctx asks for stable
// ones) or else the log start, to the last stable offset of xps.
func (n *directNode) planExchanges(ctx context.Context, xps *partitions, gained []int) error {
	n.xplanned = nil
	if len(n.xtopics) == 0 {
		return nil
	}
	n.mu.Lock()
	for tp := range n.xpos {
		if !n.held[int(tp.Partition)] || slices.Contains(gained, int(tp.Partition)) {
			delete(n.xpos, tp) // it may have run elsewhere: it starts at the group's offset
		}
	}
	n.mu.Unlock()
	fix := make(map[TopicPartition]int32)
	for _, topic := range n.xtopics {
		for _, task := range n.batchTasks {
			tp := TopicPartition{Topic: topic, Partition: int32(task)}
			if _, ok := n.xpos[tp]; !ok {
				if l, ok := xps.leaders[tp]; ok {
					fix[tp] = l
				}
			}
		}
	}
	if len(fix) > 0 {
		committed, err := n.k.groupOffsets(ctx, n.cfg.group, fix)
		if err != nil {
			return err
		}
		n.mu.Lock()
		for tp := range fix {
			from, ok := committed[tp]
			if !ok {
				from = xps.start[tp]
			}
			n.xpos[tp] = from
		}
		n.mu.Unlock()
	}
	plan := make(map[string]map[int]OffsetRange, len(n.xtopics))
	for exchange, topic := range n.xtopics {
		plan[exchange] = make(map[int]OffsetRange, len(n.batchTasks))
		for _, task := range n.batchTasks {
			tp := TopicPartition{Topic: topic, Partition: int32(task)}
			from, ok := n.xpos[tp]
			if _, listed := xps.leaders[tp]; !ok || !listed {
				continue
			}
			if start := xps.start[tp]; from < start {
				if err := n.lose(tp, from, start, "planning"); err != nil {
					return err
				}
				from = start
			}
			if end := xps.end[tp]; from > end {
				return fmt.Errorf("kafkasource: the repartition partition %s[%d] ends at offset %d, before offset %d that the job has read it to; if the topic was deleted and created again, delete the group's offsets of it too", topic, task, end, from)
			}
			plan[exchange][task] = OffsetRange{Topic: topic, Partition: int32(task), From: from, Until: xps.end[tp]}
		}
	}
	n.xplanned = plan
	n.mu.Lock()
	n.xends = xps.end
	n.mu.Unlock()
	return nil
}

// ExchangeRead calls each with the records of partition task of
// exchange's repartition topic that batch j reads, in offset order (the
// order they were written in), read committed: records of aborted
// transactions and control records are skipped. The range was fixed when
// j was planned: from where the batch before it read the partition, on
// whichever member, to the partition's last stable offset then. A task
// the member does not own in j has none. key and value are valid during
// the call only. Safe for concurrent use.
func (n *directNode) ExchangeRead(ctx context.Context, j *engine.Job, exchange string, task int, each func(key, value []byte) error) error {
	if _, ok := n.xtopics[exchange]; !ok {
		return fmt.Errorf("kafkasource: no operator of the job reads the exchange %q, so it has no repartition topic; name it in the Exchanges of the operator that reads it", exchange)
	}
	if n.plannedFor != j.Time.UnixNano() {
		return fmt.Errorf("kafkasource: exchange %q was read for batch %d ms, which is not the batch in flight; read it from the batch's Tick", exchange, j.Time.UnixMilli())
	}
	rg, ok := n.xplanned[exchange][task]
	if !ok {
		return nil
	}
	for next := rg.From; next < rg.Until; {
		chunk := OffsetRange{Topic: rg.Topic, Partition: rg.Partition, From: next, Until: min(satAdd(next, exchangeChunk), rg.Until)}
		recs, err := n.r.read(ctx, chunk, nil)
		if err != nil {
			return fmt.Errorf("kafkasource: reading task %d of exchange %q: %w", task, exchange, err)
		}
		for i := range recs {
			if err := each(recs[i].Key, recs[i].Value); err != nil {
				return err
			}
		}
		n.xread.Add(int64(len(recs)))
		next = chunk.Until
	}
	return nil
}

// exchangeOffsets adds the ends of the batch's repartition ranges to
// offsets, the group's offsets the batch commits.
func (n *directNode) exchangeOffsets(offsets map[string]map[int32]int64) {
	for _, byTask := range n.xplanned {
		for _, r := range byTask {
			if r.Until == r.From {
				continue // nothing read: the committed offset stands
			}
			if offsets[r.Topic] == nil {
				offsets[r.Topic] = make(map[int32]int64)
			}
			offsets[r.Topic][r.Partition] = r.Until
		}
	}
}

// exchangesCommitted advances the positions in the repartition partitions
// past the batch, once it has committed.
func (n *directNode) exchangesCommitted() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, byTask := range n.xplanned {
		for _, r := range byTask {
			n.xpos[r.TopicPartition()] = r.Until
		}
	}
}

// exchangeMetrics are the metrics of group mode's repartition topics.
func (n *directNode) exchangeMetrics() []engine.Metric {
	return []engine.Metric{
		{Name: "kafka_repartition_records_written_total", Help: "Exchanged records produced to the repartition topics.", Kind: engine.CounterMetric, Value: float64(n.xwritten.Load())},
		{Name: "kafka_repartition_bytes_written_total", Help: "Bytes of key and value of the exchanged records produced to the repartition topics.", Kind: engine.CounterMetric, Value: float64(n.xbytes.Load())},
		{Name: "kafka_repartition_records_read_total", Help: "Exchanged records read from the repartition topics.", Kind: engine.CounterMetric, Value: float64(n.xread.Load())},
	}
}
