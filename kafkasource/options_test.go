package kafkasource

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestNewDirectStreamRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		topics []string
		opts   []Option
	}{
		{"no topics", nil, nil},
		{"empty topic", []string{""}, nil},
		{"bad regex", []string{"("}, []Option{WithTopicRegex()}},
		{"no brokers", []string{"t"}, []Option{WithBrokers()}},
		{"empty broker", []string{"t"}, []Option{WithBrokers("")}},
		{"empty group", []string{"t"}, []Option{WithGroup("")}},
		{"partition without topic", nil, []Option{WithPartitions(TopicPartition{Partition: 1})}},
		{"negative partition", nil, []Option{WithPartitions(TopicPartition{"t", -1})}},
		{"negative start offset", []string{"t"}, []Option{WithStartOffsets(map[TopicPartition]int64{{"t", 0}: -2})}},
		{"unknown reset policy", []string{"t"}, []Option{WithResetPolicy(ResetPolicy(7))}},
		{"negative max rate", []string{"t"}, []Option{WithRateLimits(RateLimits{MaxRatePerPartition: -1})}},
		{"negative override", []string{"t"}, []Option{WithRateLimits(RateLimits{MaxRateOverrides: map[TopicPartition]int64{{"t", 0}: -1}})}},
		{"NaN initial rate", []string{"t"}, []Option{WithBackpressure(true), WithInitialRate(math.NaN())}},
		{"initial rate without backpressure", []string{"t"}, []Option{WithInitialRate(10)}},
		{"negative PID gain", []string{"t"}, []Option{WithPID(-1, 0.2, 0, 100)}},
		{"zero PID minimum rate", []string{"t"}, []Option{WithPID(1, 0.2, 0, 0)}},
		{"zero retry timeout", []string{"t"}, []Option{WithRetryTimeout(0)}},
		{"tiny fetch size", []string{"t"}, []Option{WithFetchMaxBytes(10)}},
		{"nil logger", []string{"t"}, []Option{WithLogger(nil)}},
		{"consumer options passed through", []string{"t"}, []Option{WithClientOpts(kgo.ConsumeTopics("t"))}},
		{"group passed through", []string{"t"}, []Option{WithClientOpts(kgo.ConsumerGroup("g"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newEngine(t)
			s, err := NewDirectStream(c, tc.topics, tc.opts...)
			require.ErrorIs(t, err, ErrOption)
			require.Nil(t, s)
		})
	}
}

func TestNewDirectStreamDefaults(t *testing.T) {
	cfg := defaultConfig()
	require.Equal(t, []string{DefaultBroker}, cfg.brokers)
	require.Equal(t, Latest, cfg.reset, "Kafka's and Spark's auto.offset.reset default")
	require.Equal(t, 30*time.Second, cfg.retryTimeout)
	require.False(t, cfg.fatalDataLoss)
	require.False(t, cfg.backpressure)
	require.Equal(t, [4]float64{1, 0.2, 0, 100}, cfg.pid, "Spark's PID defaults")
	require.Equal(t, RateLimits{}, cfg.limits)

	c := newEngine(t)
	s, err := NewDirectStream(c, []string{"t"}) // no broker is contacted yet
	require.NoError(t, err)
	require.Equal(t, DefaultName, s.Node().Meta().Name())
	require.Equal(t, "latest", Latest.String())
	require.Equal(t, "earliest", Earliest.String())
}
