package dstream_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

const (
	benchRecords = 1_000_000
	wantKeys     = 9_000 // the filter drops every record of 1,000 of the 10,000 keys
)

// benchInput is 1,000,000 records of 10,000 distinct keys.
func benchInput() []dstream.KV[string, int64] {
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%05d", i)
	}
	in := make([]dstream.KV[string, int64], benchRecords)
	for i := range in {
		in[i] = dstream.Pair(keys[(i*7919)%len(keys)], int64(i))
	}
	return in
}

func benchMap(kv dstream.KV[string, int64]) dstream.KV[string, int64] {
	return dstream.KV[string, int64]{Key: kv.Key, Value: kv.Value % 100}
}

func benchKeep(kv dstream.KV[string, int64]) bool { return kv.Value%10 != 0 }

func benchAdd(a, b int64) int64 { return a + b }

// BenchmarkMapFilterReduceByKey runs Map → Filter → ReduceByKey over a Queue
// source with 1,000,000 records a batch, one batch per iteration, beside the
// same computation as a plain Go loop.
func BenchmarkMapFilterReduceByKey(b *testing.B) {
	in := benchInput()
	b.Run("sluice", func(b *testing.B) {
		c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		// b.Loop decides the iteration count as it goes: queue more batches
		// than any run takes (they share one backing array).
		batches := make([][]dstream.KV[string, int64], 100_000)
		for i := range batches {
			batches[i] = in
		}
		s := dstream.ReduceByKey(dstream.Filter(dstream.Map(dstream.Queue(c, batches), benchMap), benchKeep), benchAdd)
		var keys int
		dstream.ForEachBatch(s, func(ctx context.Context, bt dstream.Batch[dstream.KV[string, int64]]) error {
			keys = bt.Len()
			return nil
		})
		ctx := context.Background()
		b.ReportAllocs()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.ResetTimer()
		for b.Loop() {
			if err := c.RunBatches(ctx, 1); err != nil {
				b.Fatal(err)
			}
		}
		if keys != wantKeys {
			b.Fatalf("got %d keys, want %d", keys, wantKeys)
		}
		report(b, before)
	})
	b.Run("plain-loop", func(b *testing.B) {
		b.ReportAllocs()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var keys int
		for b.Loop() {
			m := make(map[string]int64)
			for _, kv := range in {
				kv = benchMap(kv)
				if benchKeep(kv) {
					m[kv.Key] += kv.Value
				}
			}
			keys = len(m)
		}
		if keys != wantKeys {
			b.Fatalf("got %d keys, want %d", keys, wantKeys)
		}
		report(b, before)
	})
}

func report(b *testing.B, before runtime.MemStats) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp/benchRecords, "ns/record")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N)/benchRecords, "allocs/record")
	b.ReportMetric(benchRecords*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
