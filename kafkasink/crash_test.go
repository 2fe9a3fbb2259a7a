package kafkasink

import (
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

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

	committed := readAll(t, seeds, "out", true)
	slices.Sort(committed)
	if !slices.Equal(committed, want) {
		t.Fatalf("read_committed holds %d records, want %d exactly once; first differences: %v", len(committed), len(want), diff(committed, want))
	}
	uncommitted := readAll(t, seeds, "out", false)
	if len(uncommitted) <= len(want) {
		t.Fatalf("read_uncommitted holds %d records, no aborted duplicates: the kills never hit a transaction", len(uncommitted))
	}
	t.Logf("read_uncommitted holds %d records, %d from aborted transactions", len(uncommitted), len(uncommitted)-len(want))
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
