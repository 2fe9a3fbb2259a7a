package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
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
	soChangelog  = soGroup + "-popularity-changelog"
)

// scaleOut is one broker, its input and the example built to run on it.
type scaleOut struct {
	*exampletest.ScaleOut
	t        *testing.T
	produced int
}

// newScaleOut starts a broker with the input topic and builds the example;
// without kcat the test is skipped (under CI=true it fails).
func newScaleOut(t *testing.T) *scaleOut {
	return &scaleOut{ScaleOut: exampletest.NewScaleOut(t, "./examples/pagepopularity", soInput, soPartitions, soGroup), t: t}
}

// group returns the members' group: the shared flags, --max-rate-per-partition
// rate records a second of every partition.
func (s *scaleOut) group(rate int) *exampletest.Group {
	return s.Members(rate, "--sink", "kafka:"+soOutput)
}

// produce writes n behaviours of random pages to the input with kcat, keyed
// by page. Every behaviour adds at least 0.3 to its page's popularity, so
// that a record lost or counted twice shows far above the rounding.
func (s *scaleOut) produce(n int) {
	s.t.Helper()
	keys, values := make([][]byte, n), make([][]byte, n)
	for i := range n {
		page := "page" + strconv.Itoa(1+s.Rng.IntN(soPages))
		stay := 0.5 + float64(s.Rng.IntN(450))/100
		keys[i] = []byte(page)
		values[i] = fmt.Appendf(nil, "%s|%d|%.2f|%d", page, 1+s.Rng.IntN(5), stay, s.Rng.IntN(3)-1)
	}
	exampletest.Produce(s.t, s.Addr, soInput, keys, values)
	s.produced += n
}

// truth reads the input back with kcat and sums each page's popularity,
// 0.8·clicks + 0.8·stay + like, as the example's documentation defines it.
func (s *scaleOut) truth() map[string]float64 {
	s.t.Helper()
	recs := exampletest.KcatRead(s.t, s.Addr, soInput, true)
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
// every running member emit its tasks' state three times more, stops them
// with SIGTERM, and checks that every row committed to the output since
// the input was all read holds its page's true popularity, and that every
// page has such a row.
func (s *scaleOut) finish(g *exampletest.Group) {
	t := s.t
	t.Helper()
	mark := s.Finish(g, 3, nil, []string{soOutput})[soOutput]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics, err := s.Adm.ListTopics(ctx)
	require.NoError(t, err)
	require.True(t, topics.Has(soChangelog), "the state's changelog topic %s exists", soChangelog)

	want := s.truth()
	committed := exampletest.KcatRead(t, s.Addr, soOutput, true)
	final := map[string][]float64{}
	for _, r := range committed {
		if r.Offset < mark[r.Partition] {
			continue
		}
		var row outputRow
		require.NoError(t, json.Unmarshal([]byte(r.Value), &row), "output record %q", r.Value)
		final[row.Page] = append(final[row.Page], row.Popularity)
	}
	var wrong []string
	for page, w := range want {
		got := final[page]
		if len(got) == 0 {
			wrong = append(wrong, page+": no row")
		}
		for _, v := range got {
			if math.Abs(v-w) > 2e-6 {
				wrong = append(wrong, fmt.Sprintf("%s: %.6f, the input sums to %.6f", page, v, w))
				break
			}
		}
	}
	for page := range final {
		if _, ok := want[page]; !ok {
			wrong = append(wrong, page+": not in the input")
		}
	}
	slices.Sort(wrong)
	require.Empty(t, wrong, "%d of %d pages have final rows (written after the input was all read) that are wrong", len(wrong), len(want))
	uncommitted := exampletest.KcatRead(t, s.Addr, soOutput, false)
	t.Logf("%d input records, %d pages; output: %d records read committed, %d read uncommitted (%d aborted)",
		s.produced, len(want), len(committed), len(uncommitted), len(uncommitted)-len(committed))
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
	s.KillAtRandom(g, kills, "d", func(k int) {
		if k%3 == 1 {
			s.produce(1000)
		}
	})
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
	g.Start("a")
	b := g.Start("b")
	s.WaitBatches(g, "a", 1, true)
	s.WaitBatches(g, "b", 1, true)

	// Stop b at random moments until it stops inside a transaction that
	// wrote to the output.
	txnID := membertxn.TransactionalID(soGroup, "b")
	var stopped kadm.DescribedTransaction
	var stable, ends map[int32]int64 // of the output, while b is stopped
	for try := 0; ; try++ {
		require.Less(t, try, 100, "b was never stopped inside a transaction that wrote to %s", soOutput)
		s.WaitBatches(g, "b", 1, true)
		b = g.Running("b")
		// Batches start every 100ms from the Unix epoch and take a few
		// milliseconds; the stop falls in the first 4 of the next one.
		next := time.Now().Truncate(100 * time.Millisecond).Add(100 * time.Millisecond)
		time.Sleep(time.Until(next) + time.Duration(s.Rng.Int64N(int64(4*time.Millisecond))))
		require.NoError(t, b.Cmd.Process.Signal(syscall.SIGSTOP))
		if d, ok := s.openTransaction(txnID); ok {
			stopped = d
			stable, _ = exampletest.StableOffsets(t, s.Adm, soOutput)
			ends = s.EndOffsets(soOutput)
			t.Logf("b stopped inside its transaction (try %d): %v", try+1, d.Topics)
			break
		}
		require.NoError(t, b.Cmd.Process.Signal(syscall.SIGCONT))
	}
	exampletest.WaitFor(t, 30*time.Second, "the group to drop the stopped member b", func() bool {
		return s.groupMembers() == 1
	})
	s.produce(1000)
	s.WaitBatches(g, "a", 3, true) // a runs b's tasks too
	require.NoError(t, b.Cmd.Process.Signal(syscall.SIGCONT))

	// b joins again and runs batches that read records.
	if !exampletest.Eventually(30*time.Second, func() bool {
		g.RequireAlive()
		return s.groupMembers() == 2
	}) {
		t.Fatalf("b did not join the group again within 30s: %s\nb:\n%s", s.Progress(), g.Running("b").Output())
	}
	s.produce(1000)
	s.WaitBatches(g, "b", 2, true)
	s.finish(g)

	// The rows b wrote in the transaction it was stopped in, past the last
	// stable offset of their partitions then, are aborted: in the output
	// read uncommitted, not read committed.
	committed := map[[2]int64]bool{}
	for _, r := range exampletest.KcatRead(t, s.Addr, soOutput, true) {
		committed[[2]int64{int64(r.Partition), r.Offset}] = true
	}
	var aborted int
	for _, r := range exampletest.KcatRead(t, s.Addr, soOutput, false) {
		_, inTxn := stopped.Topics[soOutput][r.Partition]
		if inTxn && r.Offset >= stable[r.Partition] && r.Offset < ends[r.Partition] && !committed[[2]int64{int64(r.Partition), r.Offset}] {
			aborted++
		}
	}
	require.NotZero(t, aborted, "b's transaction %v (output offsets from %v to %v) left no aborted rows in %s", stopped.Topics, stable, ends, soOutput)
	t.Logf("the transaction b was stopped in left %d aborted rows", aborted)
}

// openTransaction returns the transaction of txnID if it is open, has
// written to the output and has not begun its commit (the commit marker
// comes first), so that it has staged no offsets that would hold up the
// member taking its tasks over.
func (s *scaleOut) openTransaction(txnID string) (kadm.DescribedTransaction, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := s.Adm.DescribeTransactions(ctx, txnID)
	require.NoError(s.t, err)
	d, ok := ds[txnID]
	if !ok || d.Err != nil || d.State != "Ongoing" {
		return d, false
	}
	_, wrote := d.Topics[soOutput]
	_, committing := d.Topics[membertxn.MarkerTopic(soGroup)]
	return d, wrote && !committing
}

// groupMembers returns how many members the group has, or -1 while it
// cannot be described.
func (s *scaleOut) groupMembers() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := s.Adm.DescribeGroups(ctx, soGroup)
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
	g.Start("b")
	s.WaitBatches(g, "b", 5, true)
	g.Kill("b")
	require.NoError(t, os.RemoveAll(g.StateDir("b")))
	b := g.Start("b")
	s.WaitBatches(g, "b", 2, true)
	t.Logf("b restored %d records from the changelog alone", exampletest.RequireRestoredFromChangelog(t, b))
	s.produce(1000)
	s.finish(g)
}
