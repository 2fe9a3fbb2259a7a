package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/topictest"
)

// exchangeProbe is a node that exchanges records through exchange "words"
// of the job's Kafka source: each batch it writes perTask records for every
// task its member owns, record i of task t to task (t+i) mod TaskCount, and
// keeps the keys it wrote; a failing probe returns an error once they
// are in the log.
type exchangeProbe struct {
	meta    engine.Meta
	src     *directNode
	member  string
	perTask int

	fail atomic.Bool

	mu      sync.Mutex
	written [][]probeRecord // by batch, in the order the batches ran
}

// probeRecord is a record the probe wrote, with the task it went to.
type probeRecord struct {
	key  string
	task int
}

var (
	_ engine.Exchanging = (*exchangeProbe)(nil)
	_ engine.Ticker     = (*exchangeProbe)(nil)
	_ engine.Output     = (*exchangeProbe)(nil)
)

func newExchangeProbe(src *directNode, member string, perTask int) *exchangeProbe {
	p := &exchangeProbe{meta: engine.Meta{Kind: "exchangeProbe", Parents: []engine.Node{src}}, src: src, member: member, perTask: perTask}
	src.Meta().Context().Register(p)
	return p
}

func (p *exchangeProbe) Meta() *engine.Meta  { return &p.meta }
func (p *exchangeProbe) Exchanges() []string { return []string{"words"} }

func (p *exchangeProbe) Tick(ctx context.Context, j *engine.Job) error {
	tasks := p.src.TaskCount()
	owned := slices.Compact(slices.Sorted(slices.Values(p.src.PartitionTasks(j))))
	var recs []probeRecord
	for _, t := range owned {
		for i := range p.perTask {
			recs = append(recs, probeRecord{key: fmt.Sprintf("%s/%d/t%d/%d", p.member, j.Time.UnixMilli(), t, i), task: (t + i) % tasks})
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(recs))
	for i, r := range recs {
		wg.Go(func() { errs[i] = p.src.ExchangeWrite(j, "words", r.task, []byte(r.key), []byte(strconv.Itoa(r.task))) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	p.mu.Lock()
	p.written = append(p.written, recs)
	p.mu.Unlock()
	if p.fail.Load() {
		if err := p.src.txn.Flush(ctx); err != nil { // the records reach the log, to be aborted there
			return err
		}
		return errors.New("the probe fails after writing")
	}
	return nil
}

func (p *exchangeProbe) RunOutput(context.Context, *engine.Job) error { return nil }

// wrote returns the records written in the i-th batch the probe ran.
func (p *exchangeProbe) wrote(i int) []probeRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written[i]
}

// joinProbe starts member name of group "pagepopularity" with an
// exchange probe writing perTask records per task and batch.
func (e *eosCluster) joinProbe(t testing.TB, name string, perTask int) (*engine.Context, *exchangeProbe) {
	t.Helper()
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, WithBrokers(e.seeds...), WithResetPolicy(Earliest), WithRetryTimeout(5*time.Second),
		WithGroup("pagepopularity"), AsMember(name), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(time.Second)))
	require.NoError(t, err)
	p := newExchangeProbe(findDirect(s.Node()), name, perTask)
	require.NoError(t, ec.Start())
	return ec, p
}

// repartitioned returns the records of the repartition topic of "words",
// read committed or not, as keys with their partition.
func (e *eosCluster) repartitioned(t *testing.T, committed bool) []probeRecord {
	t.Helper()
	var out []probeRecord
	for _, r := range topictest.RecordsToEnd(t, e.seeds, RepartitionTopic("pagepopularity", "words"), committed) {
		out = append(out, probeRecord{key: string(r.Key), task: int(r.Partition)})
		require.Equal(t, strconv.Itoa(int(r.Partition)), string(r.Value), "record %s is in the partition of its task", r.Key)
	}
	return out
}

func sortedRecords(rs []probeRecord) []probeRecord {
	return slices.SortedFunc(slices.Values(rs), func(a, b probeRecord) int {
		if a.key != b.key {
			if a.key < b.key {
				return -1
			}
			return 1
		}
		return a.task - b.task
	})
}

func TestGroupModeRepartitionTopic(t *testing.T) {
	const n = 3
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	ca, a := e.joinProbe(t, "a", 2)
	require.Equal(t, "pagepopularity-words-repartition", RepartitionTopic("pagepopularity", "words"))
	topic := RepartitionTopic("pagepopularity", "words")
	td, err := kadm.NewClient(e.cl).ListTopics(ctx, topic)
	require.NoError(t, err)
	require.Len(t, td[topic].Partitions, n, "one partition per task")
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks", topic}, n), a.src.member)

	// Written in the batch's transaction: visible read committed once the
	// batch commits, each record in the partition of its task.
	require.NoError(t, ca.RunBatches(ctx, 1))
	first := a.wrote(0)
	require.Len(t, first, 2*n)
	require.Equal(t, sortedRecords(first), sortedRecords(e.repartitioned(t, true)))
	m := metricValues(a.src.Metrics())
	require.Equal(t, float64(2*n), m["kafka_repartition_records_written_total"])
	var bytes int
	for _, r := range first {
		bytes += len(r.key) + len(strconv.Itoa(r.task))
	}
	require.Equal(t, float64(bytes), m["kafka_repartition_bytes_written_total"])

	// A batch that fails after writing aborts them.
	a.fail.Store(true)
	require.ErrorContains(t, ca.RunBatches(ctx, 1), "the probe fails after writing")
	require.Len(t, a.wrote(1), 2*n)
	require.Equal(t, sortedRecords(first), sortedRecords(e.repartitioned(t, true)), "the failed batch's records stay invisible read committed")
	require.Len(t, e.repartitioned(t, false), 4*n, "the aborted records are in the log")

	// A second start finds the topic as it should be; one with another
	// partition count is refused.
	e.joinProbe(t, "b", 1)
	_, err = kadm.NewClient(e.cl).CreateTopic(ctx, 2, -1, nil, RepartitionTopic("g-partitions", "words"))
	require.NoError(t, err)
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, WithBrokers(e.seeds...), WithGroup("g-partitions"), AsMember("a"))
	require.NoError(t, err)
	newExchangeProbe(findDirect(s.Node()), "a", 1)
	require.EqualError(t, ec.Start(), `kafkasource: the repartition topic "g-partitions-words-repartition" has 2 partitions but the job has 3 tasks (the input topics' partitions); `+
		`delete the topic, and the exchanged records not read yet with it, or give the input topics 2 partitions`)
}
