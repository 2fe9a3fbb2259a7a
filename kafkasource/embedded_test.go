package kafkasource_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/kafkasource"
)

// startEmbedded starts a broker that the test closes when it ends.
func startEmbedded(t *testing.T, opts ...kafkasource.EmbeddedOption) *kafkasource.Embedded {
	t.Helper()
	e, err := kafkasource.StartEmbedded(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// testCtx is a context that ends with the test or after a generous bound, so
// a broken broker fails the test instead of hanging it.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// produce writes records key-i/value-i, i in [from, to), to topic.
func produce(t *testing.T, addrs []string, topic string, from, to int, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic)}, opts...)...)
	require.NoError(t, err)
	defer cl.Close()
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i), Value: fmt.Appendf(nil, "value-%d", i)})
	}
	require.NoError(t, cl.ProduceSync(testCtx(t), recs...).FirstErr())
}

// consumeAll reads topic from the start until it has want records and
// returns them as key → value. It fails on a duplicate key.
func consumeAll(t *testing.T, addrs []string, topic string, want int) map[string]string {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	require.NoError(t, err)
	defer cl.Close()
	ctx := testCtx(t)
	got := make(map[string]string, want)
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consumed %d of %d records", len(got), want)
		require.NoError(t, fs.Err())
		for r := range fs.RecordsAll() {
			k := string(r.Key)
			_, dup := got[k]
			require.False(t, dup, "record %s read twice", k)
			got[k] = string(r.Value)
		}
	}
	return got
}

// records returns what produce(…, from, to) wrote, as key → value.
func records(from, to int) map[string]string {
	m := make(map[string]string, to-from)
	for i := from; i < to; i++ {
		m[fmt.Sprintf("key-%d", i)] = fmt.Sprintf("value-%d", i)
	}
	return m
}

// logEnd sums the high watermarks of topic's partitions.
func logEnd(e *kafkasource.Embedded, topic string) (n int64) {
	for _, p := range e.Cluster().PartitionInfos(topic) {
		n += p.HighWatermark
	}
	return n
}

func TestEmbeddedProduceConsume(t *testing.T) {
	e := startEmbedded(t, kafkasource.EmbeddedTopic("words", 3), kafkasource.EmbeddedTopic("clicks", 1))
	require.Len(t, e.Addrs(), 1)
	require.True(t, strings.HasPrefix(e.Addrs()[0], "127.0.0.1:"), e.Addrs())

	produce(t, e.Addrs(), "words", 0, 300)
	produce(t, e.Addrs(), "clicks", 0, 5)
	require.Equal(t, records(0, 300), consumeAll(t, e.Addrs(), "words", 300))
	require.Equal(t, records(0, 5), consumeAll(t, e.Addrs(), "clicks", 5))
	require.EqualValues(t, 300, logEnd(e, "words"))
	require.Len(t, e.Cluster().PartitionInfos("words"), 3)
	for _, p := range e.Cluster().PartitionInfos("words") {
		require.Positive(t, p.HighWatermark, "partition %d got no records", p.Partition)
	}
}

func TestEmbeddedRestartWithDataDir(t *testing.T) {
	dir := t.TempDir()

	first, err := kafkasource.StartEmbedded(kafkasource.EmbeddedDataDir(dir), kafkasource.EmbeddedTopic("events", 2))
	require.NoError(t, err)
	produce(t, first.Addrs(), "events", 0, 200)
	require.NoError(t, first.Close())

	t.Run("a restarted broker finds its topic and records", func(t *testing.T) {
		// The same topic option again is a no-op, not an error.
		second := startEmbedded(t, kafkasource.EmbeddedDataDir(dir), kafkasource.EmbeddedTopic("events", 2))
		require.Len(t, second.Cluster().PartitionInfos("events"), 2)
		require.EqualValues(t, 200, logEnd(second, "events"))
		require.Equal(t, records(0, 200), consumeAll(t, second.Addrs(), "events", 200))

		// It appends after what it found.
		produce(t, second.Addrs(), "events", 200, 250)
		require.Equal(t, records(0, 250), consumeAll(t, second.Addrs(), "events", 250))
	})

	t.Run("a restart asking for another partition count fails", func(t *testing.T) {
		_, err := kafkasource.StartEmbedded(kafkasource.EmbeddedDataDir(dir), kafkasource.EmbeddedTopic("events", 4))
		require.ErrorIs(t, err, kafkasource.ErrTopicPartitions)
		require.ErrorContains(t, err, `topic "events" has 2 partitions, not 4`)

		one := t.TempDir()
		b, err := kafkasource.StartEmbedded(kafkasource.EmbeddedDataDir(one), kafkasource.EmbeddedTopic("single", 1))
		require.NoError(t, err)
		require.NoError(t, b.Close())
		_, err = kafkasource.StartEmbedded(kafkasource.EmbeddedDataDir(one), kafkasource.EmbeddedTopic("single", 2))
		require.ErrorContains(t, err, `topic "single" has 1 partition, not 2`)
	})

	t.Run("sync writes keep the records too", func(t *testing.T) {
		third := startEmbedded(t, kafkasource.EmbeddedDataDir(dir), kafkasource.EmbeddedSyncWrites())
		produce(t, third.Addrs(), "events", 250, 260)
		require.EqualValues(t, 260, logEnd(third, "events"))
	})
}

func TestEmbeddedCreateTopic(t *testing.T) {
	e := startEmbedded(t, kafkasource.EmbeddedTopic("seeded", 2))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name       string
		ctx        context.Context
		topic      string
		partitions int32
		wantErr    error // nil: success
		wantParts  int
	}{
		{name: "new topic", ctx: t.Context(), topic: "fresh", partitions: 5, wantParts: 5},
		{name: "existing topic, same count", ctx: t.Context(), topic: "seeded", partitions: 2, wantParts: 2},
		{name: "existing topic, other count", ctx: t.Context(), topic: "seeded", partitions: 3, wantErr: kafkasource.ErrTopicPartitions, wantParts: 2},
		{name: "empty name", ctx: t.Context(), topic: "", partitions: 1, wantErr: kafkasource.ErrEmbeddedOption},
		{name: "no partitions", ctx: t.Context(), topic: "none", partitions: 0, wantErr: kafkasource.ErrEmbeddedOption},
		{name: "canceled context", ctx: canceled, topic: "late", partitions: 1, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.CreateTopic(tt.ctx, tt.topic, tt.partitions)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			require.Len(t, e.Cluster().PartitionInfos(tt.topic), tt.wantParts)
		})
	}

	t.Run("twice in a row", func(t *testing.T) {
		require.NoError(t, e.CreateTopic(t.Context(), "twice", 3))
		require.NoError(t, e.CreateTopic(t.Context(), "twice", 3))
		require.Len(t, e.Cluster().PartitionInfos("twice"), 3)
	})
}

func TestStartEmbeddedRejects(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()

	tests := []struct {
		name    string
		opts    []kafkasource.EmbeddedOption
		wantErr error // nil: any error
		wantMsg string
	}{
		{"listen address without port", []kafkasource.EmbeddedOption{kafkasource.EmbeddedListen("127.0.0.1")}, kafkasource.ErrEmbeddedOption, "not host:port"},
		{"topic without name", []kafkasource.EmbeddedOption{kafkasource.EmbeddedTopic("", 1)}, kafkasource.ErrEmbeddedOption, "name the topic"},
		{"topic without partitions", []kafkasource.EmbeddedOption{kafkasource.EmbeddedTopic("t", 0)}, kafkasource.ErrEmbeddedOption, "at least 1"},
		{"sync writes without data dir", []kafkasource.EmbeddedOption{kafkasource.EmbeddedSyncWrites()}, kafkasource.ErrEmbeddedOption, "need a data dir"},
		{"port in use", []kafkasource.EmbeddedOption{kafkasource.EmbeddedListen(taken.Addr().String())}, nil, "cannot listen on " + taken.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := kafkasource.StartEmbedded(tt.opts...)
			require.Nil(t, e)
			require.Error(t, err)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			}
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestEmbeddedListen(t *testing.T) {
	e := startEmbedded(t, kafkasource.EmbeddedListen("localhost:0"), kafkasource.EmbeddedTopic("t", 1))
	host, port, err := net.SplitHostPort(e.Addrs()[0])
	require.NoError(t, err)
	require.True(t, net.ParseIP(host).IsLoopback(), host)
	require.NotEqual(t, "0", port)
	produce(t, e.Addrs(), "t", 0, 3)
	require.Equal(t, records(0, 3), consumeAll(t, e.Addrs(), "t", 3))
}

func TestEmbeddedClose(t *testing.T) {
	e, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("t", 1))
	require.NoError(t, err)
	addr := e.Addrs()[0]
	require.NoError(t, e.Close())
	require.NoError(t, e.Close(), "Close is idempotent")
	require.ErrorIs(t, e.CreateTopic(t.Context(), "t2", 1), kafkasource.ErrEmbeddedClosed)

	// Nothing listens any more.
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err)
}

func TestEmbeddedCloseReportsFailedSave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	e, err := kafkasource.StartEmbedded(kafkasource.EmbeddedDataDir(dir), kafkasource.EmbeddedTopic("t", 1))
	require.NoError(t, err)
	produce(t, e.Addrs(), "t", 0, 5)
	// Put a file where the data dir was: the final save cannot happen.
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, []byte("not a dir"), 0o600))

	err = e.Close()
	require.ErrorIs(t, err, kafkasource.ErrEmbeddedPersist)
	require.ErrorContains(t, err, "data dir")
	require.Equal(t, err, e.Close(), "later calls return the first result")
}

func TestEmbeddedLogger(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e, err := kafkasource.StartEmbedded(kafkasource.EmbeddedLogger(logger), kafkasource.EmbeddedTopic("logged", 2))
	require.NoError(t, err)
	require.NoError(t, e.Close())
	out := buf.String()
	require.Contains(t, out, "embedded Kafka broker created topic")
	require.Contains(t, out, "topic=logged")
	require.Contains(t, out, "embedded Kafka broker started")
	require.Contains(t, out, "embedded Kafka broker stopped")
}

// syncBuffer is a bytes.Buffer safe for the broker's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestEmbeddedClusterHooks(t *testing.T) {
	e := startEmbedded(t, kafkasource.EmbeddedTopic("hooked", 1))
	// Answer the first produce request with a retriable error; the
	// idempotent kgo producer retries it without writing anything twice.
	failed := make(chan struct{})
	e.Cluster().ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		close(failed)
		return resp, nil, true
	})
	// The retry waits for fresh metadata; let it be fresh sooner than kgo's
	// default minimum age of 5 s.
	produce(t, e.Addrs(), "hooked", 0, 10, kgo.MetadataMinAge(10*time.Millisecond))
	select {
	case <-failed:
	default:
		t.Fatal("the control hook never saw a produce request")
	}
	require.Equal(t, records(0, 10), consumeAll(t, e.Addrs(), "hooked", 10))
	require.EqualValues(t, 10, logEnd(e, "hooked"))
}

// kcatMetadata is the part of `kcat -L -J` output the interop test reads.
type kcatMetadata struct {
	Brokers []struct {
		Name string `json:"name"`
	} `json:"brokers"`
	Topics []struct {
		Topic      string `json:"topic"`
		Partitions []struct {
			Partition int32 `json:"partition"`
		} `json:"partitions"`
	} `json:"topics"`
}

func TestKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed: apt-get install kcat")
	}
	const topic, partitions, n = "interop", 4, 1000
	e := startEmbedded(t, kafkasource.EmbeddedTopic(topic, partitions))
	broker := e.Addrs()[0]

	t.Run("kcat -L sees the topic", func(t *testing.T) {
		out, err := exec.CommandContext(testCtx(t), kcat, "-b", broker, "-L", "-J", "-t", topic).Output()
		require.NoError(t, err, "kcat -L: %s", exitStderr(err))
		var md kcatMetadata
		require.NoError(t, json.Unmarshal(out, &md), "kcat -L -J printed %s", out)
		require.Len(t, md.Brokers, 1)
		require.Equal(t, broker, md.Brokers[0].Name)
		require.Len(t, md.Topics, 1)
		require.Equal(t, topic, md.Topics[0].Topic)
		require.Len(t, md.Topics[0].Partitions, partitions)
	})

	t.Run("kcat -P produces 1000 keyed messages that kgo reads exactly", func(t *testing.T) {
		var in strings.Builder
		for i := range n {
			fmt.Fprintf(&in, "key-%d:value-%d\n", i, i)
		}
		cmd := exec.CommandContext(testCtx(t), kcat, "-b", broker, "-P", "-t", topic, "-K", ":",
			"-X", "acks=all", "-X", "linger.ms=5")
		cmd.Stdin = strings.NewReader(in.String())
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "kcat -P: %s", out)

		require.EqualValues(t, n, logEnd(e, topic), "the log holds each message once")
		require.Equal(t, records(0, n), consumeAll(t, e.Addrs(), topic, n))
		for _, p := range e.Cluster().PartitionInfos(topic) {
			require.Positive(t, p.HighWatermark, "kcat's partitioner left partition %d empty", p.Partition)
		}
	})
}

// exitStderr returns what a failed exec.Cmd.Output printed on stderr.
func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

func ExampleStartEmbedded() {
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("greetings", 1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()

	ctx := context.Background()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(broker.Addrs()...),
		kgo.DefaultProduceTopic("greetings"),
		kgo.ConsumeTopics("greetings"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()

	for i := range 3 {
		if err := cl.ProduceSync(ctx, kgo.StringRecord("hello "+strconv.Itoa(i))).FirstErr(); err != nil {
			fmt.Println(err)
			return
		}
	}
	for read := 0; read < 3; {
		for r := range cl.PollFetches(ctx).RecordsAll() {
			fmt.Printf("offset %d: %s\n", r.Offset, r.Value)
			read++
		}
	}
	// Output:
	// offset 0: hello 0
	// offset 1: hello 1
	// offset 2: hello 2
}
