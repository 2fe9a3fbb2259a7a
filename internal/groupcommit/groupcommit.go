// Package groupcommit commits a consumer group's offsets inside a Kafka
// transaction, so that they commit or abort with the records the
// transaction holds, and only while the member that read them is still a
// member of the group's current generation (Kafka's exactly-once v2,
// KIP-447).
//
// kgo's GroupTransactSession does this for the records its own client
// polled; a member that reads planned offset ranges with a reader of its
// own stages the offsets of those ranges here instead.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Member is the group member on whose behalf offsets are committed.
type Member struct {
	Group      string
	MemberID   string
	Generation int32
	InstanceID *string // a static member's instance ID, or nil
}

// MemberOf returns the group, member ID and generation a group client has
// now. Take it when a batch is planned: offsets committed with it are
// refused if the group has rebalanced since.
func MemberOf(cl *kgo.Client) Member {
	id, gen := cl.GroupMetadata()
	m := Member{MemberID: id, Generation: gen}
	if g, ok := cl.OptValue(kgo.ConsumerGroup).(string); ok {
		m.Group = g
	}
	if vs := cl.OptValues(kgo.InstanceID); len(vs) == 2 {
		if set, _ := vs[1].(bool); set {
			id, _ := vs[0].(string)
			m.InstanceID = &id
		}
	}
	return m
}

// ErrFenced reports offsets the group coordinator refused because the
// member is no longer a member of the group's current generation: the group
// rebalanced (or dropped the member) after the batch was planned. The
// transaction must be aborted.
var ErrFenced = errors.New("groupcommit: the group moved on since this member's generation; abort the transaction")

// concurrentRetry is how long to wait before asking again when the
// transaction coordinator is still completing the previous transaction.
const concurrentRetry = 20 * time.Millisecond

// Commit adds m's group to the open transaction of producer (a client with
// a TransactionalID, between BeginTransaction and EndTransaction) and
// stages offsets (topic → partition → next offset to read) to commit with
// it. A refusal because m is stale is an error wrapping [ErrFenced] and the
// Kafka error.
//
// The transaction must hold at least one record as well (a batch's commit
// marker will do): kgo's EndTransaction ends a transaction in which nothing
// was produced without telling the broker, so the staged offsets would stay
// pending and commit or abort with the producer's next transaction.
func Commit(ctx context.Context, producer *kgo.Client, m Member, offsets map[string]map[int32]int64) error {
	txnID, _ := producer.OptValue(kgo.TransactionalID).(string)
	if txnID == "" {
		return errors.New("groupcommit: the producer has no transactional ID; create it with kgo.TransactionalID")
	}
	if m.Group == "" || m.MemberID == "" || m.Generation < 0 {
		return fmt.Errorf("%w: member %q of group %q has generation %d (not joined)", ErrFenced, m.MemberID, m.Group, m.Generation)
	}
	pid, epoch, err := producer.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("groupcommit: producer ID of %q: %w", txnID, err)
	}
	ids, err := topicIDs(ctx, producer, offsets)
	if err != nil {
		return err
	}

	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID = txnID
	add.ProducerID = pid
	add.ProducerEpoch = epoch
	add.Group = m.Group
	if err := retryConcurrent(ctx, func() error {
		resp, err := add.RequestWith(ctx, producer)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	}); err != nil {
		return fmt.Errorf("groupcommit: adding group %q to transaction %q: %w", m.Group, txnID, err)
	}

	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID = txnID
	req.Group = m.Group
	req.ProducerID = pid
	req.ProducerEpoch = epoch
	req.Generation = m.Generation
	req.MemberID = m.MemberID
	req.InstanceID = m.InstanceID
	for topic, ps := range offsets {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		rt.TopicID = ids[topic]
		for p, at := range ps {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition = p
			rp.Offset = at
			rp.LeaderEpoch = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	var resp *kmsg.TxnOffsetCommitResponse
	if err := retryConcurrent(ctx, func() error {
		var err error
		if resp, err = req.RequestWith(ctx, producer); err != nil {
			return err
		}
		return firstError(resp)
	}); err != nil {
		if fenced(err) {
			return fmt.Errorf("%w: group %q, member %q, generation %d: %w", ErrFenced, m.Group, m.MemberID, m.Generation, err)
		}
		return fmt.Errorf("groupcommit: committing offsets of group %q in transaction %q: %w", m.Group, txnID, err)
	}
	return nil
}

func firstError(resp *kmsg.TxnOffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

func fenced(err error) bool {
	return errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.UnknownMemberID) ||
		errors.Is(err, kerr.FencedInstanceID) || errors.Is(err, kerr.StaleMemberEpoch) ||
		errors.Is(err, kerr.RebalanceInProgress)
}

// retryConcurrent runs f again while the coordinator answers that it is
// still ending the previous transaction, until ctx is done.
func retryConcurrent(ctx context.Context, f func() error) error {
	for {
		err := f()
		if !errors.Is(err, kerr.ConcurrentTransactions) {
			return err
		}
		t := time.NewTimer(concurrentRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last answer: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// topicIDs returns the IDs of the topics of offsets, which
// TxnOffsetCommit v6 names topics by.
func topicIDs(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]int64) (map[string][16]byte, error) {
	req := kmsg.NewPtrMetadataRequest()
	for topic := range offsets {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("groupcommit: topic IDs: %w", err)
	}
	ids := make(map[string][16]byte, len(offsets))
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("groupcommit: topic %s: %w", strconv.Quote(*t.Topic), err)
		}
		ids[*t.Topic] = t.TopicID
	}
	return ids, nil
}
