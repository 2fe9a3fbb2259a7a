package kafkasink

import (
	"context"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/crashtest"
)

// TestCrashExactlyOnce kills a child job that writes with WriteTxn at least
// 20 times, at random moments (the parent's SIGKILL) and between the
// sink's commit and the checkpoint's and inside a transaction once its
// first record is on the broker (the child's own), restarting it from
// its checkpoint each time against a broker that lives in this process.
// Read read_committed, every input element appears exactly once; read
// uncommitted, the aborted transactions of the killed children show.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped with -short")
	}
	bin := crashtest.Build(t, "./internal/crashchild")
	seeds := cluster(t)
	const batches = 200 // enough that 20 lives, each killed within a few batches, never reach the end
	// Ground truth, computed here from the input's definition.
	var want []string
	for k := range batches {
		for i := range k*7%5 + 1 {
			want = append(want, strconv.Itoa(k)+"-"+strconv.Itoa(i))
		}
	}
	slices.Sort(want)

	ckpt := t.TempDir()
	crashtest.Loop{
		Command: func(killp float64, seed uint64) *exec.Cmd {
			return exec.Command(bin, "-brokers", seeds[0], "-checkpoint", ckpt, "-batches", strconv.Itoa(batches),
				"-killp", strconv.FormatFloat(killp, 'f', -1, 64), "-seed", strconv.FormatUint(seed, 10))
		},
		KillP: 0.1, SelfKill: true, MaxDelay: 20 * time.Millisecond,
	}.Run(t)

	committed := readN(t, seeds, kgo.ReadCommitted(), len(want))
	slices.Sort(committed)
	if !slices.Equal(committed, want) {
		t.Fatalf("read_committed holds %d records, want %d exactly once; first differences: %v", len(committed), len(want), diff(committed, want))
	}
	uncommitted := readN(t, seeds, kgo.ReadUncommitted(), len(want)+1)
	if len(uncommitted) <= len(want) {
		t.Fatalf("read_uncommitted holds %d records, no aborted duplicates: the kills never hit a transaction", len(uncommitted))
	}
	t.Logf("read_uncommitted holds %d records, %d from aborted transactions", len(uncommitted), len(uncommitted)-len(want))
}

// readN reads topic out at iso until it has at least n records, then for
// one more second to catch any extra.
func readN(t *testing.T, seeds []string, iso kgo.IsolationLevel, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for len(got) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	extra, cancel2 := context.WithTimeout(t.Context(), time.Second)
	defer cancel2()
	for extra.Err() == nil {
		cl.PollFetches(extra).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

func diff(got, want []string) []string {
	var d []string
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		if seen[w] != 1 {
			d = append(d, w+"×"+strconv.Itoa(seen[w]))
		}
	}
	return d[:min(len(d), 10)]
}
