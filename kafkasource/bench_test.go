package kafkasource

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// Benchmark setup: benchRecords records (SLUICE_BENCH_RECORDS overrides,
// -short uses a tenth) over benchPartitions partitions of one topic of an
// in-process broker, produced once per process and read by every run.
const (
	benchTopic      = "bench"
	benchPartitions = 8
	benchRecords    = 5_000_000
	// benchBatchRecords is the cap of records per partition per batch of
	// the Sluice job (maxRatePerPartition × 1 s batches), so a batch
	// holds at most 8 × 125,000 records.
	benchBatchRecords = 125_000
)

var benchData struct {
	once sync.Once
	b    *testBroker
	n    int
	err  error
}

// benchBroker returns the shared broker holding the benchmark's records
// and their count. The broker lives until the process exits.
func benchBroker(b *testing.B) (*testBroker, int) {
	benchData.once.Do(func() {
		n := benchRecords
		if testing.Short() {
			n /= 10
		}
		if v := os.Getenv("SLUICE_BENCH_RECORDS"); v != "" {
			if n, benchData.err = strconv.Atoi(v); benchData.err != nil {
				return
			}
		}
		e, err := StartEmbedded(EmbeddedTopic(benchTopic, benchPartitions))
		if err != nil {
			benchData.err = err
			return
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(200_000))
		if err != nil {
			benchData.err = err
			return
		}
		ctx := context.Background()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range n {
			key := fmt.Appendf(nil, "key-%09d", i)
			value := fmt.Appendf(nil, "value-%09d-%s", i, "payload-payload-payload-payload")
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: benchTopic, Partition: int32(i % benchPartitions), Key: key, Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					benchData.err = err
					mu.Unlock()
				}
				wg.Done()
			})
		}
		wg.Wait()
		benchData.b = &testBroker{e: e, cl: cl}
		benchData.n = n
	})
	require.NoError(b, benchData.err)
	return benchData.b, benchData.n
}

// sluicePass counts every record of the bench topic with a Sluice job and
// returns the count.
func sluicePass(b *testing.B, tb *testBroker, n int) int64 {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)))
	require.NoError(b, err)
	defer c.Close()
	s, err := NewDirectStream(c, []string{benchTopic}, WithBrokers(tb.e.Addrs()...), WithResetPolicy(Earliest),
		WithRateLimits(RateLimits{MaxRatePerPartition: benchBatchRecords}))
	require.NoError(b, err)
	var total int64
	dstream.ForEachBatch(dstream.Count(s), func(_ context.Context, bt dstream.Batch[int64]) error {
		for x := range bt.All() {
			total += x
		}
		return nil
	})
	for total < int64(n) {
		require.NoError(b, c.RunBatches(context.Background(), 1))
	}
	return total
}

// kgoPass counts every record of the bench topic with franz-go's own
// direct consumer (ConsumePartitions, PollFetches) and returns the count.
func kgoPass(b *testing.B, tb *testBroker, n int) int64 {
	parts := make(map[int32]kgo.Offset, benchPartitions)
	for p := range int32(benchPartitions) {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.e.Addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{benchTopic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	require.NoError(b, err)
	defer cl.Close()
	var total int64
	for total < int64(n) {
		fs := cl.PollFetches(context.Background())
		require.NoError(b, fs.Err())
		total += int64(fs.NumRecords())
	}
	return total
}

// BenchmarkDirectStreamVsKgo reads the same records, in the same run, with
// a pass-through Sluice job (direct stream → Count) and with franz-go's
// direct consumer, and reports both rates and their ratio.
func BenchmarkDirectStreamVsKgo(b *testing.B) {
	tb, n := benchBroker(b)
	b.ReportAllocs()
	var sluiceTime, kgoTime time.Duration
	for b.Loop() {
		start := time.Now()
		require.Equal(b, int64(n), sluicePass(b, tb, n))
		sluiceTime += time.Since(start)
		start = time.Now()
		require.Equal(b, int64(n), kgoPass(b, tb, n))
		kgoTime += time.Since(start)
	}
	sluiceRate := float64(n) * float64(b.N) / sluiceTime.Seconds()
	kgoRate := float64(n) * float64(b.N) / kgoTime.Seconds()
	b.ReportMetric(sluiceRate, "sluice-records/s")
	b.ReportMetric(kgoRate, "kgo-records/s")
	b.ReportMetric(sluiceRate/kgoRate, "ratio")
	b.ReportMetric(float64(n), "records")
}

// BenchmarkDecodeBatches measures decoding fetched record batches alone,
// against kgo's ProcessFetchPartition on the same bytes.
func BenchmarkDecodeBatches(b *testing.B) {
	tb, _ := benchBroker(b)
	tp := TopicPartition{Topic: benchTopic, Partition: 0}
	c, err := engine.NewContext(time.Second)
	require.NoError(b, err)
	defer c.Close()
	cfg := defaultConfig()
	cfg.brokers = tb.e.Addrs()
	k, err := newKClient(&cfg)
	require.NoError(b, err)
	defer k.close()
	ctx := context.Background()
	require.NoError(b, k.refreshLeader(ctx, tp))
	leader, id, _ := k.leader(tp)
	r := &reader{k: k, dec: kgo.DefaultDecompressor(), maxBytes: 4 << 20}
	fp, err := r.fetch(ctx, leader, id, tp, 0, 4<<20)
	require.NoError(b, err)
	b.Run("sluice", func(b *testing.B) {
		b.ReportAllocs()
		var out []Record
		var n int
		for b.Loop() {
			out, _, _, err = decodeBatches(out[:0], fp, benchTopic, 0, 0, 1<<62, r.dec)
			require.NoError(b, err)
			n += len(out)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("kgo", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			p, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: benchTopic, IsolationLevel: kgo.ReadCommitted()}, fp, r.dec, nil)
			require.NoError(b, p.Err)
			n += len(p.Records)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
}

// countPass counts every record of the bench topic with the job of
// sluicePass, built with extra options, and returns the count and how long
// its batches took: the context, the client and, in group mode, the join
// are not timed.
func countPass(b *testing.B, tb *testBroker, n int, extra ...Option) (int64, time.Duration) {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)))
	require.NoError(b, err)
	defer c.Close()
	opts := []Option{WithBrokers(tb.e.Addrs()...), WithResetPolicy(Earliest), WithRateLimits(RateLimits{MaxRatePerPartition: benchBatchRecords})}
	s, err := NewDirectStream(c, []string{benchTopic}, append(opts, extra...)...)
	require.NoError(b, err)
	if m := findDirect(s.Node()).member; m != nil {
		for {
			owned, changed := m.snapshot()
			if len(owned) == benchPartitions {
				break
			}
			<-changed
		}
	}
	var total int64
	dstream.ForEachBatch(dstream.Count(s), func(_ context.Context, bt dstream.Batch[int64]) error {
		for x := range bt.All() {
			total += x
		}
		return nil
	})
	start := time.Now()
	for total < int64(n) {
		require.NoError(b, c.RunBatches(context.Background(), 1))
	}
	return total, time.Since(start)
}

// benchGroups numbers the groups of BenchmarkGroupModeOneMember, so that
// every pass starts a group with no offsets.
var benchGroups atomic.Int64

// BenchmarkGroupModeOneMember reads the same records, in the same run,
// with a pass-through job in single-process mode and in group mode as the
// only member of a new group, timing the batches only (the sides take
// turns going first), and reports both rates and their ratio, group ÷
// single.
func BenchmarkGroupModeOneMember(b *testing.B) {
	tb, n := benchBroker(b)
	b.ReportAllocs()
	var singleTime, groupTime time.Duration
	single := func() {
		total, took := countPass(b, tb, n)
		require.Equal(b, int64(n), total)
		singleTime += took
	}
	group := func() {
		name := "bench-group-" + strconv.FormatInt(benchGroups.Add(1), 10)
		total, took := countPass(b, tb, n, WithGroup(name), AsMember("bench"))
		require.Equal(b, int64(n), total)
		groupTime += took
	}
	first := true
	for b.Loop() {
		// The sides take turns going first.
		if first {
			single()
			group()
		} else {
			group()
			single()
		}
		first = !first
	}
	singleRate := float64(n) * float64(b.N) / singleTime.Seconds()
	groupRate := float64(n) * float64(b.N) / groupTime.Seconds()
	b.ReportMetric(singleRate, "single-records/s")
	b.ReportMetric(groupRate, "group-records/s")
	b.ReportMetric(groupRate/singleRate, "ratio")
	b.ReportMetric(float64(n), "records")
}

// BenchmarkGroupModeRestore times a member's first batch after it gains a
// task of 100,000 keys (SLUICE_BENCH_KEYS overrides): the restore of the
// task's state from its changelog alone, and from a local copy (which
// leaves only the changelog's tail, here empty, to read). Each op is one
// new member's first batch; restore-s is the source's own restore time.
func BenchmarkGroupModeRestore(b *testing.B) {
	keys := 100_000
	if v := os.Getenv("SLUICE_BENCH_KEYS"); v != "" {
		var err error
		if keys, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	e := startEOSCluster(b, 1)
	recs := make([]*kgo.Record, keys)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "clicks", Partition: 0, Key: fmt.Appendf(nil, "page-%07d", i), Value: []byte("1")}
	}
	require.NoError(b, e.cl.ProduceSync(context.Background(), recs...).FirstErr())
	ctx := context.Background()
	dir := b.TempDir()
	seed := e.joinCounting(b, "seed", nil, WithStateDir(dir))
	waitMembers(b, "the seed member owning the task", splitEvenly([]string{"clicks"}, 1), seed.m)
	require.NoError(b, seed.ec.RunBatches(ctx, 1))
	got, _ := seed.cnt.snapshot()
	require.Len(b, got, keys)
	require.NoError(b, seed.ec.Close())

	for _, bc := range []struct {
		name string
		opts []Option
	}{{"changelog", nil}, {"local", []Option{WithStateDir(dir)}}} {
		b.Run(bc.name, func(b *testing.B) {
			var restore float64
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				name := "seed" // the local copy is the seed's
				if bc.opts == nil {
					name = fmt.Sprintf("m%d", i)
				}
				c := e.joinCounting(b, name, nil, bc.opts...)
				waitMembers(b, "the new member owning the task", splitEvenly([]string{"clicks"}, 1), c.m)
				b.StartTimer()
				require.NoError(b, c.ec.RunBatches(ctx, 1))
				b.StopTimer()
				got, _ := c.cnt.snapshot()
				require.Len(b, got, keys)
				restore += metricValues(c.n.Metrics())["kafka_changelog_restore_seconds_total"]
				require.NoError(b, c.ec.Close())
				b.StartTimer()
			}
			b.ReportMetric(restore/float64(b.N), "restore-s")
			b.ReportMetric(float64(keys)*float64(b.N)/restore, "keys/s")
		})
	}
}
