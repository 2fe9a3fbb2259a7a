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
	return repeatStream(c, records, keys, parts, false)
}

// repeatStream is windowRepeatStream, in group mode when group is true:
// partition p is task p and holds the keys i with i mod parts = p.
func repeatStream(c *engine.Context, records, keys, parts int, group bool) *dstream.Stream[dstream.KV[string, int64]] {
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
	fixed := fixedSource{records: func(*engine.Job) int { return records }}
	var src engine.Source = &fixed
	if group {
		split = make([][]dstream.KV[string, int64], parts)
		for i, kv := range all {
			split[(i%keys)%parts] = append(split[(i%keys)%parts], kv)
		}
		src = &benchTaskSource{fixed, parts}
	}
	return dstream.NewSource(c, src, "repeat",
		func(context.Context, *engine.Job) ([][]dstream.KV[string, int64], error) { return split, nil })
}

// benchTaskSource is a source in group mode whose partition p is task p.
type benchTaskSource struct {
	fixedSource
	tasks int
}

func (s *benchTaskSource) Distributed() bool { return true }
func (s *benchTaskSource) TaskCount() int    { return s.tasks }
func (s *benchTaskSource) PartitionTasks(j *engine.Job) []int {
	ts := make([]int, s.tasks)
	for i := range ts {
		ts[i] = i
	}
	return ts
}

// windowBench is one job of BenchmarkReduceByKeyAndWindowInv: a windowed count over
// a windowRepeatStream, filled before the timed loop.
type windowBench struct {
	name    string
	c       *engine.Context
	emitted int
	spent   time.Duration
	node    engine.TaskStateful // in group mode: saved after every batch
	saved   int                 // records saved
}

func newWindowBench(b *testing.B, name string, records, keys int, window time.Duration, build func(*dstream.Stream[dstream.KV[string, int64]]) *dstream.Stream[dstream.KV[string, int64]]) *windowBench {
	return newWindowBenchIn(b, name, records, keys, window, false, build)
}

// newWindowBenchIn is newWindowBench, in group mode as the only member,
// owning every task, when group is true.
func newWindowBenchIn(b *testing.B, name string, records, keys int, window time.Duration, group bool, build func(*dstream.Stream[dstream.KV[string, int64]]) *dstream.Stream[dstream.KV[string, int64]]) *windowBench {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close() })
	wb := &windowBench{name: name, c: c}
	in := repeatStream(c, records, keys, c.Parallelism(), group)
	if group {
		in = dstream.CoPartitioned(in)
	}
	out := build(in)
	if group {
		wb.node = out.Node().(engine.TaskStateful)
	}
	dstream.ForEachBatch(out,
		func(_ context.Context, bt dstream.Batch[dstream.KV[string, int64]]) error {
			wb.emitted = bt.Len()
			return nil
		})
	for range int(window / time.Second) { // fill the window
		require.NoError(b, wb.batch(b.Context()))
	}
	require.Equal(b, keys, wb.emitted)
	wb.saved = 0
	return wb
}

// batch runs one batch and, in group mode, saves every task's changes.
func (wb *windowBench) batch(ctx context.Context) error {
	if err := wb.c.RunBatches(ctx, 1); err != nil {
		return err
	}
	if wb.node == nil {
		return nil
	}
	for task := range wb.c.Parallelism() {
		if err := wb.node.SaveTask(task, func(k, v []byte) error { wb.saved++; return nil }); err != nil {
			return err
		}
	}
	return nil
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
// The "-group" jobs run the 10-second windows in group mode as the only
// member, owning every task, and save every task's changes after every
// batch (the changelog records of group mode, without Kafka); group/single
// are their ratios to the single-process jobs.
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
		newWindowBenchIn(b, "inv-10s-group", records, keys, 10*time.Second, true, inv(10*time.Second)),
		newWindowBenchIn(b, "plain-10s-group", records, keys, 10*time.Second, true,
			func(s *dstream.Stream[dstream.KV[string, int64]]) *dstream.Stream[dstream.KV[string, int64]] {
				return dstream.ReduceByKeyAndWindow(s, add, 10*time.Second, time.Second)
			}),
	}

	b.ReportAllocs()
	for b.Loop() {
		for _, j := range jobs {
			start := time.Now()
			if err := j.batch(b.Context()); err != nil {
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
	b.ReportMetric(float64(jobs[3].spent)/float64(jobs[0].spent), "inv-group/single")
	b.ReportMetric(float64(jobs[4].spent)/float64(jobs[2].spent), "plain-group/single")
	b.ReportMetric(float64(jobs[3].saved)/float64(b.N), "inv-group-saved/batch")
}
