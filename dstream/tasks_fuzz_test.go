package dstream_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// FuzzRestoreTask feeds records cut from arbitrary bytes to the RestoreTask
// of every operator that holds state per task: it must never panic, must
// report malformed records as corruption, and a task it restores (or fails
// to) must still run its next batch.
func FuzzRestoreTask(f *testing.F) {
	type kv = dstream.KV[string, int]
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 3, 232, 0}, []byte{1, 1, 1, 'a', 8, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{2, 'a'}, []byte{1, 128, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{3}, []byte{1, 0, 0, 0, 0, 0, 0, 3, 232})
	f.Add([]byte("a"), []byte{1, 128, 0, 0, 0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		c, err := engine.NewContext(testBatch, engine.WithManualClock(time.Unix(0, 0)))
		require.NoError(t, err)
		defer c.Close()
		input := keyedInput(2, 2, 4, 4)
		s := dstream.CoPartitioned(newTaskSource(c, &taskSource[kv]{input: input, tasks: 2, distributed: true}))
		sum := func(a, b int) int { return a + b }
		collect(dstream.ReduceByKeyAndWindow(s, sum, 2*testBatch, testBatch))
		collect(dstream.ReduceByKeyAndWindowInv(s, sum, func(a, b int) int { return a - b }, 2*testBatch, testBatch, nil))
		collect(dstream.GroupByKeyAndWindow(s, 2*testBatch, testBatch))
		collect(dstream.UpdateStateByKey(s, func(vs []int, st int, _ bool) (int, bool) { return st + len(vs), true }))
		collect(dstream.MapWithState(s, dstream.NewSimpleStateSpec(runningCount).WithTimeout(testBatch)).Stream)
		require.NoError(t, c.Start())
		require.NoError(t, c.RunBatches(t.Context(), 1))
		// value is split in two records, the second a deletion when the
		// split leaves it empty.
		half := len(value) / 2
		recs := []record{{key, value}, {key, value[:half]}, {append(key, 0), value[half:]}}
		if half == 0 {
			recs[1].value = nil
		}
		for _, n := range c.Nodes() {
			ts, ok := n.(engine.TaskStateful)
			if !ok {
				continue
			}
			err := ts.RestoreTask(1, func(apply func(k, v []byte) error) error {
				for _, r := range recs {
					if err := apply(r.key, r.value); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				require.ErrorIs(t, err, state.ErrCorrupt, "%s", n.Meta().Name())
			}
		}
		// A restored window may hold panes that fail its next step
		// (window.ErrFilteredKey); it must not panic.
		_ = c.RunBatches(t.Context(), 1)
	})
}
