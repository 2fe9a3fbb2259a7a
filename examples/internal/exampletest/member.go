package exampletest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/internal/topictest"
)

// Helpers for the tests that run an example as member a of its group
// (--member a) on a stand-alone broker, once and then again.

// RunMember runs bin with args, which make it member a of group, and
// checks that it exits without error within a minute, its first line
// saying it runs as member "a" of group and its last how to rejoin. It
// returns the lines of its standard output.
func RunMember(t testing.TB, bin, group string, args ...string) []string {
	t.Helper()
	p := Start(t, bin, args...)
	out := p.Wait(t, 60*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Contains(t, out[0], `as member "a" of group "`+group+`"`)
	require.Contains(t, out[len(out)-1], "run it again with --member a to rejoin")
	return out
}

// RequireMemberResumes runs bin with args again after [RunMember] and
// checks that member a resumes at the group's offsets: it exits without
// error within a minute, stopped by --stop-when-idle 3 after reading no
// record.
func RequireMemberResumes(t testing.TB, bin string, args ...string) {
	t.Helper()
	p := Start(t, bin, args...)
	out := p.Wait(t, 60*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Regexp(t, `stopped \(the topic stayed drained for 3 batches\) after \d+ batches and 0 records`, out[len(out)-1],
		"run again, member a resumes at the group's offsets:\n%s", strings.Join(out, "\n"))
}

// RequireSinkHoldsSaved checks that topic at addr, read committed, holds
// one record per row of the files --save prefix wrote for kind ("" for
// the main results).
func RequireSinkHoldsSaved(t testing.TB, addr, topic, prefix, kind string) {
	t.Helper()
	var saved int
	for _, rows := range SavedRows(t, prefix, kind) {
		saved += len(rows)
	}
	require.Len(t, topictest.ReadToEnd(t, []string{addr}, topic, true), saved,
		"read committed, --sink kafka:%s holds one record per row of the --save files", topic)
}
