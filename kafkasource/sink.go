package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/sinkstats"
)

// Headers the sink sets on every record it writes.
const (
	// BatchTimeHeader holds the time of the batch that wrote the record,
	// in Unix milliseconds as decimal text. Records written twice, by a
	// batch re-run after a crash, carry the same value.
	BatchTimeHeader = "sluice-batch-time"
	// ErrorHeader holds, on dead-letter records, why the element could
	// not be encoded.
	ErrorHeader = "sluice-error"
)

// SinkOption configures [WriteTo]. A bad value makes WriteTo return an
// error wrapping [ErrOption].
type SinkOption func(*sinkConfig) error

type sinkConfig struct {
	brokers    []string
	clientOpts []kgo.Opt
	deadLetter string
	logger     *slog.Logger
}

// SinkBrokers sets the seed brokers of the sink's producer, overriding the
// default [DefaultBroker].
func SinkBrokers(seeds ...string) SinkOption {
	return func(c *sinkConfig) error {
		if len(seeds) == 0 || seeds[0] == "" {
			return optErr("SinkBrokers got no address; pass host:port seeds")
		}
		c.brokers = append([]string(nil), seeds...)
		return nil
	}
}

// SinkClientOpts passes options to the sink's kgo producer (TLS, SASL,
// compression, acks). The producer is idempotent unless these options turn
// that off.
func SinkClientOpts(opts ...kgo.Opt) SinkOption {
	return func(c *sinkConfig) error {
		c.clientOpts = append(c.clientOpts, opts...)
		return nil
	}
}

// SinkDeadLetterTopic sends the elements that fail to encode to topic: the
// record's value is the element printed with fmt.Sprint and its
// [ErrorHeader] the error. By default they are only counted and logged.
func SinkDeadLetterTopic(topic string) SinkOption {
	return func(c *sinkConfig) error {
		if topic == "" {
			return optErr("SinkDeadLetterTopic got an empty topic; name it or drop the option")
		}
		c.deadLetter = topic
		return nil
	}
}

// SinkLogger sets where the sink logs encode errors, overriding the
// default that discards everything.
func SinkLogger(l *slog.Logger) SinkOption {
	return func(c *sinkConfig) error {
		if l == nil {
			return optErr("SinkLogger got a nil logger; pass a *slog.Logger")
		}
		c.logger = l
		return nil
	}
}

// Sink is the handle of an output operation registered by [WriteTo]. Its
// methods are safe for concurrent use.
type Sink struct {
	name         string
	c            sinkstats.Counters // Records: written; DeadLetters: encode errors
	deadLettered atomic.Int64
}

// SinkStats are counters of a [Sink].
type SinkStats struct {
	Written      int64 // records acknowledged by the brokers
	EncodeErrors int64 // elements encode failed on, skipped or dead-lettered
	DeadLettered int64 // elements written to the dead-letter topic
	Batches      int64 // batches whose records were all acknowledged
	Failures     int64 // batches that failed
}

// Stats returns the sink's counters.
func (s *Sink) Stats() SinkStats {
	return SinkStats{Written: s.c.Records.Load(), EncodeErrors: s.c.DeadLetters.Load(), DeadLettered: s.deadLettered.Load(),
		Batches: s.c.Batches.Load(), Failures: s.c.Failures.Load()}
}

// Metrics returns the sink's counters as the output's node reports them on
// a job's status (package status): sink_records_total (Written),
// sink_batches_total, sink_failures_total, sink_dead_letters_total
// (EncodeErrors), sink_skipped_batches_total (always 0: the sink writes a
// re-run batch again) and the histogram sink_write_seconds of the time
// each batch took until its records were acknowledged, labelled with the
// topic as sink=<topic>.
func (s *Sink) Metrics() []engine.Metric { return s.c.Metrics(s.name) }

// WriteTo registers an output operation that writes every element of every
// batch of s to topic, as the record encode returns (a nil key lets the
// producer's partitioner spread records), with the batch time in the
// [BatchTimeHeader] header. Partitions of the batch are encoded in parallel
// tasks; records of one partition of s keep their order per Kafka
// partition. A batch counts as done only when the brokers have acknowledged
// all of its records; a record the producer cannot write (after its own
// retries) fails the batch.
//
// An element encode fails on is counted in [SinkStats].EncodeErrors and
// skipped, or written to the [SinkDeadLetterTopic]; it never fails the
// batch.
//
// The producer is franz-go's, idempotent, created here with the context's
// lifetime. Delivery is at least once: a batch re-run after a crash writes
// its records again, with the same batch time header.
//
// WriteTo panics when encode is nil.
func WriteTo[T any](s *dstream.Stream[T], topic string, encode func(T) (key, value []byte, err error), opts ...SinkOption) (*Sink, error) {
	if encode == nil {
		panic("kafkasource: WriteTo got a nil encode function")
	}
	cfg := sinkConfig{brokers: []string{DefaultBroker}, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if topic == "" {
		return nil, optErr("WriteTo got an empty topic; name the topic to write to")
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.brokers...)}, cfg.clientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: the Kafka producer refused its options: %w", ErrOption, err)
	}
	c := s.Context()
	c.OnClose(func() error { cl.Close(); return nil })
	sink := &Sink{name: topic}
	op := "kafkaSink(" + topic + ")"
	dstream.ForEachBatchWith(s, dstream.OutputOptions{Kind: "kafkaSink", Metrics: sink.Metrics}, func(ctx context.Context, j *engine.Job, b dstream.Batch[T]) error {
		start := time.Now()
		err := writeBatch(ctx, j, sink, cl, &cfg, op, topic, encode, b)
		sink.c.ObserveWrite(time.Since(start))
		if err != nil {
			sink.c.Failures.Add(1)
			return err
		}
		sink.c.Batches.Add(1)
		return nil
	})
	return sink, nil
}

func writeBatch[T any](ctx context.Context, j *engine.Job, s *Sink, cl *kgo.Client, cfg *sinkConfig, op, topic string, encode func(T) (key, value []byte, err error), b dstream.Batch[T]) error {
	// Shared by every record of the batch: the producer only reads it.
	headers := []kgo.RecordHeader{{Key: BatchTimeHeader, Value: strconv.AppendInt(nil, b.Time.UnixMilli(), 10)}}
	var (
		failed   atomic.Bool
		errMu    sync.Mutex
		firstErr error
		bad      atomic.Int64
	)
	done := func(r *kgo.Record, err error) {
		if err != nil {
			errMu.Lock()
			if firstErr == nil {
				firstErr = fmt.Errorf("kafkasource: writing to %s failed: %w", r.Topic, err)
			}
			errMu.Unlock()
			failed.Store(true)
			return
		}
		if r.Topic == topic {
			s.c.Records.Add(1)
		} else {
			s.deadLettered.Add(1)
		}
	}
	// Records live past their task: kgo fails a record whose context ends
	// before it is acknowledged, so they carry the batch's context.
	batchCtx := ctx
	err := j.Run(ctx, op, len(b.Parts), func(_ context.Context, tk *engine.Task) error {
		part := b.Parts[tk.Index]
		recs := make([]kgo.Record, len(part)) // one allocation per partition
		for i, x := range part {
			if failed.Load() {
				return nil
			}
			key, value, err := encode(x)
			r := &recs[i]
			if err != nil {
				bad.Add(1)
				s.c.DeadLetters.Add(1)
				if cfg.deadLetter == "" {
					continue
				}
				r.Topic = cfg.deadLetter
				r.Value = []byte(fmt.Sprint(x))
				r.Headers = []kgo.RecordHeader{headers[0], {Key: ErrorHeader, Value: []byte(err.Error())}}
			} else {
				r.Topic, r.Key, r.Value, r.Headers = topic, key, value, headers
			}
			cl.Produce(batchCtx, r, done)
		}
		return nil
	})
	if ferr := cl.Flush(ctx); err == nil {
		err = ferr
	}
	if n := bad.Load(); n > 0 {
		cfg.logger.Warn("kafkasource: elements failed to encode and were not written to the topic",
			"topic", topic, "batch_ms", b.Time.UnixMilli(), "count", n, "dead_letter_topic", cfg.deadLetter)
	}
	errMu.Lock()
	defer errMu.Unlock()
	return errors.Join(err, firstErr)
}
