package kafkasource

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
)

// encodeInt encodes n as key k<n>, value <n>, and refuses negative numbers.
func encodeInt(n int) (key, value []byte, err error) {
	if n < 0 {
		return nil, nil, errors.New("negative")
	}
	return []byte("k" + strconv.Itoa(n)), []byte(strconv.Itoa(n)), nil
}

// readTopic reads every record of topic (all partitions) up to its current
// end with a plain kgo consumer.
func readTopic(t *testing.T, b *testBroker, topic string) []*kgo.Record {
	t.Helper()
	ctx := bounded(t)
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.e.Addrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
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
			b := startBroker(t, map[string]int32{"out": 3, "dead": 1})
			c := newEngine(t)
			in := dstream.Queue(c, [][]int{{1, 2, -1, 3}, {}, {4, -5, 6, 7, 8}})
			opts := []SinkOption{SinkBrokers(b.e.Addrs()...)}
			if tc.deadLetter != "" {
				opts = append(opts, SinkDeadLetterTopic(tc.deadLetter))
			}
			logs := &logCapture{}
			opts = append(opts, SinkLogger(logs.logger()))
			sink, err := WriteTo(in, "out", encodeInt, opts...)
			require.NoError(t, err)
			ctx := bounded(t)

			require.NoError(t, c.RunBatches(ctx, 1))
			// Done means acknowledged: the records are readable at once.
			first := readTopic(t, b, "out")
			require.Len(t, first, 3)
			require.NoError(t, c.RunBatches(ctx, 2))

			got := make(map[string]string)
			for _, r := range readTopic(t, b, "out") {
				require.Len(t, r.Headers, 1)
				require.Equal(t, BatchTimeHeader, r.Headers[0].Key)
				got[string(r.Key)] = string(r.Value) + "@" + string(r.Headers[0].Value)
			}
			ms := func(k int) string { return strconv.FormatInt(time.Unix(1000+int64(k), 0).UnixMilli(), 10) }
			require.Equal(t, map[string]string{
				"k1": "1@" + ms(1), "k2": "2@" + ms(1), "k3": "3@" + ms(1),
				"k4": "4@" + ms(3), "k6": "6@" + ms(3), "k7": "7@" + ms(3), "k8": "8@" + ms(3),
			}, got)

			st := sink.Stats()
			require.Equal(t, int64(7), st.Written)
			require.Equal(t, int64(2), st.EncodeErrors)
			require.Contains(t, logs.String(), "failed to encode")
			dead := readTopic(t, b, "dead")
			if tc.deadLetter == "" {
				require.Empty(t, dead)
				require.Zero(t, st.DeadLettered)
				return
			}
			require.Equal(t, int64(2), st.DeadLettered)
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
	b := startBroker(t, map[string]int32{"out": 1})
	c := newEngine(t)
	in := dstream.Queue(c, [][]int{{1, 2}})
	// Records bigger than the producer may send are refused by it.
	_, err := WriteTo(dstream.Map(in, func(n int) int { return n }), "out", func(n int) ([]byte, []byte, error) {
		return nil, make([]byte, 2<<20), nil
	}, SinkBrokers(b.e.Addrs()...), SinkClientOpts(kgo.ProducerBatchMaxBytes(1<<20)))
	require.NoError(t, err)
	err = c.RunBatches(bounded(t), 1)
	require.ErrorIs(t, err, kerr.MessageTooLarge)
	require.ErrorContains(t, err, "writing to out failed")
}

func TestWriteToOptions(t *testing.T) {
	c := newEngine(t)
	in := dstream.Queue(c, [][]int{{1}})
	for _, tc := range []struct {
		name  string
		topic string
		opts  []SinkOption
	}{
		{"empty topic", "", nil},
		{"no brokers", "out", []SinkOption{SinkBrokers()}},
		{"empty dead-letter topic", "out", []SinkOption{SinkDeadLetterTopic("")}},
		{"nil logger", "out", []SinkOption{SinkLogger(nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WriteTo(in, tc.topic, encodeInt, tc.opts...)
			require.ErrorIs(t, err, ErrOption)
		})
	}
	require.Panics(t, func() { WriteTo[int](in, "out", nil) })
}
