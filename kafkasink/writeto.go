package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// WriteTo registers an output operation that writes every element of every
// batch of s to topic at least once, as the record encode returns (a nil
// key lets the producer's partitioner spread records), with the batch time
// in the [BatchTimeHeader] header. Partitions of the batch are encoded in
// parallel tasks; records of one partition of s keep their order per Kafka
// partition. A batch counts as done only when the brokers have
// acknowledged all of its records; a record the producer cannot write
// (after its own retries) fails the batch.
//
// cfg.Brokers is required; cfg.Sink names the sink in its metrics (by
// default the topic); cfg.ClientOpts go to the producer, franz-go's,
// idempotent unless they turn that off, created here with the context's
// lifetime. An element encode fails on is counted in [Stats].DeadLetters,
// logged to cfg.Logger, and skipped or written to cfg.DeadLetterTopic; it
// never fails the batch.
//
// Delivery is at least once: a batch re-run after a crash writes its
// records again, with the same batch time header. [WriteTxn] writes
// exactly once.
//
// WriteTo panics when encode is nil.
func WriteTo[T any](s *dstream.Stream[T], topic string, cfg Config, encode func(T) (key, value []byte, err error)) (*Sink, error) {
	if encode == nil {
		panic("kafkasink: WriteTo got a nil encode function")
	}
	switch {
	case topic == "":
		return nil, errors.New("kafkasink: WriteTo got an empty topic; name the topic to write to")
	case len(cfg.Brokers) == 0 || cfg.Brokers[0] == "":
		return nil, errors.New("kafkasink: WriteTo got no brokers; set Config.Brokers to host:port seeds")
	}
	name := cfg.Sink
	if name == "" {
		name = topic
	}
	opts, o := outageOpts(cfg, name)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkasink: the Kafka producer refused its options: %w", err)
	}
	c := s.Context()
	c.OnClose(func() error { o.Close(); cl.Close(); return nil })
	sink := &Sink{name: name}
	w := &atLeastOnce[T]{sink: sink, cl: cl, cfg: cfg, topic: topic, encode: encode, op: "kafkaSink(" + topic + ")"}
	dstream.ForEachBatchWith(s, dstream.OutputOptions{Kind: "kafkaSink", Metrics: sink.Metrics}, func(ctx context.Context, j *engine.Job, b dstream.Batch[T]) error {
		start := time.Now()
		err := w.write(ctx, j, b)
		sink.c.ObserveWrite(time.Since(start))
		if err != nil {
			sink.c.Failures.Add(1)
			return err
		}
		o.Succeeded("write batch")
		sink.c.Batches.Add(1)
		return nil
	})
	return sink, nil
}

type atLeastOnce[T any] struct {
	sink      *Sink
	cl        *kgo.Client
	cfg       Config
	topic, op string
	encode    func(T) (key, value []byte, err error)
}

func (w *atLeastOnce[T]) write(ctx context.Context, j *engine.Job, b dstream.Batch[T]) error {
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
				firstErr = fmt.Errorf("kafkasink: writing to %s failed: %w", r.Topic, err)
			}
			errMu.Unlock()
			failed.Store(true)
			return
		}
		if r.Topic == w.topic {
			w.sink.c.Records.Add(1)
		}
	}
	// Records live past their task: kgo fails a record whose context ends
	// before it is acknowledged, so they carry the batch's context.
	batchCtx := ctx
	err := j.Run(ctx, w.op, len(b.Parts), func(_ context.Context, tk *engine.Task) error {
		part := b.Parts[tk.Index]
		recs := make([]kgo.Record, len(part)) // one allocation per partition
		for i, x := range part {
			if failed.Load() {
				return nil
			}
			key, value, err := w.encode(x)
			r := &recs[i]
			if err != nil {
				bad.Add(1)
				w.sink.c.DeadLetters.Add(1)
				if w.cfg.DeadLetterTopic == "" {
					continue
				}
				r.Topic = w.cfg.DeadLetterTopic
				r.Value = []byte(fmt.Sprint(x))
				r.Headers = []kgo.RecordHeader{headers[0], {Key: ErrorHeader, Value: []byte(err.Error())}}
			} else {
				r.Topic, r.Key, r.Value, r.Headers = w.topic, key, value, headers
			}
			w.cl.Produce(batchCtx, r, done)
		}
		return nil
	})
	if ferr := w.cl.Flush(ctx); err == nil {
		err = ferr
	}
	if n := bad.Load(); n > 0 && w.cfg.Logger != nil {
		w.cfg.Logger.Warn("kafkasink: elements failed to encode and were not written to the topic",
			"topic", w.topic, "batch_ms", b.Time.UnixMilli(), "count", n, "dead_letter_topic", w.cfg.DeadLetterTopic)
	}
	errMu.Lock()
	defer errMu.Unlock()
	return errors.Join(err, firstErr)
}
