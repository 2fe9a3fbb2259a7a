package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/groupcommit"
	"github.com/sluicehq/sluice/internal/membertxn"
)

// AsMember puts the stream in group mode: it reads as member name of its
// group ([WithGroup]), one process of a job that runs on several. Task p of
// the job is partition p of every input topic (they must have the same
// number of partitions), and the group gives each member whole tasks (see
// package copart), moving them when a member joins, leaves or dies. The
// stream plans only the partitions of the tasks its member owns, starts a
// task it gains at the group's committed offsets (stable ones: a pending
// transactional commit is waited for; without any, as [WithResetPolicy]
// says), and commits every batch as one Kafka transaction of the member's
// producer (package membertxn): the records kafkasink.WriteTxn writes, a
// commit marker and the batch's offsets, committed as that member, so that
// a batch's outputs and its input offsets commit together or not at all.
// Offsets live in the group, so group mode takes no engine.WithCheckpoint.
//
// The state of the operators holding it per task ([engine.TaskStateful],
// such as dstream.UpdateStateByKey over a dstream.CoPartitioned stream)
// moves with the tasks through changelog topics (see [ChangelogTopic]),
// written in the same transactions; [WithStateDir] keeps a local copy.
// Records exchanged between tasks ([engine.Exchanger], for operators whose
// stream is keyed otherwise than the input) go through repartition topics
// (see [RepartitionTopic]), one partition per task, assigned with the
// tasks; both kinds of topic are created when the context starts, before
// the member joins the group.
//
// name must be stable across restarts and unique among the job's
// processes: the member's transactional ID derives from it and the group,
// and a member restarted under its name fences its previous instance. Batch
// and window times count from the Unix epoch ([engine.Distributed]), so
// members started apart cut the same batches. See docs/scale-out.md.
func AsMember(name string) Option {
	return func(c *config) error {
		if name == "" {
			return optErr("AsMember got an empty name; name this process, stable across restarts and unique within the job")
		}
		c.groupMode = true
		c.memberName = name
		return nil
	}
}

// WithMemberOptions adds kgo options to the group membership of
// [AsMember], after Sluice's own, to tune it: kgo.SessionTimeout (how long
// the group waits for a silent member before moving its tasks, 45 s by
// default), kgo.HeartbeatInterval and kgo.RebalanceTimeout (how long a
// member may take to finish its batch and give tasks up). Options that
// change what the membership consumes or how it balances break group mode.
func WithMemberOptions(opts ...kgo.Opt) Option {
	return func(c *config) error {
		c.groupOpts = append(c.groupOpts, opts...)
		c.memberOpts = true
		return nil
	}
}

// validateGroupMode refuses what group mode cannot do yet.
func (c *config) validateGroupMode(ec *engine.Context) error {
	switch {
	case !c.groupMode && c.memberOpts:
		return optErr("WithMemberOptions tunes group mode; add AsMember or drop it")
	case !c.groupMode && c.stateDir != "":
		return optErr("WithStateDir caches the state of group mode's tasks; add AsMember or drop it")
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

// Distributed reports group mode to the engine ([engine.Distributed]):
// every member then counts batches and windows from the Unix epoch, so
// members started apart cut the same batches and a task that moves keeps
// its windows.
func (n *directNode) Distributed() bool { return n.cfg.groupMode }

// startMember prepares the membership of the group and the member's
// transactional producer; the member joins the group when the context
// starts (see Validate), once the graph names every topic it reads.
func (n *directNode) startMember(ec *engine.Context) error {
	m := newMember(memberConfig{
		seeds:      n.cfg.brokers,
		clientOpts: n.cfg.clientOpts,
		group:      n.cfg.group,
		logger:     n.logger,
		groupOpts:  n.cfg.groupOpts,
		revoking:   n.cfg.groupRevoking,
	})
	txn, err := membertxn.New(n.cfg.brokers, n.cfg.clientOpts, n.cfg.group, n.cfg.memberName)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOption, err)
	}
	n.member, n.txn = m, txn
	membertxn.Set(ec, txn)
	ec.AddListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
		if info.Err != nil {
			n.txn.Abort() // before the tasks are let go
		}
		n.unpin()
	}})
	return nil
}

// pinOwned pins the partitions the member owns for the batch being
// planned and returns ps cut down to them (a copy: the client caches ps's
// maps); it drops from pos the partitions no longer owned and returns the
// owned ones without a position (new tasks), which start at the group's
// committed offsets, and the tasks gained, whose state is to restore. It fails when the group's balancer refuses the job's
// topics (unequal partition counts, members reading different topics).
func (n *directNode) pinOwned(ps *partitions, pos map[TopicPartition]int64) (*partitions, []TopicPartition, []int, error) {
	owned, regained, who, end, err := n.member.begin()
	if err != nil {
		return nil, nil, nil, err
	}
	n.pinned, n.who = end, who
	for _, tp := range regained {
		delete(pos, tp) // it may have run elsewhere: it starts at the group's offsets
	}
	gained := n.ownTasks(owned, regained)
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
	return mine, fix, gained, nil
}

// unpin lets revocations through once the batch has ended, committed or
// not.
func (n *directNode) unpin() {
	if n.pinned != nil {
		n.pinned()
		n.pinned = nil
	}
}

// commitGroupMode advances the positions past batch j and commits the
// batch's transaction: the outputs written into it, its commit marker and
// the offsets, staged as the member, before the batch counts as done. In
// group mode the group's offsets are where a task resumes.
func (n *directNode) commitGroupMode(ctx context.Context, j *engine.Job) error {
	n.mu.Lock()
	offsets := make(map[string]map[int32]int64)
	for _, r := range n.planned {
		n.positions[r.TopicPartition()] = r.Until
		if r.Until == r.From {
			continue // nothing read: the committed offset stands
		}
		if offsets[r.Topic] == nil {
			offsets[r.Topic] = make(map[int32]int64)
		}
		offsets[r.Topic][r.Partition] = r.Until
	}
	n.mu.Unlock()
	n.exchangeOffsets(offsets)
	if err := n.saveTasks(); err != nil {
		n.txn.Abort()
		return err
	}
	n.batches.Add(1)
	who := n.who
	err := n.txn.Commit(ctx, j.Time, offsets, func() groupcommit.Member {
		// The membership now: a rebalance that let the member keep its
		// tasks moved the generation on while the batch ran, and the
		// tasks cannot have moved, since revocations wait for the batch.
		who = groupcommit.MemberOf(n.member.cl)
		return who
	})
	if err != nil {
		err = fmt.Errorf("kafkasource: committing batch %d ms of group %q as member %q (generation %d): %w",
			j.Time.UnixMilli(), n.cfg.group, who.MemberID, who.Generation, err)
		if !n.sessionEnded(ctx, err, who) {
			return err
		}
		return n.giveUp(j, who, err)
	}
	n.exchangesCommitted()
	for tp, recs := range n.toCopy {
		n.local.append(tp, recs) // committed: the records have their offsets
	}
	clear(n.toCopy)
	return nil
}

// sessionEnded reports whether the commit refused with err was refused
// because the group ended the member's session while the batch ran (it
// was paused past its session timeout, or its rejoin was not answered in
// time): the coordinator refused the offsets of a member it no longer
// knows, or of an old generation, or the producer was fenced (past the
// transaction timeout the coordinator aborts the transaction) while the
// group no longer lists the member. A producer fenced while the member is
// still in the group is a newer instance's doing: this one must stop.
func (n *directNode) sessionEnded(ctx context.Context, err error, who groupcommit.Member) bool {
	if errors.Is(err, groupcommit.ErrFenced) {
		return true
	}
	if !membertxn.Fenced(err) {
		return false
	}
	if now := groupcommit.MemberOf(n.member.cl); now.MemberID != who.MemberID {
		return true
	}
	ds, derr := kadm.NewClient(n.member.cl).DescribeGroups(ctx, n.cfg.group)
	if derr != nil {
		return false
	}
	d, ok := ds[n.cfg.group]
	if !ok || d.Err != nil {
		return false
	}
	return !slices.ContainsFunc(d.Members, func(m kadm.DescribedGroupMember) bool { return m.MemberID == who.MemberID })
}

// giveUp gives batch j up, as Kafka Streams gives up a migrated task: its
// transaction is aborted, with its outputs, changelog records and offsets;
// every task the member owned is dropped (the next batch drops their state,
// and a task it owns again is restored from its changelog and starts at
// the group's committed offsets); a fenced producer is replaced; and the
// job goes on with its next batch once the member has joined the group
// again.
func (n *directNode) giveUp(j *engine.Job, who groupcommit.Member, err error) error {
	n.txn.Abort()
	if membertxn.Fenced(err) {
		if rerr := n.txn.Renew(); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	n.mu.Lock()
	clear(n.positions)
	clear(n.xpos)
	n.mu.Unlock()
	clear(n.toCopy)
	n.member.gaveUp(who)
	n.givenUp.Add(1)
	n.logger.Warn("kafkasource: the member lost its group session during the batch; the batch's transaction was aborted, and its tasks restart from the group's committed offsets",
		"group", n.cfg.group, "member", n.cfg.memberName, "batch_ms", j.Time.UnixMilli(), "error", err.Error())
	return nil
}

// closeMember leaves the group. The batch goroutine has stopped: the
// engine closes nodes only after the batch in flight ends.
func (n *directNode) closeMember() {
	if n.member == nil {
		return
	}
	n.txn.Close() // a context that failed to start never joined: it only closes the producer
	n.unpin()
	n.member.close()
}
