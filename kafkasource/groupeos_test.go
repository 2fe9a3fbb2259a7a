package kafkasource

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/groupcommit"
	"github.com/sluicehq/sluice/internal/topictest"
	"github.com/sluicehq/sluice/kafkasink"
)

// findDirectOf returns the direct stream node of ec.
func findDirectOf(ec *engine.Context) *directNode {
	for _, nd := range ec.Nodes() {
		if d, ok := nd.(*directNode); ok {
			return d
		}
	}
	return nil
}

// eosCluster is a kfake cluster with an input topic "clicks" and an output
// topic "out" of n partitions each, whose groups accept short sessions.
type eosCluster struct {
	c     *kfake.Cluster
	seeds []string
	cl    *kgo.Client
}

func startEOSCluster(t testing.TB, n int32) *eosCluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(n, "clicks", "out"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return &eosCluster{c: c, seeds: c.ListenAddrs(), cl: cl}
}

// produce writes offsets from..to-1 to every partition of clicks.
func (e *eosCluster) produce(t *testing.T, n int32, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for p := range n {
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: "clicks", Partition: p, Key: []byte(recKey("clicks", p, i)), Value: []byte(recValue(i))})
		}
	}
	require.NoError(t, e.cl.ProduceSync(bounded(t), recs...).FirstErr())
}

// join starts a member named name of group "pagepopularity" whose job
// writes every input record's key to "out" with the transactional sink, and
// then runs hold, if set, as a further output.
func (e *eosCluster) join(t *testing.T, name string, hold func()) (*engine.Context, *member) {
	t.Helper()
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, WithBrokers(e.seeds...), WithResetPolicy(Earliest), WithRetryTimeout(5*time.Second),
		WithGroup("pagepopularity"), AsMember(name), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(time.Second)))
	require.NoError(t, err)
	_, err = kafkasink.WriteTxn(bounded(t), s, kafkasink.Config{Brokers: e.seeds, Sink: "out"}, func(r Record) (*kgo.Record, error) {
		return &kgo.Record{Topic: "out", Key: r.Key, Value: r.Key}, nil
	})
	require.NoError(t, err)
	if hold != nil {
		dstream.ForEachBatch(s, func(context.Context, dstream.Batch[Record]) error { hold(); return nil })
	}
	require.NoError(t, ec.Start()) // the member joins
	return ec, findDirect(s.Node()).member
}

// readOut returns the values of every partition of "out", read committed
// or not, up to each partition's end (last stable offset or high
// watermark).
func (e *eosCluster) readOut(t *testing.T, committed bool) []string {
	t.Helper()
	got := topictest.ReadToEnd(t, e.seeds, "out", committed)
	slices.Sort(got)
	return got
}

// inputKeys returns the keys of offsets 0..to-1 of every partition of
// clicks, sorted.
func inputKeys(n int32, to int) []string {
	var out []string
	for p := range n {
		for i := range to {
			out = append(out, recKey("clicks", p, i))
		}
	}
	slices.Sort(out)
	return out
}

// dropHeartbeats makes the group stop hearing member id while the member
// hears that all is well: to the group it is dead, to itself alive.
func (e *eosCluster) dropHeartbeats(id string) {
	e.c.ControlKey(int16(kmsg.Heartbeat), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.HeartbeatRequest)
		if req.MemberID != id {
			return nil, nil, false
		}
		e.c.KeepControl()
		return req.ResponseKind(), nil, true
	})
}

func TestGroupModeExactlyOnceAcrossRebalanceAndZombie(t *testing.T) {
	// Outputs and offsets commit in one transaction per member and batch:
	// read committed, the output holds every input record once, across a
	// member joining (a rebalance) and a member that dies with its
	// transaction open, is restarted under the same name, and comes back
	// as a zombie that commits nothing.
	const n = 4
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	e.produce(t, n, 0, 10)
	ca, ma := e.join(t, "a", nil)
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks"}, n), ma)
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.Equal(t, inputKeys(n, 10), e.readOut(t, true))

	// b joins: the tasks split, each resumes where the group's offsets say.
	var holding atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	cb, mb := e.join(t, "b", func() {
		if holding.Load() {
			close(entered)
			<-release
		}
	})
	waitMembers(t, "a and b sharing the tasks", splitEvenly([]string{"clicks"}, n), ma, mb)
	e.produce(t, n, 10, 20)
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.NoError(t, cb.RunBatches(ctx, 1))
	require.Equal(t, inputKeys(n, 20), e.readOut(t, true))

	// b writes its next batch's outputs into its transaction and stops
	// there, as a process killed before its commit would; the group stops
	// hearing it.
	e.produce(t, n, 20, 30)
	holding.Store(true)
	zombie := make(chan error, 1)
	go func() { zombie <- cb.RunBatches(ctx, 1) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("b's batch did not reach its outputs")
	}
	ownedB, _ := mb.snapshot()
	require.NotEmpty(t, ownedB)
	e.dropHeartbeats(groupcommit.MemberOf(mb.cl).MemberID)
	require.Greater(t, len(e.readOut(t, false)), len(inputKeys(n, 20)), "b's open transaction holds records")

	// b restarts under its name: its first batch fences the zombie's
	// producer, whose open transaction aborts, and resumes b's tasks at the
	// group's offsets.
	cb2, mb2 := e.join(t, "b", nil)
	waitMembers(t, "a and the new b sharing the tasks", splitEvenly([]string{"clicks"}, n), ma, mb2)
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.NoError(t, cb2.RunBatches(ctx, 1))
	require.Equal(t, inputKeys(n, 30), e.readOut(t, true))

	// The zombie wakes up and commits nothing: the group dropped it, so it
	// gives its batch up (see TestGroupModeMemberGivesUpTheBatchOfALostSession).
	close(release)
	require.NoError(t, <-zombie)
	require.Equal(t, 1.0, metricValues(findDirectOf(cb).Metrics())["kafka_batches_given_up_total"])
	require.Equal(t, inputKeys(n, 30), e.readOut(t, true), "the zombie's records stay invisible read committed")
}

func TestGroupModeDroppedZombieCommitsNothing(t *testing.T) {
	// A member stopped inside its transaction that the group drops, and
	// that no restart fences, comes back as a zombie: its producer is still
	// valid, but the coordinator refuses its offsets (its member ID is
	// gone), so it gives the batch up and its transaction aborts with its
	// outputs, while the member
	// that took its tasks over has read them from the group's offsets.
	const n = 2
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	e.produce(t, n, 0, 10)
	ca, ma := e.join(t, "a", nil)
	var holding atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	cb, mb := e.join(t, "b", func() {
		if holding.Load() {
			close(entered)
			<-release
		}
	})
	waitMembers(t, "a and b sharing the tasks", splitEvenly([]string{"clicks"}, n), ma, mb)
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.NoError(t, cb.RunBatches(ctx, 1))
	require.Equal(t, inputKeys(n, 10), e.readOut(t, true))

	e.produce(t, n, 10, 20)
	holding.Store(true)
	zombie := make(chan error, 1)
	go func() { zombie <- cb.RunBatches(ctx, 1) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("b's batch did not reach its outputs")
	}
	id := groupcommit.MemberOf(mb.cl).MemberID
	e.dropHeartbeats(id)
	waitMembers(t, "a owning every task once b is dropped", splitEvenly([]string{"clicks"}, n), ma)
	// a's outputs commit, but read committed readers see them only once
	// the zombie's transaction, open before them in the output's
	// partitions, has ended (the last stable offset waits for it).
	require.NoError(t, ca.RunBatches(ctx, 1))

	close(release)
	require.NoError(t, <-zombie, "the zombie gives its batch up")
	require.Equal(t, 1.0, metricValues(findDirectOf(cb).Metrics())["kafka_batches_given_up_total"])
	require.Equal(t, inputKeys(n, 20), e.readOut(t, true), "the zombie's records stay invisible read committed")
	require.Greater(t, len(e.readOut(t, false)), len(inputKeys(n, 20)), "the zombie's aborted records are in the log")
	committed, err := kadm.NewClient(e.cl).FetchOffsets(ctx, "pagepopularity")
	require.NoError(t, err)
	for p := range int32(n) {
		o, ok := committed.Lookup("clicks", p)
		require.True(t, ok)
		require.Equalf(t, int64(20), o.At, "clicks[%d] commits where a left it", p)
	}
}
