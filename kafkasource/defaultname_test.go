package kafkasource

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

func TestDirectStreamDefaultNames(t *testing.T) {
	b := startBroker(t, map[string]int32{"names": 1})
	c := newEngine(t)
	first := b.stream(t, c, []string{"names"})
	second := b.stream(t, c, []string{"names"})
	require.Equal(t, "kafka", first.Node().Meta().Name())
	require.Equal(t, "kafka-2", second.Node().Meta().Name())
	require.Equal(t, Kind, first.Node().Meta().Kind)
	require.Equal(t, []string{"kafkaDirect-1"}, first.Node().Meta().Former())
	require.Equal(t, []string{"kafkaDirect-2"}, second.Node().Meta().Former())
	first.Name("clicks")
	require.Empty(t, first.Node().Meta().Former(), "an explicit name has no former default")
}

// formerNameJob reads topic "former" into a running sum and records what
// each batch read. name is the source's explicit name; empty leaves the
// default.
type formerNameJob struct {
	c     *engine.Context
	s     *dstream.Stream[Record]
	w     *seen
	total int
	fail  bool
}

func newFormerNameJob(t *testing.T, b *testBroker, dir, name string) *formerNameJob {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	j := &formerNameJob{c: c, s: b.stream(t, c, []string{"former"})}
	if name != "" {
		j.s.Name(name)
	}
	j.w = watch(j.s)
	keyed := dstream.Map(j.s, func(r Record) dstream.KV[string, int] { return dstream.Pair("sum", int(r.Offset)) })
	sums := dstream.UpdateStateByKey(keyed, func(vs []int, st int, _ bool) (int, bool) {
		for _, v := range vs {
			st += v
		}
		return st, true
	})
	dstream.ForEachBatch(sums, func(_ context.Context, bt dstream.Batch[dstream.KV[string, int]]) error {
		if j.fail {
			return errors.New("output failed")
		}
		for kv := range bt.All() {
			j.total = kv.Value
		}
		return nil
	})
	return j
}

// TestDirectStreamResumesUnderItsFormerDefaultName checks that a checkpoint
// written when the stream's default name was "kafkaDirect-1" resumes under
// the default name "kafka": at the next offset, nothing read twice or
// skipped, and a batch planned but not committed re-runs over its ranges.
func TestDirectStreamResumesUnderItsFormerDefaultName(t *testing.T) {
	sumTo := func(n int) int { return n * (n - 1) / 2 } // offsets 0..n-1
	t.Run("committed positions", func(t *testing.T) {
		b := startBroker(t, map[string]int32{"former": 1})
		dir := t.TempDir()
		ctx := bounded(t)
		old := newFormerNameJob(t, b, dir, "kafkaDirect-1") // the name the default used to be
		b.produce(t, "former", 0, 0, 6)
		require.NoError(t, old.c.RunBatches(ctx, 1))
		b.produce(t, "former", 0, 6, 10)
		require.NoError(t, old.c.RunBatches(ctx, 1))
		require.Equal(t, sumTo(10), old.total)
		require.NoError(t, old.c.Close())

		b.produce(t, "former", 0, 10, 15)
		j := newFormerNameJob(t, b, dir, "")
		require.Equal(t, "kafka", j.s.Node().Meta().Name())
		require.NoError(t, j.c.RunBatches(ctx, 1))
		ranges, _ := j.w.last()
		require.Equal(t, []OffsetRange{{Topic: "former", Partition: 0, From: 10, Until: 15}}, ranges, "resumes at the next offset")
		requireExactlyOnce(t, append(old.w.all(), j.w.all()...), map[TopicPartition]int{{"former", 0}: 15})
		require.Equal(t, sumTo(15), j.total, "the state checkpointed with the positions is restored too")
		require.NoError(t, j.c.Close())

		// The next checkpoint holds the stream under its new name.
		b.produce(t, "former", 0, 15, 18)
		again := newFormerNameJob(t, b, dir, "kafka")
		require.NoError(t, again.c.RunBatches(ctx, 1))
		ranges, _ = again.w.last()
		require.Equal(t, []OffsetRange{{Topic: "former", Partition: 0, From: 15, Until: 18}}, ranges)
		require.Equal(t, sumTo(18), again.total)
	})
	t.Run("a planned batch re-runs over its ranges", func(t *testing.T) {
		b := startBroker(t, map[string]int32{"former": 1})
		dir := t.TempDir()
		ctx := bounded(t)
		old := newFormerNameJob(t, b, dir, "kafkaDirect-1")
		b.produce(t, "former", 0, 0, 4)
		require.NoError(t, old.c.RunBatches(ctx, 1))
		b.produce(t, "former", 0, 4, 7)
		old.fail = true
		require.Error(t, old.c.RunBatches(ctx, 1))
		planned, _ := old.w.last()
		require.NoError(t, old.c.Close())

		b.produce(t, "former", 0, 7, 9) // a fresh plan would take these too
		j := newFormerNameJob(t, b, dir, "")
		require.NoError(t, j.c.RunBatches(ctx, 1))
		ranges, _ := j.w.last()
		require.Equal(t, planned, ranges, "the re-run reads exactly the ranges planned under the former name")
		require.Equal(t, sumTo(7), j.total)
		require.NoError(t, j.c.RunBatches(ctx, 1))
		ranges, _ = j.w.last()
		require.Equal(t, []OffsetRange{{Topic: "former", Partition: 0, From: 7, Until: 9}}, ranges)
		require.Equal(t, sumTo(9), j.total)
	})
}
