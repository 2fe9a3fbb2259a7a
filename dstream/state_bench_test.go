package dstream_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// The state benchmarks keep 1,000,000 keys (string → int64) and touch 1% of
// them a batch: each batch has one record for each of 10,000 keys, a
// different 10,000 every batch, all keys once every 100 batches.
const (
	stateBenchKeys    = 1_000_000
	stateBenchTouched = 10_000
	stateBenchParts   = 2
)

// stateBenchInput returns the key names and the 100 distinct batches of the
// workload, each split into stateBenchParts partitions.
func stateBenchInput() ([]string, [][][]dstream.KV[string, int64]) {
	keys := make([]string, stateBenchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%07d", (i*7919)%stateBenchKeys)
	}
	batches := make([][][]dstream.KV[string, int64], stateBenchKeys/stateBenchTouched)
	for b := range batches {
		all := make([]dstream.KV[string, int64], stateBenchTouched)
		for i := range all {
			all[i] = dstream.Pair(keys[b*stateBenchTouched+i], int64(1))
		}
		batches[b] = make([][]dstream.KV[string, int64], stateBenchParts)
		for p := range stateBenchParts {
			batches[b][p] = all[p*len(all)/stateBenchParts : (p+1)*len(all)/stateBenchParts]
		}
	}
	return keys, batches
}

// cycleStream returns a stream whose batch k holds batches[(k-1) mod
// len(batches)], for benchmarks that run an unknown number of batches on a
// manual clock starting at the Unix epoch with 1 s batches.
func cycleStream(c *engine.Context, batches [][][]dstream.KV[string, int64]) *dstream.Stream[dstream.KV[string, int64]] {
	src := &fixedSource{records: func(*engine.Job) int { return stateBenchTouched }}
	return dstream.NewSource(c, src, "cycle",
		func(_ context.Context, j *engine.Job) ([][]dstream.KV[string, int64], error) {
			return batches[(j.Time.Unix()-1)%int64(len(batches))], nil
		})
}

// heapAfterGC returns the live heap after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// loadedState builds a job whose state starts with every key at 0, runs the
// first batch (which loads it) and returns the context, the live heap
// before the job was built, and a check of the last batch.
func loadedState(b *testing.B, keys []string, build func(c *engine.Context, initial map[string]int64) func() error, opts ...engine.Option) (*engine.Context, uint64, func() error) {
	b.Helper()
	before := heapAfterGC()
	initial := make(map[string]int64, len(keys))
	for _, k := range keys {
		initial[k] = 0
	}
	c, err := engine.NewContext(time.Second, append([]engine.Option{
		engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(stateBenchParts)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	check := build(c, initial)
	initial = nil // the job drops its reference once the state is loaded
	if err := c.RunBatches(context.Background(), 1); err != nil {
		b.Fatal(err)
	}
	return c, before, check
}

// runStateBench times one batch per iteration and reports the batch time,
// the time per key in state, and the live heap the job holds per key in
// state after loading (B/key) and after the timed batches (B/key-end).
func runStateBench(b *testing.B, c *engine.Context, before uint64, check func() error) float64 {
	b.Helper()
	defer c.Close()
	loaded := float64(heapAfterGC()-before) / stateBenchKeys
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.RunBatches(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := check(); err != nil {
		b.Fatal(err)
	}
	perBatch := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perBatch, "ns/batch")
	b.ReportMetric(perBatch/stateBenchKeys, "ns/key")
	b.ReportMetric(loaded, "B/key")
	b.ReportMetric(float64(heapAfterGC()-before)/stateBenchKeys, "B/key-end")
	return perBatch
}

// BenchmarkStateByKey measures a batch of UpdateStateByKey and of
// MapWithState over 1,000,000 keys with 1% of them touched, beside a plain
// map[string]int64 doing the same work in the same run (the maps run first;
// the x- metrics are the ratios to them):
//
//   - UpdateStateByKey calls the update function for every key every batch
//     and emits the whole state; its output is counted, so the batch reads
//     the state once more. "map-all-keys" does the same on a map: it calls
//     the update for every key and reads the map through.
//   - MapWithState calls its function for the records only and emits one
//     element per record; "map-touched-keys" updates the map for the
//     records only.
//   - "UpdateStateByKey-checkpointed" adds a checkpoint after every batch
//     (a delta of the 10,000 changed keys, fsynced, and a background
//     snapshot every 10 deltas).
//   - "UpdateStateByKey-group" and "MapWithState-group" run in group mode
//     as the only member, owning both tasks: the state is restored with
//     RestoreTask (restore-ns/key) and every batch saves its changes with
//     SaveTask (saved/batch records), the changelog writes of group mode
//     without Kafka.
//
// The initial state is loaded in bulk, which lays the values out in key
// order. B/key is the live heap the job holds per key after loading, the
// store's own copies of the keys included (16 B a key); the maps share the
// caller's key strings, which their B/key leaves out. B/key-end is measured
// after the timed batches: without checkpoints it includes the store's set
// of keys changed since the last checkpoint, which grows by the keys each
// batch changes, up to every key.
func BenchmarkStateByKey(b *testing.B) {
	keys, batches := stateBenchInput()
	var updateNs, mapWithStateNs, mapAllNs, mapTouchedNs float64

	buildUpdate := func(c *engine.Context, initial map[string]int64) func() error {
		totals := dstream.UpdateStateByKeyWith(cycleStream(c, batches), addCount,
			dstream.StateOptions[string, int64]{Initial: initial})
		var n int64
		dstream.ForEachBatch(dstream.Count(totals), func(_ context.Context, bt dstream.Batch[int64]) error {
			n = bt.Parts[0][0]
			return nil
		})
		return func() error {
			if n != stateBenchKeys {
				return fmt.Errorf("the state has %d keys, want %d", n, stateBenchKeys)
			}
			return nil
		}
	}

	// loadMap builds the baseline map and returns its bytes per key.
	loadMap := func() (map[string]int64, float64) {
		before := heapAfterGC()
		m := make(map[string]int64)
		for _, k := range keys {
			m[k] = 0
		}
		return m, float64(heapAfterGC()-before) / stateBenchKeys
	}

	b.Run("map-all-keys", func(b *testing.B) {
		m, perKey := loadMap()
		b.ReportAllocs()
		b.ResetTimer()
		k := 0
		var total int64
		for b.Loop() {
			// Group the batch's values by key, call the update for every
			// key, then read the state out, as UpdateStateByKey does.
			batch := batches[k%len(batches)]
			k++
			values := make(map[string][]int64, stateBenchTouched)
			for _, part := range batch {
				for _, kv := range part {
					values[kv.Key] = append(values[kv.Key], kv.Value)
				}
			}
			for key, n := range m {
				if nn, keep := addCount(values[key], n, true); !keep {
					delete(m, key)
				} else if nn != n {
					m[key] = nn
				}
			}
			total = 0
			for _, n := range m {
				total += n
			}
		}
		b.StopTimer()
		if total == 0 || len(m) != stateBenchKeys {
			b.Fatalf("the map has %d keys, total %d", len(m), total)
		}
		mapAllNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(mapAllNs, "ns/batch")
		b.ReportMetric(mapAllNs/stateBenchKeys, "ns/key")
		b.ReportMetric(perKey, "B/key")
		runtime.KeepAlive(m)
	})

	b.Run("map-touched-keys", func(b *testing.B) {
		m, perKey := loadMap()
		b.ReportAllocs()
		b.ResetTimer()
		k := 0
		var out []int64
		for b.Loop() {
			batch := batches[k%len(batches)]
			k++
			out = out[:0]
			for _, part := range batch {
				for _, kv := range part {
					n := m[kv.Key] + kv.Value
					m[kv.Key] = n
					out = append(out, n)
				}
			}
		}
		b.StopTimer()
		if len(out) != stateBenchTouched {
			b.Fatalf("a batch mapped %d records", len(out))
		}
		mapTouchedNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(mapTouchedNs, "ns/batch")
		b.ReportMetric(perKey, "B/key")
		runtime.KeepAlive(m)
	})

	b.Run("UpdateStateByKey", func(b *testing.B) {
		c, before, check := loadedState(b, keys, buildUpdate)
		updateNs = runStateBench(b, c, before, check)
		if mapAllNs > 0 {
			b.ReportMetric(updateNs/mapAllNs, "x-map-all-keys")
		}
	})

	b.Run("UpdateStateByKey-checkpointed", func(b *testing.B) {
		c, before, check := loadedState(b, keys, buildUpdate, engine.WithCheckpoint(b.TempDir()))
		runStateBench(b, c, before, check)
	})

	b.Run("MapWithState", func(b *testing.B) {
		c, before, check := loadedState(b, keys, func(c *engine.Context, initial map[string]int64) func() error {
			m := dstream.MapWithState(cycleStream(c, batches), dstream.NewSimpleStateSpec(
				func(_ string, v dstream.Optional[int64], s *dstream.State[int64]) int64 {
					n, _ := s.Get()
					s.Update(n + v.Value)
					return n + v.Value
				}).WithInitialState(initial))
			var n int64
			dstream.ForEachBatch(dstream.Count(m.Stream), func(_ context.Context, bt dstream.Batch[int64]) error {
				n = bt.Parts[0][0]
				return nil
			})
			return func() error {
				if n != stateBenchTouched {
					return fmt.Errorf("a batch mapped %d records, want %d", n, stateBenchTouched)
				}
				return nil
			}
		})
		mapWithStateNs = runStateBench(b, c, before, check)
		if mapTouchedNs > 0 {
			b.ReportMetric(mapWithStateNs/mapTouchedNs, "x-map-touched-keys")
		}
		if updateNs > 0 {
			b.ReportMetric(mapWithStateNs/updateNs, "x-UpdateStateByKey")
		}
	})

	// Group mode, one member owning both tasks (a task a partition): the
	// state is restored from per-task records instead of loaded from an
	// initial state, and every batch is followed by SaveTask of both
	// tasks, which hands over the records of the 10,000 keys changed. The
	// x- metrics compare with the single-process runs above.
	b.Run("UpdateStateByKey-group", func(b *testing.B) {
		c, before, check, node := restoredTasks(b, keys, func(v int64) []byte { return stateBenchValue(v) }, func(c *engine.Context, s *dstream.Stream[dstream.KV[string, int64]]) (func() error, engine.Node) {
			totals := dstream.UpdateStateByKey(dstream.CoPartitioned(s), addCount)
			var n int64
			dstream.ForEachBatch(dstream.Count(totals), func(_ context.Context, bt dstream.Batch[int64]) error {
				n = bt.Parts[0][0]
				return nil
			})
			return func() error {
				if n != stateBenchKeys {
					return fmt.Errorf("the state has %d keys, want %d", n, stateBenchKeys)
				}
				return nil
			}, totals.Node()
		})
		ns := runGroupStateBench(b, c, before, check, node)
		if updateNs > 0 {
			b.ReportMetric(ns/updateNs, "x-UpdateStateByKey")
		}
	})

	b.Run("MapWithState-group", func(b *testing.B) {
		// A MapWithState state is its update time (8 bytes) and the state.
		value := func(v int64) []byte {
			b := stateBenchValue(v)
			return append(append([]byte{b[0]}, make([]byte, 8)...), b[1:]...)
		}
		c, before, check, node := restoredTasks(b, keys, value, func(c *engine.Context, s *dstream.Stream[dstream.KV[string, int64]]) (func() error, engine.Node) {
			m := dstream.MapWithState(dstream.CoPartitioned(s), dstream.NewSimpleStateSpec(
				func(_ string, v dstream.Optional[int64], s *dstream.State[int64]) int64 {
					n, _ := s.Get()
					s.Update(n + v.Value)
					return n + v.Value
				}))
			var n int64
			dstream.ForEachBatch(dstream.Count(m.Stream), func(_ context.Context, bt dstream.Batch[int64]) error {
				n = bt.Parts[0][0]
				return nil
			})
			return func() error {
				if n != stateBenchTouched {
					return fmt.Errorf("a batch mapped %d records, want %d", n, stateBenchTouched)
				}
				return nil
			}, m.Node()
		})
		ns := runGroupStateBench(b, c, before, check, node)
		if mapWithStateNs > 0 {
			b.ReportMetric(ns/mapWithStateNs, "x-MapWithState")
		}
	})
}

// stateBenchValue is the per-task record value of an int64 state: the
// record version, then the state's codec encoding.
func stateBenchValue(v int64) []byte {
	b, err := state.CodecFor[int64]().Encode(v)
	if err != nil {
		panic(err)
	}
	return append([]byte{1}, b...)
}

// cycleTaskSource is cycleStream's source in group mode: partition p of
// every batch is task p.
type cycleTaskSource struct{ fixedSource }

func (s *cycleTaskSource) Distributed() bool                  { return true }
func (s *cycleTaskSource) TaskCount() int                     { return stateBenchParts }
func (s *cycleTaskSource) PartitionTasks(j *engine.Job) []int { return []int{0, 1} }

// restoredTasks builds a job in group mode over the cycle, restores every
// key at 0 into its task (the task of the partition its records come in)
// with RestoreTask, reporting the time per key restored, runs the first
// batch and returns the context, the live heap before, the check of the
// last batch and the stateful node.
func restoredTasks(b *testing.B, keys []string, value func(int64) []byte, build func(c *engine.Context, s *dstream.Stream[dstream.KV[string, int64]]) (func() error, engine.Node)) (*engine.Context, uint64, func() error, groupNode) {
	b.Helper()
	_, batches := stateBenchInput()
	before := heapAfterGC()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(stateBenchParts))
	if err != nil {
		b.Fatal(err)
	}
	src := &cycleTaskSource{fixedSource{records: func(*engine.Job) int { return stateBenchTouched }}}
	s := dstream.NewSource(c, src, "cycle", func(_ context.Context, j *engine.Job) ([][]dstream.KV[string, int64], error) {
		return batches[(j.Time.Unix()-1)%int64(len(batches))], nil
	})
	check, n := build(c, s)
	node := n.(engine.TaskStateful)
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	zero := value(0)
	start := time.Now()
	for task := range stateBenchParts {
		err := node.RestoreTask(task, func(apply func(k, v []byte) error) error {
			for _, batch := range batches {
				for _, kv := range batch[task] {
					if err := apply([]byte(kv.Key), zero); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	restored := float64(time.Since(start).Nanoseconds()) / float64(len(keys))
	if err := c.RunBatches(context.Background(), 1); err != nil {
		b.Fatal(err)
	}
	return c, before, check, groupNode{node, restored}
}

// groupNode is the stateful node of a group-mode benchmark and the time
// its restore took per key.
type groupNode struct {
	engine.TaskStateful
	restoreNsPerKey float64
}

// runGroupStateBench is runStateBench with SaveTask of every task after
// every batch, counting the records saved.
func runGroupStateBench(b *testing.B, c *engine.Context, before uint64, check func() error, node groupNode) float64 {
	b.Helper()
	records := 0
	save := func() {
		for task := range stateBenchParts {
			err := node.SaveTask(task, func(k, v []byte) error { records++; return nil })
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	save() // the first batch's
	records = 0
	defer c.Close()
	loaded := float64(heapAfterGC()-before) / stateBenchKeys
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.RunBatches(ctx, 1); err != nil {
			b.Fatal(err)
		}
		save()
	}
	b.StopTimer()
	if err := check(); err != nil {
		b.Fatal(err)
	}
	perBatch := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perBatch, "ns/batch")
	b.ReportMetric(perBatch/stateBenchKeys, "ns/key")
	b.ReportMetric(loaded, "B/key")
	b.ReportMetric(float64(records)/float64(b.N), "saved/batch")
	b.ReportMetric(node.restoreNsPerKey, "restore-ns/key")
	return perBatch
}
