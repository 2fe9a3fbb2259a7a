package status_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/sluicehq/sluice/status"
)

// BenchmarkBatchOverhead runs empty batches and small word-count batches
// without and with the status handler; compare the ns/op of each pair
// (the target is at most 1.05x).
func BenchmarkBatchOverhead(b *testing.B) {
	for _, load := range []string{"empty", "wordcount"} {
		for _, withStatus := range []bool{false, true} {
			name := load + "/plain"
			if withStatus {
				name = load + "/status"
			}
			b.Run(name, func(b *testing.B) {
				c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(1))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				batch := []string{}
				if load == "wordcount" {
					batch = []string{"to be or not to be", "that is the question", "whether tis nobler in the mind"}
				}
				in := make([][]string, 0, 1<<16)
				for range cap(in) {
					in = append(in, batch)
				}
				lines := dstream.Queue(c, in)
				words := dstream.FlatMap(lines, func(l string) []string { return splitWords(l) })
				counts := dstream.ReduceByKey(dstream.Map(words, func(w string) dstream.KV[string, int] { return dstream.KV[string, int]{Key: w, Value: 1} }),
					func(a, b int) int { return a + b })
				dstream.ForEachBatch(counts, func(context.Context, dstream.Batch[dstream.KV[string, int]]) error { return nil })
				if withStatus {
					if _, err := status.New(c); err != nil {
						b.Fatal(err)
					}
				}
				ctx := context.Background()
				for b.Loop() {
					if err := c.RunBatches(ctx, 1); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func splitWords(l string) []string {
	var out []string
	start := -1
	for i, r := range l + " " {
		if r == ' ' {
			if start >= 0 {
				out = append(out, l[start:i])
			}
			start = -1
		} else if start < 0 {
			start = i
		}
	}
	return out
}

// BenchmarkHistoryMemory reports the heap a full default history holds, for
// batches reading three Kafka partitions.
func BenchmarkHistoryMemory(b *testing.B) {
	ranges := []kafkasource.OffsetRange{{Topic: "clicks", Partition: 0, From: 0, Until: 10}, {Topic: "clicks", Partition: 1, From: 0, Until: 10}, {Topic: "clicks", Partition: 2, From: 0, Until: 10}}
	var bytes float64
	for b.Loop() {
		c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h, err := status.New(c)
		if err != nil {
			b.Fatal(err)
		}
		l := status.Listener(h)
		for i := range status.DefaultHistory {
			l.BatchCompleted(engine.BatchInfo{Time: time.Unix(int64(i), 0), Records: 30, Sources: map[string]any{"kafka": ranges}})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		bytes = float64(after.HeapAlloc) - float64(before.HeapAlloc)
		runtime.KeepAlive(h)
		c.Close()
	}
	b.ReportMetric(bytes, "history-bytes")
	b.ReportMetric(bytes/status.DefaultHistory, "bytes/batch")
}

// BenchmarkListenerEvents times what the status listener does per batch on
// its own: the started and completed events of a batch, without sources
// (as the empty batch of BenchmarkBatchOverhead) and reading three Kafka
// partitions, whose offset ranges the history keeps. On a loaded machine
// this cost is steadier than the difference of two whole-batch timings;
// divide (plain + this) by plain from BenchmarkBatchOverhead.
func BenchmarkListenerEvents(b *testing.B) {
	ranges := []kafkasource.OffsetRange{{Topic: "clicks", Partition: 0, From: 0, Until: 10}, {Topic: "clicks", Partition: 1, From: 0, Until: 10}, {Topic: "clicks", Partition: 2, From: 0, Until: 10}}
	for _, tc := range []struct {
		name    string
		sources map[string]any
	}{
		{"no-source", nil},
		{"kafka-3-partitions", map[string]any{"kafka": ranges}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			h, err := status.New(c)
			if err != nil {
				b.Fatal(err)
			}
			l := status.Listener(h)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				info := engine.BatchInfo{Time: time.Unix(int64(i), 0), OutputOps: 1, Records: 30}
				l.BatchStarted(info)
				info.Sources = tc.sources // known once the batch has run, as the engine gives them
				info.OutputOpsSucceeded = 1
				info.ProcessingDelay = 5 * time.Microsecond
				info.TotalDelay = info.ProcessingDelay
				l.BatchCompleted(info)
				i++
			}
		})
	}
}
