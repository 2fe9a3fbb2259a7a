package kafkasource

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/engine"
)

// withGroupMode makes the stream a member of its group ([WithGroup]): it
// plans only the partitions of the tasks the group gives it (see package
// copart), starts a task it gains at the group's committed offsets (stable
// ones: a pending transactional commit is waited for), and commits the
// offsets of every batch as that member; a failed commit fails the batch,
// since the group, not a checkpoint, is where the next owner of a task
// resumes. groupOpts override the membership's group options (tests
// shorten the timeouts).
//
// Not exported yet: offsets are committed after the batch, not in one
// transaction with its outputs, and keyed state is not held per task, so a
// job is at least once and only stateless jobs are exact.
func withGroupMode(groupOpts ...kgo.Opt) Option {
	return func(c *config) error {
		c.groupMode = true
		c.groupOpts = append(c.groupOpts, groupOpts...)
		return nil
	}
}

// validateGroupMode refuses what group mode cannot do yet.
func (c *config) validateGroupMode(ec *engine.Context) error {
	switch {
	case !c.groupMode:
		return nil
	case c.group == "":
		return optErr("group mode needs the group to join; name it with WithGroup")
	case c.ignoreGroup:
		return optErr("group mode starts tasks at the group's committed offsets; drop WithGroupOffsets(false)")
	case c.regex:
		return optErr("group mode reads named topics; list them instead of WithTopicRegex")
	case len(c.partitions) > 0:
		return optErr("in group mode the group assigns the partitions; drop WithPartitions")
	case len(c.start) > 0:
		return optErr("in group mode tasks start at the group's committed offsets; drop WithStartOffsets and set the group's committed offsets instead")
	case ec.Checkpointing():
		return optErr("group mode keeps offsets in the group, not in a checkpoint; drop engine.WithCheckpoint")
	}
	return nil
}

// startMember joins the group for the stream's topics.
func (n *directNode) startMember(ec *engine.Context, topics []string) error {
	m, err := joinGroup(memberConfig{
		seeds:      n.cfg.brokers,
		clientOpts: n.cfg.clientOpts,
		group:      n.cfg.group,
		topics:     topics,
		logger:     n.logger,
		groupOpts:  n.cfg.groupOpts,
		revoking:   n.cfg.groupRevoking,
	})
	if err != nil {
		return err
	}
	n.member = m
	ec.AddListener(engine.ListenerFuncs{Completed: func(engine.BatchInfo) { n.unpin() }})
	return nil
}

// pinOwned pins the partitions the member owns for the batch being
// planned and returns ps cut down to them (a copy: the client caches ps's
// maps); it drops from pos the partitions no longer owned and returns the
// owned ones without a position (new tasks), which start at the group's
// committed offsets. It fails when the group's balancer refuses the job's
// topics (unequal partition counts, members reading different topics).
func (n *directNode) pinOwned(ps *partitions, pos map[TopicPartition]int64) (*partitions, []TopicPartition, error) {
	owned, who, end, err := n.member.begin()
	if err != nil {
		return nil, nil, err
	}
	n.pinned, n.who = end, who
	mine := &partitions{
		leaders: make(map[TopicPartition]int32, len(owned)),
		start:   make(map[TopicPartition]int64, len(owned)),
		end:     make(map[TopicPartition]int64, len(owned)),
	}
	for _, tp := range owned {
		if l, ok := ps.leaders[tp]; ok {
			mine.leaders[tp], mine.start[tp], mine.end[tp] = l, ps.start[tp], ps.end[tp]
		}
	}
	for tp := range pos {
		if _, ok := mine.leaders[tp]; !ok {
			delete(pos, tp) // a task that moved away starts at the group's offsets if it comes back
		}
	}
	var fix []TopicPartition
	for tp := range mine.leaders {
		if _, ok := pos[tp]; !ok {
			fix = append(fix, tp)
		}
	}
	return mine, fix, nil
}

// unpin lets revocations through once the batch has ended, committed or
// not.
func (n *directNode) unpin() {
	if n.pinned != nil {
		n.pinned()
		n.pinned = nil
	}
}

// commitGroupMode advances the positions past batch j and commits them to
// the group as the member that planned the batch, before the batch counts
// as done: in group mode the group's offsets are where a task resumes.
func (n *directNode) commitGroupMode(ctx context.Context, j *engine.Job) error {
	n.mu.Lock()
	offsets := make(map[TopicPartition]int64, len(n.planned))
	for _, r := range n.planned {
		n.positions[r.TopicPartition()] = r.Until
		offsets[r.TopicPartition()] = r.Until
	}
	n.mu.Unlock()
	n.batches.Add(1)
	return n.commitAsMember(ctx, offsets, j.Time)
}

// commitAsMember commits offsets to the group as the member that planned
// the batch.
func (n *directNode) commitAsMember(ctx context.Context, offsets map[TopicPartition]int64, batch time.Time) error {
	if len(offsets) == 0 {
		return nil
	}
	meta := "sluice batch " + strconv.FormatInt(batch.UnixMilli(), 10)
	eos := make(map[string]map[int32]kgo.EpochOffset)
	for tp, at := range offsets {
		if eos[tp.Topic] == nil {
			eos[tp.Topic] = make(map[int32]kgo.EpochOffset)
		}
		eos[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: at}
	}
	var err error
	ctx = kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			for j := range req.Topics[i].Partitions {
				req.Topics[i].Partitions[j].Metadata = &meta
			}
		}
		return nil
	})
	n.member.cl.CommitOffsetsSync(ctx, eos, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, e error) {
		if e != nil {
			err = e
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if pe := kerr.ErrorForCode(p.ErrorCode); pe != nil && err == nil {
					err = fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, pe)
				}
			}
		}
	})
	if err != nil {
		return fmt.Errorf("kafkasource: committing the offsets of batch %d ms to group %q as member %q (generation %d): %w",
			batch.UnixMilli(), n.cfg.group, n.who.MemberID, n.who.Generation, err)
	}
	return nil
}

// closeMember leaves the group. The batch goroutine has stopped: the
// engine closes nodes only after the batch in flight ends.
func (n *directNode) closeMember() {
	if n.member == nil {
		return
	}
	n.unpin()
	n.member.close()
}
