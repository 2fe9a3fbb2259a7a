package dstream_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// windowRepeatStream returns a stream of records records a batch, spread over
// keys keys, split into parts partitions: every batch holds the same records,
// for benchmarks that run an unknown number of batches. The partitions it
// hands out are shared between batches and never modified.
func windowRepeatStream(c *engine.Context, records, keys, parts int) *dstream.Stream[dstream.KV[string, int64]] {
	names := make([]string, keys)
	for i := range names {
		names[i] = "key-" + strconv.Itoa(i)
	}
	all := make([]dstream.KV[string, int64], records)
	for i := range all {
		all[i] = dstream.Pair(names[i%keys], int64(1))
	}
	split := make([][]dstream.KV[string, int64], parts)
	for i := range parts {
		split[i] = all[i*records/parts : (i+1)*records/parts]
	}
	src := &fixedSource{records: func(*engine.Job) int { return records }}
	return dstream.NewSource(c, src, "repeat",
		func(context.Context, *engine.Job) ([][]dstream.KV[string, int64], error) { return split, nil })
}

// windowBench is one job of BenchmarkReduceByKeyAndWindowInv: a windowed count over
// a windowRepeatStream, filled before the timed loop.
type windowBench struct {
	name    string
	c       *engine.Context
	emitted int
	spent   time.Duration
}

func newWindowBench(b *testing.B, name string, records, keys int, window time.Duration, build func(*dstream.Stream[dstream.KV[string, int64]]) *dstream.Stream[dstream.KV[string, int64]]) *windowBench {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close() })
	wb := &windowBench{name: name, c: c}
	dstream.ForEachBatch(build(windowRepeatStream(c, records, keys, c.Parallelism())),
		func(_ context.Context, bt dstream.Batch[dstream.KV[string, int64]]) error {
			wb.emitted = bt.Len()
			return nil
		})
	require.NoError(b, c.RunBatches(b.Context(), int(window/time.Second))) // fill the window
	require.Equal(b, keys, wb.emitted)
	return wb
}

// BenchmarkReduceByKeyAndWindowInv measures one batch of a sliding count with an
// inverse function once its window is full, for a 10-second and a 1-hour
// window sliding every second (10 and 3,600 panes) over the same input:
// 10,000 records a batch over 1,000 keys. The incremental step reads only
// the pane that enters and the one that leaves, so the cost per record
// should not depend on the window length. Beside them runs the form without
// an inverse over the 10-second window, which recombines all its panes at
// every slide. The jobs take turns inside the timed loop, so that they share
// the machine's load and the garbage collector alike; each reports its own
// ns/record. The windows are filled before the loop with the manual clock.
func BenchmarkReduceByKeyAndWindowInv(b *testing.B) {
	const records, keys = 10_000, 1_000
	add := func(a, b int64) int64 { return a + b }
	sub := func(a, b int64) int64 { return a - b }
	inv := func(window time.Duration) func(*dstream.Stream[dstream.KV[string, int64]]) *dstream.Stream[dstream.KV[string, int64]] {
		return func(s *dstream.Stream[dstream.KV[string, int64]]) *dstream.Stream[dstream.KV[string, int64]] {
			return dstream.ReduceByKeyAndWindowInv(s, add, sub, window, time.Second, nil)
		}
	}
	jobs := []*windowBench{
		newWindowBench(b, "inv-10s", records, keys, 10*time.Second, inv(10*time.Second)),
		newWindowBench(b, "inv-1h", records, keys, time.Hour, inv(time.Hour)),
		newWindowBench(b, "plain-10s", records, keys, 10*time.Second,
			func(s *dstream.Stream[dstream.KV[string, int64]]) *dstream.Stream[dstream.KV[string, int64]] {
				return dstream.ReduceByKeyAndWindow(s, add, 10*time.Second, time.Second)
			}),
	}

	b.ReportAllocs()
	for b.Loop() {
		for _, j := range jobs {
			start := time.Now()
			if err := j.c.RunBatches(b.Context(), 1); err != nil {
				b.Fatal(err)
			}
			j.spent += time.Since(start)
		}
	}
	for _, j := range jobs {
		require.Equal(b, keys, j.emitted, "%s emits every key", j.name)
		b.ReportMetric(float64(j.spent.Nanoseconds())/float64(b.N*records), j.name+"-ns/record")
	}
	b.ReportMetric(float64(jobs[1].spent)/float64(jobs[0].spent), "1h/10s")
}
