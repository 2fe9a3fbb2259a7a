package kafkasource

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/groupcommit"
	"github.com/sluicehq/sluice/internal/membertxn"
)

// Kind is the operator kind of direct streams.
const Kind = "kafkaDirect"

// DefaultName is the default name of a job's first direct stream; the n-th
// is "kafka-<n>". Streams were formerly named "kafkaDirect-<n>" by default:
// a checkpoint that holds a stream under that name resumes under the new
// one (see [engine.Meta.FormerNames]).
const DefaultName = "kafka"

// NewDirectStream returns a stream of the records of topics, read the way
// Spark's direct Kafka stream reads them: at every batch the stream asks
// the cluster for the end (last stable offset) of every subscribed
// partition, plans one offset range [from, until) per partition, capped by
// [WithRateLimits] and backpressure, and reads each non-empty range in a
// task of its own. Partition i of every batch holds the records of range i,
// ranges sorted by topic and partition, in offset order; [OffsetRangesOf]
// returns the ranges.
//
// Records are read committed: records of aborted or still open transactions
// are never returned, nor are transaction markers; offsets removed by
// compaction are skipped. Every record of a range is read exactly once per
// run of its batch. With a checkpoint ([engine.WithCheckpoint]) the
// positions are part of it, and a batch re-run after a crash reads exactly
// the ranges it was planned with.
//
// Partitions start, in order of precedence, at the position the checkpoint
// holds, at [WithStartOffsets], at the committed offset of [WithGroup], or
// as [WithResetPolicy] says (default [Latest]). Partitions created while
// the stream runs start at their earliest offset. After each batch commits,
// the stream commits its positions to the group, if it has one.
//
// The stream owns one Kafka client, created here and closed with c. Options
// are checked here: a bad one is an error wrapping [ErrOption]. No broker is
// contacted before the first batch.
func NewDirectStream(c *engine.Context, topics []string, opts ...Option) (*dstream.Stream[Record], error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(topics); err != nil {
		return nil, err
	}
	if err := cfg.validateGroupMode(c); err != nil {
		return nil, err
	}
	k, err := newKClient(&cfg)
	if err != nil {
		return nil, err
	}
	n := &directNode{
		meta:      engine.Meta{DefaultName: DefaultName},
		cfg:       cfg,
		k:         k,
		logger:    cfg.logger,
		batch:     c.BatchInterval(),
		sub:       subscription{topics: topics, regexps: cfg.regexps, assign: cfg.partitions},
		positions: make(map[TopicPartition]int64),
		ec:        c,
		status:    make(map[int]*engine.TaskStatus),
	}
	if cfg.regex {
		n.sub.topics = nil
	}
	n.r = &reader{k: k, dec: kgo.DefaultDecompressor(), maxBytes: cfg.fetchMaxBytes, lose: n.lose}
	if cfg.backpressure {
		p := cfg.pid
		n.rc = &rateController{node: n, est: NewPIDRateEstimator(c.BatchInterval(), p[0], p[1], p[2], p[3])}
		c.AddListener(n.rc)
	}
	if cfg.groupMode {
		if err := n.startMember(c); err != nil {
			k.close()
			return nil, err
		}
	}
	return dstream.NewPartitionedSource(c, n, Kind, n.partitions, n.readRange), nil
}

// directNode is the graph node of a direct stream: an engine source whose
// state is its positions.
type directNode struct {
	meta   engine.Meta
	cfg    config
	k      *kclient
	r      *reader
	rc     *rateController
	logger *slog.Logger
	batch  time.Duration
	sub    subscription

	// Read and written on the goroutine that drives batches; mu guards
	// positions against StatsOf and unpublished against Publish.
	mu             sync.Mutex
	positions      map[TopicPartition]int64 // next offset to read, as of the last committed batch
	ends           map[TopicPartition]int64 // end (last stable offset) of each partition when the last batch was planned
	started        bool                     // positions of the first batch are fixed
	restoredTopics map[string]bool          // topics the checkpoint or a re-run plan knew
	restoredSub    []string                 // the checkpoint's subscription (see subscribedNames)
	planned        []OffsetRange
	plannedFor     int64                              // batch time (ns) the planned ranges belong to
	ahead          *readAhead                         // the planned ranges' first fetches, or nil
	unpublished    map[int64]map[TopicPartition]int64 // batch time (ns) → offsets Publish commits to the group

	// Group mode (AsMember): the membership, and for the batch in
	// flight the function that unpins its tasks and who planned it.
	member *member
	txn    *membertxn.Txn
	pinned func()
	who    groupcommit.Member

	// Group mode's tasks: the nodes holding state per task, the tasks whose
	// state they hold and the tasks of the batch in flight (batch
	// goroutine); the tasks' status for Tasks (tmu).
	ec         *engine.Context
	taskCount  atomic.Int64
	stateful   []stateNode
	held       map[int]bool
	batchTasks []int
	tmu        sync.Mutex
	status     map[int]*engine.TaskStatus

	local            *stateDir                        // withStateDir's copies, or nil
	rr               *reader                          // reads changelogs
	toCopy           map[TopicPartition][]*kgo.Record // the batch's changelog records, for the local copies
	changelogWritten atomic.Int64
	changelogRead    atomic.Int64
	restored         atomic.Int64
	restoreNanos     atomic.Int64

	// Group mode's exchanges: the repartition topic of each exchange
	// (fixed at start); the next offset to read of the repartition
	// partitions of the tasks owned, as of the last committed batch, and
	// their ends when the last batch was planned (written on the batch
	// goroutine under mu); the ranges of the batch planned, by exchange
	// and task; the records exchanged.
	xtopics  map[string]string
	xsub     subscription // the input and repartition topics, listed together
	xpos     map[TopicPartition]int64
	xends    map[TopicPartition]int64
	xplanned map[string]map[int]OffsetRange
	xwritten atomic.Int64
	xbytes   atomic.Int64
	xread    atomic.Int64

	lost           atomic.Int64
	commitFailures atomic.Int64
	givenUp        atomic.Int64 // group mode's batches given up on a lost session
	batches        atomic.Int64
	closeOnce      sync.Once
}

var (
	_ engine.Source    = (*directNode)(nil)
	_ engine.Stateful  = (*directNode)(nil)
	_ engine.Closer    = (*directNode)(nil)
	_ engine.Publisher = (*directNode)(nil)
)

func (n *directNode) Meta() *engine.Meta { return &n.meta }

// Plan lists the subscribed partitions and their offsets, fixes the
// positions of new partitions and the ranges of batch j.
func (n *directNode) Plan(ctx context.Context, j *engine.Job) ([]byte, error) {
	sub := &n.sub
	if len(n.xtopics) > 0 {
		sub = &n.xsub
	}
	ps, err := n.k.snapshot(ctx, sub)
	if err != nil {
		return nil, err
	}
	// Work on a copy, so that StatsOf never waits for the brokers.
	pos := maps.Clone(n.positions)
	var fix []TopicPartition
	startCtx := ctx
	if n.member != nil {
		if n.taskCount.Load() == 0 {
			n.learnTaskCount(ps) // the input topics did not exist at start
		}
		xps := n.splitExchanges(ps)
		var gained []int
		if ps, fix, gained, err = n.pinOwned(ps, pos); err != nil {
			return nil, err
		}
		if err := n.txn.Begin(ctx); err != nil {
			return nil, err
		}
		if err := n.restoreTasks(ctx, gained); err != nil {
			return nil, err
		}
		startCtx = kadm.RequireStable(ctx) // wait for offsets a transaction has pending
		if err := n.planExchanges(startCtx, xps, gained); err != nil {
			return nil, err
		}
	}
	for tp := range ps.leaders {
		if _, ok := pos[tp]; ok || n.member != nil {
			continue
		}
		if n.started || n.restoredTopics[tp.Topic] || n.savedSubscriptionCovers(tp.Topic) {
			// A partition added since the stream (or its checkpoint)
			// last saw the topic, or of a topic its checkpointed
			// subscription covered but that did not exist then: all of
			// it is new.
			pos[tp] = ps.start[tp]
			n.logger.Debug("kafkasource: new partition starts at its earliest offset", "topic", tp.Topic, "partition", tp.Partition, "offset", ps.start[tp])
			continue
		}
		fix = append(fix, tp)
	}
	if err := n.startOffsets(startCtx, ps, fix, pos); err != nil {
		return nil, err
	}
	if err := n.checkPositions(ctx, ps, pos); err != nil {
		return nil, err
	}
	n.started = true
	n.mu.Lock()
	n.positions = pos
	n.ends = ps.end
	n.mu.Unlock()

	current := make(map[TopicPartition]int64, len(ps.leaders))
	for tp := range ps.leaders {
		current[tp] = pos[tp]
	}
	caps := MaxMessagesPerPartition(n.cfg.limits, n.batch, current, ps.end, n.rate())
	ranges := planRanges(current, ps.end, caps)
	n.adopt(ctx, j, ranges)
	return encodePlan(ranges), nil
}

// Replan adopts the ranges recorded for batch j before a restart.
func (n *directNode) Replan(ctx context.Context, j *engine.Job, plan []byte) error {
	ranges, err := decodePlan(plan)
	if err != nil {
		return err
	}
	// The plan fixed the start of every partition its topics had then;
	// partitions added since are new, as they are to a stream that never
	// stopped.
	if n.restoredTopics == nil {
		n.restoredTopics = make(map[string]bool)
	}
	ends := maps.Clone(n.ends)
	if ends == nil {
		ends = make(map[TopicPartition]int64, len(ranges))
	}
	for _, r := range ranges {
		n.restoredTopics[r.Topic] = true
		ends[r.TopicPartition()] = max(ends[r.TopicPartition()], r.Until)
	}
	n.mu.Lock()
	n.ends = ends
	n.mu.Unlock()
	n.adopt(ctx, j, ranges)
	return nil
}

func (n *directNode) adopt(ctx context.Context, j *engine.Job, ranges []OffsetRange) {
	n.planned = ranges
	n.plannedFor = j.Time.UnixNano()
	n.ahead = n.r.readAhead(ctx, ranges)
	j.AddRecords(totalCount(ranges))
	j.Report(n.meta.Name(), append([]OffsetRange(nil), ranges...))
}

// partitions returns the number of partitions of batch j: one per planned
// range, empty ones included, so that partition i is range i.
func (n *directNode) partitions(j *engine.Job) (int, error) {
	if n.plannedFor != j.Time.UnixNano() {
		return 0, fmt.Errorf("kafkasource: %s has no plan for batch %d ms", n.meta.Name(), j.Time.UnixMilli())
	}
	return len(n.planned), nil
}

// readRange reads planned range i of batch j, inside the task that
// processes partition i.
func (n *directNode) readRange(tk *engine.Task, j *engine.Job, i int) ([]Record, error) {
	rg := n.planned[i]
	if rg.Count() == 0 {
		return nil, nil
	}
	start := time.Now()
	defer func() { tk.AddReadTime(time.Since(start)) }()
	return n.r.read(tk.Context(), rg, n.ahead.first(tk.Context(), i))
}

// Commit advances the positions past batch j, and keeps the offsets that
// Publish commits to the group, if the stream has one.
func (n *directNode) Commit(ctx context.Context, j *engine.Job) error {
	if n.member != nil {
		return n.commitGroupMode(ctx, j)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.planned {
		n.positions[r.TopicPartition()] = r.Until
	}
	if n.cfg.group != "" && len(n.planned) > 0 {
		offsets := make(map[TopicPartition]int64, len(n.planned))
		for _, r := range n.planned {
			offsets[r.TopicPartition()] = r.Until
		}
		if n.unpublished == nil {
			n.unpublished = make(map[int64]map[TopicPartition]int64)
		}
		n.unpublished[j.Time.UnixNano()] = offsets
	}
	n.batches.Add(1)
	return nil
}

// Publish commits the positions after batch j to the group, once the
// engine made the batch's commit durable. A failed group commit is logged
// and counted, not fatal: the checkpoint, not the group, is the truth, and
// the next batch commits again.
func (n *directNode) Publish(ctx context.Context, j *engine.Job) {
	n.mu.Lock()
	offsets := n.unpublished[j.Time.UnixNano()]
	delete(n.unpublished, j.Time.UnixNano())
	n.mu.Unlock()
	if offsets == nil {
		return
	}
	if err := n.k.commitGroup(ctx, n.cfg.group, offsets, j.Time); err != nil {
		if ctx.Err() != nil {
			return
		}
		n.commitFailures.Add(1)
		n.logger.Warn("kafkasource: committing offsets to the group failed; lag tools see old offsets until a later batch commits",
			"group", n.cfg.group, "batch_ms", j.Time.UnixMilli(), "error", err.Error())
	}
}

// Close closes the stream's Kafka client. It is idempotent.
func (n *directNode) Close() error {
	n.closeOnce.Do(func() {
		n.closeMember()
		n.k.close()
		n.local.close()
	})
	return nil
}

// stateVersion is the first byte of a saved state. Version 2 adds the
// subscription after the positions; version 1 states are still read.
const stateVersion = 2

// SaveState writes the positions the stream has after the batch being
// checkpointed: one snapshot of topic, partition and next offset each.
func (n *directNode) SaveState(w engine.StateWriter) error {
	pos := maps.Clone(n.positions)
	for _, r := range n.planned {
		pos[r.TopicPartition()] = r.Until
	}
	rs := make([]OffsetRange, 0, len(pos))
	for tp, off := range pos {
		rs = append(rs, OffsetRange{Topic: tp.Topic, Partition: tp.Partition, From: off, Until: off})
	}
	sortRanges(rs)
	b := []byte{stateVersion}
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = appendString(b, r.Topic)
		b = binary.AppendUvarint(b, uint64(r.Partition))
		b = binary.AppendUvarint(b, uint64(r.From))
	}
	// The subscription, so that after a restart a topic it covers but the
	// positions lack — created while the job was down — starts at its
	// earliest offset, as it would have had the job been running.
	subs := n.subscribedNames()
	b = binary.AppendUvarint(b, uint64(len(subs)))
	for _, sub := range subs {
		b = appendString(b, sub)
	}
	return w.Snapshot(b)
}

// subscribedNames encodes the subscription: "t:" + a topic name, or "r:" +
// a regular expression.
func (n *directNode) subscribedNames() []string {
	var out []string
	for _, t := range n.sub.topics {
		out = append(out, "t:"+t)
	}
	for _, re := range n.sub.regexps {
		out = append(out, "r:"+re.String())
	}
	return out
}

// savedSubscriptionCovers reports whether the subscription restored from a
// checkpoint covered topic.
func (n *directNode) savedSubscriptionCovers(topic string) bool {
	for _, sub := range n.restoredSub {
		kind, v, _ := strings.Cut(sub, ":")
		switch kind {
		case "t":
			if v == topic {
				return true
			}
		case "r":
			if re, err := regexp.Compile(v); err == nil && re.MatchString(topic) {
				return true
			}
		}
	}
	return false
}

// ErrBadState reports saved positions that cannot be decoded.
var ErrBadState = errors.New("kafkasource: saved positions are malformed")

// RestoreState sets the positions from a checkpoint. They take precedence
// over every other starting offset; partitions of the topics it names that
// it lacks were created later and start at their earliest offset.
func (n *directNode) RestoreState(r engine.StateReader) error {
	b, err := r.Snapshot()
	if err != nil {
		return err
	}
	if b == nil {
		return nil
	}
	pos, subs, err := decodeState(b)
	if err != nil {
		return fmt.Errorf("%w (%s): %w", ErrBadState, n.meta.Name(), err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.positions = pos
	n.restoredSub = subs
	n.restoredTopics = make(map[string]bool)
	for tp := range pos {
		n.restoredTopics[tp.Topic] = true
	}
	return nil
}

func decodeState(b []byte) (map[TopicPartition]int64, []string, error) {
	if len(b) == 0 || (b[0] != 1 && b[0] != stateVersion) {
		return nil, nil, errors.New("unknown version")
	}
	version := b[0]
	rd := varintReader{b[1:]}
	cnt, ok := rd.count()
	if !ok {
		return nil, nil, errors.New("bad count")
	}
	pos := make(map[TopicPartition]int64, cnt)
	for range cnt {
		topic, ok := rd.str()
		if !ok {
			return nil, nil, errors.New("bad topic")
		}
		p, ok1 := rd.uvarint()
		off, ok2 := rd.uvarint()
		if !ok1 || !ok2 || p > math.MaxInt32 || off > math.MaxInt64 {
			return nil, nil, errors.New("bad offset")
		}
		pos[TopicPartition{Topic: topic, Partition: int32(p)}] = int64(off)
	}
	var subs []string
	if version >= 2 {
		cnt, ok := rd.count()
		if !ok {
			return nil, nil, errors.New("bad subscription count")
		}
		for range cnt {
			sub, ok := rd.str()
			if !ok {
				return nil, nil, errors.New("bad subscription")
			}
			subs = append(subs, sub)
		}
	}
	if len(rd.b) != 0 {
		return nil, nil, errors.New("trailing bytes")
	}
	return pos, subs, nil
}

// rate returns the backpressure rate for the next plan: the controller's
// latest estimate, or the initial rate before it has one; 0 without
// backpressure.
func (n *directNode) rate() float64 {
	if n.rc == nil {
		return 0
	}
	if r := n.rc.latest(); r > 0 {
		return r
	}
	return n.cfg.initialRate
}

// rateController feeds the PID estimator with every completed batch, as
// Spark's RateController does, and keeps the latest rate.
type rateController struct {
	node *directNode
	est  *PIDRateEstimator
	bits atomic.Uint64
}

func (rc *rateController) latest() float64 { return math.Float64frombits(rc.bits.Load()) }

func (rc *rateController) BatchStarted(engine.BatchInfo) {}

func (rc *rateController) BatchCompleted(info engine.BatchInfo) {
	if info.Err != nil {
		return
	}
	ranges, _ := info.Sources[rc.node.meta.Name()].([]OffsetRange)
	end := info.Time.Add(info.TotalDelay)
	if r, ok := rc.est.Compute(end, totalCount(ranges), info.ProcessingDelay, info.SchedulingDelay); ok {
		rc.bits.Store(math.Float64bits(r))
	}
}

// Stats are counters of a direct stream, for metrics.
type Stats struct {
	// Batches is the number of batches committed.
	Batches int64
	// LostRecords counts records deleted (by retention or DeleteRecords)
	// before the stream could read them, and skipped.
	LostRecords int64
	// Rate is the backpressure rate in records/s, or 0 before the first
	// estimate and without backpressure.
	Rate float64
	// Fetches counts fetch requests sent.
	Fetches int64
	// Retries counts broker requests retried after an error.
	Retries int64
	// GroupCommitFailures counts batches whose offsets could not be
	// committed to the group.
	GroupCommitFailures int64
	// Positions holds the next offset to read of every partition, as of
	// the last committed batch.
	Positions map[TopicPartition]int64
	// EndOffsets holds the end of every partition (its last stable offset,
	// as records are read committed) that the brokers gave when the last
	// batch was planned.
	EndOffsets map[TopicPartition]int64
}

// StatsOf returns the counters of the direct stream s reads from: s itself
// or the first direct stream found upstream of it, parents in order. ok is
// false when there is none. It is safe to call while batches run.
func StatsOf[T any](s *dstream.Stream[T]) (st Stats, ok bool) {
	n := findDirect(s.Node())
	if n == nil {
		return Stats{}, false
	}
	n.mu.Lock()
	pos := maps.Clone(n.positions)
	ends := maps.Clone(n.ends)
	n.mu.Unlock()
	var rate float64
	if n.rc != nil {
		rate = n.rc.latest()
	}
	return Stats{
		Batches:             n.batches.Load(),
		LostRecords:         n.lost.Load(),
		Rate:                rate,
		Fetches:             n.r.fetches.Load(),
		Retries:             n.k.retries.Load(),
		GroupCommitFailures: n.commitFailures.Load(),
		Positions:           pos,
		EndOffsets:          ends,
	}, true
}

// OffsetRangesOf returns the offset ranges batch j reads from the direct
// stream s reads from (s itself or the first one upstream of it, parents in
// order), indexed like the partitions of that stream's batch, as Spark's
// HasOffsetRanges gives them. Call it from an output operation
// ([dstream.ForEachBatchJob]) or a listener's [engine.BatchInfo].Sources. It
// returns nil when s reads no direct stream. The slice is the caller's.
func OffsetRangesOf[T any](j *engine.Job, s *dstream.Stream[T]) []OffsetRange {
	n := findDirect(s.Node())
	if n == nil {
		return nil
	}
	v, _ := j.SourceInfo(n.meta.Name())
	rs, _ := v.([]OffsetRange)
	return append([]OffsetRange(nil), rs...)
}

func findDirect(nd engine.Node) *directNode {
	if d, ok := nd.(*directNode); ok {
		return d
	}
	for _, p := range nd.Meta().Parents {
		if d := findDirect(p); d != nil {
			return d
		}
	}
	return nil
}
