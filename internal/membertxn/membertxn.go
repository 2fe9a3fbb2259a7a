// Package membertxn is the transaction of a group-mode member's batch: one
// transactional producer per member, and per batch one Kafka transaction
// holding the batch's Kafka outputs, its commit marker and the member's
// input offsets (package groupcommit), committed with one EndTransaction.
//
// The Kafka source opens it when it joins the group and keeps it on the
// job's engine.Context ([Set]); the Kafka sinks find it there ([Of]) and
// write into it instead of into transactions of their own.
package membertxn

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

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/groupcommit"
)

// ErrFenced is wrapped by the error of a batch whose producer was fenced: a
// newer incarnation of the same member (same group, same member name)
// loaded the transactional ID. This incarnation must stop.
var ErrFenced = errors.New("membertxn: a newer instance of this member took over its transactional ID; this instance must stop")

// TransactionalID is the transactional ID of member of group.
func TransactionalID(group, member string) string { return "sluice-" + group + "-member-" + member }

// TransactionTimeout is how long the coordinator lets a member's
// transaction stay open before aborting it.
const TransactionTimeout = 10 * time.Second

// MarkerTopic is the compacted topic holding the commit markers of group's
// members, keyed by member name.
func MarkerTopic(group string) string { return "__sluice-" + group + "-member-commits" }

// Txn is a member's transactional producer and the transaction of its batch
// in flight. Begin, Commit and Abort are called by the goroutine that drives
// batches; Produce and Flush by the batch's outputs, Produce concurrently.
type Txn struct {
	cl          *kgo.Client
	opts        []kgo.Opt // cl's, for Renew
	group       string
	member      string
	markerTopic string
	ready       bool // the marker topic exists and the producer ID is loaded

	open     bool
	ctx      context.Context
	produced atomic.Int64
	failed   atomic.Bool
	mu       sync.Mutex
	err      error // the first record's failure
	done     func(*kgo.Record, error)

	parts *partitioner
}

// partitioner places the records of the topics named with
// [Txn.ManualPartitions] in the partition they carry, and every other
// record as kgo does by default (by key hash, keyless ones sticky).
type partitioner struct {
	def    kgo.Partitioner
	mu     sync.Mutex
	manual map[string]bool
}

func (p *partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	p.mu.Lock()
	manual := p.manual[topic]
	p.mu.Unlock()
	if manual {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return p.def.ForTopic(topic)
}

// New returns the transactional producer of member of group on seeds; opts
// go to the kgo client. It talks to no broker until the first batch.
func New(seeds []string, opts []kgo.Opt, group, member string) (*Txn, error) {
	if member == "" {
		return nil, errors.New("membertxn: the member has no name; give every process of the job a stable name of its own so that a restart fences its previous instance")
	}
	t := &Txn{group: group, member: member, markerTopic: MarkerTopic(group),
		parts: &partitioner{def: kgo.UniformBytesPartitioner(64<<10, true, true, nil), manual: make(map[string]bool)}}
	// A member killed with its transaction open holds back the stable
	// offsets of its tasks until the coordinator aborts the transaction:
	// the timeout is Kafka Streams' exactly-once default, unless opts set
	// another.
	all := append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.TransactionTimeout(TransactionTimeout)}, opts...)
	all = append(all, kgo.TransactionalID(TransactionalID(group, member)), kgo.RecordPartitioner(t.parts))
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("membertxn: the Kafka producer of member %q refused its options: %w", member, err)
	}
	t.cl, t.opts = cl, all
	t.done = func(_ *kgo.Record, err error) {
		if err != nil && !t.failed.Swap(true) {
			t.mu.Lock()
			t.err = err
			t.mu.Unlock()
		}
	}
	return t, nil
}

// key is the type of the engine.Context value holding a job's member
// transaction.
type key struct{}

// Set keeps t on c for the job's Kafka sinks.
func Set(c *engine.Context, t *Txn) { c.SetValue(key{}, t) }

// Of returns the member transaction kept on c, or nil outside group mode.
func Of(c *engine.Context) *Txn {
	t, _ := c.Value(key{}).(*Txn)
	return t
}

// ManualPartitions makes the records produced to topics go to the
// partition each carries (Record.Partition), as changelog records must,
// instead of the partition of their key's hash. Call it before the first
// record to them.
func (t *Txn) ManualPartitions(topics ...string) {
	t.parts.mu.Lock()
	defer t.parts.mu.Unlock()
	for _, topic := range topics {
		t.parts.manual[topic] = true
	}
}

// Member returns the member's name.
func (t *Txn) Member() string { return t.member }

// prepare creates the marker topic and loads the producer ID, which fences
// the member's previous incarnation and makes the coordinator end its open
// transaction (aborted), so that a new owner's stable offsets are final.
func (t *Txn) prepare(ctx context.Context) error {
	if t.ready {
		return nil
	}
	_, err := kadm.NewClient(t.cl).CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": new("compact")}, t.markerTopic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("membertxn: cannot create the marker topic %s: %w", t.markerTopic, err)
	}
	if _, _, err := t.cl.ProducerID(ctx); err != nil {
		return t.fail(err)
	}
	t.ready = true
	return nil
}

// Begin opens the transaction of a batch; records produced until Commit or
// Abort belong to it. ctx is the batch's: records fail when it ends.
func (t *Txn) Begin(ctx context.Context) error {
	if err := t.prepare(ctx); err != nil {
		return err
	}
	if err := t.cl.BeginTransaction(); err != nil {
		return t.fail(err)
	}
	t.open, t.ctx = true, ctx
	t.produced.Store(0)
	t.failed.Store(false)
	t.mu.Lock()
	t.err = nil
	t.mu.Unlock()
	return nil
}

// Produce adds r to the open transaction. Safe for concurrent use.
func (t *Txn) Produce(r *kgo.Record) {
	t.produced.Add(1)
	t.cl.Produce(t.ctx, r, t.done)
}

// Flush waits until every record produced so far is written and returns
// the first record's failure.
func (t *Txn) Flush(ctx context.Context) error {
	if err := t.cl.Flush(ctx); err != nil {
		return t.fail(err)
	}
	if t.failed.Load() {
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.fail(t.err)
	}
	return nil
}

// Commit ends the batch's transaction: with the batch's commit marker, the
// offsets (topic → partition → next offset to read) staged as the member
// who returns, and every record produced, it commits them in one
// EndTransaction. A batch that read nothing and produced nothing commits
// nothing. On any failure the transaction is aborted; a member that the
// group has moved on from is refused with an error wrapping
// groupcommit.ErrFenced, a fenced producer with one wrapping [ErrFenced].
// who is called after every record is written, so that the membership is
// the one the commit is made under.
func (t *Txn) Commit(ctx context.Context, batch time.Time, offsets map[string]map[int32]int64, who func() groupcommit.Member) error {
	if !t.open {
		return errors.New("membertxn: Commit without Begin")
	}
	if len(offsets) == 0 && t.produced.Load() == 0 {
		t.Abort() // nothing was sent: kgo ends it without a request
		return nil
	}
	// Every transaction holds a record: kgo ends one that produced nothing
	// without telling the broker, and the offsets staged in it would ride
	// with the next one.
	t.Produce(&kgo.Record{Topic: t.markerTopic, Partition: 0, Key: []byte(t.member), Value: strconv.AppendInt(nil, batch.UnixMilli(), 10)})
	if err := t.Flush(ctx); err != nil {
		t.Abort()
		return err
	}
	if len(offsets) > 0 {
		if err := commitOffsets(ctx, t.cl, offsets, who); err != nil {
			t.Abort()
			return err
		}
	}
	t.open = false
	if err := t.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return t.fail(err)
	}
	return nil
}

// newGenerationWait bounds how long a commit refused with
// ILLEGAL_GENERATION waits for the member to hear of the group's new
// generation, and newGenerationPoll is how often it looks.
const (
	newGenerationWait = 5 * time.Second
	newGenerationPoll = 20 * time.Millisecond
)

// commitOffsets stages offsets as the member who returns. A refusal with
// ILLEGAL_GENERATION while the member ID stays the same is a rebalance
// whose join completed at the coordinator before the member heard of it:
// the member's tasks cannot have moved (revocations wait for the batch in
// flight), so the offsets are staged again under the new generation once
// the member has it. A member the group dropped has an unknown member ID
// and is refused for good.
func commitOffsets(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]int64, who func() groupcommit.Member) error {
	m := who()
	err := groupcommit.Commit(ctx, cl, m, offsets)
	deadline := time.Now().Add(newGenerationWait)
	for errors.Is(err, kerr.IllegalGeneration) && time.Now().Before(deadline) {
		tick := time.NewTimer(newGenerationPoll)
		select {
		case <-ctx.Done():
			tick.Stop()
			return err
		case <-tick.C:
		}
		fresh := who()
		if fresh.MemberID != m.MemberID {
			return err
		}
		if fresh.Generation != m.Generation {
			m = fresh
			err = groupcommit.Commit(ctx, cl, m, offsets)
		}
	}
	return err
}

// Abort drops the records still buffered and aborts the open transaction,
// if there is one.
func (t *Txn) Abort() {
	if !t.open {
		return
	}
	t.open = false
	ctx := context.WithoutCancel(t.ctx)
	_ = t.cl.AbortBufferedRecords(ctx)
	_ = t.cl.EndTransaction(ctx, kgo.TryAbort)
}

func (t *Txn) fail(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		return fmt.Errorf("%w (transactional ID %s): %w", ErrFenced, TransactionalID(t.group, t.member), err)
	}
	return fmt.Errorf("membertxn: the transaction of member %q of group %q failed: %w", t.member, t.group, err)
}

// Fenced reports whether err is the refusal of a fenced producer: a newer
// instance of the member loaded its transactional ID, or the coordinator
// aborted its transaction past the transaction timeout and bumped its epoch.
func Fenced(err error) bool {
	return errors.Is(err, ErrFenced) || errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// Renew replaces a fenced producer with a new one under the same
// transactional ID, which loads a new producer epoch at the next Begin
// (fencing the previous one in turn). Call it between batches.
func (t *Txn) Renew() error {
	t.Abort()
	cl, err := kgo.NewClient(t.opts...)
	if err != nil {
		return fmt.Errorf("membertxn: the Kafka producer of member %q refused its options: %w", t.member, err)
	}
	t.cl.Close()
	t.cl, t.ready = cl, false
	return nil
}

// Close aborts the open transaction, if any, and closes the producer.
func (t *Txn) Close() {
	t.Abort()
	t.cl.Close()
}
