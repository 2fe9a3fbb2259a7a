package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// stateJob is a MapWithState job over a Queue whose state starts with
// keys keys and whose batches each change the same number of keys, changed.
type stateJob struct {
	c          *engine.Context
	checkpoint time.Duration // summed CheckpointDelay
	processing time.Duration // summed ProcessingDelay
	batches    int
}

func newStateJob(b *testing.B, dir string, keys, changed, batches int) *stateJob {
	b.Helper()
	initial := make(map[string]int64, keys)
	for i := range keys {
		initial[fmt.Sprintf("key-%07d", i)] = int64(i)
	}
	in := make([][]dstream.KV[string, int64], batches)
	for k := range in {
		in[k] = make([]dstream.KV[string, int64], changed)
		for i := range changed {
			in[k][i] = dstream.Pair(fmt.Sprintf("key-%07d", (k*changed+i)%keys), int64(1))
		}
	}
	sj := &stateJob{}
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)),
		engine.WithCheckpoint(dir), engine.WithListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
			sj.checkpoint += info.CheckpointDelay
			sj.processing += info.ProcessingDelay
			sj.batches++
		}}))
	if err != nil {
		b.Fatal(err)
	}
	spec := dstream.NewSimpleStateSpec(func(k string, v dstream.Optional[int64], st *dstream.State[int64]) int64 {
		n, _ := st.Get()
		st.Update(n + v.Value)
		return n + v.Value
	}).WithInitialState(initial)
	out := dstream.MapWithState(dstream.Queue(c, in), spec).Name("counts")
	dstream.ForEachBatch(out, func(context.Context, dstream.Batch[int64]) error { return nil })
	sj.c = c
	return sj
}

// BenchmarkCheckpointCost measures the checkpoint part of a batch that
// changes 1,000 keys, with 1,000 and with 1,000,000 keys in state: with
// deltas the two should cost about the same. The two jobs take turns in one
// loop, so both see the same machine load; background snapshots of the large
// state (every 10 deltas) are part of what its batches share the disk with.
func BenchmarkCheckpointCost(b *testing.B) {
	small := newStateJob(b, b.TempDir(), 1_000, 1_000, 100_000)
	defer small.c.Close()
	large := newStateJob(b, b.TempDir(), 1_000_000, 1_000, 100_000)
	defer large.c.Close()
	ctx := context.Background()
	for _, sj := range []*stateJob{small, large} {
		// The first batch commits the initial state whole.
		if err := sj.c.RunBatches(ctx, 1); err != nil {
			b.Fatal(err)
		}
		sj.checkpoint, sj.batches = 0, 0
	}
	for b.Loop() {
		for _, sj := range []*stateJob{small, large} {
			// The batch's manifest is made durable while RunBatches
			// returns; that wait is part of the checkpoint's cost.
			start, before := time.Now(), sj.processing
			if err := sj.c.RunBatches(ctx, 1); err != nil {
				b.Fatal(err)
			}
			sj.checkpoint += max(time.Since(start)-(sj.processing-before), 0)
		}
	}
	perBatch := func(sj *stateJob) float64 { return float64(sj.checkpoint.Microseconds()) / float64(sj.batches) }
	b.ReportMetric(perBatch(small), "ckpt-µs/batch(1k-keys)")
	b.ReportMetric(perBatch(large), "ckpt-µs/batch(1M-keys)")
	b.ReportMetric(perBatch(large)/perBatch(small), "ratio")
}

// BenchmarkCheckpointedBatches runs batches of a job with 10,000 keys in
// state that each change 1,000 of them, all in one RunBatches call, as Run
// runs them: a batch's manifest and state files go to the disk while the
// next batch runs. The batches must run in one call, so the loop is over
// b.N, not b.Loop.
func BenchmarkCheckpointedBatches(b *testing.B) {
	sj := newStateJob(b, b.TempDir(), 10_000, 1_000, b.N+1)
	defer sj.c.Close()
	ctx := context.Background()
	// The first batch commits the initial state whole.
	if err := sj.c.RunBatches(ctx, 1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := sj.c.RunBatches(ctx, b.N); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/batch")
}

// BenchmarkRestore measures how long a job takes to restore 1,000,000 keys
// of state from its checkpoint.
func BenchmarkRestore(b *testing.B) {
	const keys = 1_000_000
	dir := b.TempDir()
	sj := newStateJob(b, dir, keys, 1_000, 10)
	if err := sj.c.RunBatches(context.Background(), 3); err != nil {
		b.Fatal(err)
	}
	if err := sj.c.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sj := newStateJob(b, dir, 1, 1, 10)
		if err := sj.c.RunBatches(context.Background(), 0); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := sj.c.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restore")
}

// BenchmarkEmptyBatch measures the whole cost of a batch that reads nothing
// from 8 Kafka partitions, with and without checkpoints.
func BenchmarkEmptyBatch(b *testing.B) {
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("empty", 8))
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()
	for _, ckpt := range []bool{false, true} {
		b.Run(fmt.Sprintf("partitions=8/checkpoint=%v", ckpt), func(b *testing.B) {
			opts := []engine.Option{engine.WithManualClock(time.Unix(0, 0))}
			if ckpt {
				opts = append(opts, engine.WithCheckpoint(b.TempDir()))
			}
			var checkpoint time.Duration
			opts = append(opts, engine.WithListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
				checkpoint += info.CheckpointDelay
			}}))
			c, err := engine.NewContext(time.Second, opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			recs, err := kafkasource.NewDirectStream(c, []string{"empty"},
				kafkasource.WithBrokers(broker.Addrs()...), kafkasource.WithGroup("bench-empty"))
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			dstream.ForEachBatch(recs, func(_ context.Context, bt dstream.Batch[kafkasource.Record]) error {
				n += bt.Len()
				return nil
			})
			ctx := context.Background()
			if err := c.RunBatches(ctx, 1); err != nil {
				b.Fatal(err)
			}
			checkpoint = 0
			for b.Loop() {
				if err := c.RunBatches(ctx, 1); err != nil {
					b.Fatal(err)
				}
			}
			if n != 0 {
				b.Fatalf("read %d records from an empty topic", n)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/batch")
			b.ReportMetric(float64(checkpoint.Microseconds())/float64(b.N), "ckpt-µs/batch")
		})
	}
}
