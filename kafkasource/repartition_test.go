package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/groupcommit"
	"github.com/sluicehq/sluice/internal/topictest"
)

// exchangeProbe is a node that exchanges records through exchange "words"
// of the job's Kafka source, as an operator behind a repartition topic
// does. Each batch it first reads every task's records (the source gives
// none for tasks its member does not own), then writes perTask records for
// every task its member owns, record i of task t to task (t+i) mod
// TaskCount, its value the task it goes to. It keeps what each batch read
// and wrote, and, once a batch has completed without error, counts that as
// committed. A failing probe returns an error once its records are in the
// log.
type exchangeProbe struct {
	meta    engine.Meta
	src     *directNode
	member  string
	perTask atomic.Int64

	fail atomic.Bool
	big  atomic.Bool // write one record too large for the producer too
	hold func()      // if set, called once the batch's records are in the log

	mu        sync.Mutex
	batches   []probeBatch          // in the order they ran
	pending   map[int64]*probeBatch // by batch time, until it completes
	committed []probeBatch
}

// probeBatch is what one batch of the probe read and wrote.
type probeBatch struct {
	time    int64 // ms
	owned   []int // the tasks the member owned
	givenUp int64 // the source's batches given up before this one
	read    []probeRecord
	written []probeRecord
}

// probeRecord is an exchanged record and the task it belongs to.
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
	p := &exchangeProbe{meta: engine.Meta{Kind: "exchangeProbe", Parents: []engine.Node{src}}, src: src, member: member, pending: make(map[int64]*probeBatch)}
	p.perTask.Store(int64(perTask))
	ec := src.Meta().Context()
	ec.Register(p)
	ec.AddListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if b := p.pending[info.Time.UnixMilli()]; b != nil && info.Err == nil && p.src.givenUp.Load() == b.givenUp {
			p.committed = append(p.committed, *b)
		}
		delete(p.pending, info.Time.UnixMilli())
	}})
	return p
}

func (p *exchangeProbe) Meta() *engine.Meta  { return &p.meta }
func (p *exchangeProbe) Exchanges() []string { return []string{"words"} }

func (p *exchangeProbe) Tick(ctx context.Context, j *engine.Job) error {
	var x engine.Exchanger = p.src
	tasks := x.TaskCount()
	b := &probeBatch{time: j.Time.UnixMilli(), givenUp: p.src.givenUp.Load()}
	read := make([][]probeRecord, tasks)
	err := j.Run(ctx, "probe", tasks, func(ctx context.Context, tk *engine.Task) error {
		return x.ExchangeRead(ctx, j, "words", tk.Index, func(k, v []byte) error {
			if string(v) != strconv.Itoa(tk.Index) {
				return fmt.Errorf("task %d read %s, a record of task %s", tk.Index, k, v)
			}
			read[tk.Index] = append(read[tk.Index], probeRecord{key: string(k), task: tk.Index})
			return nil
		})
	})
	if err != nil {
		return err
	}
	b.read = slices.Concat(read...)

	b.owned = slices.Compact(slices.Sorted(slices.Values(x.PartitionTasks(j))))
	for _, t := range b.owned {
		for i := range int(p.perTask.Load()) {
			b.written = append(b.written, probeRecord{key: fmt.Sprintf("%s/%d/t%d/%d", p.member, j.Time.UnixMilli(), t, i), task: (t + i) % tasks})
		}
	}
	if p.big.Load() {
		if err := x.ExchangeWrite(j, "words", 0, []byte("big"), make([]byte, 2<<20)); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(b.written))
	for i, r := range b.written {
		wg.Go(func() { errs[i] = x.ExchangeWrite(j, "words", r.task, []byte(r.key), []byte(strconv.Itoa(r.task))) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	p.mu.Lock()
	p.batches = append(p.batches, *b)
	p.pending[b.time] = b
	p.mu.Unlock()
	if p.fail.Load() || p.hold != nil {
		if err := p.src.txn.Flush(ctx); err != nil { // the records reach the log, to be aborted there
			return err
		}
	}
	if p.hold != nil {
		p.hold()
	}
	if p.fail.Load() {
		if err := p.src.txn.Flush(ctx); err != nil {
			return err
		}
		return errors.New("the probe fails after writing")
	}
	return nil
}

func (p *exchangeProbe) RunOutput(context.Context, *engine.Job) error { return nil }

// ran returns the i-th batch the probe ran, committed or not.
func (p *exchangeProbe) ran(i int) probeBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.batches[i]
}

// wrote returns the records written in the i-th batch the probe ran.
func (p *exchangeProbe) wrote(i int) []probeRecord { return p.ran(i).written }

// committedBatches returns the batches that completed without error.
func (p *exchangeProbe) committedBatches() []probeBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.committed)
}

// joinProbe starts member name of group "pagepopularity" with an
// exchange probe writing perTask records per task and batch, their keys
// prefixed with label.
func (e *eosCluster) joinProbe(t testing.TB, name, label string, perTask int) (*engine.Context, *exchangeProbe) {
	t.Helper()
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, WithBrokers(e.seeds...), WithResetPolicy(Earliest), WithRetryTimeout(5*time.Second),
		WithGroup("pagepopularity"), AsMember(name), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(time.Second)))
	require.NoError(t, err)
	p := newExchangeProbe(findDirect(s.Node()), label, perTask)
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
	ca, a := e.joinProbe(t, "a", "a", 2)
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
	e.joinProbe(t, "b", "b", 1)
	_, err = kadm.NewClient(e.cl).CreateTopic(ctx, 2, -1, nil, RepartitionTopic("g-partitions", "words"))
	require.NoError(t, err)
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, WithBrokers(e.seeds...), WithGroup("g-partitions"), AsMember("a"))
	require.NoError(t, err)
	newExchangeProbe(findDirect(s.Node()), "a", 1)
	require.EqualError(t, ec.Start(), `kafkasource: the repartition topic "g-partitions-words-repartition" has 2 partitions but the job has 3 tasks (the input topics' partitions); `+
		`delete the topic, and the exchanged records not read yet with it, or give the input topics 2 partitions`)
}

// requireExchangedOnce requires that the committed batches of the probes
// read every record their committed batches wrote, once, each in a task
// its member owned in that batch, and that these are the records the
// repartition topic holds read committed.
func requireExchangedOnce(t *testing.T, e *eosCluster, ps ...*exchangeProbe) {
	t.Helper()
	var written, read []probeRecord
	for _, p := range ps {
		for _, b := range p.committedBatches() {
			written = append(written, b.written...)
			read = append(read, b.read...)
			for _, r := range b.read {
				require.Containsf(t, b.owned, r.task, "%s read %s in task %d, which its batch %d ms did not own", p.member, r.key, r.task, b.time)
			}
		}
	}
	require.NotEmpty(t, written)
	require.Equal(t, sortedRecords(written), sortedRecords(read), "every record written is read once")
	require.Equal(t, sortedRecords(written), sortedRecords(e.repartitioned(t, true)), "the topic holds what committed batches wrote")
}

func TestGroupModeExchangeReadsEachRecordOnce(t *testing.T) {
	// One member: a batch reads what the batches before it committed to
	// its tasks, once; a failed batch commits neither its reads nor its
	// writes, which stay invisible however the range of the next batch
	// runs through them.
	const n = 3
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	ca, a := e.joinProbe(t, "a", "a", 2)
	topic := RepartitionTopic("pagepopularity", "words")
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks", topic}, n), a.src.member)

	require.NoError(t, ca.RunBatches(ctx, 1))
	require.Empty(t, a.ran(0).read)
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.Equal(t, sortedRecords(a.wrote(0)), sortedRecords(a.ran(1).read))

	a.fail.Store(true)
	require.ErrorContains(t, ca.RunBatches(ctx, 1), "the probe fails after writing")
	require.Equal(t, sortedRecords(a.wrote(1)), sortedRecords(a.ran(2).read))
	require.Len(t, e.repartitioned(t, false), 3*2*n, "the failed batch's records are in the log, to be aborted")

	// A failed batch ends the job: a starts again under its name and
	// resumes at the group's offsets.
	require.NoError(t, ca.Close())
	ca2, a2 := e.joinProbe(t, "a", "a2", 2)
	waitMembers(t, "the new a owning every task", splitEvenly([]string{"clicks", topic}, n), a2.src.member)
	require.NoError(t, ca2.RunBatches(ctx, 1))
	require.Equal(t, sortedRecords(a.wrote(1)), sortedRecords(a2.ran(0).read), "the failed batch committed no offsets, and its records were aborted")

	a2.perTask.Store(0)
	require.NoError(t, ca2.RunBatches(ctx, 1))
	require.Equal(t, sortedRecords(a2.wrote(0)), sortedRecords(a2.ran(1).read))
	requireExchangedOnce(t, e, a, a2)
	require.Equal(t, float64(2*2*n), metricValues(a2.src.Metrics())["kafka_repartition_records_read_total"])
	require.Len(t, e.repartitioned(t, false), 4*2*n, "the range the new a read ran through the aborted records")
	committed, err := kadm.NewClient(e.cl).FetchOffsets(ctx, "pagepopularity")
	require.NoError(t, err)
	ends, err := kadm.NewClient(e.cl).ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	progress, _ := ProgressOf(a2.src)
	for p := range int32(n) {
		o, ok := committed.Lookup(topic, p)
		require.Truef(t, ok, "the group has an offset for %s[%d]", topic, p)
		end, _ := ends.Lookup(topic, p)
		require.Equalf(t, end.Offset, o.At, "%s[%d] is read to its end", topic, p)
		require.Containsf(t, progress, PartitionProgress{TopicPartition: TopicPartition{Topic: topic, Partition: p}, Committed: o.At, End: o.At},
			"the progress of %s[%d] is the committed offset, at the end when the batch was planned", topic, p)
	}
}

// runRound runs one batch of each member, in order.
func runRound(t *testing.T, ctx context.Context, cs ...*engine.Context) {
	t.Helper()
	for _, c := range cs {
		require.NoError(t, c.RunBatches(ctx, 1))
	}
}

func TestGroupModeExchangeAcrossMembers(t *testing.T) {
	// Two members exchange records between their tasks; when b leaves, a
	// takes b's tasks over at the group's offsets, and so does b when it
	// comes back under its name: every record is read once.
	const n = 4
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	topics := []string{"clicks", RepartitionTopic("pagepopularity", "words")}
	ca, a := e.joinProbe(t, "a", "a", 2)
	cb, b := e.joinProbe(t, "b", "b", 3)
	waitMembers(t, "a and b sharing the tasks", splitEvenly(topics, n), a.src.member, b.src.member)
	runRound(t, ctx, ca, cb)
	runRound(t, ctx, ca, cb)
	require.NotEmpty(t, b.ran(1).read)

	require.NoError(t, cb.Close())
	waitMembers(t, "a owning every task after b left", splitEvenly(topics, n), a.src.member)
	runRound(t, ctx, ca)
	runRound(t, ctx, ca)

	cb2, b2 := e.joinProbe(t, "b", "b2", 1)
	waitMembers(t, "a and b sharing the tasks once b is back", splitEvenly(topics, n), a.src.member, b2.src.member)
	runRound(t, ctx, ca, cb2)
	runRound(t, ctx, cb2, ca)

	a.perTask.Store(0)
	b2.perTask.Store(0)
	runRound(t, ctx, ca, cb2)
	runRound(t, ctx, ca, cb2)
	requireExchangedOnce(t, e, a, b, b2)
}

func TestGroupModeWordCountThroughARepartitionTopic(t *testing.T) {
	// A word count over lines keyed otherwise than by word, on two
	// members: the pairs go through the repartition topic of the stream
	// "words", each word's count is kept by the task that owns it, and
	// once every record is read the counts equal those of the input.
	const n = 3
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	words := []string{"apple", "pear", "fig", "plum", "kiwi", "lime", "date"}
	want := make(map[string]int)
	var recs []*kgo.Record
	for p := range int32(n) {
		for i := range 20 {
			line := fmt.Sprintf("%s %s %s", words[(int(p)+i)%len(words)], words[i%len(words)], words[(i*i)%len(words)])
			for _, w := range strings.Fields(line) {
				want[w]++
			}
			recs = append(recs, &kgo.Record{Topic: "clicks", Partition: p, Value: []byte(line)})
		}
	}
	type member struct {
		ec     *engine.Context
		src    *directNode
		mu     sync.Mutex
		counts map[string]int // the latest count of each word, by the batch that output it
	}
	join := func(name string) *member {
		m := &member{ec: newEngine(t), counts: make(map[string]int)}
		s, err := NewDirectStream(m.ec, []string{"clicks"}, WithBrokers(e.seeds...), WithResetPolicy(Earliest), WithRetryTimeout(5*time.Second),
			WithGroup("pagepopularity"), AsMember(name), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(time.Second)))
		require.NoError(t, err)
		m.src = findDirect(s.Node())
		pairs := dstream.FlatMap(s, func(r Record) []dstream.KV[string, int] {
			var out []dstream.KV[string, int]
			for _, w := range strings.Fields(string(r.Value)) {
				out = append(out, dstream.Pair(w, 1))
			}
			return out
		}).Name("words")
		counts := dstream.UpdateStateByKey(pairs, func(vs []int, c int, _ bool) (int, bool) {
			for _, v := range vs {
				c += v
			}
			return c, true
		}).Name("wordcounts")
		dstream.ForEachBatch(counts, func(_ context.Context, b dstream.Batch[dstream.KV[string, int]]) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			for kv := range b.All() {
				m.counts[kv.Key] = kv.Value
			}
			return nil
		})
		require.NoError(t, m.ec.Start())
		return m
	}
	a, b := join("a"), join("b")
	topics := []string{"clicks", RepartitionTopic("pagepopularity", "words")}
	waitMembers(t, "a and b sharing the tasks", splitEvenly(topics, n), a.src.member, b.src.member)
	require.NoError(t, e.cl.ProduceSync(ctx, recs...).FirstErr())
	for range 3 {
		for _, m := range []*member{a, b} {
			require.NoError(t, m.ec.RunBatches(ctx, 1))
		}
	}
	got := make(map[string]int)
	for _, m := range []*member{a, b} {
		m.mu.Lock()
		for w, c := range m.counts {
			_, dup := got[w]
			require.Falsef(t, dup, "word %q is counted by both members", w)
			got[w] = c
		}
		m.mu.Unlock()
	}
	require.Equal(t, want, got)
	written := metricValues(a.src.Metrics())["kafka_repartition_records_written_total"] + metricValues(b.src.Metrics())["kafka_repartition_records_written_total"]
	read := metricValues(a.src.Metrics())["kafka_repartition_records_read_total"] + metricValues(b.src.Metrics())["kafka_repartition_records_read_total"]
	require.Positive(t, written)
	require.Equal(t, written, read, "every exchanged record is read once")
}

func TestGroupModeExchangeOfAZombie(t *testing.T) {
	// b stops inside a batch that has written to the exchange, its
	// transaction open, and the group drops it: a takes its tasks over and
	// reads their partitions up to b's open transaction; b restarts under
	// its name, which aborts that transaction, and the zombie, woken up,
	// gives its batch up. Its records are never read, every other one is,
	// once.
	const n = 2
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	topics := []string{"clicks", RepartitionTopic("pagepopularity", "words")}
	ca, a := e.joinProbe(t, "a", "a", 2)
	cb, b := e.joinProbe(t, "b", "b", 2)
	var holding atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	b.hold = func() {
		if holding.Load() {
			close(entered)
			<-release
		}
	}
	waitMembers(t, "a and b sharing the tasks", splitEvenly(topics, n), a.src.member, b.src.member)
	runRound(t, ctx, ca, cb)

	holding.Store(true)
	zombie := make(chan error, 1)
	go func() { zombie <- cb.RunBatches(ctx, 1) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("b's batch did not write its records")
	}
	e.dropHeartbeats(groupcommit.MemberOf(b.src.member.cl).MemberID)
	waitMembers(t, "a owning every task once b is dropped", splitEvenly(topics, n), a.src.member)
	runRound(t, ctx, ca)
	require.Greater(t, len(e.repartitioned(t, false)), len(e.repartitioned(t, true)), "b's open transaction holds records")

	cb2, b2 := e.joinProbe(t, "b", "b2", 2)
	waitMembers(t, "a and the new b sharing the tasks", splitEvenly(topics, n), a.src.member, b2.src.member)
	runRound(t, ctx, ca, cb2)
	close(release)
	require.NoError(t, <-zombie, "the zombie gives its batch up")
	require.Equal(t, 1.0, metricValues(b.src.Metrics())["kafka_batches_given_up_total"])

	a.perTask.Store(0)
	b2.perTask.Store(0)
	runRound(t, ctx, ca, cb2)
	runRound(t, ctx, ca, cb2)
	requireExchangedOnce(t, e, a, b, b2)
	zombieWrote := b.wrote(1) // its second batch, given up
	require.NotEmpty(t, zombieWrote)
	for _, r := range e.repartitioned(t, true) {
		require.NotContains(t, zombieWrote, r, "the zombie's records stay invisible read committed")
	}
}

func TestGroupModeExchangeWriteFailsTheCommit(t *testing.T) {
	// A record the producer refuses (larger than its batch limit) fails
	// the batch's commit, and none of the batch's records commit.
	const n = 2
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	ca, a := e.joinProbe(t, "a", "a", 1)
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks", RepartitionTopic("pagepopularity", "words")}, n), a.src.member)
	require.NoError(t, ca.RunBatches(ctx, 1))
	a.big.Store(true)
	err := ca.RunBatches(ctx, 1)
	require.ErrorIs(t, err, kerr.MessageTooLarge)
	require.ErrorContains(t, err, `kafkasource: committing batch`)
	require.Equal(t, sortedRecords(a.wrote(0)), sortedRecords(e.repartitioned(t, true)), "the failed batch's records do not commit")
}
