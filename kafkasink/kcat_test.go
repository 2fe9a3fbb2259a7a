package kafkasink

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKcatReadsCommittedOnly has kcat, an independent client, read the
// sink's topic with isolation.level=read_committed: it sees the committed
// batches and not a transaction that aborted.
func TestKcatReadsCommittedOnly(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is not installed; CI needs it: apt-get install kcat")
		}
		t.Skip("kcat is not installed; install it (apt-get install kcat) to run this test")
	}
	seeds := cluster(t)
	ctx := context.Background()
	w, err := NewTxn(ctx, seeds, "job", "s")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(ctx, time.UnixMilli(1000), recs(2, "a")); err != nil {
		t.Fatal(err)
	}
	// An aborted transaction from another producer.
	ab, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer ab.Close()
	if err := ab.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := ab.ProduceSync(ctx, recs(2, "aborted")...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := ab.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ctx, time.UnixMilli(2000), recs(2, "b")); err != nil {
		t.Fatal(err)
	}
	read := func(iso string) []string {
		out, err := exec.Command(kcat, "-b", seeds[0], "-X", "isolation.level="+iso, "-C", "-t", "out", "-e", "-q", "-f", "%s\n").Output()
		if err != nil {
			t.Fatalf("kcat: %v", err)
		}
		got := strings.Fields(string(out))
		slices.Sort(got)
		return got
	}
	if got, want := read("read_committed"), []string{"a0", "a1", "b0", "b1"}; !slices.Equal(got, want) {
		t.Fatalf("kcat read_committed = %v; want %v", got, want)
	}
	if got := read("read_uncommitted"); !slices.Contains(got, "aborted0") {
		t.Fatalf("kcat read_uncommitted = %v; want the aborted records too", got)
	}
}
