package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/membertxn"
	"github.com/sluicehq/sluice/internal/outage"
	"github.com/sluicehq/sluice/internal/sinkstats"
)

// Headers the sinks set on the records they write.
const (
	// BatchTimeHeader holds the time of the batch that wrote the record,
	// in Unix milliseconds as decimal text. Records written twice by
	// [WriteTo], in a batch re-run after a crash, carry the same value.
	BatchTimeHeader = "sluice-batch-time"
	// ErrorHeader holds, on dead-letter records, why encode rejected the
	// element.
	ErrorHeader = "sluice-error"
)

// Config configures [WriteTxn] and [WriteTo].
type Config struct {
	// Brokers are the seed brokers; required.
	Brokers []string
	// Sink names the sink within the job. For [WriteTxn] it is required:
	// with the job's name (engine.WithJobName) it makes the transactional
	// ID and the marker topic. For [WriteTo] it only names the sink in its
	// metrics, by default the topic.
	Sink string
	// DeadLetterTopic receives the elements encode rejects (with WriteTxn
	// in the batch's transaction): the element printed with fmt.Sprint,
	// the error in the [ErrorHeader]. Empty: they are only counted.
	DeadLetterTopic string
	// ClientOpts go to the kgo producer (TLS, SASL, compression, acks).
	ClientOpts []kgo.Opt
	// Logger, when set, receives a warning for every batch with elements
	// encode rejected, and a broker outage while the sink writes: one
	// WARN when the producer's requests or connections start failing
	// (kgo retries them), one INFO when the brokers answer again, the
	// retries between them at DEBUG. By default nothing is logged.
	Logger *slog.Logger
}

// Stats are a sink's counters.
type Stats struct {
	Records     int64 // records committed (WriteTo: acknowledged), dead letters apart
	Failures    int64 // batches that failed
	DeadLetters int64 // elements encode rejected
	Skipped     int64 // re-run batches found already committed (WriteTxn only)
	Batches     int64 // batches committed (WriteTo: all of their records acknowledged)
}

// Sink is the handle of an output registered by [WriteTxn] or [WriteTo].
// Its methods are safe for concurrent use.
type Sink struct {
	name string
	c    sinkstats.Counters
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	return Stats{Records: s.c.Records.Load(), Failures: s.c.Failures.Load(), DeadLetters: s.c.DeadLetters.Load(),
		Skipped: s.c.Skipped.Load(), Batches: s.c.Batches.Load()}
}

// Metrics returns the sink's counters as the output's node reports them on
// a job's status (package status): sink_records_total,
// sink_batches_total, sink_failures_total, sink_dead_letters_total,
// sink_skipped_batches_total and the histogram sink_write_seconds of the
// time each batch took from encoding to the transaction's end (WriteTo:
// until its records were acknowledged), labelled sink=<Config.Sink>.
func (s *Sink) Metrics() []engine.Metric { return s.c.Metrics(s.name) }

// WriteTxn registers an output operation that writes every batch of s
// exactly once: the records encode returns (topic, partition, key, headers
// and timestamp are encode's to set; an empty topic is an error of that
// element) and the batch's commit marker, in one transaction committed
// before the checkpoint commits. The job must be named with
// engine.WithJobName. An element encode rejects goes to the
// DeadLetterTopic, or is counted, and never fails the batch.
//
// When the job's Kafka source runs in group mode, the sink has no
// producer of its own: it writes every batch into the member's transaction,
// which the source commits with the batch's commit marker and input
// offsets, so that outputs and offsets commit together.
func WriteTxn[T any](ctx context.Context, s *dstream.Stream[T], cfg Config, encode func(T) (*kgo.Record, error)) (*Sink, error) {
	if encode == nil {
		return nil, errors.New("kafkasink: WriteTxn got a nil encode function; pass one that returns a *kgo.Record")
	}
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafkasink: WriteTxn got no brokers; set Config.Brokers to host:port seeds")
	}
	c := s.Context()
	// In group mode the source's member transaction holds every batch:
	// the sink writes into it, and the source commits it with the batch's
	// offsets.
	mt := membertxn.Of(c)
	var w *Txn
	if mt == nil {
		var err error
		if w, err = OpenTxn(ctx, c.JobName(), cfg); err != nil {
			return nil, err
		}
		c.OnClose(func() error { w.Close(); return nil })
	}
	sink := &Sink{name: cfg.Sink}
	op := "kafkaTxnSink(" + cfg.Sink + ")"
	dstream.ForEachBatchWith(s, dstream.OutputOptions{Kind: "kafkaTxnSink", Metrics: sink.Metrics}, func(ctx context.Context, j *engine.Job, b dstream.Batch[T]) error {
		start := time.Now()
		defer func() { sink.c.ObserveWrite(time.Since(start)) }()
		var (
			produce func(*kgo.Record)
			failed  func() bool
			finish  func(error) error
		)
		if mt != nil {
			produce, failed = mt.Produce, func() bool { return false }
			finish = func(err error) error {
				if err != nil {
					return err // the batch fails, and the source aborts its transaction
				}
				return mt.Flush(ctx)
			}
		} else {
			tx, ok, err := w.begin(ctx, b.Time)
			if err != nil {
				sink.c.Failures.Add(1)
				return err
			}
			if !ok {
				sink.c.Skipped.Add(1)
				return nil
			}
			produce, failed = tx.produce, tx.failed.Load
			finish = func(err error) error {
				if err != nil {
					tx.abort()
					return err
				}
				return tx.commit()
			}
		}
		// Shared by the records whose encode sets no headers: the
		// producer only reads them.
		bt := []kgo.RecordHeader{{Key: BatchTimeHeader, Value: strconv.AppendInt(nil, b.Time.UnixMilli(), 10)}}
		var n, dead atomic.Int64
		// Partitions are encoded in parallel tasks, each record produced
		// as soon as it is encoded.
		err := j.Run(ctx, op, len(b.Parts), func(_ context.Context, tk *engine.Task) error {
			for _, x := range b.Parts[tk.Index] {
				if failed() {
					return nil
				}
				r, err := encode(x)
				if err == nil && (r == nil || r.Topic == "") {
					err = errors.New("encode returned a record without a topic")
				}
				if err != nil {
					dead.Add(1)
					if cfg.DeadLetterTopic != "" {
						produce(&kgo.Record{Topic: cfg.DeadLetterTopic, Value: []byte(fmt.Sprint(x)),
							Headers: []kgo.RecordHeader{bt[0], {Key: ErrorHeader, Value: []byte(err.Error())}}})
					}
					continue
				}
				if r.Headers == nil {
					r.Headers = bt[:1:1]
				} else {
					r.Headers = append(r.Headers, bt[0])
				}
				n.Add(1)
				produce(r)
			}
			return nil
		})
		if err = finish(err); err != nil {
			sink.c.Failures.Add(1)
			return err
		}
		sink.c.Batches.Add(1)
		sink.c.Records.Add(n.Load())
		sink.c.DeadLetters.Add(dead.Load())
		if d := dead.Load(); d > 0 && cfg.Logger != nil {
			cfg.Logger.Warn("kafkasink: elements failed to encode and were not written to their topic",
				"sink", cfg.Sink, "batch_ms", b.Time.UnixMilli(), "count", d, "dead_letter_topic", cfg.DeadLetterTopic)
		}
		return nil
	})
	return sink, nil
}

// outageOpts returns the producer options of a sink: cfg.ClientOpts, with
// a hook logging broker outages to cfg.Logger when it is set, and the
// outage log (nil without a logger), to close with the producer.
func outageOpts(cfg Config, sink string) ([]kgo.Opt, *outage.Log) {
	if cfg.Logger == nil {
		return cfg.ClientOpts, nil
	}
	o := outage.New(cfg.Logger.With("sink", sink), "kafkasink", "the producer")
	return append(cfg.ClientOpts[:len(cfg.ClientOpts):len(cfg.ClientOpts)], kgo.WithHooks(o.Hooks())), o
}
