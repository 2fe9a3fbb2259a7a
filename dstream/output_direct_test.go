package dstream_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

func manualContext(t *testing.T, parallelism int) *engine.Context {
	t.Helper()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(parallelism))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPrintTo(t *testing.T) {
	c := manualContext(t, 2)
	var out bytes.Buffer
	dstream.PrintTo(dstream.Queue(c, [][]string{{"a", "b", "c"}, {}, {"d"}}), &out, 2)
	require.NoError(t, c.RunBatches(context.Background(), 3))
	require.Equal(t, ""+
		"-------------------------------------------\n"+
		"Time: 1000 ms (1970-01-01T00:00:01Z)\n"+
		"-------------------------------------------\n"+
		"a\nb\n...\n\n"+
		"-------------------------------------------\n"+
		"Time: 2000 ms (1970-01-01T00:00:02Z)\n"+
		"-------------------------------------------\n"+
		"\n"+
		"-------------------------------------------\n"+
		"Time: 3000 ms (1970-01-01T00:00:03Z)\n"+
		"-------------------------------------------\n"+
		"d\n\n", out.String())
}

// TestCombineByKeyWithCreate combines values into a combiner of another
// type whose create is not the identity: each word's values become a
// sorted list of their lengths plus one, across partitions.
func TestCombineByKeyWithCreate(t *testing.T) {
	for _, parallelism := range []int{1, 3} {
		c := manualContext(t, parallelism)
		in := dstream.Queue(c, [][]dstream.KV[string, string]{{
			dstream.Pair("x", "a"), dstream.Pair("y", "bb"), dstream.Pair("x", "ccc"),
			dstream.Pair("x", "dddd"), dstream.Pair("y", "e"), dstream.Pair("z", "ff"),
		}})
		combined := dstream.CombineByKey(in,
			func(v string) []int { return []int{len(v) + 1} },
			func(c []int, v string) []int { return append(c, len(v)+1) },
			func(a, b []int) []int { return append(a, b...) })
		got := map[string][]int{}
		dstream.ForEachBatch(combined, func(_ context.Context, b dstream.Batch[dstream.KV[string, []int]]) error {
			for kv := range b.All() {
				_, dup := got[kv.Key]
				require.False(t, dup, "one combiner per key")
				got[kv.Key] = slices.Sorted(slices.Values(kv.Value))
			}
			return nil
		})
		require.NoError(t, c.RunBatches(context.Background(), 1))
		require.Equal(t, map[string][]int{"x": {2, 4, 5}, "y": {2, 3}, "z": {3}}, got, "parallelism %d", parallelism)
	}
}
