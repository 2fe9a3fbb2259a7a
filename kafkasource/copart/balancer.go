package copart

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ProtocolName is the name [Balancer] joins the group with. Every member of
// the group must offer it.
const ProtocolName = "sluice-copartitioned"

// metadataVersion is the ConsumerMemberMetadata version members join with:
// v1 carries the owned partitions, v2 the generation they were owned at.
const metadataVersion = 3

// ErrMixedSubscriptions reports group members that subscribe to different
// topics, so that no plan can give each the same partitions of every topic.
var ErrMixedSubscriptions = errors.New("copart: group members subscribe to different topics")

// UnequalPartitionsError reports input topics whose partition counts differ,
// so that partition p of one has no partner in another.
type UnequalPartitionsError struct {
	Partitions map[string]int32 // partition count of every topic the group reads
}

// Error names every topic with its partition count, in topic order.
func (e *UnequalPartitionsError) Error() string {
	var b strings.Builder
	b.WriteString("copart: the group's topics have different partition counts (")
	for i, t := range slices.Sorted(maps.Keys(e.Partitions)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(t))
		b.WriteString(": ")
		b.WriteString(strconv.FormatInt(int64(e.Partitions[t]), 10))
	}
	b.WriteString("); give every input topic of the job the same number of partitions")
	return b.String()
}

// Balancer returns the co-partitioning, sticky, cooperative group balancer
// described in the package documentation. Use it as the only balancer of
// the group: kgo.Balancers(copart.Balancer()). It holds no state; one value
// may serve any number of clients.
func Balancer() kgo.GroupBalancer { return balancer{} }

type balancer struct{}

var (
	_ kgo.GroupBalancer           = balancer{}
	_ kgo.ConsumerBalancerBalance = balancer{}
)

func (balancer) ProtocolName() string { return ProtocolName }

func (balancer) IsCooperative() bool { return true }

// JoinGroupMetadata says which topics the member reads and which
// partitions it owns, with the generation it owns them at; the leader
// plans from these. kgo passes the topics and partitions sorted.
func (balancer) JoinGroupMetadata(topics []string, owned map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = metadataVersion
	meta.Topics = topics
	meta.Generation = generation
	for _, t := range slices.Sorted(maps.Keys(owned)) {
		p := kmsg.NewConsumerMemberMetadataOwnedPartition()
		p.Topic = t
		p.Partitions = owned[t]
		meta.OwnedPartitions = append(meta.OwnedPartitions, p)
	}
	return meta.AppendTo(nil)
}

func (balancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	return cb, cb.MemberTopics(), err
}

// Balance plans the group's tasks (see the package documentation) and
// makes the plan cooperative: a task moving between members is left out
// until its owner has revoked it.
func (balancer) Balance(cb *kgo.ConsumerBalancer, partitions map[string]int32) kgo.IntoSyncAssignment {
	ms := make([]member, 0, len(cb.Members()))
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		ms = append(ms, member{join: m, meta: meta})
	})
	slices.SortFunc(ms, func(a, b member) int { return compareMembers(a.join, b.join) })
	topics, tasks, err := groupTopics(ms, partitions)
	if err != nil {
		cb.SetError(err)
		return nil
	}
	assigned := assign(ms, topics, tasks)
	plan := cb.NewPlan()
	for i, m := range ms {
		for _, t := range topics {
			plan.AddPartitions(m.join, t, assigned[i])
		}
	}
	plan.AdjustCooperative(cb)
	return plan
}

type member struct {
	join *kmsg.JoinGroupResponseMember
	meta *kmsg.ConsumerMemberMetadata
}

// compareMembers orders members as kgo does before balancing: static
// members (by instance ID) first, then dynamic ones by member ID.
func compareMembers(a, b *kmsg.JoinGroupResponseMember) int {
	switch {
	case a.InstanceID != nil && b.InstanceID != nil:
		if c := cmp.Compare(*a.InstanceID, *b.InstanceID); c != 0 {
			return c
		}
	case a.InstanceID != nil:
		return -1
	case b.InstanceID != nil:
		return 1
	}
	return cmp.Compare(a.MemberID, b.MemberID)
}

// groupTopics returns the topics every member reads that have partitions,
// sorted, and their common partition count: the number of tasks. Topics
// without a known partition count (not created yet) have nothing to assign
// and are left out.
func groupTopics(ms []member, partitions map[string]int32) ([]string, int32, error) {
	if len(ms) == 0 {
		return nil, 0, nil
	}
	want := slices.Sorted(slices.Values(ms[0].meta.Topics))
	want = slices.Compact(want)
	for _, m := range ms[1:] {
		got := slices.Compact(slices.Sorted(slices.Values(m.meta.Topics)))
		if !slices.Equal(got, want) {
			return nil, 0, fmt.Errorf("%w: member %s reads %s and member %s reads %s; run the same job, with the same topics, on every member",
				ErrMixedSubscriptions, memberName(ms[0].join), quoteAll(want), memberName(m.join), quoteAll(got))
		}
	}
	var topics []string
	counts := make(map[string]int32, len(want))
	for _, t := range want {
		if n := partitions[t]; n > 0 {
			topics = append(topics, t)
			counts[t] = n
		}
	}
	if len(topics) == 0 {
		return nil, 0, nil
	}
	n := counts[topics[0]]
	for _, t := range topics[1:] {
		if counts[t] != n {
			return nil, 0, &UnequalPartitionsError{Partitions: counts}
		}
	}
	return topics, n, nil
}

func memberName(m *kmsg.JoinGroupResponseMember) string {
	if m.InstanceID != nil {
		return strconv.Quote(*m.InstanceID)
	}
	return strconv.Quote(m.MemberID)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// assign returns the tasks of every member (in the order of ms), each list
// ascending: members keep the tasks they own up to their share, and the
// rest go, lowest first, to the members below their share, in member order.
func assign(ms []member, topics []string, tasks int32) [][]int32 {
	owned := claims(ms, topics, tasks)

	// Shares: ⌊tasks/m⌋ each, one more for the tasks%m members that own
	// the most (the earlier member on a tie), so that the fewest tasks move.
	share := make([]int, len(ms))
	if len(ms) > 0 {
		byOwned := make([]int, len(ms))
		for i := range byOwned {
			byOwned[i] = i
		}
		slices.SortStableFunc(byOwned, func(a, b int) int { return cmp.Compare(len(owned[b]), len(owned[a])) })
		q, r := int(tasks)/len(ms), int(tasks)%len(ms)
		for rank, i := range byOwned {
			share[i] = q
			if rank < r {
				share[i]++
			}
		}
	}

	out := make([][]int32, len(ms))
	kept := make([]bool, tasks)
	for i, ts := range owned {
		out[i] = slices.Clone(ts[:min(len(ts), share[i])])
		for _, t := range out[i] {
			kept[t] = true
		}
	}
	next := 0
	for t := range tasks {
		if kept[t] {
			continue
		}
		for next < len(ms) && len(out[next]) >= share[next] {
			next++
		}
		out[next] = append(out[next], t)
	}
	for i := range out {
		slices.Sort(out[i])
	}
	return out
}

// claims returns, for every member, the tasks it owns, ascending. A member
// owns task p when it owns partition p of any of topics; when several members
// claim a task, the one that claims it at the latest generation owns it
// (the earliest member on a tie).
func claims(ms []member, topics []string, tasks int32) [][]int32 {
	type claim struct {
		member     int
		generation int32
	}
	owner := make([]claim, tasks)
	for i := range owner {
		owner[i].member = -1
	}
	for i, m := range ms {
		for _, op := range m.meta.OwnedPartitions {
			if !slices.Contains(topics, op.Topic) {
				continue
			}
			for _, p := range op.Partitions {
				if p < 0 || p >= tasks {
					continue
				}
				c := &owner[p]
				if c.member < 0 || m.meta.Generation > c.generation {
					*c = claim{member: i, generation: m.meta.Generation}
				}
			}
		}
	}
	out := make([][]int32, len(ms))
	for t, c := range owner {
		if c.member >= 0 {
			out[c.member] = append(out[c.member], int32(t))
		}
	}
	return out
}
