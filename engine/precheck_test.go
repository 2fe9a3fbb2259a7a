package engine_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/engine"
)

// TestCheckBatchInterval: before the context starts, a checkpoint written
// at 1s is refused at 2s, by its FORMAT file or, without one, by its newest
// commit; the same interval, a new checkpoint and no checkpoint pass; and
// the check writes nothing (a lost FORMAT stays lost until Start rebuilds it).
func TestCheckBatchInterval(t *testing.T) {
	dir := t.TempDir()
	writeCheckpoint(t, dir, 3)
	check := func(dir string, batch time.Duration) error {
		t.Helper()
		opts := []engine.Option{engine.WithManualClock(time.Unix(1000, 0))}
		if dir != "" {
			opts = append(opts, engine.WithCheckpoint(dir))
		}
		c, err := engine.NewContext(batch, opts...)
		require.NoError(t, err)
		defer c.Close()
		return c.CheckBatchInterval()
	}

	err := check(dir, 2*time.Second)
	require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
	require.ErrorContains(t, err, "was written with batch interval 1s (its FORMAT says so) but this job uses 2s")
	require.NoError(t, check(dir, time.Second))

	require.NoError(t, os.Remove(filepath.Join(dir, "FORMAT")))
	err = check(dir, 2*time.Second)
	require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
	require.Regexp(t, `batch interval 1s \(its commit \d+ says so\) but this job uses 2s`, err.Error())
	require.NoError(t, check(dir, time.Second))
	require.NoFileExists(t, filepath.Join(dir, "FORMAT"), "the check writes nothing")

	require.NoError(t, check(t.TempDir(), 2*time.Second), "a new checkpoint")
	require.NoError(t, check("", 2*time.Second), "no checkpoint")
}
