package dstream_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
)

// TestShuffleKeepsGroupsWhole checks the keyed shuffle over one and several
// map tasks (the Queue's partitions) and one and several reduce partitions:
// every key lands in exactly one partition, the same one in every batch, and
// its values keep the input order, map task after map task.
func TestShuffleKeepsGroupsWhole(t *testing.T) {
	const keys, perKey = 50, 12
	in := make([]dstream.KV[string, int], 0, keys*perKey)
	for i := range keys * perKey {
		in = append(in, dstream.Pair(fmt.Sprintf("k%02d", i%keys), i))
	}
	for _, tc := range []struct{ mapTasks, partitions int }{{1, 1}, {1, 4}, {3, 1}, {3, 4}} {
		t.Run(fmt.Sprintf("map-tasks=%d/partitions=%d", tc.mapTasks, tc.partitions), func(t *testing.T) {
			c := newTestContext(t, tc.mapTasks)
			got := collect(dstream.GroupByKey(dstream.Queue(c, [][]dstream.KV[string, int]{in, in})).Partitions(tc.partitions))
			require.NoError(t, c.RunBatches(t.Context(), 2))
			require.Len(t, *got, 2)
			home := map[string]int{}
			for _, b := range *got {
				require.Len(t, b.Parts, tc.partitions)
				seen := map[string]bool{}
				for p, part := range b.Parts {
					for _, kv := range part {
						require.False(t, seen[kv.Key], "key %s twice in one batch", kv.Key)
						seen[kv.Key] = true
						if h, ok := home[kv.Key]; ok {
							require.Equal(t, h, p, "key %s changed partition", kv.Key)
						}
						home[kv.Key] = p
						require.Len(t, kv.Value, perKey)
						for i, v := range kv.Value {
							require.Equal(t, fmt.Sprintf("k%02d", v%keys), kv.Key)
							require.Equal(t, i*keys+v%keys, v, "values of %s in input order", kv.Key)
						}
					}
				}
				require.Len(t, seen, keys)
			}
		})
	}
}
