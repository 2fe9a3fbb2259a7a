package kafkasource

import (
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const memberWait = 30 * time.Second

func memberCluster(t *testing.T, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func startTestMember(t *testing.T, c *kfake.Cluster, topics []string, revoking func([]TopicPartition)) *member {
	t.Helper()
	m, err := joinGroup(memberConfig{
		seeds:     c.ListenAddrs(),
		group:     "pagepopularity",
		topics:    topics,
		logger:    slog.New(slog.DiscardHandler),
		groupOpts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)},
		revoking:  revoking,
	})
	require.NoError(t, err)
	var once sync.Once
	t.Cleanup(func() { once.Do(m.close) })
	return m
}

// waitMembers waits until cond holds of what the members own.
func waitMembers(t testing.TB, what string, cond func(owned [][]TopicPartition) bool, ms ...*member) [][]TopicPartition {
	t.Helper()
	deadline := time.After(memberWait)
	for {
		owned := make([][]TopicPartition, len(ms))
		cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline)}}
		for i, m := range ms {
			var ch <-chan struct{}
			owned[i], ch = m.snapshot()
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		if cond(owned) {
			return owned
		}
		if chosen, _, _ := reflect.Select(cases); chosen == 0 {
			t.Fatalf("waiting %s for %s; the members own %v", memberWait, what, owned)
		}
	}
}

// splitEvenly reports whether the members own every partition of topics
// (n each) once, task by task, in shares that differ by at most one.
func splitEvenly(topics []string, n int32) func([][]TopicPartition) bool {
	return func(owned [][]TopicPartition) bool {
		seen := make(map[TopicPartition]bool)
		lo, hi := int(n)+1, -1
		for _, tps := range owned {
			tasks := tasksOf(tps)
			if len(tps) != len(tasks)*len(topics) {
				return false // some task is not owned in every topic
			}
			for _, tp := range tps {
				if seen[tp] {
					return false
				}
				seen[tp] = true
			}
			lo, hi = min(lo, len(tasks)), max(hi, len(tasks))
		}
		return len(seen) == int(n)*len(topics) && hi-lo <= 1
	}
}

func TestMemberOwnsWholeTasks(t *testing.T) {
	topics := []string{"clicks", "views"}
	c := memberCluster(t, 4, topics...)
	a := startTestMember(t, c, topics, nil)
	b := startTestMember(t, c, topics, nil)
	owned := waitMembers(t, "two members sharing four tasks", splitEvenly(topics, 4), a, b)

	tps, _, who, end, err := a.begin()
	require.NoError(t, err)
	end()
	require.Equal(t, owned[0], tps, "begin returns what the member owns, sorted")
	require.Equal(t, "pagepopularity", who.Group)
	require.NotEmpty(t, who.MemberID)
	require.GreaterOrEqual(t, who.Generation, int32(1))

	b.close()
	waitMembers(t, "a owning every task after b left", splitEvenly(topics, 4), a)
}

func TestMemberRevocationWaitsForTheBatch(t *testing.T) {
	topics := []string{"clicks", "views"}
	c := memberCluster(t, 4, topics...)
	revoking := make(chan []TopicPartition, 1)
	a := startTestMember(t, c, topics, func(gone []TopicPartition) {
		select {
		case revoking <- gone: // the first revocation; later ones (at close) need no notice
		default:
		}
	})
	before := waitMembers(t, "a owning every task", splitEvenly(topics, 4), a)[0]

	_, _, _, end, err := a.begin() // a batch in flight
	require.NoError(t, err)
	b := startTestMember(t, c, topics, nil)
	var gone []TopicPartition
	select {
	case gone = <-revoking:
	case <-time.After(memberWait):
		t.Fatal("the group did not start taking tasks from a for b")
	}
	require.Len(t, tasksOf(gone), 2, "a gives up half of its tasks")

	// While the batch is in flight a keeps them and b has none of them.
	ownedA, _ := a.snapshot()
	require.Equal(t, before, ownedA)
	ownedB, _ := b.snapshot()
	require.Empty(t, ownedB)

	end()
	owned := waitMembers(t, "a and b sharing the tasks after the batch", splitEvenly(topics, 4), a, b)
	require.Equal(t, gone, owned[1], "b gets what a gave up")
	for _, tp := range owned[0] {
		require.NotContains(t, gone, tp)
	}
	t.Logf("a kept %v, b took %v", tasksOf(owned[0]), tasksOf(owned[1]))
}

func TestMemberCloseGivesUpEverything(t *testing.T) {
	topics := []string{"clicks"}
	c := memberCluster(t, 3, topics...)
	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = startTestMember(t, c, topics, nil)
	}
	waitMembers(t, "three members with a task each", splitEvenly(topics, 3), ms...)
	for len(ms) > 1 {
		ms[len(ms)-1].close()
		ms = ms[:len(ms)-1]
		waitMembers(t, fmt.Sprintf("%d members sharing the tasks", len(ms)), splitEvenly(topics, 3), ms...)
	}
	owned, _ := ms[0].snapshot()
	require.True(t, slices.Equal([]int32{0, 1, 2}, tasksOf(owned)))
}
