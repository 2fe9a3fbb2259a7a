package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// openCounting starts a counting job at the given interval over dir and
// returns it with its log; the caller closes it.
func openCounting(t *testing.T, dir string, batch time.Duration, kind string) (*engine.Context, *counter, *bytes.Buffer, error) {
	t.Helper()
	var log bytes.Buffer
	c, err := engine.NewContext(batch, engine.WithManualClock(time.Unix(1000, 0)), engine.WithCheckpoint(dir),
		engine.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	require.NoError(t, err)
	n := newCounter(c, "counts")
	if kind != "" {
		n.meta.Kind = kind
	}
	dstream.ForEachBatch(dstream.Queue(c, input(10)), func(_ context.Context, b dstream.Batch[string]) error {
		for w := range b.All() {
			n.add(w)
		}
		return nil
	})
	err = c.RunBatches(context.Background(), 0)
	if err != nil {
		c.Close()
	}
	return c, n, &log, err
}

func writeCheckpoint(t *testing.T, dir string, batches int) {
	t.Helper()
	c, _, _, err := openCounting(t, dir, time.Second, "")
	require.NoError(t, err)
	require.NoError(t, c.RunBatches(context.Background(), batches))
	require.NoError(t, c.Close())
}

func TestCheckpointMissingFormatIsRebuiltFromNewestCommit(t *testing.T) {
	dir := t.TempDir()
	writeCheckpoint(t, dir, 3)
	format := filepath.Join(dir, "FORMAT")
	require.NoError(t, os.Remove(format))

	_, _, _, err := openCounting(t, dir, 2*time.Second, "")
	require.ErrorIs(t, err, engine.ErrCheckpointMismatch, "another interval is refused, FORMAT or not")
	require.Contains(t, err.Error(), "batch interval 1s")
	require.Contains(t, err.Error(), "commit 1003000")
	_, err = os.Stat(format)
	require.ErrorIs(t, err, os.ErrNotExist, "a refused job writes no FORMAT")

	c, n, log, err := openCounting(t, dir, time.Second, "")
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, truth(input(10), 3), n.counts, "the state of the newest commit is restored")
	require.Contains(t, log.String(), "FORMAT file was missing; rebuilt it from the newest verified commit")
	require.Contains(t, log.String(), "commit_ms=1003000")
	body, err := state.ReadFile(state.OSFS{}, format, state.KindFormat)
	require.NoError(t, err, "FORMAT is written again")
	var fm struct {
		ZeroMS     int64    `json:"zero_ms"`
		IntervalMS int64    `json:"interval_ms"`
		Operators  []string `json:"operators"`
	}
	require.NoError(t, json.Unmarshal(body, &fm))
	require.Equal(t, int64(1_000_000), fm.ZeroMS)
	require.Equal(t, int64(1000), fm.IntervalMS)
	require.ElementsMatch(t, []string{"queue-1", "counts"}, fm.Operators)
	require.NoError(t, c.RunBatches(context.Background(), 2))
	require.Equal(t, truth(input(10), 5), n.counts, "batches continue after the restored one")
}

func TestCheckpointMissingFormatWithOnlyRecordedInputIsRefused(t *testing.T) {
	dir := t.TempDir()
	writeCheckpoint(t, dir, 2)
	commits, err := os.ReadDir(filepath.Join(dir, "commits"))
	require.NoError(t, err)
	for _, e := range commits {
		require.NoError(t, os.Remove(filepath.Join(dir, "commits", e.Name())))
	}
	require.NoError(t, os.Remove(filepath.Join(dir, "FORMAT")))
	_, _, _, err = openCounting(t, dir, time.Second, "")
	require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
	require.Contains(t, err.Error(), "no FORMAT file and no commit")
	require.Contains(t, err.Error(), filepath.Join(dir, "FORMAT"))
}

// rewriteFormat replaces the FORMAT file's interval and zero time.
func rewriteFormat(t *testing.T, dir string, intervalMS, zeroMS int64) {
	t.Helper()
	p := filepath.Join(dir, "FORMAT")
	body, err := state.ReadFile(state.OSFS{}, p, state.KindFormat)
	require.NoError(t, err)
	var fm map[string]any
	require.NoError(t, json.Unmarshal(body, &fm))
	fm["interval_ms"], fm["zero_ms"] = intervalMS, zeroMS
	body, err = json.Marshal(fm)
	require.NoError(t, err)
	require.NoError(t, state.WriteFile(state.OSFS{}, p, state.KindFormat, body))
}

func TestCheckpointCommitIsCrossCheckedWithTheJob(t *testing.T) {
	t.Run("a FORMAT that names another interval than the commits", func(t *testing.T) {
		dir := t.TempDir()
		writeCheckpoint(t, dir, 3)
		rewriteFormat(t, dir, 2000, 1_000_000)
		_, _, _, err := openCounting(t, dir, 2*time.Second, "")
		require.ErrorIs(t, err, engine.ErrCheckpointMismatch, "the commit's own interval is checked")
		require.Contains(t, err.Error(), "batch interval 1s (its commit 1003000 says so)")
	})
	t.Run("a FORMAT with another zero time", func(t *testing.T) {
		dir := t.TempDir()
		writeCheckpoint(t, dir, 3)
		rewriteFormat(t, dir, 1000, 500_000)
		_, _, _, err := openCounting(t, dir, time.Second, "")
		require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
		require.Contains(t, err.Error(), "commit 1003000 counts batches from 1000000 ms but its FORMAT from 500000 ms")
	})
	t.Run("an operator of another kind under the same name", func(t *testing.T) {
		dir := t.TempDir()
		writeCheckpoint(t, dir, 3)
		_, _, _, err := openCounting(t, dir, time.Second, "gauge")
		require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
		require.Contains(t, err.Error(), `operator "counts" was checkpointed as a counter but this job builds a gauge`)
	})
	t.Run("the same job restores", func(t *testing.T) {
		dir := t.TempDir()
		writeCheckpoint(t, dir, 3)
		c, n, _, err := openCounting(t, dir, time.Second, "")
		require.NoError(t, err)
		defer c.Close()
		require.Equal(t, truth(input(10), 3), n.counts)
	})
}
