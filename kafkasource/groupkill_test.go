package kafkasource

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasink"
)

// groupChildEnv, set to the broker's address, makes TestGroupModeChild a
// member of TestGroupModeKill9's job instead of skipping.
const groupChildEnv = "SLUICE_GROUP_CHILD_BROKER"

// killInput is how many records each partition of clicks holds, read at
// most killRate a batch.
const killInput, killRate = 3000, 20

// killMember starts a member named name of the kill test's job: it writes
// every input record's key to "out" with the transactional sink, and
// counts the records of each partition by offset modulo countKeys in an
// operator named "counts", whose state moves with its task.
func killMember(t *testing.T, seeds []string, name string) (*engine.Context, *member) {
	t.Helper()
	ec := newEngine(t)
	s, err := NewDirectStream(ec, []string{"clicks"}, WithBrokers(seeds...), WithResetPolicy(Earliest), WithRetryTimeout(10*time.Second),
		WithRateLimits(RateLimits{MaxRatePerPartition: killRate}),
		WithGroup("pagepopularity"), AsMember(name), WithMemberOptions(kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(time.Second), kgo.RebalanceTimeout(5*time.Second)))
	require.NoError(t, err)
	_, err = kafkasink.WriteTxn(context.Background(), s, kafkasink.Config{Brokers: seeds, Sink: "out"}, func(r Record) (*kgo.Record, error) {
		return &kgo.Record{Topic: "out", Key: r.Key, Value: r.Key}, nil
	})
	require.NoError(t, err)
	newKeyCounterBy(s, "counts", func(r Record) string { return countKey(r.Partition, int(r.Offset)) })
	return ec, findDirect(s.Node()).member
}

// TestGroupModeChild is one life of member "b" of TestGroupModeKill9: it
// runs batches until killed, printing "batch" after each that read
// records.
func TestGroupModeChild(t *testing.T) {
	broker := os.Getenv(groupChildEnv)
	if broker == "" {
		t.Skip("runs only as the child process of TestGroupModeKill9")
	}
	ec, _ := killMember(t, []string{broker}, "b")
	ec.AddListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
		if info.Err == nil && info.Records > 0 {
			os.Stdout.WriteString("batch\n")
		}
	}})
	for {
		if err := ec.RunBatches(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGroupModeKill9(t *testing.T) {
	// Member a runs here; member b is a process of its own, killed with
	// SIGKILL at random moments (in its transaction, between batches, in a
	// rebalance) and started again under its name. Read committed, the
	// output holds every input record once, and the changelog the counts
	// of every key, which moved with their tasks between the members and
	// b's lives.
	if testing.Short() {
		t.Skip("kills real processes; skipped with -short")
	}
	const n, kills = 4, 8
	e := startEOSCluster(t, n)
	e.produce(t, n, 0, killInput)
	ca, _ := killMember(t, e.seeds, "a")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	adm := kadm.NewClient(e.cl)
	go func() {
		// a runs batches until the group's offsets reach the input's end.
		for ctx.Err() == nil {
			if err := ca.RunBatches(ctx, 1); err != nil {
				done <- err
				return
			}
			offs, err := adm.FetchOffsets(ctx, "pagepopularity")
			if err != nil {
				continue
			}
			all := true
			for p := range int32(n) {
				o, ok := offs.Lookup("clicks", p)
				all = all && ok && o.At == killInput
			}
			if all {
				done <- nil
				return
			}
		}
		done <- ctx.Err()
	}()

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	working := 0
	life := func(kill bool) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGroupModeChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), groupChildEnv+"="+e.seeds[0])
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		target := 1 + rng.IntN(3)
		delay := time.Duration(rng.Int64N(int64(30*time.Millisecond) + 1))
		// A life that gets no records to read (a read them all) is
		// killed all the same.
		backstop := time.AfterFunc(5*time.Second, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		defer backstop.Stop()
		for seen := 0; sc.Scan(); {
			if sc.Text() == "batch" {
				if seen++; seen == 1 {
					working++
				}
				if seen == target && kill {
					time.AfterFunc(delay, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
				}
			}
		}
		if !kill {
			return cmd
		}
		err = cmd.Wait()
		ee, ok := err.(*exec.ExitError)
		ws, _ := ee.Sys().(syscall.WaitStatus)
		require.Truef(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "member b died on its own: %v: %s", err, stderr.String())
		return cmd
	}
	for range kills {
		life(true)
	}
	t.Logf("member b killed %d times, %d of them after batches that read records", kills, working)
	require.NotZero(t, working, "member b never read records before its kill")
	// The last life of b runs until the input is read; then it is
	// stopped too, with nothing left to read.
	last := make(chan *exec.Cmd, 1)
	go func() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGroupModeChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), groupChildEnv+"="+e.seeds[0])
		require.NoError(t, cmd.Start())
		last <- cmd
		_ = cmd.Wait()
	}()
	final := <-last
	require.NoError(t, <-done)
	_ = final.Process.Signal(syscall.SIGKILL)

	require.Equal(t, inputKeys(n, killInput), e.readOut(t, true), "read committed, every input record once")
	counts, committed := e.changelog(t, true)
	require.Equal(t, wantCounts(n, killInput, nil), counts, "read committed, the latest counts are exact")
	_, all := e.changelog(t, false)
	t.Logf("the changelog holds %d committed records and %d from aborted transactions", committed, all-committed)
	t.Logf("read uncommitted, the output holds %d records, %d of them from aborted transactions",
		len(e.readOut(t, false)), len(e.readOut(t, false))-n*killInput)
}
