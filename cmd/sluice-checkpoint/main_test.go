package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// makeCheckpoint runs a small stateful job with a checkpoint in a new dir.
func makeCheckpoint(t *testing.T) string {
	dir := t.TempDir()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	q := dstream.Queue(c, [][]int{{1, 2}, {3}, {4, 5, 6}})
	dstream.ForEachBatch(q, func(context.Context, dstream.Batch[int]) error { return nil })
	require.NoError(t, c.RunBatches(context.Background(), 3))
	require.NoError(t, c.Close())
	return dir
}

func TestInspectAndVerify(t *testing.T) {
	dir := makeCheckpoint(t)
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"inspect", dir}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "3 commits")
	require.Contains(t, out.String(), "commit 3000")
	require.Contains(t, out.String(), "operator queue-1")

	out.Reset()
	require.Equal(t, 0, run([]string{"verify", dir}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "OK, 3 commits")

	p := filepath.Join(dir, "commits", "2000")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	b[len(b)-1] ^= 1
	require.NoError(t, os.WriteFile(p, b, 0o644))
	out.Reset()
	errOut.Reset()
	require.Equal(t, 1, run([]string{"verify", dir}, &out, &errOut))
	require.Contains(t, errOut.String(), p, "the failure names the file")
	require.Contains(t, out.String(), "1 problem found")

	out.Reset()
	errOut.Reset()
	require.Equal(t, 1, run([]string{"inspect", dir}, &out, &errOut), "inspect fails on a corrupt commit")
	require.Contains(t, out.String(), "commit 2000 (1970-01-01T00:00:02Z): DOES NOT VERIFY")
	require.Contains(t, errOut.String(), "1 commit does not verify")
}

func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run([]string{arg}, &out, &errOut), arg)
		require.Contains(t, errOut.String(), "usage: sluice-checkpoint")
	}
}

func TestBadArguments(t *testing.T) {
	cases := map[string][]string{
		"no args":         {},
		"unknown command": {"explode", t.TempDir()},
		"missing dir":     {"inspect", filepath.Join(t.TempDir(), "nope")},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, 2, run(args, &out, &errOut))
			require.NotEmpty(t, errOut.String())
		})
	}
}

// TestVerifyWhileTheJobRuns verifies a checkpoint over and over while a job
// commits to it and collects old commits (keeping only one): a commit or
// recorded input the job removes between listing and reading is not a
// problem, and every verify run succeeds.
func TestVerifyWhileTheJobRuns(t *testing.T) {
	dir := t.TempDir()
	in := make([][]int, 150)
	for i := range in {
		in[i] = []int{i}
	}
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)),
		engine.WithCheckpoint(dir), engine.WithCheckpointOptions(engine.KeepCommits(1)))
	require.NoError(t, err)
	defer c.Close()
	q := dstream.Queue(c, in)
	dstream.ForEachBatch(q, func(context.Context, dstream.Batch[int]) error { return nil })
	require.NoError(t, c.RunBatches(context.Background(), 1))
	done := make(chan error, 1)
	go func() { done <- c.RunBatches(context.Background(), len(in)-1) }()
	runs := 0
	for running := true; running; runs++ {
		select {
		case err := <-done:
			require.NoError(t, err)
			running = false
		default:
		}
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run([]string{"verify", dir}, &out, &errOut), "verify run %d: %s", runs, errOut.String())
		out.Reset()
		require.Equal(t, 0, run([]string{"inspect", dir}, &out, &errOut), errOut.String())
		require.NotContains(t, out.String(), "DOES NOT VERIFY")
	}
	t.Logf("%d verify runs", runs)
}

func TestVerifyCrossChecksCommitsWithFormat(t *testing.T) {
	dir := makeCheckpoint(t)
	p := filepath.Join(dir, "FORMAT")
	body, err := state.ReadFile(state.OSFS{}, p, state.KindFormat)
	require.NoError(t, err)
	var fm map[string]any
	require.NoError(t, json.Unmarshal(body, &fm))
	fm["interval_ms"] = 2000
	body, err = json.Marshal(fm)
	require.NoError(t, err)
	require.NoError(t, state.WriteFile(state.OSFS{}, p, state.KindFormat, body))
	var out, errOut bytes.Buffer
	require.Equal(t, 1, run([]string{"verify", dir}, &out, &errOut))
	require.Contains(t, errOut.String(), "commit 3000 was written with batch interval 1s from zero time 0 ms but FORMAT says 2s")

	require.NoError(t, os.Remove(p))
	out.Reset()
	errOut.Reset()
	require.Equal(t, 1, run([]string{"verify", dir}, &out, &errOut))
	require.Contains(t, errOut.String(), p+" is missing; the job rebuilds it from the newest verified commit")
}

// TestInspectShowsSettings: inspect prints the window and slide a windowed
// operator's state was written with, which a job must build it with.
func TestInspectShowsSettings(t *testing.T) {
	dir := t.TempDir()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	q := dstream.Queue(c, [][]dstream.KV[string, int]{{dstream.Pair("a", 1)}, {dstream.Pair("b", 2)}})
	add := func(a, b int) int { return a + b }
	w := dstream.ReduceByKeyAndWindow(q, add, 3*time.Second, time.Second).Name("counts")
	dstream.ForEachBatch(w, func(context.Context, dstream.Batch[dstream.KV[string, int]]) error { return nil })
	require.NoError(t, c.RunBatches(context.Background(), 2))
	require.NoError(t, c.Close())

	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"inspect", dir}, &out, &errOut), errOut.String())
	require.Regexp(t, `(?m)^  operator counts +reduceByKeyAndWindow +.*; window 3s, slide 1s$`, out.String())
}
