package kafkasource

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// testBroker is an embedded broker with a producer and an admin client.
type testBroker struct {
	e   *Embedded
	cl  *kgo.Client
	adm *kadm.Client
}

// startBroker starts an embedded broker with the given topics (name →
// partitions); the test closes it.
func startBroker(t testing.TB, topics map[string]int32) *testBroker {
	t.Helper()
	var opts []EmbeddedOption
	for name, n := range topics {
		opts = append(opts, EmbeddedTopic(name, n))
	}
	e, err := StartEmbedded(opts...)
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(func() {
		cl.Close()
		require.NoError(t, e.Close())
	})
	return &testBroker{e: e, cl: cl, adm: kadm.NewClient(cl)}
}

// bounded is a context that ends with the test or after a generous bound,
// so a broken broker fails the test instead of hanging it.
func bounded(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recKey and recValue name record i of a partition.
func recKey(topic string, p int32, i int) string { return fmt.Sprintf("%s/%d/%d", topic, p, i) }
func recValue(i int) string                      { return "v" + strconv.Itoa(i) }

// produce writes records from..to-1 to one partition, keyed
// topic/partition/i, in one synchronous call.
func (b *testBroker) produce(t testing.TB, topic string, p int32, from, to int) {
	t.Helper()
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(recKey(topic, p, i)), Value: []byte(recValue(i))})
	}
	require.NoError(t, b.cl.ProduceSync(bounded(t), recs...).FirstErr())
}

// newEngine returns a manual-clock context of batch 1 s that the test
// closes.
func newEngine(t testing.TB, opts ...engine.Option) *engine.Context {
	t.Helper()
	c, err := engine.NewContext(time.Second, append([]engine.Option{engine.WithManualClock(time.Unix(1000, 0)), engine.WithParallelism(2)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// seen is what an output saw of each batch: ranges and records.
type seen struct {
	mu      sync.Mutex
	ranges  [][]OffsetRange
	batches [][][]Record
}

func (s *seen) all() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, b := range s.batches {
		for _, p := range b {
			out = append(out, p...)
		}
	}
	return out
}

func (s *seen) last() ([]OffsetRange, [][]Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ranges[len(s.ranges)-1], s.batches[len(s.batches)-1]
}

// watch registers an output that records every batch of s.
func watch(s *dstream.Stream[Record]) *seen {
	w := &seen{}
	dstream.ForEachBatchJob(s, func(ctx context.Context, j *engine.Job, b dstream.Batch[Record]) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.ranges = append(w.ranges, OffsetRangesOf(j, s))
		w.batches = append(w.batches, b.Parts)
		return nil
	})
	return w
}

// stream builds a direct stream on b's broker reading from the start.
func (b *testBroker) stream(t testing.TB, c *engine.Context, topics []string, opts ...Option) *dstream.Stream[Record] {
	t.Helper()
	s, err := NewDirectStream(c, topics, append([]Option{WithBrokers(b.e.Addrs()...), WithResetPolicy(Earliest), WithRetryTimeout(5 * time.Second)}, opts...)...)
	require.NoError(t, err)
	return s
}

// requireExactlyOnce checks that recs hold each record of want (topic →
// partition → count) once, with the right values and offsets, in offset
// order within each partition.
func requireExactlyOnce(t testing.TB, recs []Record, want map[TopicPartition]int) {
	t.Helper()
	got := make(map[TopicPartition][]int64)
	for _, r := range recs {
		tp := TopicPartition{r.Topic, r.Partition}
		i := len(got[tp])
		require.Equal(t, recKey(r.Topic, r.Partition, i), string(r.Key), "record %d of %v", i, tp)
		require.Equal(t, recValue(i), string(r.Value))
		got[tp] = append(got[tp], r.Offset)
	}
	for tp, n := range want {
		require.Len(t, got[tp], n, "records of %v", tp)
	}
	require.Len(t, got, len(want))
}

// logCapture is a slog handler target that tests read.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func TestDirectStreamReadsEveryRecordOnce(t *testing.T) {
	b := startBroker(t, map[string]int32{"clicks": 3})
	b.produce(t, "clicks", 0, 0, 100)
	b.produce(t, "clicks", 1, 0, 50)
	c := newEngine(t)
	w := watch(b.stream(t, c, []string{"clicks"}))
	require.NoError(t, c.RunBatches(bounded(t), 2))
	requireExactlyOnce(t, w.all(), map[TopicPartition]int{{"clicks", 0}: 100, {"clicks", 1}: 50})
	require.Equal(t, []OffsetRange{{"clicks", 0, 0, 100}, {"clicks", 1, 0, 50}, {"clicks", 2, 0, 0}}, w.ranges[0])
	require.Equal(t, []OffsetRange{{"clicks", 0, 100, 100}, {"clicks", 1, 50, 50}, {"clicks", 2, 0, 0}}, w.ranges[1])
}
