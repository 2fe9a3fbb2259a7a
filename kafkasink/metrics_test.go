package kafkasink

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/metricstest"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/sluicehq/sluice/status"
)

// A job reading the embedded broker writes to the transactional and the
// at-least-once sink; the sinks' counters on /metrics equal what reading
// their topics back finds.
func TestSinkMetricsOnStatus(t *testing.T) {
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("in", 2), kafkasource.EmbeddedTopic("out", 2),
		kafkasource.EmbeddedTopic("dead", 1), kafkasource.EmbeddedTopic("alo", 2))
	require.NoError(t, err)
	t.Cleanup(func() { broker.Close() })
	seeds := broker.Addrs()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithJobName("metrics-job"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	in, err := kafkasource.NewDirectStream(c, []string{"in"}, kafkasource.WithBrokers(seeds...), kafkasource.WithResetPolicy(kafkasource.Earliest))
	require.NoError(t, err)
	values := dstream.Map(in, func(r kafkasource.Record) string { return string(r.Value) })
	txn, err := WriteTxn(t.Context(), values, Config{Brokers: seeds, Sink: "txn-out", DeadLetterTopic: "dead"}, func(v string) (*kgo.Record, error) {
		if strings.HasPrefix(v, "bad") {
			return nil, errors.New("a bad element")
		}
		return &kgo.Record{Topic: "out", Value: []byte(v)}, nil
	})
	require.NoError(t, err)
	alo, err := WriteTo(values, "alo", Config{Brokers: seeds}, func(v string) ([]byte, []byte, error) {
		if strings.HasPrefix(v, "bad") {
			return nil, nil, errors.New("a bad element")
		}
		return nil, []byte(v), nil
	})
	require.NoError(t, err)
	h, err := status.New(c)
	require.NoError(t, err)

	producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer producer.Close()
	produce := func(good, bad int) {
		for i := range good + bad {
			v := fmt.Sprintf("good-%d", i)
			if i >= good {
				v = fmt.Sprintf("bad-%d", i)
			}
			require.NoError(t, producer.ProduceSync(t.Context(), &kgo.Record{Topic: "in", Partition: int32(i % 2), Value: []byte(v)}).FirstErr())
		}
	}
	produce(7, 2)
	require.NoError(t, c.RunBatches(t.Context(), 1))
	produce(4, 0)
	require.NoError(t, c.RunBatches(t.Context(), 2)) // the second has no input
	produce(3, 1)
	require.NoError(t, c.RunBatches(t.Context(), 1))
	const batches = 4

	fams := metricstest.Scrape(t, h)
	get := func(name, sink string) float64 {
		return metricstest.Value(t, fams, name, map[string]string{"sink": sink, "job_name": "metrics-job"})
	}
	out := readAll(t, seeds, "out", true)
	dead := readAll(t, seeds, "dead", true)
	require.Len(t, out, 14, "read_committed from out")
	require.Equal(t, float64(len(out)), get("sluice_sink_records_total", "txn-out"))
	require.Equal(t, float64(len(dead)), get("sluice_sink_dead_letters_total", "txn-out"))
	require.Equal(t, float64(batches), get("sluice_sink_batches_total", "txn-out"))
	require.Equal(t, 0.0, get("sluice_sink_failures_total", "txn-out"))
	require.Equal(t, 0.0, get("sluice_sink_skipped_batches_total", "txn-out"))
	require.Equal(t, float64(batches), get("sluice_sink_write_seconds", "txn-out"), "one write time per batch")
	require.Equal(t, txn.Stats(), Stats{Records: 14, DeadLetters: 3, Batches: batches})

	written := readAll(t, seeds, "alo", false)
	require.Len(t, written, 14)
	require.Equal(t, float64(len(written)), get("sluice_sink_records_total", "alo"))
	require.Equal(t, 3.0, get("sluice_sink_dead_letters_total", "alo"), "elements encode rejected")
	require.Equal(t, float64(batches), get("sluice_sink_batches_total", "alo"))
	require.Equal(t, 0.0, get("sluice_sink_failures_total", "alo"))
	require.Equal(t, float64(batches), get("sluice_sink_write_seconds", "alo"))
	require.Equal(t, Stats{Records: 14, DeadLetters: 3, Batches: batches}, alo.Stats())

	// The write time histogram's sum is the time the sinks took, at most
	// the time the batches' outputs took.
	hs := metricstest.Sample(t, fams, "sluice_sink_write_seconds", map[string]string{"sink": "txn-out"}).GetHistogram()
	require.Greater(t, hs.GetSampleSum(), 0.0)
	require.Equal(t, "kafkaTxnSink-1", labelOf(metricstest.Sample(t, fams, "sluice_sink_records_total", map[string]string{"sink": "txn-out"}), "operator"))
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
