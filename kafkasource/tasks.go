package kafkasource

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource/copart"
)

// In group mode the direct stream is the job's [engine.TaskSource]: task p
// is partition p of every input topic. It keeps the state of every
// [engine.TaskStateful] node downstream of it in a compacted changelog
// topic per node (ChangelogTopic), one partition per task: each batch's
// changes are produced into the member's transaction, so they commit with
// the batch's outputs and offsets, and a task the member gains is restored
// from its changelog before a batch reads it.

var (
	_ engine.TaskSource   = (*directNode)(nil)
	_ engine.TaskReporter = (*directNode)(nil)
	_ engine.Validator    = (*directNode)(nil)
)

// ChangelogTopic is the changelog topic of the operator named operator in
// the job of group: `<group>-<operator>-changelog`. The records a job
// exchanges between tasks have topics of their own, named by
// [RepartitionTopic].
func ChangelogTopic(group, operator string) string { return group + "-" + operator + "-changelog" }

// stateNode is a node holding state per task, and its changelog.
type stateNode struct {
	node  engine.TaskStateful
	topic string
}

// TaskCount returns the number of tasks: the partition count of the input
// topics, known once the context has started when a node holds state per
// task or reads an exchange, else once the first batch is planned; 0
// outside group mode.
func (n *directNode) TaskCount() int { return int(n.taskCount.Load()) }

// PartitionTasks returns the task (partition number) of each planned
// range of batch j, in the order of the batch's partitions; nil when j is
// not the batch planned.
func (n *directNode) PartitionTasks(j *engine.Job) []int {
	if n.plannedFor != j.Time.UnixNano() {
		return nil
	}
	out := make([]int, len(n.planned))
	for i, r := range n.planned {
		out[i] = int(r.Partition)
	}
	return out
}

// Tasks returns the tasks the member owns, ascending, with their restore
// progress.
func (n *directNode) Tasks() []engine.TaskStatus {
	n.tmu.Lock()
	defer n.tmu.Unlock()
	out := make([]engine.TaskStatus, 0, len(n.status))
	for _, task := range slices.Sorted(maps.Keys(n.status)) {
		out = append(out, *n.status[task])
	}
	return out
}

// Validate, in group mode, learns the number of tasks from the input
// topics, makes sure every node holding state per task downstream of the
// stream has its changelog topic and every exchange a node of the job reads
// its repartition topic, and joins the group for the input and repartition
// topics. A job with neither learns the number of tasks at its first batch.
func (n *directNode) Validate() error {
	if !n.cfg.groupMode {
		return nil
	}
	xtopics, err := n.prepareTopics()
	if err != nil {
		return err
	}
	return n.member.join(append(slices.Clone(n.sub.topics), xtopics...))
}

// prepareTopics creates the changelog and repartition topics the job needs
// and returns the repartition topics.
func (n *directNode) prepareTopics() ([]string, error) {
	for _, nd := range n.ec.Nodes() {
		if ts, ok := nd.(engine.TaskStateful); ok && n.feeds(nd) {
			topic := ChangelogTopic(n.cfg.group, nd.Meta().Name())
			if !validTopicName(topic) {
				return nil, fmt.Errorf("kafkasource: the changelog topic %q of operator %q is not a valid Kafka topic name (letters, digits, '.', '_' and '-', at most 249 characters); rename the operator with Name, or the group", topic, nd.Meta().Name())
			}
			n.stateful = append(n.stateful, stateNode{node: ts, topic: topic})
		}
	}
	xtopics, err := n.collectExchanges()
	if err != nil {
		return nil, err
	}
	if len(n.stateful) == 0 && len(xtopics) == 0 {
		return nil, nil // the first batch learns the number of tasks
	}
	ctx := context.Background()
	counts, err := n.inputPartitions(ctx)
	if err != nil {
		return nil, err
	}
	tasks := int32(0)
	for _, c := range counts {
		tasks = max(tasks, c)
	}
	for _, t := range n.sub.topics {
		if counts[t] == 0 {
			return nil, fmt.Errorf("kafkasource: in group mode the partitions of the input topic %q are the job's tasks, and it does not exist; create it before starting the job", t)
		}
	}
	if len(counts) > 1 && slices.Min(slices.Collect(maps.Values(counts))) != tasks {
		return nil, fmt.Errorf("kafkasource: group %q cannot assign the job's topics: %w", n.cfg.group, &copart.UnequalPartitionsError{Partitions: counts})
	}
	n.taskCount.Store(int64(tasks))
	topics := make([]string, 0, len(n.stateful))
	for _, s := range n.stateful {
		if err := n.ensureChangelog(ctx, s.topic, tasks); err != nil {
			return nil, err
		}
		topics = append(topics, s.topic)
	}
	for _, topic := range xtopics {
		if err := n.ensureRepartition(ctx, topic, tasks); err != nil {
			return nil, err
		}
	}
	n.txn.ManualPartitions(append(topics, xtopics...)...)
	if n.cfg.stateDir != "" {
		if n.local, err = openStateDir(n.cfg.stateDir, n.logger); err != nil {
			return nil, err
		}
		n.toCopy = make(map[TopicPartition][]*kgo.Record)
	}
	return xtopics, nil
}

// learnTaskCount sets the number of tasks from the partitions of ps, when
// every input topic has the same number.
func (n *directNode) learnTaskCount(ps *partitions) {
	counts := make(map[string]int64)
	for tp := range ps.leaders {
		counts[tp.Topic]++
	}
	if len(counts) == len(n.sub.topics) && len(counts) > 0 {
		if c := slices.Collect(maps.Values(counts)); slices.Min(c) == slices.Max(c) {
			n.taskCount.Store(c[0])
		}
	}
}

// validTopicName reports whether Kafka accepts name as a topic's.
func validTopicName(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// feeds reports whether nd reads the stream, directly or through other
// nodes.
func (n *directNode) feeds(nd engine.Node) bool {
	for _, p := range nd.Meta().Parents {
		if p == engine.Node(n) || n.feeds(p) {
			return true
		}
	}
	return false
}

// inputPartitions returns the partition count of every input topic that
// exists.
func (n *directNode) inputPartitions(ctx context.Context) (map[string]int32, error) {
	var leaders map[TopicPartition]int32
	err := n.k.retry(ctx, "listing the partitions of the input topics", func(ctx context.Context) (string, error) {
		var err error
		leaders, err = n.k.metadata(ctx, &n.sub)
		return "", err
	})
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int32)
	for tp := range leaders {
		counts[tp.Topic]++
	}
	return counts, nil
}

// ensureChangelog creates topic, compacted, with one partition per task,
// or checks that the topic that exists is that.
func (n *directNode) ensureChangelog(ctx context.Context, topic string, tasks int32) error {
	created, err := n.createTaskTopic(ctx, "changelog", topic, tasks, map[string]*string{"cleanup.policy": new("compact")})
	if err != nil || created {
		return err
	}
	parts, err := n.topicPartitions(ctx, "changelog", topic)
	if err != nil {
		return err
	}
	var policy string
	err = n.k.retry(ctx, "describing the changelog topic "+strconv.Quote(topic), func(ctx context.Context) (string, error) {
		rcs, err := n.k.adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			return "", err
		}
		rc, err := rcs.On(topic, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return "", err
		}
		policy = "delete" // Kafka's default
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy = *c.Value
			}
		}
		return "", nil
	})
	if err != nil {
		return fmt.Errorf("kafkasource: cannot describe the changelog topic %q: %w", topic, err)
	}
	switch {
	case parts != tasks:
		return fmt.Errorf("kafkasource: the changelog topic %q has %d partitions but the job has %d tasks (the input topics' partitions); delete the topic, and its state with it, or give the input topics %d partitions", topic, parts, tasks, parts)
	case !slices.Contains(splitPolicy(policy), "compact"):
		return fmt.Errorf("kafkasource: the changelog topic %q has cleanup.policy=%s, which deletes state; set cleanup.policy=compact on it", topic, policy)
	}
	return nil
}

func splitPolicy(p string) []string {
	var out []string
	for f := range bytes.SplitSeq([]byte(p), []byte(",")) {
		out = append(out, string(bytes.TrimSpace(f)))
	}
	return out
}

// saveTasks produces into the member's transaction the changes of every
// task the batch's member owns, of every node holding state per task, to
// the task's partition of the node's changelog.
func (n *directNode) saveTasks() error {
	clear(n.toCopy)
	for _, s := range n.stateful {
		for _, task := range n.batchTasks {
			tp := TopicPartition{Topic: s.topic, Partition: int32(task)}
			err := s.node.SaveTask(task, func(key, value []byte) error {
				r := &kgo.Record{Topic: s.topic, Partition: int32(task), Key: key, Value: value} // the node hands them over
				n.txn.Produce(r)
				n.changelogWritten.Add(1)
				if n.local != nil {
					n.toCopy[tp] = append(n.toCopy[tp], r)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("kafkasource: saving the state of task %d of %s: %w", task, s.node.Meta().Name(), err)
			}
		}
	}
	return nil
}

// ownTasks records the tasks the member owns for the batch being
// planned; it drops the state of the tasks gone since the last batch and
// returns the tasks gained, which must be restored before the batch reads
// them. regained are tasks owned again that moved away meanwhile.
func (n *directNode) ownTasks(owned []TopicPartition, regained []TopicPartition) (gained []int) {
	tasks := make([]int, 0, len(owned))
	for _, p := range tasksOf(owned) {
		tasks = append(tasks, int(p))
	}
	again := make(map[int]bool)
	for _, p := range tasksOf(regained) {
		again[int(p)] = true
	}
	had := n.held
	n.held = make(map[int]bool, len(tasks))
	for _, task := range tasks {
		n.held[task] = true
		if !had[task] || again[task] {
			gained = append(gained, task)
		}
	}
	var gone []int
	for task := range had {
		if !n.held[task] || again[task] {
			gone = append(gone, task)
		}
	}
	slices.Sort(gone)
	for _, task := range gone {
		for _, s := range n.stateful {
			s.node.DropTask(task)
		}
	}
	n.batchTasks = tasks
	n.tmu.Lock()
	for task := range n.status {
		if !n.held[task] {
			delete(n.status, task)
		}
	}
	for _, task := range tasks {
		if n.status[task] == nil {
			n.status[task] = &engine.TaskStatus{Task: task}
		}
	}
	for _, task := range gained {
		n.status[task] = &engine.TaskStatus{Task: task, Restoring: len(n.stateful) > 0}
	}
	n.tmu.Unlock()
	return gained
}

// taskMetrics are the group-mode metrics: restore progress and changelog
// writes.
func (n *directNode) taskMetrics() []engine.Metric {
	if !n.cfg.groupMode {
		return nil
	}
	n.tmu.Lock()
	owned := len(n.status)
	n.tmu.Unlock()
	return append([]engine.Metric{
		{Name: "kafka_tasks_owned", Help: "Tasks (input partitions) the member owns.", Kind: engine.GaugeMetric, Value: float64(owned)},
		{Name: "kafka_changelog_records_written_total", Help: "State records produced to the changelog topics.", Kind: engine.CounterMetric, Value: float64(n.changelogWritten.Load())},
		{Name: "kafka_changelog_records_restored_total", Help: "State records read back, from the changelog topics and the local state directory, to restore tasks.", Kind: engine.CounterMetric, Value: float64(n.restored.Load())},
		{Name: "kafka_changelog_records_read_total", Help: "State records read from the changelog topics to restore tasks.", Kind: engine.CounterMetric, Value: float64(n.changelogRead.Load())},
		{Name: "kafka_changelog_restore_seconds_total", Help: "Time spent restoring the state of tasks the member gained.", Kind: engine.CounterMetric, Value: time.Duration(n.restoreNanos.Load()).Seconds()},
	}, n.exchangeMetrics()...)
}
