package kafkasource

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/groupcommit"
	"github.com/sluicehq/sluice/internal/topictest"
	"github.com/sluicehq/sluice/state"
)

// keyCounter is a node holding state per task: how many records of each
// key its stream's batches held, counted by an output of the stream, kept
// as decimal strings in its changelog.
type keyCounter struct {
	meta engine.Meta

	mu       sync.Mutex
	counts   map[int]map[string]int64
	dirty    map[int]map[string]bool
	restored []int // tasks restored, in order
	dropped  []int
}

var _ engine.TaskStateful = (*keyCounter)(nil)

func newKeyCounter(s *dstream.Stream[Record], name string) *keyCounter {
	return newKeyCounterBy(s, name, func(r Record) string { return string(r.Key) })
}

// newKeyCounterBy counts records by keyOf instead of their key.
func newKeyCounterBy(s *dstream.Stream[Record], name string, keyOf func(Record) string) *keyCounter {
	k := &keyCounter{meta: engine.Meta{Kind: "keyCounter", Parents: []engine.Node{s.Node()}},
		counts: make(map[int]map[string]int64), dirty: make(map[int]map[string]bool)}
	k.meta.SetName(name)
	s.Node().Meta().Context().Register(k)
	dstream.ForEachBatch(s, func(_ context.Context, b dstream.Batch[Record]) error {
		k.mu.Lock()
		defer k.mu.Unlock()
		for r := range b.All() {
			task := int(r.Partition)
			if k.counts[task] == nil {
				return fmt.Errorf("task %d was never restored", task)
			}
			key := keyOf(r)
			k.counts[task][key]++
			k.dirty[task][key] = true
		}
		return nil
	})
	return k
}

func (k *keyCounter) Meta() *engine.Meta { return &k.meta }

func (k *keyCounter) SaveTask(task int, put func(key, value []byte) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(k.dirty[task])) {
		if err := put([]byte(key), strconv.AppendInt(nil, k.counts[task][key], 10)); err != nil {
			return err
		}
	}
	clear(k.dirty[task])
	return nil
}

func (k *keyCounter) RestoreTask(task int, load func(apply func(key, value []byte) error) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	counts := make(map[string]int64)
	err := load(func(key, value []byte) error {
		if value == nil {
			delete(counts, string(key))
			return nil
		}
		v, err := strconv.ParseInt(string(value), 10, 64)
		counts[string(key)] = v
		return err
	})
	if err != nil {
		return err
	}
	k.counts[task], k.dirty[task] = counts, make(map[string]bool)
	k.restored = append(k.restored, task)
	return nil
}

func (k *keyCounter) DropTask(task int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.counts, task)
	delete(k.dirty, task)
	k.dropped = append(k.dropped, task)
}

// snapshot returns the counts of every task held, and the tasks.
func (k *keyCounter) snapshot() (map[string]int64, []int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int64)
	for _, c := range k.counts {
		maps.Copy(out, c)
	}
	return out, slices.Sorted(maps.Keys(k.counts))
}

// countKeys is the key of record i of partition p: keys repeat every
// countKeys records, and no key is in two partitions.
const countKeys = 5

func countKey(p int32, i int) string { return fmt.Sprintf("p%d-k%d", p, i%countKeys) }

// produceKeyed writes records from..to-1 to every partition of clicks,
// keyed by countKey.
func (e *eosCluster) produceKeyed(t *testing.T, n int32, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for p := range n {
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: "clicks", Partition: p, Key: []byte(countKey(p, i)), Value: []byte(recValue(i))})
		}
	}
	require.NoError(t, e.cl.ProduceSync(bounded(t), recs...).FirstErr())
}

// wantCounts is the count of every key once offsets 0..to-1 of n
// partitions are read, of the tasks given (all when nil).
func wantCounts(n int32, to int, tasks []int) map[string]int64 {
	out := make(map[string]int64)
	for p := range n {
		if tasks != nil && !slices.Contains(tasks, int(p)) {
			continue
		}
		for i := range to {
			out[countKey(p, i)]++
		}
	}
	return out
}

// counting is a member of group "pagepopularity" whose job counts keys.
type counting struct {
	ec  *engine.Context
	m   *member
	n   *directNode
	cnt *keyCounter
}

// joinCounting starts member name, counting keys with an operator named
// "counts"; hold, if set, runs as a further output.
func (e *eosCluster) joinCounting(t testing.TB, name string, hold func(), opts ...Option) *counting {
	t.Helper()
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, append([]Option{WithBrokers(e.seeds...), WithResetPolicy(Earliest), WithRetryTimeout(5 * time.Second),
		WithGroup("pagepopularity"), AsMember(name), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(time.Second))}, opts...)...)
	require.NoError(t, err)
	cnt := newKeyCounter(s, "counts")
	if hold != nil {
		dstream.ForEachBatch(s, func(context.Context, dstream.Batch[Record]) error { hold(); return nil })
	}
	require.NoError(t, ec.Start())
	n := findDirect(s.Node())
	return &counting{ec: ec, m: n.member, n: n, cnt: cnt}
}

// changelog returns the latest value of every key of the changelog read
// committed (or not), as counts, and how many records it holds.
func (e *eosCluster) changelog(t *testing.T, committed bool) (map[string]int64, int) {
	t.Helper()
	recs := topictest.RecordsToEnd(t, e.seeds, ChangelogTopic("pagepopularity", "counts"), committed)
	out := make(map[string]int64)
	for _, r := range recs {
		v, err := strconv.ParseInt(string(r.Value), 10, 64)
		require.NoError(t, err)
		require.Equalf(t, "p"+strconv.Itoa(int(r.Partition)), string(r.Key[:len("p")+len(strconv.Itoa(int(r.Partition)))]),
			"key %s is in partition %d of the changelog, its task", r.Key, r.Partition)
		out[string(r.Key)] = v
	}
	return out, len(recs)
}

func TestGroupModeChangelogTopic(t *testing.T) {
	const n = 3
	e := startEOSCluster(t, n)
	a := e.joinCounting(t, "a", nil)
	require.Equal(t, n, a.n.TaskCount())
	adm := kadm.NewClient(e.cl)
	ctx := bounded(t)
	topic := ChangelogTopic("pagepopularity", "counts")
	td, err := adm.ListTopics(ctx, topic)
	require.NoError(t, err)
	require.Len(t, td[topic].Partitions, n, "one partition per task")
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	require.NoError(t, err)
	rc, err := rcs.On(topic, nil)
	require.NoError(t, err)
	var policy string
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			policy = *c.Value
		}
	}
	require.Equal(t, "compact", policy)

	// An operator whose name makes no topic name is refused.
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, WithBrokers(e.seeds...), WithGroup("pagepopularity"), AsMember("x"))
	require.NoError(t, err)
	newKeyCounter(s, "page counts")
	require.ErrorContains(t, ec.Start(), `the changelog topic "pagepopularity-page counts-changelog" of operator "page counts" is not a valid Kafka topic name`)

	// A second start finds it as it should be.
	e.joinCounting(t, "b", nil)

	// One with another partition count, or not compacted, is refused.
	for _, tc := range []struct {
		name, says string
		create     func(topic string) error
	}{
		{"partitions", "has 2 partitions but the job has 3 tasks", func(topic string) error {
			_, err := adm.CreateTopic(ctx, 2, -1, map[string]*string{"cleanup.policy": new("compact")}, topic)
			return err
		}},
		{"policy", "cleanup.policy=delete", func(topic string) error {
			_, err := adm.CreateTopic(ctx, n, -1, nil, topic)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ec := newEngine(t)
			s, err := NewDirectStream(ec, []string{"clicks"}, WithBrokers(e.seeds...), WithGroup("g-"+tc.name), AsMember("a"))
			require.NoError(t, err)
			newKeyCounter(s, "counts")
			require.NoError(t, tc.create(ChangelogTopic("g-"+tc.name, "counts")))
			err = ec.Start()
			require.ErrorContains(t, err, strconv.Quote(ChangelogTopic("g-"+tc.name, "counts")))
			require.ErrorContains(t, err, tc.says)
		})
	}
}

func TestGroupModeStateMovesWithItsTask(t *testing.T) {
	// A task's state moves with it through its changelog: b restores the
	// tasks it gains from what a committed, a drops them, and when b
	// leaves a restores them from what b committed. Every count is exact
	// and the changelog, read committed, holds the latest of each.
	const n = 4
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	e.produceKeyed(t, n, 0, 10)
	a := e.joinCounting(t, "a", nil)
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks"}, n), a.m)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	got, tasks := a.cnt.snapshot()
	require.Equal(t, []int{0, 1, 2, 3}, tasks)
	require.Equal(t, wantCounts(n, 10, nil), got)
	require.Equal(t, []engine.TaskStatus{{Task: 0}, {Task: 1}, {Task: 2}, {Task: 3}}, a.n.Tasks())
	changelog, _ := e.changelog(t, true)
	require.Equal(t, wantCounts(n, 10, nil), changelog)

	b := e.joinCounting(t, "b", nil)
	owned := waitMembers(t, "a and b sharing the tasks", splitEvenly([]string{"clicks"}, n), a.m, b.m)
	e.produceKeyed(t, n, 10, 25)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	require.NoError(t, b.ec.RunBatches(ctx, 1))
	tasksA, tasksB := intTasks(owned[0]), intTasks(owned[1])
	inB := 0 // changelog records of b's tasks, which a reads when b leaves
	for _, r := range topictest.RecordsToEnd(t, e.seeds, ChangelogTopic("pagepopularity", "counts"), true) {
		if slices.Contains(tasksB, int(r.Partition)) {
			inB++
		}
	}
	got, tasks = a.cnt.snapshot()
	require.Equal(t, tasksA, tasks, "a dropped the tasks it gave b")
	require.Equal(t, wantCounts(n, 25, tasksA), got)
	require.ElementsMatch(t, tasksB, a.cnt.dropped)
	got, tasks = b.cnt.snapshot()
	require.Equal(t, tasksB, tasks)
	require.Equal(t, wantCounts(n, 25, tasksB), got, "b resumed a's counts")
	st := b.n.Tasks()
	require.Len(t, st, len(tasksB))
	for _, s := range st {
		require.False(t, s.Restoring)
		require.Equal(t, int64(countKeys), s.Restored, "task %d restored the one record a key a's batch wrote", s.Task)
		require.Equal(t, s.Restored, s.ToRestore, "a restore that ended has read all it had to")
	}
	changelog, _ = e.changelog(t, true)
	require.Equal(t, wantCounts(n, 25, nil), changelog)

	// b leaves: a restores b's tasks from what b committed.
	require.NoError(t, b.ec.Close())
	waitMembers(t, "a owning every task after b left", splitEvenly([]string{"clicks"}, n), a.m)
	e.produceKeyed(t, n, 25, 31)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	got, tasks = a.cnt.snapshot()
	require.Equal(t, []int{0, 1, 2, 3}, tasks)
	require.Equal(t, wantCounts(n, 31, nil), got)
	changelog, _ = e.changelog(t, true)
	require.Equal(t, wantCounts(n, 31, nil), changelog)
	metrics := metricValues(a.n.Metrics())
	require.Equal(t, float64(inB), metrics["kafka_changelog_records_restored_total"], "a restored b's tasks, and its own first ones, which were empty")
	require.Greater(t, metrics["kafka_changelog_restore_seconds_total"], 0.0)
}

func TestGroupModeRestartRestoresFromTheChangelog(t *testing.T) {
	const n = 2
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	a := e.joinCounting(t, "a", nil)
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks"}, n), a.m)
	for i := range 3 {
		e.produceKeyed(t, n, i*7, (i+1)*7)
		require.NoError(t, a.ec.RunBatches(ctx, 1))
	}
	require.NoError(t, a.ec.Close())

	e.produceKeyed(t, n, 21, 30)
	a2 := e.joinCounting(t, "a", nil)
	waitMembers(t, "the new a owning every task", splitEvenly([]string{"clicks"}, n), a2.m)
	require.NoError(t, a2.ec.RunBatches(ctx, 1))
	got, _ := a2.cnt.snapshot()
	require.Equal(t, wantCounts(n, 30, nil), got)
	changelog, _ := e.changelog(t, true)
	require.Equal(t, wantCounts(n, 30, nil), changelog)
}

func TestGroupModeLocalStateReadsOnlyTheTail(t *testing.T) {
	// With a state directory a restarted member reads its local copy and
	// only the changelog's tail; with the copy deleted or corrupt, the
	// whole changelog. Every restore is exact.
	const n = 2
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	dir := t.TempDir()
	a := e.joinCounting(t, "a", nil, WithStateDir(dir))
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks"}, n), a.m)
	batch := 0
	run := func(c *counting, batches int) {
		for range batches {
			e.produceKeyed(t, n, batch*3, (batch+1)*3)
			batch++
			require.NoError(t, c.ec.RunBatches(ctx, 1))
		}
	}
	run(a, 6)
	// Keep the copy as it is now, then go on: the copy kept lacks the
	// tail the next batches write.
	kept := t.TempDir()
	require.NoError(t, os.CopyFS(kept, os.DirFS(dir)))
	require.NoError(t, os.Remove(filepath.Join(kept, "LOCK")))
	run(a, 4)
	require.NoError(t, a.ec.Close())
	_, inLog := e.changelog(t, true)

	restart := func(what string, dir string) *counting {
		t.Helper()
		c := e.joinCounting(t, "a", nil, WithStateDir(dir))
		waitMembers(t, "a owning every task again", splitEvenly([]string{"clicks"}, n), c.m)
		run(c, 1)
		got, _ := c.cnt.snapshot()
		require.Equalf(t, wantCounts(n, batch*3, nil), got, "counts after a restart %s", what)
		return c
	}
	// The copy covers everything: nothing is read from the changelog.
	a2 := restart("with the whole copy", dir)
	m := metricValues(a2.n.Metrics())
	require.Equal(t, 0.0, m["kafka_changelog_records_read_total"])
	require.Equal(t, float64(inLog), m["kafka_changelog_records_restored_total"], "the copies hold every record the changelog does (none was compacted)")
	require.NoError(t, a2.ec.Close())

	// The copy kept earlier: its tail only.
	_, inLog = e.changelog(t, true)
	a3 := restart("with an older copy", kept)
	read := metricValues(a3.n.Metrics())["kafka_changelog_records_read_total"]
	t.Logf("the changelog holds %d records; the restart with an older copy read %v of them", inLog, read)
	require.Greater(t, read, 0.0)
	require.Less(t, read, float64(inLog))
	require.NoError(t, a3.ec.Close())

	// Deleted: the whole changelog.
	_, inLog = e.changelog(t, true)
	require.NoError(t, os.RemoveAll(dir))
	a4 := restart("with the copy deleted", dir)
	require.Equal(t, float64(inLog), metricValues(a4.n.Metrics())["kafka_changelog_records_read_total"])
	require.NoError(t, a4.ec.Close())

	// Corrupt: ignored, the whole changelog.
	_, inLog = e.changelog(t, true)
	for p := range n {
		path := filepath.Join(dir, ChangelogTopic("pagepopularity", "counts"), strconv.Itoa(p))
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		b[len(b)-6] ^= 0xff
		require.NoError(t, os.WriteFile(path, b, 0o644))
	}
	a5 := restart("with the copy corrupt", dir)
	require.Equal(t, float64(inLog), metricValues(a5.n.Metrics())["kafka_changelog_records_read_total"])
}

func TestGroupModeZombieChangelogWritesAbort(t *testing.T) {
	// A member the group dropped inside its batch writes its changelog
	// records when it wakes up, into a transaction that aborts: read
	// committed, the changelog holds the counts of the member that took
	// its tasks over, exact.
	const n = 2
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	e.produceKeyed(t, n, 0, 10)
	a := e.joinCounting(t, "a", nil)
	var holding atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	b := e.joinCounting(t, "b", func() {
		if holding.Load() {
			close(entered)
			<-release
		}
	})
	waitMembers(t, "a and b sharing the tasks", splitEvenly([]string{"clicks"}, n), a.m, b.m)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	require.NoError(t, b.ec.RunBatches(ctx, 1))

	e.produceKeyed(t, n, 10, 20)
	holding.Store(true)
	zombie := make(chan error, 1)
	go func() { zombie <- b.ec.RunBatches(ctx, 1) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("b's batch did not reach its outputs")
	}
	e.dropHeartbeats(groupcommit.MemberOf(b.m.cl).MemberID)
	waitMembers(t, "a owning every task once b is dropped", splitEvenly([]string{"clicks"}, n), a.m)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	_, written := e.changelog(t, false)

	close(release)
	require.NoError(t, <-zombie, "the zombie gives its batch up")
	require.Equal(t, 1.0, metricValues(b.n.Metrics())["kafka_batches_given_up_total"])
	_, after := e.changelog(t, false)
	require.Greater(t, after, written, "the zombie wrote its changelog records, uncommitted")
	changelog, _ := e.changelog(t, true)
	require.Equal(t, wantCounts(n, 20, nil), changelog, "the zombie's changelog records stay invisible read committed")
	got, _ := a.cnt.snapshot()
	require.Equal(t, wantCounts(n, 20, nil), got)

	// A later owner restores the committed counts, not the zombie's.
	require.NoError(t, a.ec.Close())
	c := e.joinCounting(t, "c", nil)
	waitMembers(t, "c owning every task", splitEvenly([]string{"clicks"}, n), c.m)
	require.NoError(t, c.ec.RunBatches(ctx, 1))
	got, _ = c.cnt.snapshot()
	require.Equal(t, wantCounts(n, 20, nil), got)
}

func intTasks(tps []TopicPartition) []int {
	var out []int
	for _, p := range tasksOf(tps) {
		out = append(out, int(p))
	}
	return out
}

func metricValues(ms []engine.Metric) map[string]float64 {
	out := make(map[string]float64)
	for _, m := range ms {
		out[m.Name] = m.Value
	}
	return out
}

func TestLocalCopyCompactsAndValidates(t *testing.T) {
	defer func(m int64) { localCompactMin = m }(localCompactMin)
	localCompactMin = 4 << 10
	dir := t.TempDir()
	d, err := openStateDir(dir, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer d.close()
	_, err = openStateDir(dir, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, state.ErrLocked, "one process at a time")

	tp := TopicPartition{Topic: "g-counts-changelog", Partition: 3}
	require.Nil(t, d.open(tp, 0, 0), "no copy yet")
	require.NoError(t, d.rewrite(tp, map[string][]byte{"gone": nil, "k0": []byte("x")}, 0))
	want := map[string]string{"k0": "x"}
	offset := int64(0)
	var largest int64
	for batch := range 500 {
		var recs []*kgo.Record
		for k := range 4 {
			key, value := "k"+strconv.Itoa((batch+k)%12), strconv.Itoa(batch)
			var v []byte
			if (batch+k)%7 != 0 {
				v = []byte(value)
				want[key] = value
			} else {
				delete(want, key)
			}
			recs = append(recs, &kgo.Record{Key: []byte(key), Value: v, Offset: offset})
			offset++
		}
		offset++ // the commit marker
		d.append(tp, recs)
		fi, err := os.Stat(d.path(tp))
		require.NoError(t, err)
		largest = max(largest, fi.Size())
	}
	require.Less(t, largest, 2*localCompactMin+1024, "the copy is compacted as it grows")

	c := d.open(tp, 0, offset)
	require.NotNil(t, c)
	require.Equal(t, offset-1, c.covered, "the copy reaches past its last record, not the marker after it")
	got := make(map[string]string)
	for _, r := range c.records {
		if r.value == nil {
			delete(got, string(r.key))
		} else {
			got[string(r.key)] = string(r.value)
		}
	}
	require.Equal(t, want, got)
	require.Nil(t, d.open(tp, 0, offset-2), "a copy past the changelog's end is not this changelog's")
	require.Nil(t, d.open(tp, offset, offset+5), "a copy before the changelog's start misses records")

	b, err := os.ReadFile(d.path(tp))
	require.NoError(t, err)
	for name, bad := range map[string][]byte{
		"cut short": b[:len(b)-3],
		"flipped":   append(append([]byte(nil), b[:len(b)/2]...), append([]byte{b[len(b)/2] ^ 1}, b[len(b)/2+1:]...)...),
		"empty":     {},
	} {
		require.NoError(t, os.WriteFile(d.path(tp), bad, 0o644))
		require.Nilf(t, d.open(tp, 0, offset), "a copy %s is ignored", name)
	}
	other := TopicPartition{Topic: tp.Topic, Partition: 4}
	require.NoError(t, d.rewrite(other, map[string][]byte{"k": []byte("v")}, 1))
	require.NoError(t, os.Rename(d.path(other), d.path(tp)))
	require.Nil(t, d.open(tp, 0, offset), "another partition's copy is ignored")
}

func TestGroupModeTaskLostAndRegainedBetweenBatchesIsRestored(t *testing.T) {
	// A task the group takes back and gives again between two batches may
	// have run elsewhere meanwhile: its state is dropped and restored, and
	// its input resumes at the group's offsets.
	const n = 2
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	e.produceKeyed(t, n, 0, 10)
	a := e.joinCounting(t, "a", nil)
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks"}, n), a.m)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	require.Equal(t, []int{0, 1}, a.cnt.restored)

	// What the group's callbacks do when the session is lost and a new
	// one gives the task back.
	a.m.revoked(map[string][]int32{"clicks": {1}}, "lost")
	a.m.assigned(map[string][]int32{"clicks": {1}})
	e.produceKeyed(t, n, 10, 14)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	require.Equal(t, []int{0, 1, 1}, a.cnt.restored)
	require.Equal(t, []int{1}, a.cnt.dropped)
	got, _ := a.cnt.snapshot()
	require.Equal(t, wantCounts(n, 14, nil), got)
}

// joinPopularity starts member name whose job counts the records of each
// key with dstream.UpdateStateByKey over the co-partitioned records,
// named "counts", and keeps the state each batch emits.
func (e *eosCluster) joinPopularity(t *testing.T, name string, opts ...Option) (*engine.Context, *member, func() map[string]int64) {
	t.Helper()
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, append([]Option{WithBrokers(e.seeds...), WithResetPolicy(Earliest), WithRetryTimeout(5 * time.Second),
		WithGroup("pagepopularity"), AsMember(name), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(time.Second))}, opts...)...)
	require.NoError(t, err)
	pairs := dstream.CoPartitioned(dstream.Map(s, func(r Record) dstream.KV[string, int64] { return dstream.Pair(string(r.Key), int64(1)) }))
	counts := dstream.UpdateStateByKey(pairs, func(vs []int64, st int64, _ bool) (int64, bool) {
		for _, v := range vs {
			st += v
		}
		return st, true
	}).Name("counts")
	var mu sync.Mutex
	var last map[string]int64
	dstream.ForEachBatch(counts, func(_ context.Context, b dstream.Batch[dstream.KV[string, int64]]) error {
		got := make(map[string]int64)
		for kv := range b.All() {
			got[kv.Key] = kv.Value
		}
		mu.Lock()
		last = got
		mu.Unlock()
		return nil
	})
	require.NoError(t, ec.Start())
	return ec, findDirect(s.Node()).member, func() map[string]int64 {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
}

func TestGroupModeUpdateStateByKeyMovesWithItsTask(t *testing.T) {
	// dstream.UpdateStateByKey over co-partitioned records holds its state
	// per task: the counts stay exact as tasks move to a member that joins,
	// back when it leaves, and through a restart with a local copy.
	const n = 4
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	dir := t.TempDir()
	e.produceKeyed(t, n, 0, 10)
	ca, ma, lastA := e.joinPopularity(t, "a", WithStateDir(dir))
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks"}, n), ma)
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.Equal(t, wantCounts(n, 10, nil), lastA())

	cb, mb, lastB := e.joinPopularity(t, "b")
	owned := waitMembers(t, "a and b sharing the tasks", splitEvenly([]string{"clicks"}, n), ma, mb)
	e.produceKeyed(t, n, 10, 17)
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.NoError(t, cb.RunBatches(ctx, 1))
	require.Equal(t, wantCounts(n, 17, intTasks(owned[0])), lastA())
	require.Equal(t, wantCounts(n, 17, intTasks(owned[1])), lastB(), "b resumed a's counts of the tasks it gained")

	require.NoError(t, cb.Close())
	waitMembers(t, "a owning every task after b left", splitEvenly([]string{"clicks"}, n), ma)
	e.produceKeyed(t, n, 17, 20)
	require.NoError(t, ca.RunBatches(ctx, 1))
	require.Equal(t, wantCounts(n, 20, nil), lastA())
	require.NoError(t, ca.Close())

	e.produceKeyed(t, n, 20, 26)
	ca2, ma2, lastA2 := e.joinPopularity(t, "a", WithStateDir(dir))
	waitMembers(t, "the restarted a owning every task", splitEvenly([]string{"clicks"}, n), ma2)
	require.NoError(t, ca2.RunBatches(ctx, 1))
	require.Equal(t, wantCounts(n, 26, nil), lastA2())
	inLog := len(topictest.RecordsToEnd(t, e.seeds, ChangelogTopic("pagepopularity", "counts"), true))
	read := metricValues(findDirect(ca2.Nodes()[0]).Metrics())["kafka_changelog_records_read_total"]
	t.Logf("the restart read %v of the changelog's %d records", read, inLog)
	require.Less(t, read, float64(inLog), "the local copy spares most of the changelog")
}

func TestGroupModePartitionTasks(t *testing.T) {
	// A stateless job in group mode learns its number of tasks at its
	// first batch; each partition of a batch's data is the task of its
	// range.
	const n = 3
	e := startEOSCluster(t, n)
	e.produceKeyed(t, n, 0, 4)
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, WithBrokers(e.seeds...), WithResetPolicy(Earliest),
		WithGroup("pagepopularity"), AsMember("a"), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond)))
	require.NoError(t, err)
	d := findDirect(s.Node())
	var tasks, parts []int
	dstream.ForEachBatchJob(s, func(_ context.Context, j *engine.Job, _ dstream.Batch[Record]) error {
		tasks = d.PartitionTasks(j)
		for _, r := range OffsetRangesOf(j, s) {
			parts = append(parts, int(r.Partition))
		}
		return nil
	})
	require.NoError(t, ec.Start())
	require.Zero(t, d.TaskCount(), "no broker is asked before the first batch")
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks"}, n), d.member)
	require.NoError(t, ec.RunBatches(bounded(t), 1))
	require.Equal(t, n, d.TaskCount())
	require.Equal(t, []int{0, 1, 2}, tasks)
	require.Equal(t, parts, tasks)
	require.Equal(t, []engine.TaskStatus{{Task: 0}, {Task: 1}, {Task: 2}}, d.Tasks())
}

func TestGroupModeWaitsForPendingCommittedOffsets(t *testing.T) {
	// A task starts at the group's committed offset once it is stable:
	// while the coordinator answers UNSTABLE_OFFSET_COMMIT (a transaction
	// holds offsets of the group pending), the member asks again instead
	// of taking the partition for one without a commit, which would start
	// it at the reset policy and read its records twice.
	const n = 2
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	e.produceKeyed(t, n, 0, 10)
	adm := kadm.NewClient(e.cl)
	offsets := make(kadm.Offsets)
	for p := range int32(n) {
		offsets.Add(kadm.Offset{Topic: "clicks", Partition: p, At: 6, LeaderEpoch: -1})
	}
	resps, err := adm.CommitOffsets(ctx, "pagepopularity", offsets)
	require.NoError(t, err)
	require.NoError(t, resps.Error())
	td, err := adm.ListTopics(ctx, "clicks")
	require.NoError(t, err)
	clicksID := td["clicks"].ID // newer OffsetFetch answers name topics by ID
	var unstable atomic.Int32
	unstable.Store(3)
	e.c.ControlKey(int16(kmsg.OffsetFetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.OffsetFetchRequest)
		if !req.RequireStable || unstable.Add(-1) < 0 {
			return nil, nil, false
		}
		e.c.KeepControl()
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		part := func() kmsg.OffsetFetchResponseTopicPartition {
			sp := kmsg.NewOffsetFetchResponseTopicPartition()
			sp.Offset, sp.LeaderEpoch, sp.ErrorCode = -1, -1, kerr.UnstableOffsetCommit.Code
			return sp
		}
		if len(req.Groups) > 0 {
			for _, g := range req.Groups {
				sg := kmsg.NewOffsetFetchResponseGroup()
				sg.Group = g.Group
				st := kmsg.NewOffsetFetchResponseGroupTopic()
				st.Topic, st.TopicID = "clicks", clicksID
				for p := range int32(n) {
					sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					sp.Partition, sp.Offset, sp.LeaderEpoch, sp.ErrorCode = p, -1, -1, kerr.UnstableOffsetCommit.Code
					st.Partitions = append(st.Partitions, sp)
				}
				sg.Topics = append(sg.Topics, st)
				resp.Groups = append(resp.Groups, sg)
			}
		} else {
			st := kmsg.NewOffsetFetchResponseTopic()
			st.Topic = "clicks"
			for p := range int32(n) {
				sp := part()
				sp.Partition = p
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	a := e.joinCounting(t, "a", nil)
	waitMembers(t, "a owning every task", splitEvenly([]string{"clicks"}, n), a.m)
	require.NoError(t, a.ec.RunBatches(ctx, 1))
	require.LessOrEqual(t, unstable.Load(), int32(0), "the member asked again after each of the 3 answers that the offsets were pending")
	got, _ := a.cnt.snapshot()
	want := wantCounts(n, 10, nil)
	for k, v := range wantCounts(n, 6, nil) {
		if want[k] -= v; want[k] == 0 {
			delete(want, k)
		}
	}
	require.Equal(t, want, got, "the tasks started at the group's offsets, 6")
}

func TestGroupModeRestartedMemberFencesItsZombieState(t *testing.T) {
	// A member stopped inside its batch and restarted under its name
	// fences its previous instance: the new instance restores the tasks
	// from what committed, and the old one, waking up, writes nothing
	// that reads committed.
	const n = 2
	e := startEOSCluster(t, n)
	ctx := bounded(t)
	e.produceKeyed(t, n, 0, 10)
	var holding atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	b := e.joinCounting(t, "b", func() {
		if holding.Load() {
			close(entered)
			<-release
		}
	})
	waitMembers(t, "b owning every task", splitEvenly([]string{"clicks"}, n), b.m)
	require.NoError(t, b.ec.RunBatches(ctx, 1))

	e.produceKeyed(t, n, 10, 20)
	holding.Store(true)
	zombie := make(chan error, 1)
	go func() { zombie <- b.ec.RunBatches(ctx, 1) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("b's batch did not reach its outputs")
	}
	e.dropHeartbeats(groupcommit.MemberOf(b.m.cl).MemberID)

	b2 := e.joinCounting(t, "b", nil)
	waitMembers(t, "the new b owning every task", splitEvenly([]string{"clicks"}, n), b2.m)
	require.NoError(t, b2.ec.RunBatches(ctx, 1))
	got, _ := b2.cnt.snapshot()
	require.Equal(t, wantCounts(n, 20, nil), got)

	close(release)
	require.NoError(t, <-zombie, "the group dropped the zombie: it gives its batch up")
	changelog, _ := e.changelog(t, true)
	require.Equal(t, wantCounts(n, 20, nil), changelog, "read committed, the changelog holds the new instance's counts")
}
