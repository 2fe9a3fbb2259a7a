package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
)

// TestMember runs pagepopularity as member a of its group (--member)
// against a stand-alone sluice-broker fed with kcat, records keyed by page,
// and checks that the popularity it saves last sums every record once,
// that --sink kafka: holds, read committed, every row the --save files
// hold, and that a second run under its name resumes at the group's
// offsets and reads nothing.
func TestMember(t *testing.T) {
	seed := exampletest.Seed(t)
	rnd := rand.New(rand.NewPCG(seed, seed^0x6e6d))
	gen := newGenerator()
	truth := map[string]float64{}
	var keys, values [][]byte
	for range 600 {
		k, v := gen.Next(rnd)
		keys, values = append(keys, k), append(values, v)
		b, err := ParseBehavior(string(v))
		require.NoError(t, err)
		truth[b.Page] += b.Popularity()
	}
	addr := exampletest.StartBroker(t, "user-behavior", 2)
	exampletest.Produce(t, addr, "user-behavior", keys, values)
	bin := exampletest.Build(t, "./examples/pagepopularity")
	prefix := filepath.Join(t.TempDir(), "out", "pop")
	args := []string{"--brokers", addr, "--member", "a", "--save", prefix, "--sink", "kafka:popularity",
		"--batch", "100ms", "--max-rate-per-partition", "1000", "--stop-when-idle", "3", "--http", ""}

	exampletest.RunMember(t, bin, "sluice-pagepopularity", args...)

	got := map[string]float64{}
	for _, r := range exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix+"-a", "")) {
		got[r.Page] = r.Popularity
	}
	require.Len(t, got, len(truth), "pages in state")
	for page, want := range truth {
		require.InDelta(t, want, got[page], 1e-5, "popularity of %s", page)
	}
	exampletest.RequireSinkHoldsSaved(t, addr, "popularity", prefix+"-a", "")

	exampletest.RequireMemberResumes(t, bin, args...)
}

// TestMembersNeedStateDirsOfTheirOwn checks that a member started with the
// --checkpoint dir of a running member is refused in one sentence naming
// the flag, with exit status 1, and that the running one goes on.
func TestMembersNeedStateDirsOfTheirOwn(t *testing.T) {
	addr := exampletest.StartBroker(t, "user-behavior", 2)
	bin := exampletest.Build(t, "./examples/pagepopularity")
	dir := filepath.Join(t.TempDir(), "state")
	args := []string{"--brokers", addr, "--checkpoint", dir, "--batch", "100ms", "--http", ""}
	a := exampletest.Start(t, bin, append(args, "--member", "a")...)
	for l := range a.Lines {
		if strings.HasPrefix(l, "batch ") {
			break
		}
	}
	b := exampletest.Start(t, bin, append(args, "--member", "b")...)
	b.Wait(t, 30*time.Second)
	require.Equal(t, 1, b.Cmd.ProcessState.ExitCode())
	require.Regexp(t, `^pagepopularity: --checkpoint \S+ is the state dir of another running member \(pid \d+ holds \S+\); give each --member a --checkpoint dir of its own\n$`, b.Stderr.String())
	require.NoError(t, a.Cmd.Process.Signal(os.Interrupt))
	a.Wait(t, 30*time.Second)
	require.NoError(t, a.Err, "member a stops cleanly: %s", a.Stderr)
}

// TestMemberSessionTimeoutRefused checks that a --session-timeout the
// broker refuses (below its minimum, 6s by default) stops the member with
// one sentence naming the flag, exit status 1, instead of a member that
// never joins.
func TestMemberSessionTimeoutRefused(t *testing.T) {
	addr := exampletest.StartBroker(t, "user-behavior", 2)
	bin := exampletest.Build(t, "./examples/pagepopularity")
	p := exampletest.Start(t, bin, "--brokers", addr, "--member", "a", "--checkpoint", t.TempDir(), "--session-timeout", "1s",
		"--batch", "100ms", "--http", "", "--log-level", "error")
	p.Wait(t, 30*time.Second)
	require.Equal(t, 1, p.Cmd.ProcessState.ExitCode())
	require.Equal(t, "pagepopularity: the broker refuses --session-timeout 1s, which must lie within its group.min.session.timeout.ms and group.max.session.timeout.ms (6s and 30m unless configured otherwise; sluice-broker sets the least with --group-min-session-timeout); pass one within them\n", p.Stderr.String())
}

// TestMemberNeedsASharedBroker checks that --member without --brokers is
// refused in one sentence, with exit status 2, before anything starts.
func TestMemberNeedsASharedBroker(t *testing.T) {
	bin := exampletest.Build(t, "./examples/pagepopularity")
	p := exampletest.Start(t, bin, "--member", "a")
	out := p.Wait(t, 30*time.Second)
	require.Empty(t, out)
	require.Equal(t, 2, p.Cmd.ProcessState.ExitCode())
	require.Equal(t, "pagepopularity: --member needs a broker that every member shares, and the embedded broker lives in one process; start one with go run ./cmd/sluice-broker and pass its address with --brokers.\n", p.Stderr.String())
}
