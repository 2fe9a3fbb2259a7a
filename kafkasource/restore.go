package kafkasource

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/membertxn"
)

// restoreChunk is the most offsets of a changelog read at once while
// restoring, so that a large task is not held in memory twice.
const restoreChunk = 10_000

// openTxnPoll is how often a restore looks again at a changelog partition
// that a transaction holds open, and openTxnWait how long it waits for it:
// a committed transaction whose markers are still being written ends at
// once, a zombie's is aborted by the coordinator after the transaction
// timeout.
const (
	openTxnPoll = 20 * time.Millisecond
	openTxnWait = membertxn.TransactionTimeout + 5*time.Second
)

// restoreTasks restores the state of the tasks gained, of every node
// holding state per task, before the batch being planned reads them.
func (n *directNode) restoreTasks(ctx context.Context, gained []int) error {
	if len(n.stateful) == 0 {
		return nil
	}
	for _, task := range gained {
		start := time.Now()
		for _, s := range n.stateful {
			if err := n.restoreTask(ctx, s, task); err != nil {
				return fmt.Errorf("kafkasource: restoring task %d of %s from %s: %w", task, s.node.Meta().Name(), s.topic, err)
			}
		}
		n.restoreNanos.Add(int64(time.Since(start)))
		n.tmu.Lock()
		if st := n.status[task]; st != nil {
			st.Restoring = false
		}
		n.tmu.Unlock()
	}
	return nil
}

// restoreTask reads task's partition of s's changelog, read committed, from
// its start (or from where the local copy ends) to its last stable offset,
// once no transaction holds it open, and hands the records to s's node.
func (n *directNode) restoreTask(ctx context.Context, s stateNode, task int) error {
	began := time.Now()
	tp := TopicPartition{Topic: s.topic, Partition: int32(task)}
	start, end, err := n.changelogBounds(ctx, tp)
	if err != nil {
		return err
	}
	var local *localCopy
	if n.local != nil {
		local = n.local.open(tp, start, end)
	}
	from := start
	if local != nil {
		from = local.covered
	}
	// Until the restore ends, ToRestore counts offsets, not records: an
	// upper bound (markers and offsets compaction removed hold none).
	estimate := end - from
	if local != nil {
		estimate += int64(len(local.records))
	}
	n.tmu.Lock()
	if st := n.status[task]; st != nil {
		st.ToRestore += estimate
	}
	n.tmu.Unlock()
	var read, fromLog int64
	count := func(k int64) {
		read += k
		n.restored.Add(k)
		n.tmu.Lock()
		if st := n.status[task]; st != nil {
			st.Restored += k
		}
		n.tmu.Unlock()
	}
	var w *copyWriter // the local copy, brought up to date as the restore reads
	if n.local != nil {
		w = n.local.restoring(tp, local)
	}
	err = s.node.RestoreTask(task, func(apply func(key, value []byte) error) error {
		if local != nil {
			for _, r := range local.records {
				if err := apply(r.key, r.value); err != nil {
					return err
				}
			}
			count(int64(len(local.records)))
		}
		for next := from; next < end; {
			rg := OffsetRange{Topic: tp.Topic, Partition: tp.Partition, From: next, Until: min(next+restoreChunk, end)}
			recs, err := n.restoreReader().read(ctx, rg, nil)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if err := apply(r.Key, r.Value); err != nil {
					return err
				}
			}
			if w != nil {
				w.frame(rg.Until, recs)
			}
			fromLog += int64(len(recs))
			count(int64(len(recs)))
			next = rg.Until
		}
		return nil
	})
	if w != nil {
		w.finish(end, err)
	}
	if err != nil {
		return err
	}
	n.tmu.Lock()
	if st := n.status[task]; st != nil {
		st.ToRestore += read - estimate
	}
	n.tmu.Unlock()
	n.changelogRead.Add(fromLog)
	n.logger.Info("kafkasource: restored a task's state", "task", task, "operator", s.node.Meta().Name(), "changelog", s.topic,
		"records", read, "from_changelog", fromLog, "from_offset", from, "to_offset", end, "took", time.Since(began).String())
	return nil
}

// changelogBounds returns the log start and the last stable offset of tp,
// once no transaction holds the partition open (last stable offset equal
// to the high watermark): the previous owner's last commit may still be
// writing its markers, and a zombie's open transaction ends when it is
// fenced or times out.
func (n *directNode) changelogBounds(ctx context.Context, tp TopicPartition) (start, end int64, err error) {
	var leaders map[TopicPartition]int32
	err = n.k.retry(ctx, "looking up the changelog partition "+tp.Topic+fmt.Sprintf("[%d]", tp.Partition), func(ctx context.Context) (string, error) {
		var err error
		leaders, err = n.k.metadata(ctx, &subscription{assign: []TopicPartition{tp}})
		if err == nil && len(leaders) == 0 {
			err = fmt.Errorf("the changelog partition %s[%d] does not exist", tp.Topic, tp.Partition)
		}
		return "", err
	})
	if err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(openTxnWait)
	for {
		var ps *partitions
		err := n.k.retry(ctx, "listing the offsets of the changelog "+tp.Topic, func(ctx context.Context) (string, error) {
			var who string
			var err error
			ps, who, err = n.k.offsetsOf(ctx, leaders)
			return who, err
		})
		if err != nil {
			return 0, 0, err
		}
		hwm, err := n.k.highWatermarks(ctx, leaders)
		if err != nil {
			return 0, 0, err
		}
		if ps.end[tp] >= hwm[tp] {
			return ps.start[tp], ps.end[tp], nil
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("a transaction has held the changelog partition %s[%d] open for over %s (stable up to %d, written up to %d); the member that opened it is stuck: stop it",
				tp.Topic, tp.Partition, openTxnWait, ps.end[tp], hwm[tp])
		}
		tick := time.NewTimer(openTxnPoll)
		select {
		case <-ctx.Done():
			tick.Stop()
			return 0, 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// restoreReader returns the reader of changelogs, which a restore that
// finds records gone (deleted, not compacted) fails with.
func (n *directNode) restoreReader() *reader {
	if n.rr == nil {
		n.rr = &reader{k: n.k, dec: kgo.DefaultDecompressor(), maxBytes: n.cfg.fetchMaxBytes, lose: func(tp TopicPartition, from, to int64, _ string) error {
			return fmt.Errorf("offsets [%d, %d) of the changelog %s[%d] were deleted, and the state they held with them; a changelog must be compacted, never deleted from", from, to, tp.Topic, tp.Partition)
		}}
	}
	return n.rr
}
