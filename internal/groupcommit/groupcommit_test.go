package groupcommit_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/groupcommit"
	"github.com/sluicehq/sluice/kafkasource/copart"
)

const waitLimit = 30 * time.Second

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "clicks"), kfake.SeedTopics(1, "out"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// joinMember starts a member of group "job" and waits until its
// generation is one in which it has been assigned partitions.
func joinMember(t *testing.T, c *kfake.Cluster, name string, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	assigned := make(chan struct{}, 16)
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ClientID(name),
		kgo.ConsumerGroup("job"),
		kgo.ConsumeTopics("clicks"),
		kgo.Balancers(copart.Balancer()),
		kgo.DisableAutoCommit(),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { assigned <- struct{}{} }),
	}, extra...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	select {
	case <-assigned:
	case <-time.After(waitLimit):
		t.Fatalf("member %s was not assigned within %s", name, waitLimit)
	}
	return cl
}

func newProducer(t *testing.T, c *kfake.Cluster, txnID string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID(txnID), kgo.DefaultProduceTopic("out"))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// batch runs one transaction: a record, then the offsets, then commit
// (or abort when staging the offsets fails), and returns Commit's error.
func batch(t *testing.T, producer *kgo.Client, m groupcommit.Member, value string, offsets map[string]map[int32]int64) error {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, producer.BeginTransaction())
	require.NoError(t, producer.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr())
	err := groupcommit.Commit(ctx, producer, m, offsets)
	require.NoError(t, producer.EndTransaction(ctx, kgo.TransactionEndTry(err == nil)))
	return err
}

func committed(t *testing.T, c *kfake.Cluster) map[int32]int64 {
	t.Helper()
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer adm.Close()
	os, err := kadm.NewClient(adm).FetchOffsets(context.Background(), "job")
	require.NoError(t, err)
	out := make(map[int32]int64)
	os.Each(func(o kadm.OffsetResponse) {
		require.NoError(t, o.Err)
		if o.Topic == "clicks" {
			out[o.Partition] = o.At
		}
	})
	return out
}

// readCommitted reads topic out read committed until it sees last, and
// returns the values read.
func readCommitted(t *testing.T, c *kfake.Cluster, last string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var got []string
	for !slices.Contains(got, last) {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "waiting for %q; read %v", last, got)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

func TestCommitWithTheTransaction(t *testing.T) {
	c := newCluster(t)
	member := joinMember(t, c, "a")
	producer := newProducer(t, c, "job-a")
	m := groupcommit.MemberOf(member)
	require.Equal(t, "job", m.Group)

	require.NoError(t, batch(t, producer, m, "batch 1", map[string]map[int32]int64{"clicks": {0: 5, 1: 7}}))
	require.Equal(t, map[int32]int64{0: 5, 1: 7}, committed(t, c))

	// Offsets staged in an aborted transaction are not committed.
	require.NoError(t, producer.BeginTransaction())
	require.NoError(t, producer.ProduceSync(context.Background(), &kgo.Record{Value: []byte("aborted")}).FirstErr())
	require.NoError(t, groupcommit.Commit(context.Background(), producer, m, map[string]map[int32]int64{"clicks": {0: 9, 1: 9}}))
	require.NoError(t, producer.EndTransaction(context.Background(), kgo.TryAbort))

	require.NoError(t, batch(t, producer, m, "batch 2", map[string]map[int32]int64{"clicks": {0: 6}}))
	require.Equal(t, map[int32]int64{0: 6, 1: 7}, committed(t, c))
	require.Equal(t, []string{"batch 1", "batch 2"}, readCommitted(t, c, "batch 2"))
}

func TestCommitStaticMember(t *testing.T) {
	c := newCluster(t)
	m := groupcommit.MemberOf(joinMember(t, c, "a", kgo.InstanceID("job-1")))
	require.NotNil(t, m.InstanceID)
	require.Equal(t, "job-1", *m.InstanceID)
	producer := newProducer(t, c, "job-1")
	require.NoError(t, batch(t, producer, m, "batch 1", map[string]map[int32]int64{"clicks": {0: 4}}))
	require.Equal(t, map[int32]int64{0: 4}, committed(t, c))

	other := "job-2"
	m.InstanceID = &other
	err := batch(t, producer, m, "zombie", map[string]map[int32]int64{"clicks": {0: 8}})
	require.ErrorIs(t, err, groupcommit.ErrFenced, "a member ID claimed under another instance ID is refused")
	require.Equal(t, map[int32]int64{0: 4}, committed(t, c))
}

func TestCommitFenced(t *testing.T) {
	cases := []struct {
		name  string
		stale func(t *testing.T, c *kfake.Cluster, a *kgo.Client)
		err   error
	}{
		{
			// a member paused through a rebalance comes back with its old generation
			name:  "the group rebalanced",
			stale: func(t *testing.T, c *kfake.Cluster, _ *kgo.Client) { joinMember(t, c, "b") },
			err:   kerr.IllegalGeneration,
		},
		{
			// a member dropped from the group comes back with its old member ID
			name: "the member left",
			stale: func(t *testing.T, c *kfake.Cluster, a *kgo.Client) {
				joinMember(t, c, "b")
				a.Close()
			},
			err: kerr.UnknownMemberID,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			a := joinMember(t, c, "a")
			producer := newProducer(t, c, "job-a")
			m := groupcommit.MemberOf(a)
			require.NoError(t, batch(t, producer, m, "batch 1", map[string]map[int32]int64{"clicks": {0: 3, 1: 3}}))

			tc.stale(t, c, a)
			err := batch(t, producer, m, "zombie", map[string]map[int32]int64{"clicks": {0: 100, 1: 100}})
			require.ErrorIs(t, err, groupcommit.ErrFenced)
			require.ErrorIs(t, err, tc.err)

			require.Equal(t, map[int32]int64{0: 3, 1: 3}, committed(t, c), "the zombie's offsets are not committed")
			ctx := context.Background()
			require.NoError(t, producer.BeginTransaction())
			require.NoError(t, producer.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr())
			require.NoError(t, producer.EndTransaction(ctx, kgo.TryCommit))
			require.Equal(t, []string{"batch 1", "after"}, readCommitted(t, c, "after"), "the zombie's record is aborted with its offsets")
		})
	}
}

func TestCommitNeedsARecord(t *testing.T) {
	// kgo ends a transaction that produced nothing without an EndTxn, so
	// offsets staged alone stay pending and commit with the next
	// transaction. Commit's callers write a record in every transaction;
	// this test notices if kgo changes.
	c := newCluster(t)
	m := groupcommit.MemberOf(joinMember(t, c, "a"))
	producer := newProducer(t, c, "job-a")
	ctx := context.Background()
	require.NoError(t, producer.BeginTransaction())
	require.NoError(t, groupcommit.Commit(ctx, producer, m, map[string]map[int32]int64{"clicks": {0: 5}}))
	require.NoError(t, producer.EndTransaction(ctx, kgo.TryCommit))
	require.Empty(t, committed(t, c), "offsets staged in a transaction without records are not committed at its end")

	require.NoError(t, batch(t, producer, m, "next", map[string]map[int32]int64{"clicks": {1: 2}}))
	require.Equal(t, map[int32]int64{0: 5, 1: 2}, committed(t, c), "they commit with the next transaction")
}

func TestCommitRefusesAProducerWithoutTransactions(t *testing.T) {
	c := newCluster(t)
	m := groupcommit.MemberOf(joinMember(t, c, "a"))
	plain, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer plain.Close()
	err = groupcommit.Commit(context.Background(), plain, m, map[string]map[int32]int64{"clicks": {0: 1}})
	require.ErrorContains(t, err, "kgo.TransactionalID")

	producer := newProducer(t, c, "job-a")
	err = groupcommit.Commit(context.Background(), producer, groupcommit.Member{Group: "job", Generation: -1}, map[string]map[int32]int64{"clicks": {0: 1}})
	require.ErrorIs(t, err, groupcommit.ErrFenced, "a member that has not joined commits nothing")
}
