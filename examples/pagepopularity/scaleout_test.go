package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
	"github.com/sluicehq/sluice/internal/membertxn"
)

// The scale-out tests run pagepopularity as several processes, members of
// one consumer group (--member), against a stand-alone sluice-broker: the
// input is produced with kcat, keyed by page, and the results are read
// from the --sink kafka: topic with kcat, read committed, and compared
// with popularities summed here from the input topic as kcat reads it.

// Shape of the scale-out runs.
const (
	soPartitions = 6
	soPages      = 40
	soInput      = "user-behavior"
	soOutput     = "popularity"
	soGroup      = "pagepopularity-scaleout"
	// soSession is the members' session timeout: how long the group waits
	// for a silent member before moving its tasks.
	soSession = time.Second
)

// scaleOut is one broker, its input and the example built to run on it.
type scaleOut struct {
	t        *testing.T
	addr     string
	adm      *kadm.Client
	bin      string
	rng      *rand.Rand
	produced int
}

// newScaleOut starts a broker with the input topic and builds the example;
// without kcat the test is skipped (under CI=true it fails), and so it is
// while the example has no --member flag.
func newScaleOut(t *testing.T) *scaleOut {
	if testing.Short() {
		t.Skip("runs real processes against a broker; skipped with -short")
	}
	exampletest.RequireKcat(t)
	bin := exampletest.Build(t, "./examples/pagepopularity")
	help, _ := exec.Command(bin, "-h").Output()
	if !strings.Contains(string(help), "-member") {
		t.Skip("pagepopularity has no --member flag yet, so it cannot run as several processes of one job")
	}
	seed := exampletest.Seed(t)
	addr := exampletest.StartBrokerArgs(t, "--topic", soInput+":"+strconv.Itoa(soPartitions),
		"--group-min-session-timeout", "100ms")
	return &scaleOut{t: t, addr: addr, adm: exampletest.Admin(t, addr), bin: bin, rng: rand.New(rand.NewPCG(seed, seed>>1|1))}
}

// group returns the members' group: the shared flags, --max-rate-per-partition
// rate records a second of every partition.
func (s *scaleOut) group(rate int) *exampletest.Group {
	return exampletest.NewGroup(s.t, s.bin, "--brokers", s.addr, "--topic", soInput, "--group", soGroup,
		"--sink", "kafka:"+soOutput, "--batch", "100ms", "--generate", "0", "--http", "", "--top", "1",
		"--max-rate-per-partition", strconv.Itoa(rate), "--log-level", "info",
		"--session-timeout", soSession.String())
}

// produce writes n behaviours of random pages to the input with kcat, keyed
// by page. Every behaviour adds at least 0.3 to its page's popularity, so
// that a record lost or counted twice shows far above the rounding.
func (s *scaleOut) produce(n int) {
	s.t.Helper()
	keys, values := make([][]byte, n), make([][]byte, n)
	for i := range n {
		page := "page" + strconv.Itoa(1+s.rng.IntN(soPages))
		stay := 0.5 + float64(s.rng.IntN(450))/100
		keys[i] = []byte(page)
		values[i] = fmt.Appendf(nil, "%s|%d|%.2f|%d", page, 1+s.rng.IntN(5), stay, s.rng.IntN(3)-1)
	}
	exampletest.Produce(s.t, s.addr, soInput, keys, values)
	s.produced += n
}

// truth reads the input back with kcat and sums each page's popularity,
// 0.8·clicks + 0.8·stay + like, as the example's documentation defines it.
func (s *scaleOut) truth() map[string]float64 {
	s.t.Helper()
	recs := exampletest.KcatRead(s.t, s.addr, soInput, true)
	require.Len(s.t, recs, s.produced, "records in %s", soInput)
	want := map[string]float64{}
	for _, r := range recs {
		f := strings.Split(r.Value, "|")
		require.Len(s.t, f, 4, "input record %q", r.Value)
		require.Equal(s.t, f[0], r.Key, "input record %q is keyed by its page", r.Value)
		var v [3]float64
		for i := range v {
			x, err := strconv.ParseFloat(f[i+1], 64)
			require.NoError(s.t, err, "input record %q", r.Value)
			v[i] = x
		}
		want[f[0]] += 0.8*v[0] + 0.8*v[1] + v[2]
	}
	return want
}

// outputRow is one row of the --sink kafka: topic.
type outputRow struct {
	Page       string  `json:"page"`
	Popularity float64 `json:"popularity"`
}

// finish waits until the group has committed the end of the input, lets
// every running member emit its tasks' state twice more, stops them with
// SIGTERM, and checks that every row committed to the output since the
// input was all read holds its page's true popularity, and that every page
// has such a row.
func (s *scaleOut) finish(g *exampletest.Group) {
	t := s.t
	t.Helper()
	exampletest.WaitFor(t, time.Minute, "the group to commit the end of "+soInput, func() bool {
		return exampletest.GroupAtEnd(t, s.adm, soGroup, soInput)
	})
	// Rows written from now on come from batches planned after every input
	// record was read and committed: they hold the final popularities.
	mark := s.endOffsets(soOutput)
	for _, name := range g.Names() {
		m := g.Running(name)
		n, _ := m.Batches()
		m.WaitBatches(t, n+3, false, 30*time.Second)
	}
	for _, name := range g.Names() {
		g.Stop(name, 30*time.Second)
	}
	exampletest.WaitFor(t, 30*time.Second, "every transaction on "+soOutput+" to end", func() bool {
		_, closed := exampletest.StableOffsets(t, s.adm, soOutput)
		return closed
	})

	want := s.truth()
	committed := exampletest.KcatRead(t, s.addr, soOutput, true)
	final := map[string][]float64{}
	for _, r := range committed {
		if r.Offset < mark[r.Partition] {
			continue
		}
		var row outputRow
		require.NoError(t, json.Unmarshal([]byte(r.Value), &row), "output record %q", r.Value)
		final[row.Page] = append(final[row.Page], row.Popularity)
	}
	require.Len(t, final, len(want), "pages in the rows written after the input was read: %v", keysOf(final))
	for page, w := range want {
		got := final[page]
		require.NotEmpty(t, got, "no final row of %s", page)
		for _, v := range got {
			require.InDeltaf(t, w, v, 2e-6, "%s: a final row says %.6f, the input sums to %.6f (%d final rows: %v)", page, v, w, len(got), got)
		}
	}
	uncommitted := exampletest.KcatRead(t, s.addr, soOutput, false)
	t.Logf("%d input records, %d pages; output: %d records read committed, %d read uncommitted (%d aborted)",
		s.produced, len(want), len(committed), len(uncommitted), len(uncommitted)-len(committed))
}

// endOffsets returns the high watermark of every partition of topic.
func (s *scaleOut) endOffsets(topic string) map[int32]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := s.adm.ListEndOffsets(ctx, topic)
	require.NoError(s.t, err)
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestScaleOutKill9: three members, then a fourth, one of them killed with
// SIGKILL at a random moment 12 times (restarted at once, or after the
// next kill), while more input arrives; read committed, the final
// popularities equal those summed from the input.
func TestScaleOutKill9(t *testing.T) {
	s := newScaleOut(t)
	const kills = 12
	s.produce(3000)
	g := s.group(60)
	for _, name := range []string{"a", "b", "c"} {
		g.Start(name)
	}
	var down []string // killed and not started again yet
	for k := range kills {
		if k == kills/2 {
			g.Start("d")
			t.Logf("kill %d: member d joins", k)
		}
		if k%3 == 1 {
			s.produce(1000)
		}
		live := g.Names()
		victim := live[s.rng.IntN(len(live))]
		m := g.Running(victim)
		n, _ := m.Batches()
		m.WaitBatches(t, n+1+s.rng.IntN(3), false, 30*time.Second)
		// The delay places the kill at a random moment of the member's
		// next batch: planning, in its transaction, committing, or in a
		// rebalance.
		time.Sleep(time.Duration(s.rng.Int64N(int64(100 * time.Millisecond))))
		g.Kill(victim)
		for _, name := range down {
			g.Start(name)
		}
		down = down[:0]
		if s.rng.IntN(4) == 0 && len(g.Names()) > 1 {
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
	s.produce(1000)
	s.finish(g)
}

// TestScaleOutStoppedMemberCommitsNothing stops member b with SIGSTOP inside
// its transaction, for longer than its session timeout: the group gives its
// tasks to a. Resumed, b commits nothing of that transaction (its rows are
// in the output only read uncommitted) and joins again, taking tasks back;
// the final popularities are exact.
func TestScaleOutStoppedMemberCommitsNothing(t *testing.T) {
	s := newScaleOut(t)
	s.produce(4000)
	g := s.group(60)
	a, b := g.Start("a"), g.Start("b")
	a.WaitBatches(t, 1, true, 30*time.Second)
	b.WaitBatches(t, 1, true, 30*time.Second)

	// Stop b at random moments until it stops inside a transaction that
	// wrote to the output.
	txnID := membertxn.TransactionalID(soGroup, "b")
	var stopped kadm.DescribedTransaction
	for try := 0; ; try++ {
		require.Less(t, try, 50, "b was never stopped inside a transaction that wrote to %s", soOutput)
		n, _ := b.Batches()
		b.WaitBatches(t, n+1, true, 30*time.Second)
		time.Sleep(time.Duration(s.rng.Int64N(int64(60 * time.Millisecond))))
		require.NoError(t, b.Cmd.Process.Signal(syscall.SIGSTOP))
		if d, ok := s.openTransaction(txnID); ok {
			stopped = d
			t.Logf("b stopped inside its transaction (try %d): %v", try+1, d.Topics)
			break
		}
		require.NoError(t, b.Cmd.Process.Signal(syscall.SIGCONT))
	}
	before, _ := b.Batches()
	exampletest.WaitFor(t, 30*time.Second, "the group to drop the stopped member b", func() bool {
		return s.groupMembers() == 1
	})
	s.produce(1000)
	_, aWorking := a.Batches()
	a.WaitBatches(t, aWorking+3, true, 30*time.Second) // a runs b's tasks too
	require.NoError(t, b.Cmd.Process.Signal(syscall.SIGCONT))

	// b joins again and runs batches that read records.
	exampletest.WaitFor(t, 30*time.Second, "b to join the group again", func() bool { return s.groupMembers() == 2 })
	s.produce(1000)
	_, bWorking := b.Batches()
	b.WaitBatches(t, bWorking+2, true, 30*time.Second)
	after, _ := b.Batches()
	t.Logf("b completed %d batches before its stop, %d after it", before, after-before)
	s.finish(g)

	// The rows b wrote in the transaction it was stopped in are aborted:
	// in the output read uncommitted, not read committed.
	committed := map[[2]int64]bool{}
	for _, r := range exampletest.KcatRead(t, s.addr, soOutput, true) {
		committed[[2]int64{int64(r.Partition), r.Offset}] = true
	}
	var aborted int
	for _, r := range exampletest.KcatRead(t, s.addr, soOutput, false) {
		if !committed[[2]int64{int64(r.Partition), r.Offset}] {
			aborted++
		}
	}
	require.NotZero(t, aborted, "b's transaction %v left no aborted rows in %s", stopped.Topics, soOutput)
	require.NotContains(t, b.Stderr(), "level=ERROR", "b resumed without an error")
}

// openTransaction returns the transaction of txnID if it is open and has
// written to the output.
func (s *scaleOut) openTransaction(txnID string) (kadm.DescribedTransaction, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := s.adm.DescribeTransactions(ctx, txnID)
	require.NoError(s.t, err)
	d, ok := ds[txnID]
	if !ok || d.Err != nil || d.State != "Ongoing" {
		return d, false
	}
	_, wrote := d.Topics[soOutput]
	return d, wrote
}

// groupMembers returns how many members the group has, or -1 while it
// cannot be described.
func (s *scaleOut) groupMembers() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := s.adm.DescribeGroups(ctx, soGroup)
	if err != nil {
		return -1
	}
	d, ok := ds[soGroup]
	if !ok || d.Err != nil || d.State != "Stable" {
		return -1
	}
	return len(d.Members)
}

// TestScaleOutRestoresFromTheChangelogAlone kills member b, deletes its
// local state dir and starts it again: the tasks it gets back are restored
// from their changelogs alone, and the final popularities are exact.
func TestScaleOutRestoresFromTheChangelogAlone(t *testing.T) {
	s := newScaleOut(t)
	s.produce(3000)
	g := s.group(60)
	g.Start("a")
	b := g.Start("b")
	b.WaitBatches(t, 5, true, 30*time.Second)
	g.Kill("b")
	require.NoError(t, os.RemoveAll(g.StateDir("b")))
	b = g.Start("b")
	b.WaitBatches(t, 2, true, 30*time.Second)
	s.produce(1000)
	s.finish(g)
}
