package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFormerNameRestoresState renames a stateful operator and declares its
// former name in Meta.FormerNames: the state checkpointed under that name is
// restored.
func TestFormerNameRestoresState(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	in := input(20)

	c, _, err := upgradeJob(t, dir, false, "")
	require.NoError(t, err)
	require.NoError(t, c.RunBatches(ctx, 4))
	require.NoError(t, c.Close())

	// Renamed, with its former default name declared: the state is restored.
	c, last, err := upgradeJob(t, dir, false, "totals", "updateStateByKey-1")
	require.NoError(t, err)
	require.NoError(t, c.RunBatches(ctx, 2))
	require.Equal(t, truth(in, 6), *last, "state checkpointed under the former name, restored under the new one")
	require.NoError(t, c.Close())

	// The next checkpoint holds it under the new name: it resumes without the former name.
	c, last, err = upgradeJob(t, dir, false, "totals")
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.RunBatches(ctx, 1))
	require.Equal(t, truth(in, 7), *last)
}
