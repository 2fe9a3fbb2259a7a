package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/outage"
)

// ErrFenced is wrapped by the error of a batch whose producer was fenced by
// a newer instance of the same job and sink.
var ErrFenced = errors.New("kafkasink: a newer instance of this job and sink took over the transactional ID; this instance must stop")

// Txn writes batches of records, each batch in one Kafka transaction with
// its commit marker. It is used by one goroutine at a time, the one that
// runs the job's output operations.
type Txn struct {
	cl          *kgo.Client
	job, sink   string
	markerTopic string
	last        int64       // newest committed batch time, Unix ms; -1: none
	outage      *outage.Log // broker outages, with OpenTxn's logger; nil: not logged
}

// MarkerTopic is the compacted topic holding the commit markers of job's
// sink.
func MarkerTopic(job, sink string) string { return "__sluice-" + job + "-" + sink + "-commits" }

// TransactionalID is the transactional ID of job's sink.
func TransactionalID(job, sink string) string { return "sluice-" + job + "-" + sink }

// NewTxn opens a transactional writer for job's sink on the brokers seeds,
// creating the marker topic if needed and reading its newest committed
// marker. opts go to the kgo producer.
func NewTxn(ctx context.Context, seeds []string, job, sink string, opts ...kgo.Opt) (*Txn, error) {
	switch {
	case job == "":
		return nil, errors.New("kafkasink: the job has no name; name it with engine.WithJobName so that a restart fences the instance before it")
	case sink == "":
		return nil, errors.New("kafkasink: the sink has no name; name it so that its transactional ID is stable across restarts")
	}
	t := &Txn{job: job, sink: sink, markerTopic: MarkerTopic(job, sink), last: -1}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...),
		kgo.TransactionalID(TransactionalID(job, sink)), kgo.TransactionTimeout(time.Minute)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkasink: the Kafka producer refused its options: %w", err)
	}
	t.cl = cl
	if err := t.readMarker(ctx, seeds); err != nil {
		cl.Close()
		return nil, err
	}
	return t, nil
}

func (t *Txn) readMarker(ctx context.Context, seeds []string) error {
	adm := kadm.NewClient(t.cl)
	_, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": new("compact")}, t.markerTopic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafkasink: cannot create the marker topic %s: %w", t.markerTopic, err)
	}
	// Loading the producer ID fences an older instance now and makes the
	// coordinator finish its open transaction, committed or aborted, so the
	// marker topic's stable end below covers every transaction of the past.
	if _, _, err := t.cl.ProducerID(ctx); err != nil {
		return t.fail(err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, t.markerTopic)
	if err != nil {
		return fmt.Errorf("kafkasink: cannot list the end of the marker topic %s: %w", t.markerTopic, err)
	}
	end, ok := ends.Lookup(t.markerTopic, 0)
	if !ok || end.Err != nil {
		return fmt.Errorf("kafkasink: cannot list the end of the marker topic %s: %v", t.markerTopic, end.Err)
	}
	key := t.job + "/" + t.sink
	return readUntil(ctx, seeds, t.markerTopic, end.Offset, func(r *kgo.Record) {
		if string(r.Key) == key {
			if ms, err := strconv.ParseInt(string(r.Value), 10, 64); err == nil && ms > t.last {
				t.last = ms
			}
		}
	})
}

// readUntil reads partition 0 of topic read committed from its start up to
// the stable offset end, calling f with each committed data record. Every
// transaction in the topic ends with a control record and compaction never
// removes a partition's last batch, so the record at end-1 is always
// delivered (control records are kept for that) and the read ends there
// rather than at a deadline, whether the last transaction committed or
// aborted.
func readUntil(ctx context.Context, seeds []string, topic string, end int64, f func(*kgo.Record)) error {
	if end <= 0 {
		return nil
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return fmt.Errorf("kafkasink: cannot read the marker topic %s: %w", topic, err)
	}
	defer cons.Close()
	for {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("kafkasink: reading the marker topic %s up to offset %d: %w", topic, end, ctx.Err())
		}
		if err := fs.Err(); err != nil {
			return fmt.Errorf("kafkasink: cannot read the marker topic %s: %w", topic, err)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() && r.Offset < end {
				f(r)
			}
			done = done || r.Offset >= end-1
		})
		if done {
			return nil
		}
	}
}

// LastCommitted returns the newest batch time whose records are committed,
// and false when there is none.
func (t *Txn) LastCommitted() (time.Time, bool) {
	return time.UnixMilli(t.last), t.last >= 0
}

// abort drops the records of the transaction still buffered and aborts
// it.
func (tx *txn) abort() {
	ctx := context.WithoutCancel(tx.ctx)
	_ = tx.t.cl.AbortBufferedRecords(ctx)
	_ = tx.t.cl.EndTransaction(ctx, kgo.TryAbort)
}

// Write writes recs and the marker of the batch at batch in one
// transaction and commits it. A batch no newer than the last committed one
// writes nothing and reports false.
func (t *Txn) Write(ctx context.Context, batch time.Time, recs []*kgo.Record) (bool, error) {
	tx, ok, err := t.begin(ctx, batch)
	if !ok || err != nil {
		return false, err
	}
	for _, r := range recs {
		tx.produce(r)
	}
	return true, tx.commit()
}

// txn is the transaction of one batch, between [Txn.begin] and its
// commit. Its produce is safe for concurrent use.
type txn struct {
	t   *Txn
	ctx context.Context
	ms  int64

	failed atomic.Bool
	mu     sync.Mutex
	err    error // the first record's failure
	done   func(*kgo.Record, error)
}

// begin starts the transaction of the batch at batch and produces its
// marker; ok is false when the batch is already committed.
func (t *Txn) begin(ctx context.Context, batch time.Time) (tx *txn, ok bool, err error) {
	ms := batch.UnixMilli()
	if ms <= t.last {
		return nil, false, nil
	}
	if err := t.cl.BeginTransaction(); err != nil {
		return nil, false, t.fail(err)
	}
	tx = &txn{t: t, ctx: ctx, ms: ms}
	tx.done = func(_ *kgo.Record, err error) {
		if err != nil && !tx.failed.Swap(true) {
			tx.mu.Lock()
			tx.err = err
			tx.mu.Unlock()
		}
	}
	// The marker goes first: the transaction holds it with the batch's
	// records whatever their order.
	tx.produce(&kgo.Record{Topic: t.markerTopic, Partition: 0, Key: []byte(t.job + "/" + t.sink), Value: strconv.AppendInt(nil, ms, 10)})
	return tx, true, nil
}

// produce adds r to the transaction; the producer sends it while the
// batch's other records are still being encoded.
func (tx *txn) produce(r *kgo.Record) { tx.t.cl.Produce(tx.ctx, r, tx.done) }

// commit waits until every record of the transaction is written and
// commits it, or aborts it when one failed.
func (tx *txn) commit() error {
	t := tx.t
	err := t.cl.Flush(tx.ctx)
	if err == nil && tx.failed.Load() {
		tx.mu.Lock()
		err = tx.err
		tx.mu.Unlock()
	}
	if err != nil {
		tx.abort()
		return t.fail(err)
	}
	if err := t.cl.EndTransaction(tx.ctx, kgo.TryCommit); err != nil {
		return t.fail(err)
	}
	t.last = tx.ms
	t.outage.Succeeded("write transaction")
	return nil
}

func (t *Txn) fail(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		return fmt.Errorf("%w (transactional ID %s): %w", ErrFenced, TransactionalID(t.job, t.sink), err)
	}
	return fmt.Errorf("kafkasink: the transaction of sink %s failed: %w", t.sink, err)
}

// OpenTxn opens a transactional writer as [NewTxn] does, for job's sink
// cfg.Sink on cfg.Brokers with cfg.ClientOpts, and logs broker outages to
// cfg.Logger as [WriteTxn] does: one WARN when the producer's first
// request or connection fails, one INFO when a transaction commits again.
// cfg.DeadLetterTopic is not used.
func OpenTxn(ctx context.Context, job string, cfg Config) (*Txn, error) {
	opts, o := outageOpts(cfg, cfg.Sink)
	t, err := NewTxn(ctx, cfg.Brokers, job, cfg.Sink, opts...)
	if err != nil {
		return nil, err
	}
	t.outage = o
	return t, nil
}

// Close closes the producer.
func (t *Txn) Close() {
	t.outage.Close()
	t.cl.Close()
}
