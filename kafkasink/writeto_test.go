package kafkasink

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/logtest"
)

// encodeInt encodes n as key k<n>, value <n>, and refuses negative numbers.
func encodeInt(n int) (key, value []byte, err error) {
	if n < 0 {
		return nil, nil, errors.New("negative")
	}
	return []byte("k" + strconv.Itoa(n)), []byte(strconv.Itoa(n)), nil
}

func clusterWith(t *testing.T, topics map[string]int32) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	for name, n := range topics {
		_, err := kadm.NewClient(cl).CreateTopic(bounded(t), n, 1, nil, name)
		require.NoError(t, err)
	}
	return c.ListenAddrs()
}

func bounded(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newEngine(t testing.TB) *engine.Context {
	t.Helper()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithParallelism(2))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// readTopic reads every record of topic (all partitions) up to its current
// end with a plain kgo consumer.
func readTopic(t *testing.T, seeds []string, topic string) []*kgo.Record {
	t.Helper()
	ctx := bounded(t)
	adm, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	require.NoError(t, err)
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		require.NoError(t, fs.Err())
		out = append(out, fs.Records()...)
	}
	return out
}

func TestWriteTo(t *testing.T) {
	for _, tc := range []struct {
		name       string
		deadLetter string
	}{
		{"encode errors skipped", ""},
		{"encode errors to a dead-letter topic", "dead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seeds := clusterWith(t, map[string]int32{"out": 3, "dead": 1})
			c := newEngine(t)
			in := dstream.Queue(c, [][]int{{1, 2, -1, 3}, {}, {4, -5, 6, 7, 8}})
			logs := &logtest.Buffer{}
			cfg := Config{Brokers: seeds, DeadLetterTopic: tc.deadLetter, Logger: slog.New(slog.NewTextHandler(logs, nil))}
			sink, err := WriteTo(in, "out", cfg, encodeInt)
			require.NoError(t, err)
			ctx := bounded(t)

			require.NoError(t, c.RunBatches(ctx, 1))
			// Done means acknowledged: the records are readable at once.
			first := readTopic(t, seeds, "out")
			require.Len(t, first, 3)
			require.NoError(t, c.RunBatches(ctx, 2))

			got := make(map[string]string)
			for _, r := range readTopic(t, seeds, "out") {
				require.Len(t, r.Headers, 1)
				require.Equal(t, BatchTimeHeader, r.Headers[0].Key)
				got[string(r.Key)] = string(r.Value) + "@" + string(r.Headers[0].Value)
			}
			ms := func(k int) string { return strconv.FormatInt(time.Unix(1000+int64(k), 0).UnixMilli(), 10) }
			require.Equal(t, map[string]string{
				"k1": "1@" + ms(1), "k2": "2@" + ms(1), "k3": "3@" + ms(1),
				"k4": "4@" + ms(3), "k6": "6@" + ms(3), "k7": "7@" + ms(3), "k8": "8@" + ms(3),
			}, got)

			require.Equal(t, Stats{Records: 7, DeadLetters: 2, Batches: 3}, sink.Stats())
			require.Contains(t, logs.String(), "failed to encode")
			dead := readTopic(t, seeds, "dead")
			if tc.deadLetter == "" {
				require.Empty(t, dead)
				return
			}
			require.Len(t, dead, 2)
			var deadValues []string
			for _, r := range dead {
				deadValues = append(deadValues, string(r.Value))
				require.Equal(t, ErrorHeader, r.Headers[1].Key)
				require.Equal(t, "negative", string(r.Headers[1].Value))
			}
			require.ElementsMatch(t, []string{"-1", "-5"}, deadValues)
		})
	}
}

func TestWriteToFailsTheBatchWhenRecordsCannotBeWritten(t *testing.T) {
	seeds := clusterWith(t, map[string]int32{"out": 1})
	c := newEngine(t)
	in := dstream.Queue(c, [][]int{{1, 2}})
	// Records bigger than the producer may send are refused by it.
	sink, err := WriteTo(dstream.Map(in, func(n int) int { return n }), "out", Config{Brokers: seeds, ClientOpts: []kgo.Opt{kgo.ProducerBatchMaxBytes(1 << 20)}},
		func(n int) ([]byte, []byte, error) { return nil, make([]byte, 2<<20), nil })
	require.NoError(t, err)
	err = c.RunBatches(bounded(t), 1)
	require.ErrorIs(t, err, kerr.MessageTooLarge)
	require.ErrorContains(t, err, "writing to out failed")
	require.Equal(t, Stats{Failures: 1}, sink.Stats())
}

func TestWriteToRefusesBadConfig(t *testing.T) {
	c := newEngine(t)
	in := dstream.Queue(c, [][]int{{1}})
	for _, tc := range []struct {
		name, topic, want string
		cfg               Config
	}{
		{"empty topic", "", "empty topic", Config{Brokers: []string{"127.0.0.1:1"}}},
		{"no brokers", "out", "no brokers", Config{}},
		{"empty broker", "out", "no brokers", Config{Brokers: []string{""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WriteTo(in, tc.topic, tc.cfg, encodeInt)
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.Panics(t, func() { _, _ = WriteTo[int](in, "out", Config{}, nil) })
}
