package engine_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// heldFS holds the directory fsync of every planned-input file until the
// test lets it go, and says when one is held.
type heldFS struct {
	state.OSFS
	held    chan string
	release chan struct{}
}

func (h *heldFS) SyncDir(dir string) error {
	if filepath.Base(dir) == "offsets" {
		h.held <- dir
		<-h.release
	}
	return h.OSFS.SyncDir(dir)
}

// TestBatchComputesWhileItsInputIsRecorded holds the disk write of a
// batch's planned input: the batch computes meanwhile, but its output runs
// only once the record is durable.
func TestBatchComputesWhileItsInputIsRecorded(t *testing.T) {
	fsys := &heldFS{held: make(chan string), release: make(chan struct{})}
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithParallelism(2),
		engine.WithCheckpoint(t.TempDir()), engine.WithCheckpointOptions(engine.CheckpointFS(fsys)))
	require.NoError(t, err)
	defer c.Close()
	computed := make(chan struct{}, 8)
	var outputs atomic.Int64
	upper := dstream.Map(dstream.Queue(c, [][]string{{"a", "b"}, {"c"}}), func(s string) string {
		computed <- struct{}{}
		return strings.ToUpper(s)
	})
	var got []string
	dstream.ForEachBatch(upper, func(_ context.Context, b dstream.Batch[string]) error {
		outputs.Add(1)
		for s := range b.All() {
			got = append(got, s)
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- c.RunBatches(context.Background(), 2) }()
	for batch, records := range []int{2, 1} {
		select {
		case <-fsys.held:
		case err := <-done:
			t.Fatalf("batch %d ended (%v) before its planned input was recorded", batch+1, err)
		}
		for range records {
			select {
			case <-computed:
			case <-time.After(10 * time.Second):
				t.Fatalf("batch %d did not compute while its planned input was being recorded", batch+1)
			}
		}
		require.Equal(t, int64(batch), outputs.Load(), "batch %d's output ran before its planned input was durable", batch+1)
		fsys.release <- struct{}{}
	}
	require.NoError(t, <-done)
	require.Equal(t, int64(2), outputs.Load())
	require.Equal(t, []string{"A", "B", "C"}, got)
}

// TestFailedInputRecordRunsNoOutput fails the fsync of a batch's planned
// input: the batch fails and its output never runs.
func TestFailedInputRecordRunsNoOutput(t *testing.T) {
	for _, op := range []state.Op{state.OpSync, state.OpSyncDir, state.OpRename} {
		t.Run(op.String(), func(t *testing.T) {
			ffs := state.NewFaultFS(state.OSFS{})
			c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithParallelism(2),
				engine.WithCheckpoint(t.TempDir()), engine.WithCheckpointOptions(engine.CheckpointFS(ffs)))
			require.NoError(t, err)
			defer c.Close()
			var outputs atomic.Int64
			dstream.ForEachBatch(dstream.Queue(c, [][]string{{"a"}, {"b"}}), func(context.Context, dstream.Batch[string]) error {
				outputs.Add(1)
				return nil
			})
			require.NoError(t, c.RunBatches(context.Background(), 1))
			ffs.Arm(state.Fault{Op: op, Err: syscall.EIO, Match: func(p string) bool { return strings.Contains(p, string(filepath.Separator)+"offsets") }})
			err = c.RunBatches(context.Background(), 1)
			require.ErrorIs(t, err, syscall.EIO)
			require.Positive(t, ffs.Injected())
			require.Equal(t, int64(1), outputs.Load(), "the output of the batch whose input was not recorded ran")
		})
	}
}
