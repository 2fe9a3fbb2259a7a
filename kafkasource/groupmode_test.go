package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource/copart"
)

// groupStream builds a direct stream in group mode, a member of group
// "pagepopularity", reading from the start when the group has no offsets;
// the member joins when c starts.
func (b *testBroker) groupStream(t *testing.T, c *engine.Context, topics []string) (*dstream.Stream[Record], *member) {
	t.Helper()
	s := b.stream(t, c, topics, WithGroup("pagepopularity"), AsMember(fmt.Sprintf("member-%p", c)), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond)))
	n := findDirect(s.Node())
	require.NotNil(t, n.member)
	return s, n.member
}

// requireRecords requires that recs hold offsets from..to-1 of every
// partition of topics, each once.
func requireRecords(t *testing.T, recs []Record, topics []string, partitions int32, from, to int64) {
	t.Helper()
	got := make(map[TopicPartition][]int64)
	for _, r := range recs {
		tp := TopicPartition{Topic: r.Topic, Partition: r.Partition}
		got[tp] = append(got[tp], r.Offset)
	}
	want := make(map[TopicPartition][]int64)
	for _, topic := range topics {
		for p := range partitions {
			for o := from; o < to; o++ {
				want[TopicPartition{Topic: topic, Partition: p}] = append(want[TopicPartition{Topic: topic, Partition: p}], o)
			}
		}
	}
	require.Equal(t, want, got)
}

func requireOnly(t *testing.T, recs []Record, owned []TopicPartition, who string) {
	t.Helper()
	for _, r := range recs {
		require.Containsf(t, owned, TopicPartition{Topic: r.Topic, Partition: r.Partition}, "%s read %s[%d] @%d, a partition it does not own", who, r.Topic, r.Partition, r.Offset)
	}
}

// TestGroupModeCountsFromTheEpoch starts a group-mode stream on the real
// clock: its zero time is the Unix epoch, as every member's is, not its
// start rounded down to the interval.
func TestGroupModeCountsFromTheEpoch(t *testing.T) {
	b := startBroker(t, map[string]int32{"clicks": 1})
	c, err := engine.NewContext(7*time.Second, engine.WithParallelism(1))
	require.NoError(t, err)
	defer c.Close()
	s, _ := b.groupStream(t, c, []string{"clicks"})
	dstream.ForEachBatch(s, func(context.Context, dstream.Batch[Record]) error { return nil })
	require.NoError(t, c.Start())
	require.True(t, c.Zero().Equal(time.Unix(0, 0)), "group mode counts from the epoch, not from %v", c.Zero())
}

func TestGroupModeMembersSplitTheInput(t *testing.T) {
	topics := []string{"clicks", "views"}
	const n = 4
	b := startBroker(t, map[string]int32{"clicks": n, "views": n})
	for _, topic := range topics {
		for p := range int32(n) {
			b.produce(t, topic, p, 0, 10)
		}
	}
	ca, cb := newEngine(t), newEngine(t)
	sa, ma := b.groupStream(t, ca, topics)
	sb, mb := b.groupStream(t, cb, topics)
	wa, wb := watch(sa), watch(sb)
	require.NoError(t, ca.Start()) // the members join
	require.NoError(t, cb.Start())
	owned := waitMembers(t, "two members sharing the tasks", splitEvenly(topics, n), ma, mb)

	ctx := bounded(t)
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.NoError(t, cb.RunBatches(ctx, 1))
	requireOnly(t, wa.all(), owned[0], "member a")
	requireOnly(t, wb.all(), owned[1], "member b")
	requireRecords(t, append(wa.all(), wb.all()...), topics, n, 0, 10)

	committed, err := b.adm.FetchOffsets(ctx, "pagepopularity")
	require.NoError(t, err)
	for _, topic := range topics {
		for p := range int32(n) {
			o, ok := committed.Lookup(topic, p)
			require.Truef(t, ok, "the group has an offset for %s[%d]", topic, p)
			require.Equal(t, int64(10), o.At)
		}
	}

	// b stops: a takes its tasks and resumes them where b committed.
	for _, topic := range topics {
		for p := range int32(n) {
			b.produce(t, topic, p, 10, 15)
		}
	}
	require.NoError(t, cb.Close())
	waitMembers(t, "a owning every task after b left", splitEvenly(topics, n), ma)
	before := len(wa.all())
	require.NoError(t, ca.RunBatches(ctx, 1))
	// Its own tasks continue from its positions, b's from the group's
	// offsets: offsets 10 to 14 of every partition, once.
	requireRecords(t, wa.all()[before:], topics, n, 10, 15)
}

func TestGroupModeRefuses(t *testing.T) {
	b := startBroker(t, map[string]int32{"clicks": 2})
	cases := []struct {
		name string
		c    func(t *testing.T) *engine.Context
		opts []Option
		says string
	}{
		{"no group", nil, nil, "WithGroup"},
		{"no member name", nil, []Option{WithGroup("g"), AsMember("")}, "AsMember got an empty name"},
		{"no group offsets", nil, []Option{WithGroup("g"), WithGroupOffsets(false)}, "WithGroupOffsets(false)"},
		{"regex", nil, []Option{WithGroup("g"), WithTopicRegex()}, "WithTopicRegex"},
		{"partitions", nil, []Option{WithGroup("g"), WithPartitions(TopicPartition{Topic: "clicks"})}, "WithPartitions"},
		{"start offsets", nil, []Option{WithGroup("g"), WithStartOffsets(map[TopicPartition]int64{{Topic: "clicks"}: 1})}, "WithStartOffsets"},
		{"checkpoint", func(t *testing.T) *engine.Context { return newEngine(t, engine.WithCheckpoint(t.TempDir())) }, []Option{WithGroup("g")}, "engine.WithCheckpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newEngine(t)
			if tc.c != nil {
				c = tc.c(t)
			}
			opts := append([]Option{WithBrokers(b.e.Addrs()...), AsMember("a")}, tc.opts...)
			_, err := NewDirectStream(c, []string{"clicks"}, opts...)
			require.ErrorIs(t, err, ErrOption)
			require.ErrorContains(t, err, tc.says)
		})
	}
	t.Run("member options alone", func(t *testing.T) {
		_, err := NewDirectStream(newEngine(t), []string{"clicks"}, WithBrokers(b.e.Addrs()...), WithGroup("g"),
			WithMemberOptions(kgo.SessionTimeout(time.Second)))
		require.ErrorIs(t, err, ErrOption)
		require.ErrorContains(t, err, "WithMemberOptions tunes group mode; add AsMember or drop it")
	})
}

func TestGroupModeDroppedMemberCommitsNothing(t *testing.T) {
	// A member that the group dropped while it was paused (the broker
	// stopped hearing its heartbeats) believes it still owns its tasks: it
	// reads their records again, but the group refuses its commit, and the
	// member that took the tasks over reads them from the group's offsets.
	topics := []string{"clicks"}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "clicks"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	producer, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(producer.Close)
	ctx := bounded(t)
	for p := range int32(2) {
		for i := range 10 {
			require.NoError(t, producer.ProduceSync(ctx, &kgo.Record{Topic: "clicks", Partition: p, Value: []byte(recValue(i))}).FirstErr())
		}
	}
	join := func(ec *engine.Context) (*dstream.Stream[Record], *member) {
		s, err := NewDirectStream(ec, topics, WithBrokers(c.ListenAddrs()...), WithResetPolicy(Earliest), WithRetryTimeout(5*time.Second),
			WithGroup("pagepopularity"), AsMember(fmt.Sprintf("member-%p", ec)), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(time.Second)))
		require.NoError(t, err)
		return s, findDirect(s.Node()).member
	}

	ca := newEngine(t)
	sa, ma := join(ca)
	wa := watch(sa)
	require.NoError(t, ca.Start()) // a joins
	waitMembers(t, "a owning both tasks", splitEvenly(topics, 2), ma)
	paused, _ := ma.cl.GroupMetadata()
	c.ControlKey(int16(kmsg.Heartbeat), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.HeartbeatRequest)
		if req.MemberID != paused {
			return nil, nil, false
		}
		c.KeepControl()
		return req.ResponseKind(), nil, true // a hears all is well; the group hears nothing
	})

	cb := newEngine(t)
	sb, mb := join(cb)
	wb := watch(sb)
	require.NoError(t, cb.Start())
	waitMembers(t, "b owning both tasks once a is dropped", splitEvenly(topics, 2), mb)
	owned, _ := ma.snapshot()
	require.Len(t, owned, 2, "a still believes it owns both tasks")

	require.NoError(t, ca.RunBatches(ctx, 1), "a gives the refused batch up")
	require.Equal(t, 1.0, metricValues(findDirect(sa.Node()).Metrics())["kafka_batches_given_up_total"])
	requireRecords(t, wa.all(), topics, 2, 0, 10)
	committed, err := kadm.NewClient(producer).FetchOffsets(ctx, "pagepopularity")
	require.NoError(t, err)
	for p := range int32(2) {
		_, ok := committed.Lookup("clicks", p)
		require.Falsef(t, ok, "the dropped member committed nothing for clicks[%d]", p)
	}

	require.NoError(t, cb.RunBatches(ctx, 1))
	requireRecords(t, wb.all(), topics, 2, 0, 10)
}

func TestGroupModeRebalanceWaitsForTheBatchInFlight(t *testing.T) {
	topics := []string{"clicks"}
	const n = 4
	b := startBroker(t, map[string]int32{"clicks": n})
	for p := range int32(n) {
		b.produce(t, "clicks", p, 0, 10)
	}
	revoking := make(chan []TopicPartition, 1)
	ca := newEngine(t)
	sa := b.stream(t, ca, topics, WithGroup("pagepopularity"), AsMember("a"), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond)),
		func(c *config) error {
			c.groupRevoking = func(gone []TopicPartition) {
				select {
				case revoking <- gone:
				default:
				}
			}
			return nil
		})
	ma := findDirect(sa.Node()).member
	wa := watch(sa)
	started, release := make(chan struct{}), make(chan struct{})
	var first bool
	dstream.ForEachBatch(sa, func(context.Context, dstream.Batch[Record]) error {
		if !first {
			first = true
			close(started)
			<-release
		}
		return nil
	})
	require.NoError(t, ca.Start()) // a joins
	waitMembers(t, "a owning every task", splitEvenly(topics, n), ma)

	ctx := bounded(t)
	done := make(chan error, 1)
	go func() { done <- ca.RunBatches(ctx, 1) }()
	<-started
	cb := newEngine(t)
	sb, mb := b.groupStream(t, cb, topics)
	wb := watch(sb)
	require.NoError(t, cb.Start()) // b joins
	var gone []TopicPartition
	select {
	case gone = <-revoking:
	case <-ctx.Done():
		t.Fatal("the group did not start moving tasks to b")
	}
	ownedB, _ := mb.snapshot()
	require.Empty(t, ownedB, "b gets nothing while a's batch is in flight")
	close(release)
	require.NoError(t, <-done)
	requireRecords(t, wa.all(), topics, n, 0, 10)

	owned := waitMembers(t, "a and b sharing the tasks", splitEvenly(topics, n), ma, mb)
	require.Equal(t, gone, owned[1], "b gets what a gave up")
	for p := range int32(n) {
		b.produce(t, "clicks", p, 10, 15)
	}
	before := len(wa.all())
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.NoError(t, cb.RunBatches(ctx, 1))
	requireRecords(t, append(wa.all()[before:], wb.all()...), topics, n, 10, 15)
}

func TestGroupModeFailedBatchLetsTasksGo(t *testing.T) {
	topics := []string{"clicks"}
	b := startBroker(t, map[string]int32{"clicks": 2})
	b.produce(t, "clicks", 0, 0, 3)
	ca := newEngine(t)
	sa, ma := b.groupStream(t, ca, topics)
	dstream.ForEachBatch(sa, func(context.Context, dstream.Batch[Record]) error { return errors.New("sink down") })
	require.NoError(t, ca.Start()) // a joins
	waitMembers(t, "a owning both tasks", splitEvenly(topics, 2), ma)
	require.ErrorContains(t, ca.RunBatches(bounded(t), 1), "sink down")

	// The failed batch pins nothing: its tasks can move.
	cb := newEngine(t)
	sb, mb := b.groupStream(t, cb, topics)
	watch(sb)
	require.NoError(t, cb.Start()) // b joins
	waitMembers(t, "a and b sharing the tasks after a's failed batch", splitEvenly(topics, 2), ma, mb)
}

func TestGroupModeUnequalPartitionsFailTheBatch(t *testing.T) {
	topics := []string{"clicks", "views"}
	b := startBroker(t, map[string]int32{"clicks": 4, "views": 3})
	c := newEngine(t)
	s, m := b.groupStream(t, c, topics)
	watch(s)
	require.NoError(t, c.Start()) // the member joins
	ctx := bounded(t)
	for {
		changed, err := m.refusal()
		if err != nil {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("the balancer did not refuse the topics")
		}
	}
	err := c.RunBatches(ctx, 1)
	var unequal *copart.UnequalPartitionsError
	require.ErrorAs(t, err, &unequal)
	require.Equal(t, map[string]int32{"clicks": 4, "views": 3}, unequal.Partitions)
	require.ErrorContains(t, err, `group "pagepopularity" cannot assign the job's topics`)
	require.ErrorContains(t, err, `"clicks": 4, "views": 3`)
}
