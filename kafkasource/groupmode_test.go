package kafkasource

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// groupStream builds a direct stream in group mode, a member of group
// "pagepopularity", reading from the start when the group has no offsets.
func (b *testBroker) groupStream(t *testing.T, c *engine.Context, topics []string) (*dstream.Stream[Record], *member) {
	t.Helper()
	s := b.stream(t, c, topics, WithGroup("pagepopularity"), withGroupMode(kgo.HeartbeatInterval(100*time.Millisecond)))
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
			opts := append([]Option{WithBrokers(b.e.Addrs()...)}, tc.opts...)
			_, err := NewDirectStream(c, []string{"clicks"}, append(opts, withGroupMode())...)
			require.ErrorIs(t, err, ErrOption)
			require.ErrorContains(t, err, tc.says)
		})
	}
}
