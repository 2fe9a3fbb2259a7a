package copart_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/kafkasource/copart"
)

// These tests run real kgo group members with the balancer against an
// in-process kfake broker, and follow what each member owns through its
// OnPartitions callbacks.

const waitLimit = 30 * time.Second

// owners follows the partitions every member owns, as its callbacks tell
// them, and records any partition given to a member while another owns it.
type owners struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced at every change
	owned    map[string]map[string]map[int32]bool
	overlaps []string
}

func newOwners() *owners {
	return &owners{changed: make(chan struct{}), owned: make(map[string]map[string]map[int32]bool)}
}

func (o *owners) assigned(member string, added map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.owned[member] == nil {
		o.owned[member] = make(map[string]map[int32]bool)
	}
	for topic, ps := range added {
		for _, p := range ps {
			for other, tps := range o.owned {
				if other != member && tps[topic][p] {
					o.overlaps = append(o.overlaps, fmt.Sprintf("%s[%d] assigned to %s while %s owns it", topic, p, member, other))
				}
			}
			if o.owned[member][topic] == nil {
				o.owned[member][topic] = make(map[int32]bool)
			}
			o.owned[member][topic][p] = true
		}
	}
	o.signal()
}

func (o *owners) revoked(member string, gone map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for topic, ps := range gone {
		for _, p := range ps {
			delete(o.owned[member][topic], p)
		}
	}
	o.signal()
}

func (o *owners) signal() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// snapshot returns member → topic → partitions owned, sorted.
func (o *owners) snapshot() map[string]map[string][]int32 {
	out := make(map[string]map[string][]int32, len(o.owned))
	for m, tps := range o.owned {
		a := make(map[string][]int32)
		for topic, ps := range tps {
			if len(ps) > 0 {
				a[topic] = slices.Sorted(maps.Keys(ps))
			}
		}
		out[m] = a
	}
	return out
}

// waitSettled waits until exactly members own partitions, each the same
// partitions of every topic, together every task once, in shares that
// differ by at most one; it returns every member's tasks.
func (o *owners) waitSettled(t *testing.T, topics []string, n int32, members ...string) map[string][]int32 {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		snap, ch, overlaps := o.snapshot(), o.changed, slices.Clone(o.overlaps)
		o.mu.Unlock()
		require.Empty(t, overlaps, "no partition is owned by two members at once")
		if got, ok := settled(snap, topics, n, members); ok {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("members %v did not settle on the %d tasks within %s; they own %v", members, n, waitLimit, snap)
		}
	}
}

func settled(snap map[string]map[string][]int32, topics []string, n int32, members []string) (map[string][]int32, bool) {
	got := make(map[string][]int32, len(members))
	seen := make(map[int32]bool)
	lo, hi := int(n)+1, -1
	for m, a := range snap {
		if !slices.Contains(members, m) {
			if len(a) > 0 {
				return nil, false
			}
			continue
		}
		ts := a[topics[0]]
		for _, topic := range topics[1:] {
			if !slices.Equal(ts, a[topic]) {
				return nil, false
			}
		}
		for _, task := range ts {
			if seen[task] {
				return nil, false
			}
			seen[task] = true
		}
		got[m] = ts
	}
	for _, m := range members {
		lo, hi = min(lo, len(got[m])), max(hi, len(got[m]))
	}
	return got, len(seen) == int(n) && hi-lo <= 1
}

func newCluster(t *testing.T, partitions map[string]int32) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(200 * time.Millisecond)}
	for topic, n := range partitions {
		opts = append(opts, kfake.SeedTopics(n, topic))
	}
	c, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// startMember starts one member of group "pagepopularity" reading topics
// with the balancer, and returns its client, closed at the end of the test.
func startMember(t *testing.T, c *kfake.Cluster, o *owners, name string, topics []string, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ClientID(name),
		kgo.ConsumerGroup("pagepopularity"),
		kgo.ConsumeTopics(topics...),
		kgo.Balancers(copart.Balancer()),
		kgo.DisableAutoCommit(),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, added map[string][]int32) { o.assigned(name, added) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, gone map[string][]int32) { o.revoked(name, gone) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, gone map[string][]int32) { o.revoked(name, gone) }),
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func TestGroupMembersJoinAndLeave(t *testing.T) {
	topics := []string{"clicks", "views"}
	const n = 6
	c := newCluster(t, map[string]int32{"clicks": n, "views": n})
	o := newOwners()

	startMember(t, c, o, "a", topics)
	startMember(t, c, o, "b", topics)
	two := o.waitSettled(t, topics, n, "a", "b")

	cl := startMember(t, c, o, "c", topics)
	three := o.waitSettled(t, topics, n, "a", "b", "c")
	requireSticky(t, two, three)

	cl.Close() // leaves the group: its tasks move to a and b
	back := o.waitSettled(t, topics, n, "a", "b")
	requireSticky(t, three, back)
	t.Logf("two members %v, three %v, after c left %v", two, three, back)
}

func TestGroupMemberSessionExpires(t *testing.T) {
	// A static member that stops without leaving the group keeps its
	// tasks until its session times out; then the others take them.
	topics := []string{"clicks", "views"}
	const n = 5
	c := newCluster(t, map[string]int32{"clicks": n, "views": n})
	o := newOwners()

	startMember(t, c, o, "a", topics)
	startMember(t, c, o, "b", topics)
	gone := startMember(t, c, o, "c", topics, kgo.InstanceID("c"), kgo.SessionTimeout(time.Second))
	three := o.waitSettled(t, topics, n, "a", "b", "c")

	gone.Close() // a static member sends no LeaveGroup
	after := o.waitSettled(t, topics, n, "a", "b")
	requireSticky(t, three, after)
}

func TestGroupRefusesUnequalPartitions(t *testing.T) {
	topics := []string{"clicks", "views"}
	c := newCluster(t, map[string]int32{"clicks": 4, "views": 3})
	o := newOwners()
	cl := startMember(t, c, o, "a", topics)

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var unequal *copart.UnequalPartitionsError
	for {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "waiting for the group to refuse the topics")
		err := fs.Err0()
		if err == nil {
			continue
		}
		if errors.As(err, &unequal) {
			break
		}
	}
	require.Equal(t, map[string]int32{"clicks": 4, "views": 3}, unequal.Partitions)
	require.Contains(t, unequal.Error(), `"clicks": 4, "views": 3`)
	o.mu.Lock()
	defer o.mu.Unlock()
	for m, a := range o.snapshot() {
		require.Emptyf(t, a, "member %s owns nothing while the topics are refused", m)
	}
}

func TestGroupKeysMeetOnOneMember(t *testing.T) {
	// Records with the same key, written with the default partitioner to
	// topics with the same partition count, land in the same partition of
	// each; that partition's task belongs to one member, which reads them
	// all.
	topics := []string{"clicks", "views"}
	const n, keys = 4, 40
	c := newCluster(t, map[string]int32{"clicks": n, "views": n})
	o := newOwners()
	members := map[string]*kgo.Client{}
	for _, m := range []string{"a", "b", "c"} {
		members[m] = startMember(t, c, o, m, topics)
	}
	tasks := o.waitSettled(t, topics, n, "a", "b", "c")

	producer, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer producer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for i := range keys {
		for _, topic := range topics {
			r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "page-%d", i), Value: []byte(topic)}
			require.NoError(t, producer.ProduceSync(ctx, r).FirstErr())
		}
	}

	type read struct{ member, topic string }
	var (
		mu     sync.Mutex
		seen   = make(map[string][]read) // key → who read it from where
		total  int
		strays []string // records read by a member that does not own their task
		done   = make(chan struct{})
	)
	var wg sync.WaitGroup
	for name, cl := range members {
		wg.Go(func() {
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				fs.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					defer mu.Unlock()
					if !slices.Contains(tasks[name], r.Partition) {
						strays = append(strays, fmt.Sprintf("%s read %s[%d]", name, r.Topic, r.Partition))
					}
					seen[string(r.Key)] = append(seen[string(r.Key)], read{name, r.Topic})
					if total++; total == 2*keys {
						close(done)
					}
				})
			}
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	require.Empty(t, strays, "members read only the partitions of their tasks (they own %v)", tasks)
	require.Equal(t, 2*keys, total, "every record is read once")
	for key, rs := range seen {
		require.Lenf(t, rs, 2, "key %s is read once from each topic", key)
		require.Equalf(t, rs[0].member, rs[1].member, "key %s is read by one member: %v", key, rs)
		require.NotEqualf(t, rs[0].topic, rs[1].topic, "key %s is read from both topics: %v", key, rs)
	}
}
