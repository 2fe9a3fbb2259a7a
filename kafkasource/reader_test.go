package kafkasource

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/engine"
)

// txProducer returns a transactional producer on b's broker.
func (b *testBroker) txProducer(t *testing.T, id string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.e.Addrs()...), kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// inTxn produces values to partition 0 of topic in one transaction that
// ends as end says; end nil leaves it open.
func inTxn(t *testing.T, cl *kgo.Client, topic string, end *kgo.TransactionEndTry, values ...string) {
	t.Helper()
	ctx := bounded(t)
	require.NoError(t, cl.BeginTransaction())
	for _, v := range values {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr())
	}
	if end != nil {
		require.NoError(t, cl.EndTransaction(ctx, *end))
	}
}

func values(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func TestReadCommittedHidesAbortedAndOpenTransactions(t *testing.T) {
	abort, commit := kgo.TryAbort, kgo.TryCommit
	for _, tc := range []struct {
		name string
		cap  int64 // records per partition per batch; 0 is none
	}{
		{"whole ranges", 0},
		{"ranges cut inside transactions", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, map[string]int32{"tx": 1})
			tx := b.txProducer(t, "writer")
			for _, v := range []string{"plain-0", "plain-1"} {
				b.produceValue(t, "tx", 0, v)
			}
			inTxn(t, tx, "tx", &abort, "aborted-0", "aborted-1", "aborted-2")
			inTxn(t, tx, "tx", &commit, "committed-0", "committed-1")
			inTxn(t, tx, "tx", &abort, "aborted-3")
			b.produceValue(t, "tx", 0, "plain-2")
			inTxn(t, tx, "tx", nil, "open-0", "open-1") // still open
			b.produceValue(t, "tx", 0, "plain-3")       // after the open transaction: not stable yet

			c := newEngine(t)
			s := b.stream(t, c, []string{"tx"}, WithRateLimits(RateLimits{MaxRatePerPartition: tc.cap}))
			w := watch(s)
			ctx := bounded(t)
			drain := func() {
				for {
					require.NoError(t, c.RunBatches(ctx, 1))
					if r, _ := w.last(); r[0].Count() == 0 {
						return
					}
				}
			}
			drain()
			require.Equal(t, []string{"plain-0", "plain-1", "committed-0", "committed-1", "plain-2"}, values(w.all()))
			for i := range w.ranges {
				requireRangesInside(t, w.ranges[i], w.batches[i])
			}
			st, _ := StatsOf(s)
			stable := st.Positions[TopicPartition{"tx", 0}]

			require.NoError(t, tx.EndTransaction(ctx, kgo.TryCommit))
			drain()
			require.Equal(t, []string{"plain-0", "plain-1", "committed-0", "committed-1", "plain-2", "open-0", "open-1", "plain-3"}, values(w.all()))
			st, _ = StatsOf(s)
			require.Greater(t, st.Positions[TopicPartition{"tx", 0}], stable, "the stream waited at the last stable offset")
		})
	}
}

// requireRangesInside checks that every record of part i lies in range i;
// with transactions and compaction a range holds fewer records than offsets.
func requireRangesInside(t testing.TB, ranges []OffsetRange, parts [][]Record) {
	t.Helper()
	require.Len(t, parts, len(ranges))
	for i, r := range ranges {
		for _, rec := range parts[i] {
			require.True(t, rec.Offset >= r.From && rec.Offset < r.Until, "offset %d outside %v", rec.Offset, r)
		}
	}
}

func TestCompactionGaps(t *testing.T) {
	for _, cap := range []int64{0, 3} {
		t.Run(fmt.Sprintf("cap %d", cap), func(t *testing.T) {
			b := startBroker(t, nil)
			require.NoError(t, b.e.Cluster().CreateTopic("compacted", 1, map[string]string{"cleanup.policy": "compact"}))
			b.refresh(t)
			for round := range 3 {
				for k := range 5 {
					if (k+round)%2 == 0 { // uneven rewrites
						require.NoError(t, b.cl.ProduceSync(bounded(t), &kgo.Record{Topic: "compacted", Key: fmt.Appendf(nil, "k%d", k), Value: fmt.Appendf(nil, "v%d-%d", k, round)}).FirstErr())
					}
				}
			}
			b.e.Cluster().Compact()
			truth := readAllWithKgo(t, b, "compacted")
			end := truth[len(truth)-1].Offset + 1
			require.Less(t, int64(len(truth)), end, "compaction left gaps")

			c := newEngine(t)
			w := watch(b.stream(t, c, []string{"compacted"}, WithRateLimits(RateLimits{MaxRatePerPartition: cap})))
			for {
				require.NoError(t, c.RunBatches(bounded(t), 1))
				if r, _ := w.last(); r[0].Until == end {
					break
				}
			}
			got := w.all()
			require.Len(t, got, len(truth))
			for i, r := range got {
				require.Equal(t, truth[i].Offset, r.Offset)
				require.Equal(t, string(truth[i].Key), string(r.Key))
				require.Equal(t, string(truth[i].Value), string(r.Value))
			}
			for i := range w.ranges {
				requireRangesInside(t, w.ranges[i], w.batches[i])
			}
		})
	}
}

// readAllWithKgo reads a one-partition topic to its end with a plain kgo
// consumer: the truth the stream is compared with.
func readAllWithKgo(t *testing.T, b *testBroker, topic string) []*kgo.Record {
	t.Helper()
	ctx := bounded(t)
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	end, _ := ends.Lookup(topic, 0)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.e.Addrs()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cl.Close()
	var out []*kgo.Record
	for len(out) == 0 || out[len(out)-1].Offset < end.Offset-1 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, fs.Err())
		out = append(out, fs.Records()...)
	}
	return out
}

func TestBrokerTroubleIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(c *kfake.Cluster)
	}{
		{"fetches refused as not leader", func(c *kfake.Cluster) {
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.NotLeaderForPartition, Count: 3})
		}},
		{"fetch connections dropped", func(c *kfake.Cluster) { dropConnections(c, kmsg.Fetch, 3) }},
		{"offset listings dropped", func(c *kfake.Cluster) { dropConnections(c, kmsg.ListOffsets, 3) }},
		{"offset listings refused, no leader", func(c *kfake.Cluster) {
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Err: kerr.LeaderNotAvailable, Count: 2})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, map[string]int32{"flaky": 3})
			for p := range int32(3) {
				b.produce(t, "flaky", p, 0, 20)
			}
			c := newEngine(t)
			s := b.stream(t, c, []string{"flaky"}, WithRateLimits(RateLimits{MaxRatePerPartition: 15}))
			w := watch(s)
			ctx := bounded(t)
			require.NoError(t, c.RunBatches(ctx, 1))
			// Records in record batches of their own, which the answers
			// kept from the first batch do not hold: they are fetched.
			for p := range int32(3) {
				b.produce(t, "flaky", p, 20, 40)
			}
			tc.inject(b.e.Cluster())
			require.NoError(t, c.RunBatches(ctx, 3))
			requireExactlyOnce(t, w.all(), map[TopicPartition]int{{"flaky", 0}: 40, {"flaky", 1}: 40, {"flaky", 2}: 40})
			st, _ := StatsOf(s)
			require.Positive(t, st.Retries, "the trouble was met and retried")
		})
	}
}

// dropConnections makes the broker close the connection of the next n
// requests of key, as a broker going away does.
func dropConnections(c *kfake.Cluster, key kmsg.Key, n int32) {
	var hits atomic.Int32
	c.ControlKey(key.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		if hits.Add(1) > n {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		return nil, errors.New("broker down"), true
	})
}

func TestBrokerTroubleBeyondRetryTimeoutFailsTheBatch(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		key        kmsg.Key
	}{
		{"while reading", "fetching down[0] at offset 0 at broker 0 (", kmsg.Fetch},
		{"while planning", "listing partitions and offsets at broker 0 (", kmsg.ListOffsets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, map[string]int32{"down": 1})
			b.produce(t, "down", 0, 0, 5)
			c := newEngine(t)
			watch(b.stream(t, c, []string{"down"}, WithRetryTimeout(300*time.Millisecond)))
			b.e.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{tc.key}, Err: kerr.NotLeaderForPartition, Count: -1})
			start := time.Now()
			err := c.RunBatches(bounded(t), 1)
			require.ErrorIs(t, err, ErrRetryTimeout)
			require.ErrorIs(t, err, kerr.NotLeaderForPartition)
			require.Contains(t, err.Error(), tc.want+b.e.Addrs()[0]+")")
			require.Contains(t, err.Error(), "raise WithRetryTimeout")
			var rte *RetryTimeoutError
			require.ErrorAs(t, err, &rte)
			require.NotContains(t, rte.Problem(), "WithRetryTimeout", "the problem alone carries no advice")
			require.Less(t, time.Since(start), 5*time.Second, "gave up after about the retry timeout")
		})
	}
}

func TestFinalBrokerErrorFailsTheBatchAtOnce(t *testing.T) {
	// An error no retry fixes fails the batch without waiting out the
	// retry timeout, and the message still says what failed where. The
	// other partition's reads, retrying, are cancelled.
	for _, tc := range []struct {
		name, want string
		key        kmsg.Key
	}{
		{"while reading", "fetching final[0] at offset 0 at broker 0 (", kmsg.Fetch},
		{"while planning", "listing partitions and offsets at broker 0 (", kmsg.ListOffsets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, map[string]int32{"final": 2})
			b.produce(t, "final", 0, 0, 5)
			b.produce(t, "final", 1, 0, 5)
			c := newEngine(t)
			watch(b.stream(t, c, []string{"final"}, WithRetryTimeout(10*time.Second)))
			b.e.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{tc.key}, Partitions: []int32{0}, Err: kerr.TopicAuthorizationFailed, Count: -1})
			b.e.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Partitions: []int32{1}, Err: kerr.NotLeaderForPartition, Count: -1})
			start := time.Now()
			err := c.RunBatches(bounded(t), 1)
			require.ErrorIs(t, err, kerr.TopicAuthorizationFailed)
			require.NotErrorIs(t, err, ErrRetryTimeout)
			require.Contains(t, err.Error(), tc.want+b.e.Addrs()[0]+")")
			var be *engine.BatchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, DefaultName, be.Op, "the error names the source")
			require.Less(t, time.Since(start), 5*time.Second, "failed before the retry timeout")
		})
	}
}

// TestSmallRangesShareOneFetchThroughOneClient reads a batch of three
// small ranges and two empty batches: the small ranges are read ahead in
// one fetch request, empty batches send none.
func TestSmallRangesShareOneFetchThroughOneClient(t *testing.T) {
	b := startBroker(t, map[string]int32{"few": 4})
	for p := range int32(3) {
		b.produce(t, "few", p, 0, 50)
	}
	c := newEngine(t)
	s := b.stream(t, c, []string{"few"})
	w := watch(s)
	require.NoError(t, c.RunBatches(bounded(t), 3))
	requireExactlyOnce(t, w.all(), map[TopicPartition]int{{"few", 0}: 50, {"few", 1}: 50, {"few", 2}: 50})
	st, _ := StatsOf(s)
	require.Equal(t, int64(1), st.Fetches, "one fetch for the batch's small ranges, none for empty batches")
}

// TestBigRangesAreFetchedByTheirTasks reads ranges too big to read ahead:
// each range is fetched by its own task, every record once.
func TestBigRangesAreFetchedByTheirTasks(t *testing.T) {
	b := startBroker(t, map[string]int32{"big": 2})
	for p := range int32(2) {
		b.produce(t, "big", p, 0, 5000) // 5000 × 256 bytes expected at first: over the read-ahead bound
	}
	c := newEngine(t)
	s := b.stream(t, c, []string{"big"})
	w := watch(s)
	require.NoError(t, c.RunBatches(bounded(t), 1))
	requireExactlyOnce(t, w.all(), map[TopicPartition]int{{"big", 0}: 5000, {"big", 1}: 5000})
	st, _ := StatsOf(s)
	require.Equal(t, int64(2), st.Fetches, "one fetch per big range, none read ahead")
}

// batchSpec describes one record batch for encodeBatch.
type batchSpec struct {
	base       int64
	records    []string // values; keys are "k"+value
	producer   int64
	txn        bool
	control    bool // one control record; abort when marker == 0
	marker     uint16
	logAppend  bool
	compressed kgo.CompressionCodecType
}

// encodeBatch writes a record batch v2 as a broker stores it.
func encodeBatch(t testing.TB, s batchSpec) []byte {
	var recs []byte
	n := len(s.records)
	if s.control {
		n = 1
	}
	for i := range n {
		var body []byte
		body = append(body, 0)
		body = binary.AppendVarint(body, int64(i)) // timestamp delta
		body = binary.AppendVarint(body, int64(i)) // offset delta
		var key, value []byte
		if s.control {
			key = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), s.marker)
			value = []byte{0, 0, 0, 0, 0, 0}
		} else {
			key, value = []byte("k"+s.records[i]), []byte(s.records[i])
		}
		body = binary.AppendVarint(body, int64(len(key)))
		body = append(body, key...)
		body = binary.AppendVarint(body, int64(len(value)))
		body = append(body, value...)
		body = binary.AppendVarint(body, 1) // one header
		body = binary.AppendVarint(body, 1)
		body = append(body, 'h')
		body = binary.AppendVarint(body, 2)
		body = append(body, "hv"...)
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	attrs := uint16(s.compressed)
	if s.compressed != 0 {
		codec := kgo.SnappyCompression()
		if s.compressed == kgo.CodecZstd {
			codec = kgo.ZstdCompression()
		}
		comp, err := kgo.DefaultCompressor(codec)
		require.NoError(t, err)
		var buf bytes.Buffer
		out, used := comp.Compress(&buf, recs)
		require.Equal(t, s.compressed, used)
		recs = append([]byte(nil), out...)
	}
	if s.logAppend {
		attrs |= attrLogAppendTime
	}
	if s.txn {
		attrs |= attrTransactional
	}
	if s.control {
		attrs |= attrControl
	}
	b := make([]byte, rbHeaderBytes)
	binary.BigEndian.PutUint64(b, uint64(s.base))
	b[rbMagic] = 2
	binary.BigEndian.PutUint16(b[rbAttributes:], attrs)
	binary.BigEndian.PutUint32(b[rbLastDelta:], uint32(n-1))
	binary.BigEndian.PutUint64(b[rbFirstTime:], 1_000)
	binary.BigEndian.PutUint64(b[rbMaxTime:], 9_000)
	binary.BigEndian.PutUint64(b[rbProducerID:], uint64(s.producer))
	binary.BigEndian.PutUint32(b[rbNumRecords:], uint32(n))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[rbLength:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[rbCRC:], crc32.Checksum(b[rbAttributes:], castagnoli))
	return b
}

func TestDecodeBatches(t *testing.T) {
	plain := func(base int64, vs ...string) batchSpec { return batchSpec{base: base, records: vs} }
	txn := func(base, pid int64, vs ...string) batchSpec {
		return batchSpec{base: base, records: vs, producer: pid, txn: true}
	}
	marker := func(base, pid int64, commit bool) batchSpec {
		m := uint16(0)
		if commit {
			m = 1
		}
		return batchSpec{base: base, producer: pid, txn: true, control: true, marker: m}
	}
	type abort struct{ pid, first int64 }
	for _, tc := range []struct {
		name        string
		batches     []batchSpec
		aborted     []abort
		from, until int64
		want        []string
		wantNext    int64
	}{
		{"whole batches", []batchSpec{plain(0, "a", "b"), plain(2, "c")}, nil, 0, 10, []string{"a", "b", "c"}, 3},
		{"from inside a batch", []batchSpec{plain(0, "a", "b", "c"), plain(3, "d")}, nil, 1, 10, []string{"b", "c", "d"}, 4},
		{"stops at until inside a batch", []batchSpec{plain(0, "a", "b", "c"), plain(3, "d")}, nil, 0, 2, []string{"a", "b"}, 3},
		{"stops at until between batches", []batchSpec{plain(0, "a"), plain(1, "b"), plain(2, "c")}, nil, 0, 2, []string{"a", "b"}, 2},
		{"batches before from are skipped", []batchSpec{plain(0, "a"), plain(1, "b")}, nil, 1, 5, []string{"b"}, 2},
		{"aborted transaction hidden, marker skipped", []batchSpec{txn(0, 7, "x", "y"), marker(2, 7, false), plain(3, "a")}, []abort{{7, 0}}, 0, 10, []string{"a"}, 4},
		{"committed transaction kept", []batchSpec{txn(0, 7, "x", "y"), marker(2, 7, true), plain(3, "a")}, []abort{{8, 0}}, 0, 10, []string{"x", "y", "a"}, 4},
		{"second transaction of an aborting producer kept", []batchSpec{txn(0, 7, "x"), marker(1, 7, false), txn(2, 7, "y"), marker(3, 7, true)}, []abort{{7, 0}}, 0, 10, []string{"y"}, 4},
		{"interleaved producers", []batchSpec{txn(0, 7, "x"), txn(1, 8, "p"), marker(2, 7, false), marker(3, 8, true)}, []abort{{7, 0}}, 0, 10, []string{"p"}, 4},
		{"snappy", []batchSpec{{base: 0, records: []string{"a", "b"}, compressed: kgo.CodecSnappy}}, nil, 0, 10, []string{"a", "b"}, 2},
		{"zstd", []batchSpec{{base: 5, records: []string{"a", "b"}, compressed: kgo.CodecZstd}}, nil, 6, 10, []string{"b"}, 7},
		{"compaction gap", []batchSpec{plain(0, "a"), plain(4, "b")}, nil, 0, 10, []string{"a", "b"}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &kmsg.FetchResponseTopicPartition{}
			for _, b := range tc.batches {
				fp.RecordBatches = append(fp.RecordBatches, encodeBatch(t, b)...)
			}
			for _, a := range tc.aborted {
				fp.AbortedTransactions = append(fp.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.pid, FirstOffset: a.first})
			}
			recs, next, used, err := decodeBatches(nil, fp, "t", 3, tc.from, tc.until, kgo.DefaultDecompressor())
			require.NoError(t, err)
			require.Equal(t, tc.wantNext, next)
			require.Positive(t, used)
			require.Equal(t, tc.want, values(recs))
			for _, r := range recs {
				require.Equal(t, "t", r.Topic)
				require.Equal(t, int32(3), r.Partition)
				require.Equal(t, "k"+string(r.Value), string(r.Key))
				require.Equal(t, []Header{{Key: "h", Value: []byte("hv")}}, r.Headers)
			}
		})
	}
}

func TestDecodeBatchesEdges(t *testing.T) {
	a := encodeBatch(t, batchSpec{base: 0, records: []string{"a", "b"}})
	b := encodeBatch(t, batchSpec{base: 2, records: []string{"c"}})
	dec := kgo.DefaultDecompressor()
	decode := func(buf []byte) ([]Record, int64, error) {
		recs, next, _, err := decodeBatches(nil, &kmsg.FetchResponseTopicPartition{RecordBatches: buf}, "t", 0, 0, 100, dec)
		return recs, next, err
	}
	t.Run("a partial batch at the end waits for the next fetch", func(t *testing.T) {
		recs, next, err := decode(append(slicesClone(a), b[:len(b)-3]...))
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b"}, values(recs))
		require.Equal(t, int64(2), next)
	})
	t.Run("a fragment of 17 bytes or fewer after the last batch is ignored", func(t *testing.T) {
		// kgo's parser needs more than the 17 bytes up to the magic byte
		// to look at a batch; brokers cutting at the size limit leave such
		// fragments, whatever bytes they hold.
		for n := 1; n <= 17; n++ {
			frag := slicesClone(b[:n])
			if n == 17 {
				frag[rbLength+3] = 5 // a length that fits the fragment
			}
			recs, next, err := decode(append(slicesClone(a), frag...))
			require.NoError(t, err, "%d trailing bytes", n)
			require.Equal(t, []string{"a", "b"}, values(recs), "%d trailing bytes", n)
			require.Equal(t, int64(2), next, "%d trailing bytes", n)
		}
	})
	t.Run("a record not past the one before it is skipped", func(t *testing.T) {
		// Batches that overlap (the second starts at an offset the first
		// holds) give each offset once, as kgo does.
		overlap := encodeBatch(t, batchSpec{base: 1, records: []string{"x", "c"}})
		recs, next, err := decode(append(slicesClone(a), overlap...))
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b", "c"}, values(recs))
		require.Equal(t, []int64{0, 1, 2}, []int64{recs[0].Offset, recs[1].Offset, recs[2].Offset})
		require.Equal(t, int64(3), next)
	})
	t.Run("a huge record count does not make it allocate for it", func(t *testing.T) {
		// The count is read before the CRC is checked: a corrupt one must
		// cost no more memory than the batch's bytes could hold.
		bad := slicesClone(a)
		binary.BigEndian.PutUint32(bad[rbNumRecords:], 1<<30)
		require.LessOrEqual(t, countRecords(bad, 0, 1<<62), len(bad)/minRecordBytes)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := decode(bad)
		runtime.ReadMemStats(&after)
		require.ErrorContains(t, err, "fails its CRC")
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10), "bytes allocated to decode a %d-byte batch", len(bad))
	})
	t.Run("a CRC mismatch is an error", func(t *testing.T) {
		bad := slicesClone(a)
		bad[len(bad)-1] ^= 0xff
		_, _, err := decode(bad)
		require.ErrorContains(t, err, "fails its CRC")
	})
	t.Run("older message formats go to kgo's parser", func(t *testing.T) {
		old := slicesClone(a)
		old[rbMagic] = 1
		_, _, err := decode(old)
		require.ErrorIs(t, err, errLegacyFormat)
	})
	t.Run("timestamps", func(t *testing.T) {
		recs, _, err := decode(a)
		require.NoError(t, err)
		require.Equal(t, []time.Time{time.UnixMilli(1000), time.UnixMilli(1001)}, []time.Time{recs[0].Timestamp, recs[1].Timestamp}, "create time: first + delta")
		la := encodeBatch(t, batchSpec{base: 0, records: []string{"a", "b"}, logAppend: true})
		recs, _, err = decode(la)
		require.NoError(t, err)
		require.Equal(t, time.UnixMilli(9000), recs[1].Timestamp, "log append time: the batch's max timestamp")
	})
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// FuzzDecodeBatches feeds arbitrary fetch bytes to the decoder: it must not
// panic, and whatever it returns must lie in the asked range.
func FuzzDecodeBatches(f *testing.F) {
	f.Add(encodeBatch(f, batchSpec{base: 0, records: []string{"a", "b"}}), int64(0), int64(10))
	f.Add(append(encodeBatch(f, batchSpec{base: 0, records: []string{"x"}, producer: 7, txn: true}),
		encodeBatch(f, batchSpec{base: 1, producer: 7, txn: true, control: true})...), int64(0), int64(5))
	f.Add(encodeBatch(f, batchSpec{base: 3, records: []string{"a", "b"}, compressed: kgo.CodecSnappy}), int64(4), int64(5))
	dec := kgo.DefaultDecompressor()
	f.Fuzz(func(t *testing.T, buf []byte, from, until int64) {
		if from < 0 || until < from {
			return
		}
		fp := &kmsg.FetchResponseTopicPartition{RecordBatches: buf,
			AbortedTransactions: []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 7, FirstOffset: 0}}}
		recs, next, used, err := decodeBatches(nil, fp, "t", 0, from, until, dec)
		require.LessOrEqual(t, used, len(buf))
		if err != nil {
			return
		}
		require.GreaterOrEqual(t, next, from)
		for _, r := range recs {
			require.True(t, r.Offset >= from && r.Offset < until, "offset %d outside [%d, %d)", r.Offset, from, until)
		}
	})
}

// TestSmallBatchesShareTheAnswerThatHoldsTheirRecords cuts one record batch
// into ten batches of the stream: the first fetch's answer holds them all,
// so the next nine batches read from it without fetching, every record once.
func TestSmallBatchesShareTheAnswerThatHoldsTheirRecords(t *testing.T) {
	b := startBroker(t, map[string]int32{"one": 2})
	for p := range int32(2) {
		b.produce(t, "one", p, 0, 100) // one record batch a partition
	}
	c := newEngine(t)
	s := b.stream(t, c, []string{"one"}, WithRateLimits(RateLimits{MaxRatePerPartition: 10}))
	w := watch(s)
	require.NoError(t, c.RunBatches(bounded(t), 10))
	requireExactlyOnce(t, w.all(), map[TopicPartition]int{{"one", 0}: 100, {"one", 1}: 100})
	for i := range w.ranges {
		requireRangesInside(t, w.ranges[i], w.batches[i])
	}
	st, _ := StatsOf(s)
	require.Equal(t, int64(1), st.Fetches, "the first batch's answer serves all ten")
}
