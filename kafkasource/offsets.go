package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/internal/outage"
)

// Errors of the direct stream's offsets and brokers.
var (
	// ErrDataLoss reports records deleted (by retention or DeleteRecords)
	// before the stream read them, with [WithFatalOnDataLoss].
	ErrDataLoss = errors.New("kafkasource: records were deleted before the stream read them")
	// ErrRetryTimeout reports a broker that kept failing for longer than
	// the retry timeout ([WithRetryTimeout]).
	ErrRetryTimeout = errors.New("kafkasource: broker kept failing past the retry timeout")
)

// OffsetOutOfRangeError reports a starting or checkpointed offset above a
// partition's high watermark: the stream would wait for records the
// partition never had, which means the offset belongs to another topic or a
// topic that was deleted and created again.
type OffsetOutOfRangeError struct {
	Topic         string
	Partition     int32
	Offset        int64 // the offset the stream was to read next
	HighWatermark int64 // the partition's end
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("kafkasource: offset %d of %s[%d] is above its high watermark %d; the topic was probably recreated: start from a fresh checkpoint or pass WithStartOffsets",
		e.Offset, e.Topic, e.Partition, e.HighWatermark)
}

// RetryTimeoutError is a broker request that kept failing past the retry
// timeout ([WithRetryTimeout]); it matches [ErrRetryTimeout] with
// errors.Is. A program that sets the timeout otherwise (a command-line
// flag, say) finds it with errors.As and words its own advice from
// Problem.
type RetryTimeoutError struct {
	Request string        // what was asked, such as "fetch of words[0]"
	Broker  string        // the broker that last failed, or "the cluster"
	For     time.Duration // how long the request was retried
	Err     error         // the last failure
}

// Problem says what failed, without the advice.
func (e *RetryTimeoutError) Problem() string {
	return fmt.Sprintf("%s at %s failed for %v: %v", e.Request, e.Broker, e.For, trimmed{e.Err})
}

func (e *RetryTimeoutError) Error() string {
	return ErrRetryTimeout.Error() + ": " + e.Problem() + "; check that the broker is up and reachable, or raise WithRetryTimeout"
}

func (e *RetryTimeoutError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrRetryTimeout].
func (e *RetryTimeoutError) Is(target error) bool { return target == ErrRetryTimeout }

// Retry backoff bounds: the first retry waits about minBackoff, each next
// one twice as long, at most maxBackoff.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = time.Second
)

// kclient is the one kgo client a stream uses for everything, with the
// stream's retry policy and a cache of partition leaders. It is safe for
// concurrent use.
type kclient struct {
	cl           *kgo.Client
	adm          *kadm.Client
	retryTimeout time.Duration
	logger       *slog.Logger
	retries      atomic.Int64
	outage       *outage.Log

	mu       sync.Mutex
	brokers  map[int32]string // node id → host:port
	leaders  map[TopicPartition]int32
	seen     map[TopicPartition]int32 // the partitions and leaders of the last snapshot; not changed once set
	topicIDs map[string][16]byte
	warned   map[string]bool // missing topics already logged
}

func newKClient(cfg *config) (*kclient, error) {
	o := outage.New(cfg.logger, "kafkasource", "the stream")
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.brokers...), kgo.WithHooks(o.ConnectHook())}, cfg.clientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: the Kafka client refused its options: %w", ErrOption, err)
	}
	if consumes(cl) {
		cl.Close()
		return nil, fmt.Errorf("%w: WithClientOpts has consumer options (ConsumeTopics, ConsumePartitions, ConsumeRegex or ConsumerGroup); drop them: the stream fetches by itself", ErrOption)
	}
	return &kclient{
		cl:           cl,
		adm:          kadm.NewClient(cl),
		retryTimeout: cfg.retryTimeout,
		logger:       cfg.logger,
		outage:       o,
		brokers:      make(map[int32]string),
		leaders:      make(map[TopicPartition]int32),
		topicIDs:     make(map[string][16]byte),
		warned:       make(map[string]bool),
	}, nil
}

func consumes(cl *kgo.Client) bool {
	for _, o := range []any{kgo.ConsumeTopics, kgo.ConsumePartitions, kgo.ConsumerGroup} {
		// kgo reports these as a string, a slice or a map, by version.
		v := reflect.ValueOf(cl.OptValue(o))
		switch v.Kind() {
		case reflect.String, reflect.Slice, reflect.Map:
			if v.Len() > 0 {
				return true
			}
		}
	}
	return false
}

func (k *kclient) close() {
	k.outage.Close()
	k.cl.Close()
}

// brokerName names a broker for messages: "broker 1 (host:port)".
func (k *kclient) brokerName(id int32) string {
	k.mu.Lock()
	addr := k.brokers[id]
	k.mu.Unlock()
	if addr == "" {
		return "broker " + strconv.Itoa(int(id))
	}
	return "broker " + strconv.Itoa(int(id)) + " (" + addr + ")"
}

// retry runs op until it succeeds, fails with an error no retry can fix
// (returned wrapped, with what and where), or has kept failing for the retry
// timeout since its first call. Every call of
// op gets a context that ends with that budget, so a broker that does not
// answer cannot stall the batch past it. op returns who it talked to, for
// the error message. retry backs off exponentially between calls. The
// first retry of an outage logs a WARN and the end of the outage an INFO
// (see package internal/outage); the retries between them log at DEBUG.
func (k *kclient) retry(ctx context.Context, what string, op func(ctx context.Context) (who string, err error)) (err error) {
	start := time.Now()
	deadline := start.Add(k.retryTimeout)
	backoff := minBackoff
	var lastWho string
	var lastErr error
	retried := false
	defer func() { k.outage.Ended(what, lastWho, retried, err == nil) }()
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithDeadline(ctx, deadline)
		who, err := op(actx)
		cancel()
		if err == nil {
			if who != "" {
				lastWho = who
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) && lastErr != nil {
			err = fmt.Errorf("no answer in time after %w", lastErr)
		} else {
			lastErr = err
		}
		if who != "" {
			lastWho = who
		}
		if lastWho == "" {
			lastWho = "the cluster"
		}
		if !retriable(err) {
			return fmt.Errorf("kafkasource: %s at %s: %w", what, lastWho, err)
		}
		wait := jitter(backoff)
		if time.Now().Add(wait).After(deadline) {
			return &RetryTimeoutError{Request: what, Broker: lastWho, For: time.Since(start).Round(time.Millisecond), Err: err}
		}
		k.retries.Add(1)
		k.outage.Failed(what, lastWho, err, !retried, wait)
		retried = true
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// trimmed prints an error without a final period, so that it reads well
// inside a sentence (Kafka's error descriptions end with one).
type trimmed struct{ err error }

func (e trimmed) Error() string { return strings.TrimSuffix(e.err.Error(), ".") }
func (e trimmed) Unwrap() error { return e.err }

func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}

// retriable reports whether err may go away by itself: Kafka's retriable
// error codes, connection failures and timeouts. A closed client and errors
// Kafka calls final are not.
func retriable(err error) bool {
	if errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled) {
		return false
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	// Connection resets, EOFs, dial failures, deadlines, answers without
	// a whole batch: a broker going away or restarting looks like any of
	// them.
	return true
}

// partitions is what one batch knows of the subscribed partitions: their
// leaders and their first and last stable offsets.
type partitions struct {
	leaders map[TopicPartition]int32
	start   map[TopicPartition]int64 // log start offset
	end     map[TopicPartition]int64 // last stable offset
}

// subscription says which partitions the stream reads.
type subscription struct {
	topics  []string         // exact names
	regexps []*regexp.Regexp // with WithTopicRegex
	assign  []TopicPartition // WithPartitions
}

// metadata asks the cluster for the subscription's partitions and their
// leaders, and refreshes the leader cache. Topics that do not exist (yet)
// are logged once and skipped.
func (k *kclient) metadata(ctx context.Context, sub *subscription) (map[TopicPartition]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false // subscribing must not create topics
	if len(sub.regexps) == 0 {
		names := slices.Clone(sub.topics)
		for _, tp := range sub.assign {
			names = append(names, tp.Topic)
		}
		slices.Sort(names)
		for _, t := range slices.Compact(names) {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	} // else nil Topics: all topics
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return nil, err
	}
	brokers := make(map[int32]string, len(resp.Brokers))
	for _, b := range resp.Brokers {
		brokers[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	wanted := make(map[string]bool, len(sub.topics))
	for _, t := range sub.topics {
		wanted[t] = true
	}
	assigned := make(map[TopicPartition]bool, len(sub.assign))
	assignedTopics := make(map[string]bool)
	for _, tp := range sub.assign {
		assigned[tp] = true
		assignedTopics[tp.Topic] = true
	}
	out := make(map[TopicPartition]int32)
	ids := make(map[string][16]byte)
	var missing []string
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		name := *t.Topic
		subscribed := wanted[name]
		if len(sub.regexps) > 0 {
			subscribed = false
			if !t.IsInternal {
				for _, re := range sub.regexps {
					if re.MatchString(name) {
						subscribed = true
						break
					}
				}
			}
		}
		if !subscribed && !assignedTopics[name] {
			continue
		}
		if t.ErrorCode != 0 {
			err := kerr.ErrorForCode(t.ErrorCode)
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				missing = append(missing, name)
				continue
			}
			return nil, fmt.Errorf("metadata of topic %q: %w", name, err)
		}
		ids[name] = t.TopicID
		for _, p := range t.Partitions {
			tp := TopicPartition{Topic: name, Partition: p.Partition}
			if !subscribed && !assigned[tp] {
				continue
			}
			if p.Leader < 0 {
				return nil, fmt.Errorf("%s[%d] has no leader: %w", name, p.Partition, kerr.LeaderNotAvailable)
			}
			out[tp] = p.Leader
		}
	}
	for _, tp := range sub.assign {
		if _, ok := out[tp]; !ok && !slices.Contains(missing, tp.Topic) {
			missing = append(missing, fmt.Sprintf("%s[%d]", tp.Topic, tp.Partition))
		}
	}
	k.mu.Lock()
	for id, a := range brokers {
		k.brokers[id] = a
	}
	for tp, l := range out {
		k.leaders[tp] = l
	}
	for t, id := range ids {
		k.topicIDs[t] = id
	}
	var fresh []string
	for _, m := range missing {
		if !k.warned[m] {
			k.warned[m] = true
			fresh = append(fresh, m)
		}
	}
	k.mu.Unlock()
	for _, m := range fresh {
		k.logger.Warn("kafkasource: subscribed topic or partition does not exist; the stream reads it once it is created", "name", m)
	}
	return out, nil
}

// leader returns the cached leader and topic id of tp.
func (k *kclient) leader(tp TopicPartition) (int32, [16]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.leaders[tp]
	return l, k.topicIDs[tp.Topic], ok
}

// forgetLeader drops tp's cached leader, so the next use asks the cluster.
func (k *kclient) forgetLeader(tp TopicPartition) {
	k.mu.Lock()
	delete(k.leaders, tp)
	k.mu.Unlock()
}

// refreshLeader asks the cluster for tp's topic again.
func (k *kclient) refreshLeader(ctx context.Context, tp TopicPartition) error {
	_, err := k.metadata(ctx, &subscription{assign: []TopicPartition{tp}})
	return err
}

// listOffsets asks each partition's leader for the offset at timestamp ts
// (-2: log start, -1: end) with the given isolation (1: read committed, so
// the end is the last stable offset). Leaders are asked in parallel.
func (k *kclient) listOffsets(ctx context.Context, leaders map[TopicPartition]int32, ts int64, isolation int8) (map[TopicPartition]int64, string, error) {
	byLeader := make(map[int32][]TopicPartition)
	for tp, l := range leaders {
		byLeader[l] = append(byLeader[l], tp)
	}
	out := make(map[TopicPartition]int64, len(leaders))
	var mu sync.Mutex
	var failedAt string
	g, gctx := errgroup.WithContext(ctx)
	for l, tps := range byLeader {
		g.Go(func() error {
			got, err := k.listOffsetsAt(gctx, l, tps, ts, isolation)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if failedAt == "" {
					failedAt = k.brokerName(l)
				}
				return err
			}
			for tp, o := range got {
				out[tp] = o
			}
			return nil
		})
	}
	err := g.Wait()
	return out, failedAt, err
}

func (k *kclient) listOffsetsAt(ctx context.Context, leader int32, tps []TopicPartition, ts int64, isolation int8) (map[TopicPartition]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	req.IsolationLevel = isolation
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	for i, tp := range tps {
		if i == 0 || tps[i-1].Topic != tp.Topic {
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = tp.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = tp.Partition
		rp.CurrentLeaderEpoch = -1
		rp.Timestamp = ts
		rp.MaxNumOffsets = 1
		rt := &req.Topics[len(req.Topics)-1]
		rt.Partitions = append(rt.Partitions, rp)
	}
	kresp, err := k.cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.ListOffsetsResponse)
	out := make(map[TopicPartition]int64, len(tps))
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, fmt.Errorf("offsets of %s[%d]: %w", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
			out[TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.Offset
		}
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok {
			return nil, fmt.Errorf("offsets of %s[%d]: missing from the answer: %w", tp.Topic, tp.Partition, kerr.UnknownTopicOrPartition)
		}
	}
	return out, nil
}

// snapshot lists the subscribed partitions with their leaders, log start
// and last stable offsets, retrying as one operation. The two offset
// requests go out together; once a snapshot has seen the partitions, the
// next one sends them together with the metadata request, to the leaders it
// saw, and keeps their answers (or their error) when the metadata shows the
// same partitions and leaders; it asks again when they changed. One round
// trip instead of three.
func (k *kclient) snapshot(ctx context.Context, sub *subscription) (*partitions, error) {
	var ps *partitions
	err := k.retry(ctx, "listing partitions and offsets", func(ctx context.Context) (string, error) {
		k.mu.Lock()
		seen := k.seen
		k.mu.Unlock()
		var leaders map[TopicPartition]int32
		var early *partitions
		var earlyWho string
		var earlyErr error
		if len(seen) > 0 {
			var wg sync.WaitGroup
			var metaErr error
			wg.Go(func() { leaders, metaErr = k.metadata(ctx, sub) })
			wg.Go(func() { early, earlyWho, earlyErr = k.offsetsOf(ctx, seen) })
			wg.Wait()
			if metaErr != nil {
				return "", metaErr
			}
		} else {
			var err error
			if leaders, err = k.metadata(ctx, sub); err != nil {
				return "", err
			}
		}
		if len(leaders) == 0 {
			ps = &partitions{leaders: leaders}
			return "", nil
		}
		if len(seen) > 0 && maps.Equal(leaders, seen) {
			if earlyErr != nil {
				return earlyWho, earlyErr
			}
			ps = &partitions{leaders: leaders, start: early.start, end: early.end}
			return "", nil
		}
		got, who, err := k.offsetsOf(ctx, leaders)
		if err != nil {
			return who, err
		}
		k.mu.Lock()
		k.seen = leaders
		k.mu.Unlock()
		ps = got
		return "", nil
	})
	return ps, err
}

// offsetsOf asks the leaders for the log start and last stable offsets of
// their partitions, both requests at once.
func (k *kclient) offsetsOf(ctx context.Context, leaders map[TopicPartition]int32) (*partitions, string, error) {
	var start, end map[TopicPartition]int64
	var startWho, endWho string
	var startErr, endErr error
	var wg sync.WaitGroup
	wg.Go(func() { start, startWho, startErr = k.listOffsets(ctx, leaders, -2, 0) })
	wg.Go(func() { end, endWho, endErr = k.listOffsets(ctx, leaders, -1, 1) })
	wg.Wait()
	if startErr != nil {
		return nil, startWho, startErr
	}
	if endErr != nil {
		return nil, endWho, endErr
	}
	return &partitions{leaders: leaders, start: start, end: end}, "", nil
}

// highWatermarks lists the high watermarks (uncommitted ends) of tps.
func (k *kclient) highWatermarks(ctx context.Context, leaders map[TopicPartition]int32) (map[TopicPartition]int64, error) {
	var out map[TopicPartition]int64
	err := k.retry(ctx, "listing high watermarks", func(ctx context.Context) (string, error) {
		var who string
		var err error
		out, who, err = k.listOffsets(ctx, leaders, -1, 0)
		return who, err
	})
	return out, err
}

// groupOffsets returns the offsets group has committed for the partitions
// of leaders; partitions without a commit are absent. Asked for stable
// offsets (kadm.RequireStable on ctx, in group mode), it waits while the
// coordinator answers UNSTABLE_OFFSET_COMMIT (a transaction has offsets of
// the group pending), up to openTxnWait: taking such a partition for one
// without a commit would start it at the reset policy and read its records
// again, or skip them. Another error of a partition fails.
func (k *kclient) groupOffsets(ctx context.Context, group string, leaders map[TopicPartition]int32) (map[TopicPartition]int64, error) {
	deadline := time.Now().Add(openTxnWait)
	for {
		var resps kadm.OffsetResponses
		err := k.retry(ctx, "fetching the committed offsets of group "+strconv.Quote(group), func(ctx context.Context) (string, error) {
			var err error
			resps, err = k.adm.FetchOffsets(ctx, group)
			return "the group coordinator", err
		})
		if errors.Is(err, kerr.GroupIDNotFound) {
			return nil, nil // a new group has committed nothing
		}
		if err != nil {
			return nil, err
		}
		out := make(map[TopicPartition]int64)
		var pending *TopicPartition
		for tp := range leaders {
			r, ok := resps.Lookup(tp.Topic, tp.Partition)
			switch {
			case !ok:
			case errors.Is(r.Err, kerr.UnstableOffsetCommit):
				pending = &tp
			case r.Err != nil:
				return nil, fmt.Errorf("the committed offset of %s[%d] in group %q: %w", tp.Topic, tp.Partition, group, r.Err)
			case r.At >= 0:
				out[tp] = r.At
			}
		}
		if pending == nil {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("a transaction has held the committed offset of %s[%d] in group %q pending for over %s; the member that opened it is stuck: stop it",
				pending.Topic, pending.Partition, group, openTxnWait)
		}
		tick := time.NewTimer(openTxnPoll)
		select {
		case <-ctx.Done():
			tick.Stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// commitGroup commits offsets (the next offset to read per partition) to
// group, tagging them with the batch time.
func (k *kclient) commitGroup(ctx context.Context, group string, offsets map[TopicPartition]int64, batch time.Time) error {
	os := make(kadm.Offsets)
	meta := "sluice batch " + strconv.FormatInt(batch.UnixMilli(), 10)
	for tp, at := range offsets {
		os.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: at, LeaderEpoch: -1, Metadata: meta})
	}
	return k.retry(ctx, "committing offsets to group "+strconv.Quote(group), func(ctx context.Context) (string, error) {
		resps, err := k.adm.CommitOffsets(ctx, group, os)
		if err == nil {
			err = resps.Error()
		}
		return "the group coordinator", err
	})
}

// startOffsets fixes where partitions without a position start, in the
// order of precedence: the explicit start offsets, the group's committed
// offsets, then the reset policy (the log start for Earliest, the last
// stable offset for Latest), into pos.
func (n *directNode) startOffsets(ctx context.Context, ps *partitions, fix []TopicPartition, pos map[TopicPartition]int64) error {
	if len(fix) == 0 {
		return nil
	}
	var group map[TopicPartition]int64
	if n.cfg.group != "" && !n.cfg.ignoreGroup {
		leaders := make(map[TopicPartition]int32, len(fix))
		for _, tp := range fix {
			leaders[tp] = ps.leaders[tp]
		}
		var err error
		if group, err = n.k.groupOffsets(ctx, n.cfg.group, leaders); err != nil {
			return err
		}
	}
	for _, tp := range fix {
		from, how := ps.end[tp], "reset policy latest"
		if n.cfg.reset == Earliest {
			from, how = ps.start[tp], "reset policy earliest"
		}
		if o, ok := group[tp]; ok {
			from, how = o, "group "+n.cfg.group
		}
		if o, ok := n.cfg.start[tp]; ok {
			from, how = o, "start offsets"
		}
		pos[tp] = from
		n.logger.Debug("kafkasource: partition starts", "topic", tp.Topic, "partition", tp.Partition, "offset", from, "from", how)
	}
	return nil
}

// checkPositions moves positions in pos below the log start up to it (a
// loss, warned about and counted, or ErrDataLoss with WithFatalOnDataLoss)
// and fails on positions above the high watermark.
func (n *directNode) checkPositions(ctx context.Context, ps *partitions, pos map[TopicPartition]int64) error {
	above := make(map[TopicPartition]int32)
	for tp := range ps.leaders {
		if start := ps.start[tp]; pos[tp] < start {
			if err := n.lose(tp, pos[tp], start, "planning"); err != nil {
				return err
			}
			pos[tp] = start
		}
		if pos[tp] > ps.end[tp] {
			above[tp] = ps.leaders[tp]
		}
	}
	if len(above) == 0 {
		return nil
	}
	hwm, err := n.k.highWatermarks(ctx, above)
	if err != nil {
		return err
	}
	var errs []error
	for tp := range above {
		if pos[tp] > hwm[tp] {
			errs = append(errs, &OffsetOutOfRangeError{Topic: tp.Topic, Partition: tp.Partition, Offset: pos[tp], HighWatermark: hwm[tp]})
		}
	}
	return errors.Join(errs...)
}

// lose records that the offsets [from, to) of tp are gone: a warning and
// the lost-records count, or ErrDataLoss when that is fatal.
func (n *directNode) lose(tp TopicPartition, from, to int64, when string) error {
	if n.cfg.fatalDataLoss {
		return fmt.Errorf("%w: offsets [%d, %d) of %s[%d] (%s) are gone, the log now starts at %d; drop WithFatalOnDataLoss to skip them",
			ErrDataLoss, from, to, tp.Topic, tp.Partition, plural(to-from, "record", "records"), to)
	}
	n.lost.Add(to - from)
	n.logger.Warn("kafkasource: records lost: deleted by retention or DeleteRecords before the stream read them; skipping to the log start",
		"topic", tp.Topic, "partition", tp.Partition, "from", from, "log_start", to, "lost", to-from, "while", when)
	return nil
}

// plural returns n with the singular or plural noun: "1 record", "2 records".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
