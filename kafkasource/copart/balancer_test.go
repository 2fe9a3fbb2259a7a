package copart_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/kafkasource/copart"
)

// joiner is what one member sends when it joins: the topics it reads, the
// partitions it owns and the generation it owns them at.
type joiner struct {
	id       string
	instance string // static member's instance ID, or ""
	topics   []string
	owned    map[string][]int32
	gen      int32
}

func joinMembers(js []joiner) []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, len(js))
	for i, j := range js {
		m := kmsg.NewJoinGroupResponseMember()
		m.MemberID = j.id
		if j.instance != "" {
			m.InstanceID = kmsg.StringPtr(j.instance)
		}
		owned := make(map[string][]int32, len(j.owned))
		for t, ps := range j.owned {
			owned[t] = slices.Sorted(slices.Values(ps))
		}
		topics := slices.Sorted(slices.Values(j.topics))
		m.ProtocolMetadata = copart.Balancer().JoinGroupMetadata(topics, owned, j.gen)
		out[i] = m
	}
	return out
}

// balance runs the balancer the way a group leader's client does and
// returns the sync assignments it would send.
func balance(members []kmsg.JoinGroupResponseMember, partitions map[string]int32) ([]kmsg.SyncGroupRequestGroupAssignment, error) {
	mb, _, err := copart.Balancer().MemberBalancer(members)
	if err != nil {
		return nil, err
	}
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(partitions)
	if err != nil {
		return nil, err
	}
	return into.IntoSyncAssignment(), nil
}

// plan decodes sync assignments: member ID → topic → partitions.
func plan(t *testing.T, sync []kmsg.SyncGroupRequestGroupAssignment) map[string]map[string][]int32 {
	t.Helper()
	out := make(map[string]map[string][]int32, len(sync))
	for _, a := range sync {
		m, err := copart.Balancer().ParseSyncAssignment(a.MemberAssignment)
		require.NoError(t, err)
		out[a.MemberID] = m
	}
	return out
}

func balancePlan(t *testing.T, js []joiner, partitions map[string]int32) map[string]map[string][]int32 {
	t.Helper()
	sync, err := balance(joinMembers(js), partitions)
	require.NoError(t, err)
	return plan(t, sync)
}

// tasks returns the tasks of one member's assignment, requiring that it
// holds the same partitions of every topic of topics.
func tasks(t *testing.T, member string, a map[string][]int32, topics []string) []int32 {
	t.Helper()
	if len(topics) == 0 {
		return nil
	}
	first := a[topics[0]]
	for _, tp := range topics[1:] {
		require.Equalf(t, first, a[tp], "member %s holds partitions %v of %q but %v of %q", member, first, topics[0], a[tp], tp)
	}
	for tp := range a {
		require.Containsf(t, topics, tp, "member %s was given topic %q nobody reads", member, tp)
	}
	return first
}

// requireComplete checks a converged plan: co-partitioned, every task owned
// by exactly one member, shares differing by at most one.
func requireComplete(t *testing.T, p map[string]map[string][]int32, topics []string, n int32) map[string][]int32 {
	t.Helper()
	owners := make(map[int32]string)
	byMember := make(map[string][]int32, len(p))
	lo, hi := int(n)+1, -1
	for m, a := range p {
		ts := tasks(t, m, a, topics)
		byMember[m] = ts
		for _, task := range ts {
			prev, dup := owners[task]
			require.Falsef(t, dup, "task %d is planned for both %s and %s", task, prev, m)
			owners[task] = m
		}
		lo, hi = min(lo, len(ts)), max(hi, len(ts))
	}
	if len(topics) > 0 {
		require.Lenf(t, owners, int(n), "every one of the %d tasks is planned: %v", n, byMember)
	}
	require.LessOrEqualf(t, hi-lo, 1, "members' task counts differ by at most one: %v", byMember)
	return byMember
}

var ab = []string{"clicks", "views"}

func TestBalanceFresh(t *testing.T) {
	cases := []struct {
		name       string
		members    []string
		topics     []string
		partitions int32
		want       map[string][]int32
	}{
		{"one member takes all", []string{"a"}, ab, 4, map[string][]int32{"a": {0, 1, 2, 3}}},
		{"remainder to the first members", []string{"c", "a", "b"}, ab, 7, map[string][]int32{"a": {0, 1, 2}, "b": {3, 4}, "c": {5, 6}}},
		{"one topic", []string{"a", "b"}, []string{"clicks"}, 4, map[string][]int32{"a": {0, 1}, "b": {2, 3}}},
		{"three topics", []string{"a", "b"}, []string{"clicks", "orders", "views"}, 3, map[string][]int32{"a": {0, 1}, "b": {2}}},
		{"more members than tasks", []string{"a", "b", "c"}, ab, 2, map[string][]int32{"a": {0}, "b": {1}, "c": nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var js []joiner
			counts := make(map[string]int32)
			for _, tp := range tc.topics {
				counts[tp] = tc.partitions
			}
			for _, m := range tc.members {
				js = append(js, joiner{id: m, topics: tc.topics, gen: -1})
			}
			got := requireComplete(t, balancePlan(t, js, counts), tc.topics, tc.partitions)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestBalanceStaticMembersFirst(t *testing.T) {
	// kgo orders static members (by instance ID) before dynamic ones; the
	// first members in that order take the remainder.
	js := []joiner{
		{id: "a", topics: ab, gen: -1},
		{id: "z", instance: "i1", topics: ab, gen: -1},
	}
	got := requireComplete(t, balancePlan(t, js, map[string]int32{"clicks": 3, "views": 3}), ab, 3)
	require.Equal(t, map[string][]int32{"z": {0, 1}, "a": {2}}, got)
}

func TestBalanceRefuses(t *testing.T) {
	cases := []struct {
		name       string
		members    []joiner
		partitions map[string]int32
		is         error
		as         any
		says       []string
	}{
		{
			name:       "unequal partition counts",
			members:    []joiner{{id: "a", topics: ab}, {id: "b", topics: ab}},
			partitions: map[string]int32{"clicks": 4, "views": 3},
			as:         new(*copart.UnequalPartitionsError),
			says:       []string{`"clicks": 4`, `"views": 3`, "same number of partitions"},
		},
		{
			name:       "unequal among three topics",
			members:    []joiner{{id: "a", topics: []string{"a", "b", "c"}}},
			partitions: map[string]int32{"a": 6, "b": 6, "c": 2},
			as:         new(*copart.UnequalPartitionsError),
			says:       []string{`"a": 6, "b": 6, "c": 2`},
		},
		{
			name:       "members read different topics",
			members:    []joiner{{id: "a", topics: ab}, {id: "b", topics: []string{"clicks"}}},
			partitions: map[string]int32{"clicks": 4, "views": 4},
			is:         copart.ErrMixedSubscriptions,
			says:       []string{`member "a" reads ["clicks" "views"]`, `member "b" reads ["clicks"]`, "same topics"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := balance(joinMembers(tc.members), tc.partitions)
			require.Error(t, err)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
			if tc.as != nil {
				require.ErrorAs(t, err, tc.as)
			}
			for _, s := range tc.says {
				require.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestBalanceSkipsTopicsWithoutPartitions(t *testing.T) {
	// A topic that does not exist yet has no partition count; the others
	// are assigned, and no member is given the missing one.
	js := []joiner{{id: "a", topics: ab, gen: -1}, {id: "b", topics: ab, gen: -1}}
	p := balancePlan(t, js, map[string]int32{"clicks": 2})
	got := requireComplete(t, p, []string{"clicks"}, 2)
	require.Equal(t, map[string][]int32{"a": {0}, "b": {1}}, got)
}

func TestBalanceClaims(t *testing.T) {
	both := func(ps ...int32) map[string][]int32 { return map[string][]int32{"clicks": ps, "views": ps} }
	counts := map[string]int32{"clicks": 4, "views": 4}
	cases := []struct {
		name    string
		members []joiner
		want    map[string][]int32
	}{
		{
			name:    "members keep what they own",
			members: []joiner{{id: "a", topics: ab, owned: both(1, 3), gen: 4}, {id: "b", topics: ab, owned: both(0, 2), gen: 4}},
			want:    map[string][]int32{"a": {1, 3}, "b": {0, 2}},
		},
		{
			name:    "the later generation keeps a doubly claimed task",
			members: []joiner{{id: "a", topics: ab, owned: both(0, 1), gen: 3}, {id: "b", topics: ab, owned: both(1, 2), gen: 5}},
			// a's claim on 1 is stale: it is revoked from a and stays with b.
			want: map[string][]int32{"a": {0, 3}, "b": {1, 2}},
		},
		{
			name:    "one topic's partition is a claim on the task",
			members: []joiner{{id: "a", topics: ab, owned: map[string][]int32{"views": {2, 3}}, gen: 2}, {id: "b", topics: ab, gen: -1}},
			want:    map[string][]int32{"a": {2, 3}, "b": {0, 1}},
		},
		{
			name:    "claims beyond the partition count and on other topics are ignored",
			members: []joiner{{id: "a", topics: ab, owned: map[string][]int32{"old": {0, 1}, "clicks": {7}}, gen: 2}, {id: "b", topics: ab, owned: both(0), gen: 2}},
			want:    map[string][]int32{"a": {1, 2}, "b": {0, 3}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := balancePlan(t, tc.members, counts)
			got := make(map[string][]int32)
			for m, a := range p {
				got[m] = tasks(t, m, a, ab)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestBalanceCooperativeMove(t *testing.T) {
	// a owns all four tasks and b joins: the first rebalance only takes
	// tasks 2 and 3 from a; b gets them in the rebalance a's revoke starts.
	g := newGroup(ab, 4)
	g.join("a")
	g.rebalanceOnce(t)
	require.Equal(t, []int32{0, 1, 2, 3}, g.tasksOf("a"))

	g.join("b")
	again := g.rebalanceOnce(t)
	require.True(t, again, "a revoked tasks, so the group rebalances again")
	require.Equal(t, []int32{0, 1}, g.tasksOf("a"))
	require.Empty(t, g.tasksOf("b"), "b waits for a to revoke")

	again = g.rebalanceOnce(t)
	require.False(t, again)
	require.Equal(t, []int32{0, 1}, g.tasksOf("a"))
	require.Equal(t, []int32{2, 3}, g.tasksOf("b"))
}

func TestBalanceDeterministic(t *testing.T) {
	both := func(ps ...int32) map[string][]int32 { return map[string][]int32{"clicks": ps, "views": ps} }
	js := []joiner{
		{id: "m1", topics: ab, owned: both(0, 4, 5), gen: 7},
		{id: "m2", topics: ab, owned: both(1), gen: 7},
		{id: "m3", topics: ab, gen: -1},
		{id: "m4", instance: "s1", topics: ab, owned: both(9, 2), gen: 6},
		{id: "m5", topics: ab, owned: both(2, 3), gen: 7},
	}
	counts := map[string]int32{"clicks": 11, "views": 11}
	want, err := balance(joinMembers(js), counts)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(js)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, err := balance(joinMembers(shuffled), counts)
		require.NoError(t, err)
		require.Equal(t, want, got, "members joined in order %v", ids(shuffled))
	}
}

func ids(js []joiner) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.id
	}
	return out
}

// group plays the classic group protocol with cooperative members against
// the balancer: every rebalance bumps the generation, each member syncs
// to its planned partitions, and a member that revoked some rejoins.
type group struct {
	topics     []string
	partitions map[string]int32
	n          int32
	generation int32
	order      []string                      // members, in join order
	owned      map[string]map[string][]int32 // member → topic → partitions
	gen        map[string]int32              // generation each member last synced at
}

func newGroup(topics []string, n int32) *group {
	g := &group{topics: topics, n: n, partitions: make(map[string]int32), owned: make(map[string]map[string][]int32), gen: make(map[string]int32)}
	for _, tp := range topics {
		g.partitions[tp] = n
	}
	return g
}

func (g *group) join(id string) {
	g.order = append(g.order, id)
	g.owned[id] = nil
	g.gen[id] = -1
}

func (g *group) leave(id string) {
	g.order = slices.DeleteFunc(g.order, func(m string) bool { return m == id })
	delete(g.owned, id)
	delete(g.gen, id)
}

func (g *group) tasksOf(id string) []int32 {
	ts := g.owned[id][g.topics[0]]
	if len(ts) == 0 {
		return nil
	}
	return ts
}

func (g *group) snapshot() map[string][]int32 {
	out := make(map[string][]int32, len(g.order))
	for _, m := range g.order {
		out[m] = slices.Clone(g.tasksOf(m))
	}
	return out
}

// rebalanceOnce runs one join and sync round and reports whether a member
// revoked partitions, which makes it rejoin at once. It checks that no
// member is given a partition another member still owns.
func (g *group) rebalanceOnce(t *testing.T) (again bool) {
	t.Helper()
	js := make([]joiner, 0, len(g.order))
	for _, m := range g.order {
		js = append(js, joiner{id: m, topics: g.topics, owned: g.owned[m], gen: g.gen[m]})
	}
	g.generation++
	p := balancePlan(t, js, g.partitions)
	holder := make(map[string]map[int32]string)
	for m, a := range g.owned {
		for tp, ps := range a {
			if holder[tp] == nil {
				holder[tp] = make(map[int32]string)
			}
			for _, part := range ps {
				holder[tp][part] = m
			}
		}
	}
	for _, m := range g.order {
		planned := p[m]
		for tp, ps := range planned {
			for _, part := range ps {
				if h, ok := holder[tp][part]; ok && h != m {
					t.Fatalf("generation %d gives %s[%d] to %s while %s still owns it", g.generation, tp, part, m, h)
				}
			}
		}
		for tp, ps := range g.owned[m] {
			for _, part := range ps {
				if !slices.Contains(planned[tp], part) {
					again = true
				}
			}
		}
	}
	for _, m := range g.order {
		g.owned[m] = p[m]
		g.gen[m] = g.generation
	}
	return again
}

// settle rebalances until no member revokes anything, requires that this
// takes at most two rounds, and checks the plan it settles on.
func (g *group) settle(t *testing.T) map[string][]int32 {
	t.Helper()
	rounds := 1
	for g.rebalanceOnce(t) {
		rounds++
		require.LessOrEqualf(t, rounds, 2, "the group settles within two rebalances")
	}
	p := make(map[string]map[string][]int32, len(g.order))
	for _, m := range g.order {
		p[m] = g.owned[m]
		if p[m] == nil {
			p[m] = map[string][]int32{}
		}
	}
	return requireComplete(t, p, g.topics, g.n)
}

// requireSticky checks that every member present before and after a
// change kept as many of its tasks as its new share allows.
func requireSticky(t *testing.T, before, after map[string][]int32) {
	t.Helper()
	for m, was := range before {
		now, ok := after[m]
		if !ok {
			continue
		}
		kept := 0
		for _, task := range was {
			if slices.Contains(now, task) {
				kept++
			}
		}
		require.Equalf(t, min(len(was), len(now)), kept, "member %s had %v and now has %v", m, was, now)
	}
}

func TestBalanceStickyJoinLeave(t *testing.T) {
	type step struct {
		join, leave string
	}
	cases := []struct {
		name  string
		n     int32
		start []string
		steps []step
	}{
		{"a fourth member joins three", 12, []string{"a", "b", "c"}, []step{{join: "d"}}},
		{"one of three leaves", 12, []string{"a", "b", "c"}, []step{{leave: "b"}}},
		{"uneven shares", 7, []string{"a", "b"}, []step{{join: "c"}, {leave: "a"}, {join: "d"}, {join: "e"}, {leave: "c"}}},
		{"restart under a new member ID", 6, []string{"a", "b", "c"}, []step{{leave: "b"}, {join: "b2"}}},
		{"down to one and back", 5, []string{"a", "b", "c"}, []step{{leave: "a"}, {leave: "b"}, {join: "x"}, {join: "y"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGroup(ab, tc.n)
			for _, m := range tc.start {
				g.join(m)
			}
			before := g.settle(t)
			for _, s := range tc.steps {
				if s.join != "" {
					g.join(s.join)
				}
				if s.leave != "" {
					g.leave(s.leave)
				}
				after := g.settle(t)
				requireSticky(t, before, after)
				before = after
			}
		})
	}
}

func TestBalanceStickyRandom(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 14))
			topics := []string{"clicks", "views", "orders"}[:1+rng.IntN(3)]
			g := newGroup(topics, int32(1+rng.IntN(24)))
			next := 0
			add := func() {
				next++
				g.join("m" + strconv.Itoa(next))
			}
			for range 1 + rng.IntN(4) {
				add()
			}
			before := g.settle(t)
			for step := range 30 {
				switch {
				case len(g.order) > 1 && rng.IntN(2) == 0:
					gone := g.order[rng.IntN(len(g.order))]
					g.leave(gone)
				default:
					add()
				}
				after := g.settle(t)
				if t.Failed() {
					t.Fatalf("seed %d, step %d: members %v", seed, step, slices.Sorted(maps.Keys(after)))
				}
				requireSticky(t, before, after)
				before = after
			}
		})
	}
}
