package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
)

// TestMemberRefused checks that --member is refused in one sentence, with
// exit status 2: ipcount keys its state by client_real_ip, which is not the key of
// its input records, and such a job cannot run on several processes until
// its records can be repartitioned.
func TestMemberRefused(t *testing.T) {
	bin := exampletest.Build(t, "./examples/ipcount")
	p := exampletest.Start(t, bin, "--brokers", "127.0.0.1:1", "--member", "a")
	out := p.Wait(t, 30*time.Second)
	require.Empty(t, out)
	require.Equal(t, 2, p.Cmd.ProcessState.ExitCode())
	require.Equal(t, "ipcount: --member: ipcount keys its state by client_real_ip, not by the keys of its input records, and a job that re-keys its records cannot run on several processes yet; run it without --member.\n", p.Stderr.String())
}
