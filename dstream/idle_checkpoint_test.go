package dstream_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// timedStream returns a stream whose batch k (batch time k seconds after the
// Unix epoch) holds batches[k-1], and nothing after the last, from a
// [fixedSource].
func timedStream(c *engine.Context, batches [][]string) *dstream.Stream[string] {
	at := func(j *engine.Job) []string {
		if k := int(j.Time.Unix()); k >= 1 && k <= len(batches) {
			return batches[k-1]
		}
		return nil
	}
	src := &fixedSource{records: func(j *engine.Job) int { return len(at(j)) }}
	return dstream.NewSource(c, src, "timed", func(_ context.Context, j *engine.Job) ([][]string, error) {
		return [][]string{at(j)}, nil
	})
}

// collectSorted records every batch s emits as its elements formatted with
// fmt.Sprint and sorted, by batch time in ms.
func collectSorted[U any](s *dstream.Stream[U]) map[int64][]string {
	got := map[int64][]string{}
	dstream.ForEachBatch(s, func(_ context.Context, b dstream.Batch[U]) error {
		out := []string{}
		for x := range b.All() {
			out = append(out, fmt.Sprint(x))
		}
		slices.Sort(out)
		got[b.Time.UnixMilli()] = out
		return nil
	})
	return got
}

// checkpointFiles lists every file under dir with its size.
func checkpointFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = info.Size()
		return nil
	})
	require.NoError(t, err)
	return files
}

// TestIdleBatchesWriteNoCheckpoint runs every stateful operator over input
// that stops after three batches. Once the operator's state has settled, an
// idle batch must write nothing at all to the checkpoint dir. A job
// restarted from that dir resumes after the last commit and emits what a
// job that was never stopped emits at the same times.
func TestIdleBatchesWriteNoCheckpoint(t *testing.T) {
	const (
		settled = 8 // batches after which every operator's state is settled
		idle    = 4 // idle batches that must write nothing
		total   = 16
	)
	input := [][]string{{"a", "b", "a"}, {"b", "c"}, {"a"}}
	w2, w3, s1, s2 := winSeconds(2), winSeconds(3), winSeconds(1), winSeconds(2)
	lens := func(s *dstream.Stream[string]) *dstream.Stream[int64] {
		return dstream.Map(s, func(w string) int64 { return int64(len(w)) })
	}
	cases := []struct {
		name  string
		build func(s *dstream.Stream[string]) map[int64][]string
	}{
		{"Window", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.Window(s, w3, s1).Name("op"))
		}},
		{"ReduceByKeyAndWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.ReduceByKeyAndWindow(ones(s), add, w2, s1).Name("op"))
		}},
		{"ReduceByKeyAndWindowInv", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.ReduceByKeyAndWindowInv(ones(s), add, sub, w3, s2, nil).Name("op"))
		}},
		{"CountByValueAndWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.CountByValueAndWindow(s, w2, s1).Name("op"))
		}},
		{"GroupByKeyAndWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.GroupByKeyAndWindow(ones(s), w2, s1).Name("op"))
		}},
		{"CountByWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.CountByWindow(s, w2, s1).Name("op"))
		}},
		{"ReduceByWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.ReduceByWindow(lens(s), add, w2, s1).Name("op"))
		}},
		{"ReduceByWindowInv", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.ReduceByWindowInv(lens(s), add, sub, w3, s1).Name("op"))
		}},
		{"UpdateStateByKey", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.UpdateStateByKey(ones(s), addCount).Name("op"))
		}},
		{"MapWithState with timeout", func(s *dstream.Stream[string]) map[int64][]string {
			spec := dstream.NewSimpleStateSpec(func(k string, v dstream.Optional[int64], st *dstream.State[int64]) string {
				n, _ := st.Get()
				if !st.IsTimingOut() {
					st.Update(n + v.Value)
				}
				return fmt.Sprintf("%s=%d timingOut=%v", k, n, st.IsTimingOut())
			}).WithTimeout(w2)
			return collectSorted(dstream.MapWithState(ones(s), spec).Name("op"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the commits wait on fsync
			ref := newTestContext(t, 2)
			want := tc.build(timedStream(ref, input))
			require.NoError(t, ref.RunBatches(t.Context(), total))

			dir := t.TempDir()
			c1 := newWindowCheckpointContext(t, dir, 2, engine.SnapshotEvery(1000))
			got1 := tc.build(timedStream(c1, input))
			require.NoError(t, c1.RunBatches(t.Context(), settled))
			before := checkpointFiles(t, dir)
			require.NoError(t, c1.RunBatches(t.Context(), idle))
			require.Equal(t, before, checkpointFiles(t, dir), "idle batches wrote to the checkpoint")
			require.NoError(t, c1.Close())
			for ms, b := range got1 {
				require.Equal(t, want[ms], b, "batch %d ms", ms)
			}

			c2 := newWindowCheckpointContext(t, dir, 2, engine.SnapshotEvery(1000))
			got2 := tc.build(timedStream(c2, input))
			var last time.Time
			c2.AddListener(engine.ListenerFuncs{Completed: func(b engine.BatchInfo) { last = b.Time }})
			for last.Before(time.Unix(total, 0)) {
				require.NoError(t, c2.RunBatches(t.Context(), 1))
			}
			require.NotEmpty(t, got2)
			for ms, b := range got2 {
				require.Equal(t, want[ms], b, "batch %d ms after the restart", ms)
			}
		})
	}
}
