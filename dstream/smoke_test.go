package dstream_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

func TestWordCountOverQueue(t *testing.T) {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(2))
	require.NoError(t, err)
	defer c.Close()
	lines := dstream.Queue(c, [][]string{{"a b", "b c"}, {}, {"c c"}})
	words := dstream.FlatMap(lines, strings.Fields)
	pairs := dstream.Map(words, func(w string) dstream.KV[string, int] { return dstream.Pair(w, 1) })
	counts := dstream.ReduceByKey(pairs, func(a, b int) int { return a + b })
	var got [][]string
	dstream.ForEachBatch(counts, func(ctx context.Context, b dstream.Batch[dstream.KV[string, int]]) error {
		var out []string
		for kv := range b.All() {
			out = append(out, kv.String())
		}
		slices.Sort(out)
		got = append(got, out)
		return nil
	})
	require.NoError(t, c.RunBatches(context.Background(), 4))
	require.Equal(t, [][]string{{"(a,1)", "(b,2)", "(c,1)"}, nil, {"(c,2)"}, nil}, got)
}
