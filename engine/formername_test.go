package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// formerNameJob is upgradeJob's word count whose stateful operator is named
// name, with formerNames as the names a checkpoint may hold it under.
func formerNameJob(t *testing.T, dir, name string, formerNames ...string) (*engine.Context, *map[string]int64) {
	t.Helper()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	words := dstream.Queue(c, input(20))
	pairs := dstream.Map(words, func(w string) dstream.KV[string, int64] { return dstream.Pair(w, int64(1)) })
	totals := dstream.UpdateStateByKey(pairs, func(vs []int64, s int64, _ bool) (int64, bool) {
		for _, v := range vs {
			s += v
		}
		return s, true
	})
	if name != "" {
		totals.Name(name)
	}
	totals.Node().Meta().FormerNames = formerNames
	last := map[string]int64{}
	dstream.ForEachBatch(totals, func(_ context.Context, b dstream.Batch[dstream.KV[string, int64]]) error {
		clear(last)
		for kv := range b.All() {
			last[kv.Key] = kv.Value
		}
		return nil
	})
	require.NoError(t, c.RunBatches(context.Background(), 0))
	return c, &last
}

func TestFormerNameRestoresState(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	in := input(20)

	c, _ := formerNameJob(t, dir, "")
	require.NoError(t, c.RunBatches(ctx, 4))
	require.NoError(t, c.Close())

	// Renamed, with its former default name declared: the state is restored.
	c, last := formerNameJob(t, dir, "totals", "updateStateByKey-1")
	require.NoError(t, c.RunBatches(ctx, 2))
	require.Equal(t, truth(in, 6), *last, "state checkpointed under the former name, restored under the new one")
	require.NoError(t, c.Close())

	// The next checkpoint holds it under the new name: it resumes without the former name.
	c, last = formerNameJob(t, dir, "totals")
	defer c.Close()
	require.NoError(t, c.RunBatches(ctx, 1))
	require.Equal(t, truth(in, 7), *last)
}
