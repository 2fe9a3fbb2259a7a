package exampletest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Timeouts of the members of a scale-out run.
const (
	// ScaleOutSession is the members' session timeout: how long the group
	// waits for a silent member before moving its tasks. The broker's
	// group.min.session.timeout.ms is lowered to allow it.
	ScaleOutSession = time.Second
	// ScaleOutRebalance is how long a rebalance waits for the members to
	// rejoin: a member killed while it waits in the group's join is
	// dropped only then, not after its session timeout (kfake's JoinGroup
	// keeps no session for a member whose answer it could not send).
	ScaleOutRebalance = 3 * time.Second
	// ScaleOutBatch is the members' batch interval.
	ScaleOutBatch = 100 * time.Millisecond
)

// ScaleOut is a stand-alone sluice-broker holding an example's input
// topic, and the example built to run on it as several processes, members
// of one consumer group (--member).
type ScaleOut struct {
	T          *testing.T
	Addr       string
	Adm        *kadm.Client
	Bin        string
	Rng        *rand.Rand
	Input      string
	Partitions int
	Group      string // the members' --group
}

// NewScaleOut starts a broker with the input topic of the given partitions
// and builds the example pkg ("./examples/wordcount"), whose members join
// group; without kcat the test is skipped (under CI=true it fails), and
// with -short too.
func NewScaleOut(t *testing.T, pkg, input string, partitions int, group string) *ScaleOut {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real processes against a broker; skipped with -short")
	}
	RequireKcat(t)
	bin := Build(t, pkg)
	seed := Seed(t)
	addr := StartBrokerArgs(t, "--topic", input+":"+strconv.Itoa(partitions), "--group-min-session-timeout", "100ms")
	return &ScaleOut{T: t, Addr: addr, Adm: Admin(t, addr), Bin: bin, Rng: rand.New(rand.NewPCG(seed, seed>>1|1)),
		Input: input, Partitions: partitions, Group: group}
}

// Members returns the group of the example's processes, reading the input
// at --max-rate-per-partition rate records a second with the batch,
// session and rebalance timeouts above, and the extra args.
func (s *ScaleOut) Members(rate int, extra ...string) *Group {
	args := []string{"--brokers", s.Addr, "--topic", s.Input, "--group", s.Group,
		"--batch", ScaleOutBatch.String(), "--generate", "0", "--http", "", "--top", "1",
		"--max-rate-per-partition", strconv.Itoa(rate), "--log-level", "info",
		"--session-timeout", ScaleOutSession.String(), "--rebalance-timeout", ScaleOutRebalance.String()}
	return NewGroup(s.T, s.Bin, append(args, extra...)...)
}

// WaitBatches waits until member name has completed more batches (that
// read records, with working) than now; the member must not exit.
func (s *ScaleOut) WaitBatches(g *Group, name string, more int, working bool) {
	s.T.Helper()
	m := g.Running(name)
	all, w := m.Batches()
	n := all
	if working {
		n = w
	}
	if !m.WaitBatches(s.T, n+more, working, 30*time.Second) {
		g.RequireAlive()
	}
}

// KillAtRandom kills a random running member of g with SIGKILL kills
// times, each after it has completed 1 to 3 more batches, at a random
// moment before its next batch or, half the time, in the first 4ms of a
// batch, where its transaction is open: planning, exchanging, writing,
// committing; or in a rebalance. A killed member is started again under
// its name at once, or, a quarter of the time, after the next kill.
// Member join starts halfway through; before kill k, between(k) runs (to
// produce more input).
func (s *ScaleOut) KillAtRandom(g *Group, kills int, join string, between func(k int)) {
	t := s.T
	t.Helper()
	var down []string // killed and not started again yet
	for k := range kills {
		if k == kills/2 {
			g.Start(join)
			t.Logf("kill %d: member %s joins", k, join)
		}
		between(k)
		live := g.Names()
		victim := live[s.Rng.IntN(len(live))]
		s.WaitBatches(g, victim, 1+s.Rng.IntN(3), false)
		m := g.Running(victim)
		if s.Rng.IntN(2) == 0 {
			time.Sleep(time.Duration(s.Rng.Int64N(int64(ScaleOutBatch))))
		} else {
			next := time.Now().Truncate(ScaleOutBatch).Add(ScaleOutBatch)
			time.Sleep(time.Until(next) + time.Duration(s.Rng.Int64N(int64(4*time.Millisecond))))
		}
		g.Kill(victim)
		for _, name := range down {
			g.Start(name)
		}
		down = down[:0]
		if s.Rng.IntN(4) == 0 && len(g.Names()) > 1 {
			down = append(down, victim)
			t.Logf("kill %d: member %s (life %d) killed, down until the next kill", k, victim, m.Life)
		} else {
			g.Start(victim)
			t.Logf("kill %d: member %s (life %d) killed and started again", k, victim, m.Life)
		}
	}
	for _, name := range down {
		g.Start(name)
	}
}

// Finish waits until the group has committed the end of the input and
// read every exchange topic to its end (its committed offsets at the
// topic's last stable offset, no transaction open), then marks the end
// offsets of the output topics, lets every running member complete more
// batches, stops them all with SIGTERM and waits for the transactions on
// the outputs to end. It returns the marks: output records past them come
// from batches that started once every input record had gone through the
// exchanges and into the state.
func (s *ScaleOut) Finish(g *Group, more int, exchanges, outputs []string) map[string]map[int32]int64 {
	t := s.T
	t.Helper()
	if !Eventually(time.Minute, func() bool {
		g.RequireAlive()
		if !GroupAtEnd(t, s.Adm, s.Group, s.Input) {
			return false
		}
		for _, x := range exchanges {
			if !s.groupAtStable(x) {
				return false
			}
		}
		return true
	}) {
		var out strings.Builder
		for _, name := range g.Names() {
			fmt.Fprintf(&out, "member %s (life %d):\n%s\n", name, g.Running(name).Life, g.Running(name).Output())
		}
		t.Fatalf("the group did not commit the end of %s and of %q within a minute: %s\n%s", s.Input, exchanges, s.Progress(exchanges...), out.String())
	}
	marks := map[string]map[int32]int64{}
	for _, o := range outputs {
		marks[o] = s.EndOffsets(o)
	}
	for _, name := range g.Names() {
		s.WaitBatches(g, name, more, false)
	}
	for _, name := range g.Names() {
		g.Stop(name, 30*time.Second)
	}
	for _, o := range outputs {
		WaitFor(t, 30*time.Second, "every transaction on "+o+" to end", func() bool {
			_, closed := StableOffsets(t, s.Adm, o)
			return closed
		})
	}
	return marks
}

// groupAtStable reports whether the group's committed offsets of every
// partition of topic are its last stable offset, and no transaction is
// open on it (a partition never written to needs no commit).
func (s *ScaleOut) groupAtStable(topic string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stable, err := s.Adm.ListCommittedOffsets(ctx, topic)
	if err != nil || stable.Error() != nil {
		return false
	}
	ends, err := s.Adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		return false
	}
	offs, err := s.Adm.FetchOffsets(ctx, s.Group)
	if err != nil {
		return false
	}
	at := len(ends) > 0
	stable.Each(func(o kadm.ListedOffset) {
		e, _ := ends.Lookup(topic, o.Partition)
		c, ok := offs.Lookup(topic, o.Partition)
		at = at && e.Offset == o.Offset && (ok && c.At == o.Offset || !ok && o.Offset == 0)
	})
	return at
}

// Progress says where the group's committed offsets stand against the end
// offsets of the input and the exchange topics, and what the group's
// members own.
func (s *ScaleOut) Progress(exchanges ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	offs, err := s.Adm.FetchOffsets(ctx, s.Group)
	if err != nil {
		return "cannot fetch the group's offsets: " + err.Error()
	}
	for _, topic := range append([]string{s.Input}, exchanges...) {
		ends, err := s.Adm.ListEndOffsets(ctx, topic)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v; ", topic, err)
			continue
		}
		stable, _ := s.Adm.ListCommittedOffsets(ctx, topic)
		fmt.Fprintf(&b, "%s:", topic)
		for _, e := range ends.Offsets().Sorted() {
			o, _ := offs.Lookup(topic, e.Partition)
			st, _ := stable.Lookup(topic, e.Partition)
			fmt.Fprintf(&b, " p%d committed %d of %d (stable %d)", e.Partition, o.At, e.At, st.Offset)
		}
		b.WriteString("; ")
	}
	ds, err := s.Adm.DescribeGroups(ctx, s.Group)
	if err == nil {
		d := ds[s.Group]
		fmt.Fprintf(&b, "group %s, %d members:", d.State, len(d.Members))
		for _, m := range d.Members {
			if a, ok := m.Assigned.AsConsumer(); ok {
				fmt.Fprintf(&b, " %s %v", m.MemberID, a.Topics)
			}
		}
	}
	return b.String()
}

// EndOffsets returns the high watermark of every partition of topic.
func (s *ScaleOut) EndOffsets(topic string) map[int32]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := s.Adm.ListEndOffsets(ctx, topic)
	require.NoError(s.T, err)
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// FinalCounts reads topic with kcat, read committed, and returns the
// counts its records past mark hold, by key: row decodes a record's value
// into its key and count.
func (s *ScaleOut) FinalCounts(topic string, mark map[int32]int64, row func(value string) (string, int64, error)) map[string][]int64 {
	t := s.T
	t.Helper()
	out := map[string][]int64{}
	for _, r := range KcatRead(t, s.Addr, topic, true) {
		if r.Offset < mark[r.Partition] {
			continue
		}
		k, v, err := row(r.Value)
		require.NoError(t, err, "%s record %d/%d: %q", topic, r.Partition, r.Offset, r.Value)
		out[k] = append(out[k], v)
	}
	return out
}

// RequireCounts checks that every key of want has a count in got, that all
// of them are its count in want, and that got has no other key.
func RequireCounts(t testing.TB, what string, want map[string]int64, got map[string][]int64) {
	t.Helper()
	var wrong []string
	for k, w := range want {
		if len(got[k]) == 0 {
			wrong = append(wrong, k+": no row")
		}
		for _, v := range got[k] {
			if v != w {
				wrong = append(wrong, fmt.Sprintf("%s: %d, the input has %d", k, v, w))
				break
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			wrong = append(wrong, k+": not in the input")
		}
	}
	slices.Sort(wrong)
	require.Empty(t, wrong, "%s: %d of %d keys have final rows that are wrong", what, len(wrong), len(want))
}

// Tally adds up what a scale-out test wrote to the example's input.
type Tally struct {
	Records int              // records written
	Counts  map[string]int64 // what they count, by key
	write   func(n int, seq *int) map[string]int64
}

// NewTally returns a tally of the records write writes: write(n, seq)
// writes n records, numbering them on from *seq (which it advances by n),
// and returns what they count by key.
func NewTally(write func(n int, seq *int) map[string]int64) *Tally {
	return &Tally{Counts: map[string]int64{}, write: write}
}

// Write writes n more records and adds them to the tally.
func (t *Tally) Write(n int) {
	for k, c := range t.write(n, &t.Records) {
		t.Counts[k] += c
	}
}

// Sum returns the sum of the counts of every key.
func Sum(counts map[string]int64) int64 {
	var sum int64
	for _, c := range counts {
		sum += c
	}
	return sum
}

// KillNine is the kill test of a scale-out run: members a, b and c of g
// start, [ScaleOut.KillAtRandom] kills one 12 times, member d joining
// halfway, while in writes more records (more of them before kills 1, 4,
// 7 and 10, and more again after the last), then [ScaleOut.Finish] waits
// for the group to read the input and exchange to their end, every member
// completing 11 more batches (two slides of a 500ms window at least). It
// returns Finish's marks of the outputs.
func (s *ScaleOut) KillNine(g *Group, in *Tally, more int, exchange string, outputs ...string) map[string]map[int32]int64 {
	s.T.Helper()
	for _, name := range []string{"a", "b", "c"} {
		g.Start(name)
	}
	s.KillAtRandom(g, 12, "d", func(k int) {
		if k%3 == 1 {
			in.Write(more)
		}
	})
	in.Write(more)
	return s.Finish(g, 11, []string{exchange}, outputs)
}

// restoredLine matches the source's log line for a task it restored.
var restoredLine = regexp.MustCompile(`msg="kafkasource: restored a task's state" task=(\d+) .*\brecords=(\d+) from_changelog=(\d+)`)

// RequireRestoredFromChangelog checks, by the log lines of the tasks m
// restored, that each task read all its records from the changelog (as a
// member with no local state must), and that they were not none. It
// returns how many records were read.
func RequireRestoredFromChangelog(t testing.TB, m *Member) int {
	t.Helper()
	var fromChangelog int
	for _, l := range restoredLine.FindAllStringSubmatch(m.Stderr(), -1) {
		records, _ := strconv.Atoi(l[2])
		read, _ := strconv.Atoi(l[3])
		require.Equal(t, records, read, "task %s: with no local state, all %d records come from the changelog", l[1], records)
		fromChangelog += read
	}
	require.NotZero(t, fromChangelog, "%s restored no records from the changelog:\n%s", m.Name, m.Stderr())
	return fromChangelog
}

// ReadBack reads the input back with kcat, read committed, and checks that
// it holds in.Records records and that they count what in.Counts says:
// count adds what a record's value counts, by key, to counts, as the
// example's documentation defines them (what names those things in a
// failure). It returns the counts read back.
func (s *ScaleOut) ReadBack(in *Tally, what string, count func(value string, counts map[string]int64)) map[string]int64 {
	t := s.T
	t.Helper()
	recs := KcatRead(t, s.Addr, s.Input, true)
	require.Len(t, recs, in.Records, "records in %s", s.Input)
	want := map[string]int64{}
	for _, r := range recs {
		count(r.Value, want)
	}
	require.Equal(t, in.Counts, want, "the %s of %s read back", what, s.Input)
	return want
}
