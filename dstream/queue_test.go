package dstream_test

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/state"
)

// TestQueueMalformedPlan restarts a job whose checkpoint records, for the
// uncommitted batch, a queue position no queue can have: the batch fails
// with an error naming the queue instead of panicking.
func TestQueueMalformedPlan(t *testing.T) {
	input := [][]int{{1}, {2}, {3}}
	dir := t.TempDir()
	c1 := newWindowCheckpointContext(t, dir, 1)
	collect(dstream.Queue(c1, input))
	require.NoError(t, c1.RunBatches(t.Context(), 1))
	require.NoError(t, c1.Close())

	tests := []struct {
		name string
		plan []byte
	}{
		{"position beyond int", binary.AppendUvarint(nil, math.MaxUint64)},
		{"not a varint", []byte{0x80}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"batch_ms": 2000, "plans": map[string][]byte{"queue-1": tc.plan}})
			require.NoError(t, err)
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "offsets"), 0o755))
			require.NoError(t, state.WriteFile(state.OSFS{}, filepath.Join(dir, "offsets", "2000"), state.KindOffsets, body))

			c2 := newWindowCheckpointContext(t, dir, 1)
			collect(dstream.Queue(c2, input))
			require.ErrorContains(t, c2.RunBatches(t.Context(), 1), "queue plan is malformed")
		})
	}
}
