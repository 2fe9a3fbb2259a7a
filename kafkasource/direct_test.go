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
	"github.com/sluicehq/sluice/internal/logtest"
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

// refresh replaces the producer, whose metadata may predate partitions
// created since.
func (b *testBroker) refresh(t testing.TB) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.e.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	b.cl.Close()
	b.cl, b.adm = cl, kadm.NewClient(cl)
	t.Cleanup(cl.Close)
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

// produceValue writes one record, in a batch of its own, to a partition.
func (b *testBroker) produceValue(t testing.TB, topic string, p int32, value string) {
	t.Helper()
	require.NoError(t, b.cl.ProduceSync(bounded(t), &kgo.Record{Topic: topic, Partition: p, Value: []byte(value)}).FirstErr())
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

// requireRangesMatchParts checks Spark's HasOffsetRanges contract: part i of
// a batch holds exactly the records of range i.
func requireRangesMatchParts(t testing.TB, ranges []OffsetRange, parts [][]Record) {
	t.Helper()
	require.Len(t, parts, len(ranges))
	for i, r := range ranges {
		require.Len(t, parts[i], int(r.Count()), "records of range %v", r)
		for _, rec := range parts[i] {
			require.Equal(t, r.Topic, rec.Topic)
			require.Equal(t, r.Partition, rec.Partition)
			require.True(t, rec.Offset >= r.From && rec.Offset < r.Until, "offset %d outside %v", rec.Offset, r)
		}
	}
}

// Ported from Spark's DirectKafkaStreamSuite.
func TestDirectKafkaStreamSuite(t *testing.T) {
	t.Run("basic stream receiving with multiple topics and smallest starting offset", func(t *testing.T) {
		topics := []string{"basic1", "basic2", "basic3"}
		b := startBroker(t, map[string]int32{"basic1": 1, "basic2": 1, "basic3": 1})
		for _, tp := range topics {
			b.produce(t, tp, 0, 0, 16)
		}
		c := newEngine(t)
		s := b.stream(t, c, topics, WithStartOffsets(map[TopicPartition]int64{{"basic3", 0}: 2}))
		w := watch(s)
		require.NoError(t, c.RunBatches(bounded(t), 2))
		for i := range w.batches {
			requireRangesMatchParts(t, w.ranges[i], w.batches[i])
		}
		require.Len(t, w.all(), 16*3-2)
		require.Equal(t, int64(2), w.batches[0][2][0].Offset, "basic3 starts at offset 2")
	})
	t.Run("pattern based subscription", func(t *testing.T) {
		topics := map[string]int32{"pat1": 1, "pat2": 1, "pat3": 1, "advanced3": 1}
		b := startBroker(t, topics)
		for tp := range topics {
			b.produce(t, tp, 0, 0, 16)
		}
		c := newEngine(t)
		s := b.stream(t, c, []string{`pat\d`}, WithTopicRegex(),
			WithStartOffsets(map[TopicPartition]int64{{"pat2", 0}: 3, {"pat3", 0}: 4}))
		w := watch(s)
		require.NoError(t, c.RunBatches(bounded(t), 1))
		requireRangesMatchParts(t, w.ranges[0], w.batches[0])
		require.Len(t, w.all(), 16*3-7)
		require.Equal(t, []OffsetRange{{"pat1", 0, 0, 16}, {"pat2", 0, 3, 16}, {"pat3", 0, 4, 16}}, w.ranges[0])
	})
	t.Run("receiving from largest starting offset", func(t *testing.T) {
		b := startBroker(t, map[string]int32{"latest": 1})
		b.produce(t, "latest", 0, 0, 10)
		c := newEngine(t)
		w := watch(b.stream(t, c, []string{"latest"}, WithResetPolicy(Latest)))
		require.NoError(t, c.RunBatches(bounded(t), 1))
		require.Empty(t, w.all())
		b.produce(t, "latest", 0, 10, 20)
		require.NoError(t, c.RunBatches(bounded(t), 1))
		got := w.all()
		require.Len(t, got, 10)
		require.Equal(t, int64(10), got[0].Offset)
	})
	t.Run("creating stream by offset", func(t *testing.T) {
		b := startBroker(t, map[string]int32{"offset": 2})
		b.produce(t, "offset", 0, 0, 10)
		c := newEngine(t)
		w := watch(b.stream(t, c, nil, WithPartitions(TopicPartition{"offset", 0}),
			WithStartOffsets(map[TopicPartition]int64{{"offset", 0}: 10})))
		b.produce(t, "offset", 0, 10, 20)
		b.produce(t, "offset", 1, 0, 5) // not assigned
		require.NoError(t, c.RunBatches(bounded(t), 1))
		require.Equal(t, []OffsetRange{{"offset", 0, 10, 20}}, w.ranges[0])
		require.Len(t, w.all(), 10)
	})
	t.Run("offset recovery from kafka", func(t *testing.T) {
		b := startBroker(t, map[string]int32{"recoveryfromkafka": 2})
		b.produce(t, "recoveryfromkafka", 0, 0, 10)
		b.produce(t, "recoveryfromkafka", 1, 0, 4)
		c := newEngine(t)
		w := watch(b.stream(t, c, []string{"recoveryfromkafka"}, WithGroup("g")))
		require.NoError(t, c.RunBatches(bounded(t), 1))
		require.NoError(t, c.Close())
		require.Len(t, w.all(), 14)

		b.produce(t, "recoveryfromkafka", 1, 4, 9)
		c2 := newEngine(t)
		w2 := watch(b.stream(t, c2, []string{"recoveryfromkafka"}, WithGroup("g")))
		require.NoError(t, c2.RunBatches(bounded(t), 1))
		require.Equal(t, []OffsetRange{{"recoveryfromkafka", 0, 10, 10}, {"recoveryfromkafka", 1, 4, 9}}, w2.ranges[0])
	})
	t.Run("Direct Kafka stream report input information", func(t *testing.T) {
		b := startBroker(t, map[string]int32{"report-test": 2})
		b.produce(t, "report-test", 0, 0, 7)
		b.produce(t, "report-test", 1, 0, 9)
		var started, completed int64
		var sources []any
		var planning, reading []time.Duration
		c := newEngine(t, engine.WithListener(engine.ListenerFuncs{
			Started: func(i engine.BatchInfo) { started += i.Records },
			Completed: func(i engine.BatchInfo) {
				completed += i.Records
				sources = append(sources, i.Sources[DefaultName])
				planning, reading = append(planning, i.PlanningDelay), append(reading, i.ReadingDelay)
			},
		}))
		w := watch(b.stream(t, c, []string{"report-test"}))
		require.NoError(t, c.RunBatches(bounded(t), 2))
		require.Len(t, w.all(), 16)
		require.Equal(t, int64(16), started)
		require.Equal(t, int64(16), completed)
		require.Equal(t, []any{w.ranges[0], w.ranges[1]}, sources)
		// Both batches asked the broker for offsets; the first read its
		// ranges from it, the second had none to read.
		require.Positive(t, planning[0], "planning time of batch 1")
		require.Positive(t, planning[1], "planning time of batch 2")
		require.Positive(t, reading[0], "reading time of batch 1")
		require.Zero(t, reading[1], "reading time of batch 2")
	})
	for _, tc := range []struct {
		name             string
		maxRate, initial int64
	}{
		{"backpressure.initialRate should honor maxRatePerPartition", 1000, 500},
		{"use backpressure.initialRate with backpressure", 300, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, map[string]int32{"backpressure": 1})
			b.produce(t, "backpressure", 0, 0, 5000)
			c, err := engine.NewContext(500*time.Millisecond, engine.WithManualClock(time.Unix(1000, 0)))
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			w := watch(b.stream(t, c, []string{"backpressure"}, WithBackpressure(true), WithInitialRate(float64(tc.initial)),
				WithRateLimits(RateLimits{MaxRatePerPartition: tc.maxRate})))
			require.NoError(t, c.RunBatches(bounded(t), 1))
			// Half a second at the lower of the two rates.
			want := min(tc.maxRate, tc.initial) / 2
			require.Equal(t, []OffsetRange{{"backpressure", 0, 0, want}}, w.ranges[0])
		})
	}
}

func TestDirectStreamExactlyOnceAcrossManyBatches(t *testing.T) {
	const parts = 4
	b := startBroker(t, map[string]int32{"events": parts})
	c := newEngine(t)
	s := b.stream(t, c, []string{"events"}, WithRateLimits(RateLimits{MaxRatePerPartition: 7}))
	w := watch(s)
	produced := make(map[TopicPartition]int)
	ctx := bounded(t)
	for round := range 12 {
		for p := range int32(parts) {
			tp := TopicPartition{"events", p}
			n := (round*5 + int(p)*3) % 11 // uneven, sometimes none
			b.produce(t, "events", p, produced[tp], produced[tp]+n)
			produced[tp] += n
		}
		require.NoError(t, c.RunBatches(ctx, 1))
	}
	// Drain what the caps held back.
	caughtUp := func() bool {
		st, ok := StatsOf(s)
		require.True(t, ok)
		for tp, n := range produced {
			if st.Positions[tp] != int64(n) {
				return false
			}
		}
		return true
	}
	for !caughtUp() {
		require.NoError(t, c.RunBatches(ctx, 1))
	}
	want := make(map[TopicPartition]int)
	for tp, n := range produced {
		if n > 0 {
			want[tp] = n
		}
	}
	requireExactlyOnce(t, w.all(), want)
	prev := make(map[TopicPartition]int64)
	for i, ranges := range w.ranges {
		requireRangesMatchParts(t, ranges, w.batches[i])
		for _, r := range ranges {
			require.Equal(t, prev[r.TopicPartition()], r.From, "batch %d starts where the previous one ended", i)
			require.LessOrEqual(t, r.Count(), int64(7), "capped at maxRatePerPartition × 1 s")
			prev[r.TopicPartition()] = r.Until
		}
	}
}

func TestDirectStreamPicksUpNewPartitions(t *testing.T) {
	b := startBroker(t, map[string]int32{"grow": 1})
	b.produce(t, "grow", 0, 0, 5)
	c := newEngine(t)
	// Latest: the existing records are skipped, but a partition created
	// later is read from its start.
	w := watch(b.stream(t, c, []string{"grow"}, WithResetPolicy(Latest)))
	ctx := bounded(t)
	require.NoError(t, c.RunBatches(ctx, 1))
	require.Equal(t, []OffsetRange{{"grow", 0, 5, 5}}, w.ranges[0])

	_, err := b.adm.CreatePartitions(ctx, 2, "grow")
	require.NoError(t, err)
	b.refresh(t)
	b.produce(t, "grow", 1, 0, 6)
	b.produce(t, "grow", 2, 0, 3)
	b.produce(t, "grow", 0, 5, 7)
	require.NoError(t, c.RunBatches(ctx, 1))
	require.Equal(t, []OffsetRange{{"grow", 0, 5, 7}, {"grow", 1, 0, 6}, {"grow", 2, 0, 3}}, w.ranges[1])
	_, parts := w.last()
	requireRangesMatchParts(t, w.ranges[1], parts)
}

func TestDirectStreamGracefulStopCommitsLastBatch(t *testing.T) {
	b := startBroker(t, map[string]int32{"stop": 2})
	b.produce(t, "stop", 0, 0, 30)
	b.produce(t, "stop", 1, 0, 20)
	ctx, cancel := context.WithCancel(bounded(t))
	defer cancel()
	c, err := engine.NewContext(20 * time.Millisecond)
	require.NoError(t, err)
	defer c.Close()
	// Capped so that reading everything takes several batches; the stop
	// comes during the batch that reads the last records.
	s := b.stream(t, c, []string{"stop"}, WithGroup("stopper"), WithRateLimits(RateLimits{MaxRatePerPartition: 500}))
	var read int
	dstream.ForEachBatch(s, func(_ context.Context, bt dstream.Batch[Record]) error {
		read += bt.Len()
		if read == 50 {
			cancel()
		}
		return nil
	})
	require.NoError(t, c.Run(ctx), "a cancelled Run is a graceful stop")
	require.Equal(t, 50, read)
	offs, err := b.adm.FetchOffsets(bounded(t), "stopper")
	require.NoError(t, err)
	for p, end := range map[int32]int64{0: 30, 1: 20} {
		o, ok := offs.Lookup("stop", p)
		require.True(t, ok)
		require.Equal(t, end, o.At, "partition %d committed up to its end", p)
	}
}

func TestDirectStreamBackpressureFollowsTheEstimate(t *testing.T) {
	b := startBroker(t, map[string]int32{"bp": 2})
	b.produce(t, "bp", 0, 0, 3000)
	b.produce(t, "bp", 1, 0, 1000)
	c := newEngine(t)
	limits := RateLimits{MaxRatePerPartition: 400}
	s := b.stream(t, c, []string{"bp"}, WithBackpressure(true), WithInitialRate(300), WithRateLimits(limits), WithPID(1, 0.2, 0, 10))
	w := watch(s)
	var rates []float64 // the rate after each batch
	c.AddListener(engine.ListenerFuncs{Completed: func(engine.BatchInfo) {
		st, _ := StatsOf(s)
		rates = append(rates, st.Rate)
	}})
	require.NoError(t, c.RunBatches(bounded(t), 6))
	ends := map[TopicPartition]int64{{"bp", 0}: 3000, {"bp", 1}: 1000}
	for i, ranges := range w.ranges {
		rate := 300.0 // the initial rate until the estimator has one
		if i > 0 && rates[i-1] > 0 {
			rate = rates[i-1]
		}
		from := make(map[TopicPartition]int64)
		for _, r := range ranges {
			from[r.TopicPartition()] = r.From
		}
		caps := MaxMessagesPerPartition(limits, time.Second, from, ends, rate)
		for _, r := range ranges {
			require.Equal(t, min(ends[r.TopicPartition()], r.From+caps[r.TopicPartition()]), r.Until, "batch %d, %v at rate %v", i, r, rate)
		}
	}
	require.Greater(t, rates[len(rates)-1], 0.0, "the estimator produced a rate")
}

func TestDirectStreamWaitsForMissingTopics(t *testing.T) {
	b := startBroker(t, map[string]int32{"present": 1})
	b.produce(t, "present", 0, 0, 3)
	logs := &logtest.Buffer{}
	c := newEngine(t)
	w := watch(b.stream(t, c, []string{"present", "later"}, WithResetPolicy(Latest), WithLogger(logs.Logger(slog.LevelInfo))))
	ctx := bounded(t)
	require.NoError(t, c.RunBatches(ctx, 2))
	require.Equal(t, []OffsetRange{{"present", 0, 3, 3}}, w.ranges[1])
	require.Equal(t, 1, bytes.Count([]byte(logs.String()), []byte("name=later")), "warned once")

	require.NoError(t, b.e.CreateTopic(ctx, "later", 2))
	b.refresh(t)
	b.produce(t, "later", 1, 0, 4)
	require.NoError(t, c.RunBatches(ctx, 1))
	require.Equal(t, []OffsetRange{{"later", 0, 0, 0}, {"later", 1, 0, 4}, {"present", 0, 3, 3}}, w.ranges[2],
		"a topic created while the stream runs is read from its start")
}
