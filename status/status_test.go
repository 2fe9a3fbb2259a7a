package status_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
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

// kafkaJob is a job reading topic "clicks" (3 partitions) of an embedded
// broker with a manual clock, and the status handler of it.
type kafkaJob struct {
	c        *engine.Context
	h        *status.Handler
	broker   *kafkasource.Embedded
	producer *kgo.Client
	failAt   int // batch number whose output fails, 0 for none
	batches  int
}

func newKafkaJob(t *testing.T, opts ...status.Option) *kafkaJob {
	return newKafkaJobEvery(t, time.Second, opts...)
}

func newKafkaJobEvery(t *testing.T, interval time.Duration, opts ...status.Option) *kafkaJob {
	t.Helper()
	return newKafkaJobWith(t, interval, time.Unix(0, 0), nil, opts...)
}

// newKafkaJobWith is newKafkaJob with the batch interval, the manual
// clock's start and options of the source.
func newKafkaJobWith(t *testing.T, interval time.Duration, start time.Time, srcOpts []kafkasource.Option, opts ...status.Option) *kafkaJob {
	t.Helper()
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("clicks", 3))
	require.NoError(t, err)
	t.Cleanup(func() { broker.Close() })
	producer, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(producer.Close)
	c, err := engine.NewContext(interval, engine.WithManualClock(start), engine.WithJobName("clicks-job"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err := kafkasource.NewDirectStream(c, []string{"clicks"}, append([]kafkasource.Option{
		kafkasource.WithBrokers(broker.Addrs()...), kafkasource.WithResetPolicy(kafkasource.Earliest)}, srcOpts...)...)
	require.NoError(t, err)
	h, err := status.New(c, opts...)
	require.NoError(t, err)
	k := &kafkaJob{c: c, h: h, broker: broker, producer: producer}
	counts := dstream.Map(s, func(r kafkasource.Record) int { return len(r.Value) })
	dstream.ForEachBatch(counts, func(_ context.Context, b dstream.Batch[int]) error {
		k.batches++
		if k.batches == k.failAt {
			return errors.New("the sink refused the batch")
		}
		return nil
	})
	return k
}

func (k *kafkaJob) produce(t *testing.T, partition int32, n int) {
	t.Helper()
	for i := range n {
		rec := &kgo.Record{Topic: "clicks", Partition: partition, Value: fmt.Appendf(nil, "v%d", i)}
		require.NoError(t, k.producer.ProduceSync(t.Context(), rec).FirstErr())
	}
}

func get(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Code, rec.Body.String()
}

func TestMetricsCountWhatTheJobDid(t *testing.T) {
	k := newKafkaJob(t)
	k.failAt = 4
	k.produce(t, 0, 5)
	k.produce(t, 1, 2)
	beforeStart := time.Now()
	require.NoError(t, k.c.RunBatches(t.Context(), 1))
	afterStart := time.Now()
	k.produce(t, 2, 4)
	require.NoError(t, k.c.RunBatches(t.Context(), 2)) // the second of these has no input
	k.produce(t, 0, 3)
	require.Error(t, k.c.RunBatches(t.Context(), 1)) // batch 4 fails

	fams := metricstest.Scrape(t, k.h)
	require.Equal(t, 3.0, metricstest.Value(t, fams, "sluice_batches_total", map[string]string{"outcome": "succeeded", "job_name": "clicks-job"}))
	require.Equal(t, 1.0, metricstest.Value(t, fams, "sluice_batches_total", map[string]string{"outcome": "failed"}))
	require.Equal(t, 14.0, metricstest.Value(t, fams, "sluice_input_records_total", nil))
	for _, h := range []string{"sluice_batch_processing_seconds", "sluice_batch_scheduling_delay_seconds", "sluice_batch_total_delay_seconds"} {
		require.Equal(t, 4.0, metricstest.Value(t, fams, h, nil), h)
	}
	require.Equal(t, 3.0, metricstest.Value(t, fams, "sluice_last_completed_batch_timestamp_seconds", nil))
	for name := range fams {
		require.NotContains(t, name, "checkpoint", "a job without a checkpoint exports no checkpoint metrics")
	}
	// The failed batch planned [5, 8) on partition 0 but committed nothing.
	src := map[string]string{"source": "kafka", "topic": "clicks"}
	for p, want := range map[string][3]float64{"0": {5, 8, 3}, "1": {2, 2, 0}, "2": {4, 4, 0}} {
		src["partition"] = p
		require.Equal(t, want[0], metricstest.Value(t, fams, "sluice_kafka_committed_offset", src), p)
		require.Equal(t, want[1], metricstest.Value(t, fams, "sluice_kafka_end_offset", src), p)
		require.Equal(t, want[2], metricstest.Value(t, fams, "sluice_kafka_lag_records", src), p)
	}

	code, body := get(t, k.h, "/api/batches")
	require.Equal(t, http.StatusOK, code)
	var batches []struct {
		TimeMS       int64  `json:"time_ms"`
		Status       string `json:"status"`
		Records      int64  `json:"records"`
		Error        string `json:"error"`
		OffsetRanges []struct {
			Topic       string
			Partition   int32
			From, Until int64
		} `json:"offset_ranges"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &batches))
	require.Len(t, batches, 4)
	require.Equal(t, int64(4000), batches[0].TimeMS, "newest first")
	require.Equal(t, "failed", batches[0].Status)
	require.Contains(t, batches[0].Error, "the sink refused the batch")
	require.Equal(t, "succeeded", batches[3].Status)
	require.Equal(t, []int64{3, 0, 4, 7}, []int64{batches[0].Records, batches[1].Records, batches[2].Records, batches[3].Records})
	require.Len(t, batches[3].OffsetRanges, 3)
	require.Equal(t, int64(5), batches[3].OffsetRanges[0].Until)

	code, body = get(t, k.h, "/api/batches?n=2")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal([]byte(body), &batches))
	require.Len(t, batches, 2)

	code, body = get(t, k.h, "/api/lag")
	require.Equal(t, http.StatusOK, code)
	var lag []struct {
		Topic               string
		Partition           int32
		Committed, End, Lag int64
	}
	require.NoError(t, json.Unmarshal([]byte(body), &lag))
	require.Len(t, lag, 3)
	require.Equal(t, int64(3), lag[0].Lag)

	code, body = get(t, k.h, "/api/job")
	require.Equal(t, http.StatusOK, code)
	var job struct {
		Name            string
		BatchIntervalMS int64     `json:"batch_interval_ms"`
		StartTime       time.Time `json:"start_time"`
		Operators       []struct {
			ID      int
			Name    string
			Kind    string
			Parents []int
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &job))
	require.Equal(t, "clicks-job", job.Name)
	require.Equal(t, int64(1000), job.BatchIntervalMS)
	require.False(t, job.StartTime.Before(beforeStart) || job.StartTime.After(afterStart),
		"start_time %v is when the job started, between %v and %v", job.StartTime, beforeStart, afterStart)
	require.Len(t, job.Operators, 3)
	require.Equal(t, "kafka", job.Operators[0].Name)
	require.Equal(t, []int{1}, job.Operators[1].Parents)
}

func TestQueueCounters(t *testing.T) {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	require.NoError(t, err)
	defer c.Close()
	in := [][]string{{"a", "b"}, {}, {"c", "d", "e"}, {"f"}}
	words := dstream.Queue(c, in)
	var seen int
	dstream.ForEachBatch(words, func(_ context.Context, b dstream.Batch[string]) error {
		seen += b.Len()
		return nil
	})
	h, err := status.New(c, status.WithHistory(2))
	require.NoError(t, err)
	require.NoError(t, c.RunBatches(t.Context(), len(in)))
	fams := metricstest.Scrape(t, h)
	require.Equal(t, float64(len(in)), metricstest.Value(t, fams, "sluice_batches_total", map[string]string{"outcome": "succeeded"}))
	require.Equal(t, float64(seen), metricstest.Value(t, fams, "sluice_input_records_total", nil))
	code, body := get(t, h, "/api/batches")
	require.Equal(t, http.StatusOK, code)
	var batches []map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &batches))
	require.Len(t, batches, 2, "the history holds 2 batches")
	require.Equal(t, 4000.0, batches[0]["time_ms"])
	for _, k := range []string{"planning_ms", "reading_ms", "computing_ms", "output_ms", "checkpoint_ms"} {
		require.Contains(t, batches[0], k)
	}
	require.Positive(t, batches[0]["planning_ms"].(float64)+batches[0]["output_ms"].(float64), "a batch spends time planning and in its output")
	require.Equal(t, 3000.0, batches[1]["time_ms"])
}

func TestBadRequests(t *testing.T) {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	require.NoError(t, err)
	defer c.Close()
	h, err := status.New(c, status.WithHistory(10))
	require.NoError(t, err)
	for _, tc := range []struct {
		target string
		code   int
		says   string
	}{
		{"/nope", http.StatusNotFound, ""},
		{"/api/nope", http.StatusNotFound, ""},
		{"/api/batches?n=x", http.StatusBadRequest, "n=\"x\" is not a number of batches from 1 to 10"},
		{"/api/batches?n=0", http.StatusBadRequest, "from 1 to 10"},
		{"/api/batches?n=11", http.StatusBadRequest, "from 1 to 10"},
		{"/api/batches?n=1&n=2", http.StatusBadRequest, "more than once"},
		{"/api/batches?limit=3", http.StatusBadRequest, "\"limit\" is not known"},
		{"/api/lag?x=1", http.StatusBadRequest, "/api/lag takes none"},
		{"/api/job?x=1", http.StatusBadRequest, "/api/job takes none"},
		{"/api/batches?n=10", http.StatusOK, "[]"},
		{"/debug/pprof/", http.StatusOK, "goroutine"},
		{"/", http.StatusOK, "<svg id=\"graph\""},
		{"/?refresh=1", http.StatusBadRequest, "takes none"},
		{"/index.html", http.StatusNotFound, ""},
	} {
		code, body := get(t, h, tc.target)
		require.Equal(t, tc.code, code, tc.target)
		require.Contains(t, body, tc.says, tc.target)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/batches", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)

	_, err = status.New(c, status.WithHistory(0))
	require.ErrorIs(t, err, status.ErrOption)
	require.ErrorContains(t, err, "pass at least 1 to WithHistory")
	_, err = status.New(c, status.WithCounter("Malformed", "", func() float64 { return 0 }))
	require.ErrorIs(t, err, status.ErrOption)
	require.ErrorContains(t, err, `counter name "Malformed" is not snake case ending in _total`)
	_, err = status.New(c, status.WithCounter("a_total", "", nil))
	require.ErrorContains(t, err, "nil value function")
	one := func() float64 { return 1 }
	_, err = status.New(c, status.WithCounter("a_total", "", one), status.WithCounter("a_total", "", one))
	require.ErrorContains(t, err, "give each WithCounter another name")
}

// stuckWriter is a response writer whose client never reads: Write blocks
// until release is closed.
type stuckWriter struct {
	header  http.Header
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (w *stuckWriter) Header() http.Header { return w.header }
func (w *stuckWriter) WriteHeader(int)     {}
func (w *stuckWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return len(b), nil
}

// TestStuckClientDoesNotBlockBatches serves every path to clients that never
// read, then runs batches: they complete while the clients stay stuck.
func TestStuckClientDoesNotBlockBatches(t *testing.T) {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	require.NoError(t, err)
	defer c.Close()
	in := make([][]int, 60)
	for i := range in {
		in[i] = []int{i, i + 1}
	}
	dstream.ForEachBatch(dstream.Queue(c, in), func(context.Context, dstream.Batch[int]) error { return nil })
	h, err := status.New(c)
	require.NoError(t, err)
	require.NoError(t, c.RunBatches(t.Context(), 10))

	release := make(chan struct{})
	var served sync.WaitGroup
	for _, path := range []string{"/metrics", "/api/batches", "/api/lag", "/api/job"} {
		w := &stuckWriter{header: http.Header{}, entered: make(chan struct{}), release: release}
		served.Go(func() { h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil)) })
		<-w.entered
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, c.RunBatches(ctx, 50), "batches ran while clients were stuck")
	close(release)
	served.Wait()
	fams := metricstest.Scrape(t, h)
	require.Equal(t, 60.0, metricstest.Value(t, fams, "sluice_batches_total", map[string]string{"outcome": "succeeded"}))
}

// TestConcurrentScrapes scrapes every path over HTTP from several
// goroutines while batches run (run with -race).
func TestConcurrentScrapes(t *testing.T) {
	k := newKafkaJob(t)
	srv := httptest.NewServer(k.h)
	defer srv.Close()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var scrapes sync.Map
	for _, path := range []string{"/metrics", "/api/batches", "/api/lag", "/api/job", "/metrics"} {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					scrapes.Store(path, n)
					return
				default:
				}
				resp, err := http.Get(srv.URL + path)
				if !errors.Is(err, nil) {
					t.Error(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("%s: status %d, %v", path, resp.StatusCode, err)
					return
				}
			}
		})
	}
	for i := range 20 {
		k.produce(t, int32(i%3), 2)
		require.NoError(t, k.c.RunBatches(t.Context(), 1))
	}
	close(done)
	wg.Wait()
	fams := metricstest.Scrape(t, k.h)
	require.Equal(t, 20.0, metricstest.Value(t, fams, "sluice_batches_total", map[string]string{"outcome": "succeeded"}))
	require.Equal(t, 40.0, metricstest.Value(t, fams, "sluice_input_records_total", nil))
}

// probe is a node that reports metrics, as sinks do.
type probe struct{ meta engine.Meta }

func (p *probe) Meta() *engine.Meta { return &p.meta }
func (p *probe) Metrics() []engine.Metric {
	return []engine.Metric{
		{Name: "sink_records_total", Help: "Records written.", Kind: engine.CounterMetric, Labels: map[string]string{"sink": "out"}, Value: 42},
		{Name: "state_keys", Help: "Keys held.", Kind: engine.GaugeMetric, Value: 7},
		{Name: "bad name!", Value: 1}, // dropped: not a Prometheus name
	}
}

func TestNodeMetrics(t *testing.T) {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	require.NoError(t, err)
	defer c.Close()
	p := &probe{meta: engine.Meta{Kind: "probe"}}
	c.Register(p)
	h, err := status.New(c)
	require.NoError(t, err)
	fams := metricstest.Scrape(t, h)
	require.Equal(t, 42.0, metricstest.Value(t, fams, "sluice_sink_records_total", map[string]string{"operator": "probe-1", "sink": "out"}))
	require.Equal(t, dto.MetricType_COUNTER, fams["sluice_sink_records_total"].GetType())
	require.Equal(t, 7.0, metricstest.Value(t, fams, "sluice_state_keys", map[string]string{"operator": "probe-1"}))
	require.Equal(t, dto.MetricType_GAUGE, fams["sluice_state_keys"].GetType())
}

func newHandler(c *engine.Context, malformed func() int64) (*status.Handler, error) {
	return status.New(c, status.WithCounter("malformed_records_total", "Records that did not parse.",
		func() float64 { return float64(malformed()) }))
}
