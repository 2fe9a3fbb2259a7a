package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/groupcommit"
	"github.com/sluicehq/sluice/kafkasource/copart"
)

// member is one process's membership of its job's consumer group in group
// mode: a kgo client that joins the group with the co-partitioning
// balancer and never fetches records (the direct stream reads its ranges
// itself), and the partitions, by task, that the group has given it.
//
// A batch pins what the member owns from planning to commit ([member.begin]
// and the function it returns): a revocation waits for the batch in flight,
// so a task moves to its next owner only after its last batch here has
// committed or failed. The group gives a member as long as its rebalance
// timeout for that; past it, the group drops the member and generation
// fencing refuses the batch's commit.
type member struct {
	cfg    memberConfig
	cl     *kgo.Client // nil until join
	group  string
	logger *slog.Logger

	inFlight sync.Mutex // held by a batch from begin to end

	mu      sync.Mutex
	owned   map[TopicPartition]bool
	moved   map[TopicPartition]bool // taken back since the last begin, whether owned again or not
	refused error                   // the group's balancing refused the job's topics, until a balance succeeds
	stale   *groupcommit.Member     // the session a batch was given up under, until the member has another
	changed chan struct{}           // closed and replaced when owned or refused changes

	// revoking, if set, is called when the group takes partitions back,
	// before waiting for the batch in flight (tests).
	revoking func(gone []TopicPartition)
}

// memberConfig says how a member joins its group.
type memberConfig struct {
	seeds      []string
	clientOpts []kgo.Opt // the stream's own client options (TLS, SASL)
	group      string
	topics     []string // what joinGroup joins for
	logger     *slog.Logger
	groupOpts  []kgo.Opt                   // override the group defaults (tests shorten the timeouts)
	revoking   func(gone []TopicPartition) // see member.revoking
}

// joinGroup starts the membership of cfg.group for cfg.topics.
func joinGroup(cfg memberConfig) (*member, error) {
	m := newMember(cfg)
	if err := m.join(cfg.topics); err != nil {
		return nil, err
	}
	return m, nil
}

// newMember returns the membership of cfg.group, not joined yet: it owns
// nothing until [member.join].
func newMember(cfg memberConfig) *member {
	return &member{cfg: cfg, group: cfg.group, logger: cfg.logger, owned: make(map[TopicPartition]bool), moved: make(map[TopicPartition]bool), changed: make(chan struct{}), revoking: cfg.revoking}
}

// join joins the group for topics (cfg.topics is ignored), once.
func (m *member) join(topics []string) error {
	cfg := m.cfg
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.seeds...)}, cfg.clientOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.group),
		kgo.ConsumeTopics(topics...),
		kgo.Balancers(copart.Balancer()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, added map[string][]int32) { m.assigned(added) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, gone map[string][]int32) { m.revoked(gone, "revoked") }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, gone map[string][]int32) { m.revoked(gone, "lost") }),
		kgo.WithHooks(memberHooks{m}),
	)
	cl, err := kgo.NewClient(append(opts, cfg.groupOpts...)...)
	if err != nil {
		return fmt.Errorf("%w: the Kafka client of group %q refused its options: %w", ErrOption, cfg.group, err)
	}
	cl.PauseFetchTopics(topics...)
	m.cl = cl
	return nil
}

func (m *member) assigned(added map[string][]int32) {
	tps := flatten(added)
	m.mu.Lock()
	for _, tp := range tps {
		m.owned[tp] = true
	}
	m.refused = nil // a balance went through
	m.signal()
	m.mu.Unlock()
	if len(tps) > 0 {
		m.logger.Info("kafkasource: the group assigned partitions", "group", m.group, "tasks", tasksOf(tps))
	}
}

// revoked waits for the batch in flight, then gives the partitions up.
func (m *member) revoked(gone map[string][]int32, how string) {
	tps := flatten(gone)
	if len(tps) == 0 {
		return
	}
	if m.revoking != nil {
		m.revoking(tps)
	}
	m.inFlight.Lock()
	defer m.inFlight.Unlock()
	m.mu.Lock()
	for _, tp := range tps {
		delete(m.owned, tp)
		m.moved[tp] = true
	}
	m.signal()
	m.mu.Unlock()
	m.logger.Info("kafkasource: the group took partitions back", "group", m.group, "how", how, "tasks", tasksOf(tps))
}

// ErrSessionTimeout reports, in group mode, a session timeout the broker
// refuses to let the member join with: outside its
// group.min.session.timeout.ms and group.max.session.timeout.ms (6 s and
// 30 min by default). The member's next batch fails with it.
var ErrSessionTimeout = errors.New("the broker refuses the member's session timeout")

var errSessionTimeout = fmt.Errorf("%w, which must lie within its group.min.session.timeout.ms and group.max.session.timeout.ms; "+
	"give one within them with WithMemberOptions(kgo.SessionTimeout(d))", ErrSessionTimeout)

// memberHooks hears why a group session ended.
type memberHooks struct{ m *member }

var _ kgo.HookGroupManageError = memberHooks{}

// OnGroupManageError keeps a refusal of the job's topics by the balancer
// (which only the member leading the group sees) and the broker's refusal
// of the session timeout for [member.begin] to report; other errors end a
// session and kgo joins again.
func (h memberHooks) OnGroupManageError(err error) {
	var unequal *copart.UnequalPartitionsError
	if errors.Is(err, kerr.InvalidSessionTimeout) {
		err = errSessionTimeout
	} else if !errors.As(err, &unequal) && !errors.Is(err, copart.ErrMixedSubscriptions) {
		h.m.logger.Warn("kafkasource: the group session ended; joining again", "group", h.m.group, "error", err.Error())
		return
	}
	h.m.mu.Lock()
	h.m.refused = err
	h.m.signal()
	h.m.mu.Unlock()
}

func (m *member) signal() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// begin pins the partitions the member owns for one batch and returns
// them, sorted, with the membership to commit the batch's offsets under,
// and the owned partitions the group took back and gave again since the
// last begin (their tasks may have run elsewhere meanwhile). Until end is
// called, revocations wait. begin and end are called from the goroutine
// that drives batches. When the group's balancer refuses the job's topics,
// begin pins nothing and returns the refusal.
func (m *member) begin() (owned, regained []TopicPartition, who groupcommit.Member, end func(), err error) {
	m.inFlight.Lock()
	who = groupcommit.MemberOf(m.cl)
	m.mu.Lock()
	owned, err = slices.SortedFunc(maps.Keys(m.owned), compareTP), m.refused
	if m.stale != nil && m.stale.MemberID == who.MemberID && m.stale.Generation == who.Generation {
		owned = nil // the session has not been seen to end yet: the tasks may be another's
	} else if err == nil {
		m.stale = nil
		for tp := range m.moved {
			if m.owned[tp] {
				regained = append(regained, tp)
			}
		}
		clear(m.moved)
	}
	m.mu.Unlock()
	if err != nil {
		m.inFlight.Unlock()
		if errors.Is(err, ErrSessionTimeout) {
			return nil, nil, groupcommit.Member{}, nil, fmt.Errorf("kafkasource: group %q: %w", m.group, err)
		}
		return nil, nil, groupcommit.Member{}, nil, fmt.Errorf("kafkasource: group %q cannot assign the job's topics: %w", m.group, err)
	}
	slices.SortFunc(regained, compareTP)
	return owned, regained, who, m.inFlight.Unlock, nil
}

// gaveUp marks the tasks the member owns as moved, once a batch run under
// session who was given up because the group ended that session: their
// state and positions are those of a batch that did not commit. Until the
// member has another session (kgo joins again by itself once it hears that
// the group dropped it), begin gives it no tasks.
func (m *member) gaveUp(who groupcommit.Member) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tp := range m.owned {
		m.moved[tp] = true
	}
	m.stale = &who
}

// refusal returns a channel closed at the next change and the balancer's
// refusal of the job's topics, if any.
func (m *member) refusal() (<-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed, m.refused
}

// snapshot returns the partitions the member owns and a channel closed at
// their next change.
func (m *member) snapshot() ([]TopicPartition, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.SortedFunc(maps.Keys(m.owned), compareTP), m.changed
}

// close leaves the group, giving every partition back; it waits for a
// batch in flight. It must not be called between begin and end.
func (m *member) close() {
	if m.cl != nil {
		m.cl.Close()
	}
}

func flatten(ps map[string][]int32) []TopicPartition {
	var out []TopicPartition
	for topic, parts := range ps {
		for _, p := range parts {
			out = append(out, TopicPartition{Topic: topic, Partition: p})
		}
	}
	slices.SortFunc(out, compareTP)
	return out
}

// tasksOf returns the tasks (partition numbers) of tps, ascending.
func tasksOf(tps []TopicPartition) []int32 {
	out := make([]int32, 0, len(tps))
	for _, tp := range tps {
		out = append(out, tp.Partition)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
