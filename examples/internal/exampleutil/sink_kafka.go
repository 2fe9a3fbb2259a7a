package exampleutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/membertxn"
	"github.com/sluicehq/sluice/internal/sinkstats"
	"github.com/sluicehq/sluice/kafkasink"
	"github.com/sluicehq/sluice/kafkasource"
)

// The kafka scheme writes each batch's rows as JSON records to TOPIC (the
// rows of another kind to TOPIC-KIND), in one Kafka transaction per batch
// with [kafkasink.Txn]: read with isolation.level=read_committed, every
// batch shows exactly once. In group mode (--member) the rows go into the
// member's transaction instead, which commits them with the batch's
// offsets.
func init() {
	RegisterSink(SinkScheme{
		Name:  "kafka",
		Form:  "kafka:TOPIC",
		Check: checkKafkaSink,
		Open:  openKafkaSink,
	})
}

func checkKafkaSink(value string) error {
	topic := strings.TrimPrefix(value, "kafka:")
	if topic == "" || strings.ContainsAny(topic, " /,:") {
		return usagef("--sink %q has no valid topic; write it as --sink kafka:results.", value)
	}
	return nil
}

type kafkaSink struct {
	topic, job string
	addrs      []string
	opts       []kgo.Opt                 // --tls…, --sasl-…
	logger     *slog.Logger              // the job's: broker outages while writing
	txns       map[string]*kafkasink.Txn // by kind
	member     *membertxn.Txn            // group mode: the member's transaction, which every batch writes into
	created    map[string]bool           // topics created, in group mode

	mu    sync.Mutex                     // guards stats against Metrics
	stats map[string]*sinkstats.Counters // by kind, named by their topic
}

func openKafkaSink(ctx context.Context, value string, j *Job, addrs []string) (Sink, error) {
	return &kafkaSink{topic: strings.TrimPrefix(value, "kafka:"), job: j.Context.JobName(), addrs: addrs,
		opts: j.Config.Security.ClientOpts(), logger: j.Context.Logger(), txns: map[string]*kafkasink.Txn{}, stats: map[string]*sinkstats.Counters{},
		member: membertxn.Of(j.Context), created: map[string]bool{}}, nil
}

func (s *kafkaSink) Write(ctx context.Context, kind string, t time.Time, _ []kafkasource.OffsetRange, rows []json.RawMessage) error {
	start := time.Now()
	c := s.counters(kind)
	defer func() { c.ObserveWrite(time.Since(start)) }()
	wrote, err := s.write(ctx, kind, t, rows)
	switch {
	case err != nil:
		c.Failures.Add(1)
	case !wrote:
		c.Skipped.Add(1)
	default:
		c.Batches.Add(1)
		c.Records.Add(int64(len(rows)))
	}
	return err
}

func (s *kafkaSink) counters(kind string) *sinkstats.Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.stats[kind]
	if !ok {
		c = &sinkstats.Counters{}
		s.stats[kind] = c
	}
	return c
}

// Metrics returns the counters of the rows of kind, labelled by their
// topic: records committed, batches committed, failed and skipped, time
// per batch.
func (s *kafkaSink) Metrics(kind string) []engine.Metric {
	s.mu.Lock()
	c := s.stats[kind]
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Metrics(s.topicOf(kind))
}

func (s *kafkaSink) topicOf(kind string) string {
	if kind == "" {
		return s.topic
	}
	return s.topic + "-" + kind
}

func (s *kafkaSink) write(ctx context.Context, kind string, t time.Time, rows []json.RawMessage) (bool, error) {
	topic := s.topicOf(kind)
	bt := []kgo.RecordHeader{{Key: "sluice-batch-time", Value: strconv.AppendInt(nil, t.UnixMilli(), 10)}}
	recs := make([]*kgo.Record, 0, len(rows))
	for _, r := range rows {
		recs = append(recs, &kgo.Record{Topic: topic, Value: r, Headers: bt})
	}
	if s.member != nil {
		if !s.created[topic] {
			if err := s.createTopic(ctx, topic); err != nil {
				return false, err
			}
			s.created[topic] = true
		}
		for _, r := range recs {
			s.member.Produce(r)
		}
		return true, s.member.Flush(ctx) // the source commits the transaction with the batch's offsets
	}
	w, ok := s.txns[kind]
	if !ok {
		if err := s.createTopic(ctx, topic); err != nil {
			return false, err
		}
		var err error
		if w, err = kafkasink.OpenTxn(ctx, s.job, kafkasink.Config{Brokers: s.addrs, Sink: topic, ClientOpts: s.opts, Logger: s.logger}); err != nil {
			return false, err
		}
		s.txns[kind] = w
	}
	return w.Write(ctx, t, recs)
}

// createTopic creates topic with the broker's defaults unless it exists.
func (s *kafkaSink) createTopic(ctx context.Context, topic string) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.addrs...)}, s.opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = kadm.NewClient(cl).CreateTopic(ctx, -1, -1, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("cannot create the topic %s: %w", topic, err)
	}
	return nil
}

func (s *kafkaSink) Close() error {
	for _, w := range s.txns {
		w.Close()
	}
	return nil
}
