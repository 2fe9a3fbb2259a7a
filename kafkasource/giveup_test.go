package kafkasource

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/internal/groupcommit"
)

func TestGroupModeMemberGivesUpTheBatchOfALostSession(t *testing.T) {
	// b is held inside its batch (its counts already hold the batch's
	// records) while the group stops hearing it: the group drops it and a
	// takes its tasks, and b's heartbeats, heard again, are refused (b
	// hears that its session ended, as a member paused past its session
	// timeout does when it resumes). Released, b's
	// commit is refused; b gives the batch up instead of failing its job:
	// the transaction aborts, b drops its tasks, joins again, and the tasks
	// it gets back are restored from their changelogs and start at the
	// group's offsets. Every count is exact, and so is the changelog read
	// committed.
	const n = 4
	topics := []string{"clicks"}
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	short := WithMemberOptions(kgo.RebalanceTimeout(time.Second))
	e.produceKeyed(t, n, 0, 10)
	a := e.joinCounting(t, "a", nil, short)
	var holding atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	b := e.joinCounting(t, "b", func() {
		if holding.Load() {
			close(entered)
			<-release
		}
	}, short)
	waitMembers(t, "a and b sharing the tasks", splitEvenly(topics, n), a.m, b.m)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	require.NoError(t, b.ec.RunBatches(ctx, 1))

	e.produceKeyed(t, n, 10, 20)
	holding.Store(true)
	held := make(chan error, 1)
	go func() { held <- b.ec.RunBatches(ctx, 1) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("b's batch did not reach its outputs")
	}
	lost := groupcommit.MemberOf(b.m.cl)
	var dropping atomic.Bool
	dropping.Store(true)
	e.c.ControlKey(int16(kmsg.Heartbeat), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		e.c.KeepControl()
		if req := kreq.(*kmsg.HeartbeatRequest); req.MemberID != lost.MemberID || !dropping.Load() {
			return nil, nil, false
		}
		return kreq.ResponseKind(), nil, true // b hears all is well; the group hears nothing
	})
	waitMembers(t, "a owning every task once b is dropped", splitEvenly(topics, n), a.m)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	dropping.Store(false) // b's heartbeats reach the group again, which no longer knows b
	holding.Store(false)
	close(release)
	require.NoError(t, <-held, "b gives its batch up instead of failing the job")
	require.Equal(t, 1.0, metricValues(b.n.Metrics())["kafka_batches_given_up_total"])
	owned := waitMembers(t, "a and b sharing the tasks once b joined again", splitEvenly(topics, n), a.m, b.m)
	require.NotEqual(t, lost.MemberID, groupcommit.MemberOf(b.m.cl).MemberID, "b joined again as a new member")

	e.produceKeyed(t, n, 20, 30)
	var restoredB int64
	for _, m := range []*counting{a, b} {
		require.NoError(t, m.ec.RunBatches(ctx, 1))
	}
	all := make(map[string]int64)
	for i, m := range []*counting{a, b} {
		got, tasks := m.cnt.snapshot()
		require.Equal(t, intTasks(owned[i]), tasks)
		require.Equal(t, wantCounts(n, 30, tasks), got, "member %d counts its tasks exactly", i)
		for k, v := range got {
			all[k] = v
		}
	}
	for _, s := range b.n.Tasks() {
		restoredB += s.Restored
	}
	require.Equal(t, wantCounts(n, 30, nil), all)
	require.Positive(t, restoredB, "b restored the tasks it got back from their changelogs")
	changelog, _ := e.changelog(t, true)
	require.Equal(t, wantCounts(n, 30, nil), changelog)
	committed, err := kadm.NewClient(e.cl).FetchOffsets(ctx, "pagepopularity")
	require.NoError(t, err)
	for p := range int32(n) {
		o, ok := committed.Lookup("clicks", p)
		require.True(t, ok)
		require.Equalf(t, int64(30), o.At, "clicks[%d]", p)
	}
	require.Equal(t, 0.0, metricValues(a.n.Metrics())["kafka_batches_given_up_total"])
}
