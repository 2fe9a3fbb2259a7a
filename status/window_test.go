package status_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/metricstest"
	"github.com/sluicehq/sluice/status"
)

// TestWindowStateKeys checks that keyed window operators report the keys of
// their last window as sluice_state_keys, read from /metrics with the
// Prometheus text parser: a 2-batch window over words, plain and
// incremental, counted by the test itself.
func TestWindowStateKeys(t *testing.T) {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	in := [][]string{{"a", "b"}, {"b", "c", "d"}, {"e"}}
	words := dstream.Map(dstream.Queue(c, in), func(w string) dstream.KV[string, int] { return dstream.Pair(w, 1) })
	plain := dstream.ReduceByKeyAndWindow(words, func(a, b int) int { return a + b }, 2*time.Second, time.Second)
	inc := dstream.ReduceByKeyAndWindowInv(words, func(a, b int) int { return a + b }, func(a, b int) int { return a - b },
		2*time.Second, time.Second, func(kv dstream.KV[string, int]) bool { return kv.Value != 0 })
	var got [2]int
	dstream.ForEachBatch(plain, func(_ context.Context, b dstream.Batch[dstream.KV[string, int]]) error {
		got[0] = b.Len()
		return nil
	})
	dstream.ForEachBatch(inc, func(_ context.Context, b dstream.Batch[dstream.KV[string, int]]) error {
		got[1] = b.Len()
		return nil
	})
	h, err := status.New(c)
	require.NoError(t, err)
	for k, want := range []float64{2, 4, 4} { // {a b}, {a b c d}, {b c d e}
		require.NoError(t, c.RunBatches(t.Context(), 1))
		fams := metricstest.Scrape(t, h)
		require.Equal(t, want, metricstest.Value(t, fams, "sluice_state_keys", map[string]string{"operator": "reduceByKeyAndWindow-1"}), "batch %d", k+1)
		require.Equal(t, want, metricstest.Value(t, fams, "sluice_state_keys", map[string]string{"operator": "reduceByKeyAndWindowInv-1"}), "batch %d", k+1)
		require.Equal(t, [2]int{int(want), int(want)}, got, "the windows the outputs saw, batch %d", k+1)
	}
}
