package kafkasource

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/logtest"
)

func TestStartingOffsetPrecedence(t *testing.T) {
	// Partition 0 has a group offset and an explicit one, partition 1 only
	// a group offset, partition 2 neither.
	for _, tc := range []struct {
		name   string
		opts   []Option
		starts []int64 // of partitions 0, 1, 2
	}{
		{"explicit over group over reset latest", []Option{WithGroup("g"), WithStartOffsets(map[TopicPartition]int64{{"t", 0}: 3}), WithResetPolicy(Latest)}, []int64{3, 7, 10}},
		{"explicit over group over reset earliest", []Option{WithGroup("g"), WithStartOffsets(map[TopicPartition]int64{{"t", 0}: 3}), WithResetPolicy(Earliest)}, []int64{3, 7, 0}},
		{"group over reset", []Option{WithGroup("g"), WithResetPolicy(Earliest)}, []int64{5, 7, 0}},
		{"group offsets ignored, reset earliest", []Option{WithGroup("g"), WithGroupOffsets(false), WithResetPolicy(Earliest)}, []int64{0, 0, 0}},
		{"group offsets ignored, explicit kept, reset latest", []Option{WithGroup("g"), WithGroupOffsets(false), WithStartOffsets(map[TopicPartition]int64{{"t", 0}: 3}), WithResetPolicy(Latest)}, []int64{3, 10, 10}},
		{"reset only latest", []Option{WithResetPolicy(Latest)}, []int64{10, 10, 10}},
		{"reset only earliest", nil, []int64{0, 0, 0}},
		{"explicit offsets of partitions not read are ignored", []Option{WithStartOffsets(map[TopicPartition]int64{{"other", 0}: 99})}, []int64{0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, map[string]int32{"t": 3})
			for p := range int32(3) {
				b.produce(t, "t", p, 0, 10)
			}
			os := make(kadm.Offsets)
			os.AddOffset("t", 0, 5, -1)
			os.AddOffset("t", 1, 7, -1)
			require.NoError(t, b.adm.CommitAllOffsets(bounded(t), "g", os))
			c := newEngine(t)
			w := watch(b.stream(t, c, []string{"t"}, tc.opts...))
			require.NoError(t, c.RunBatches(bounded(t), 1))
			for p, from := range tc.starts {
				require.Equal(t, OffsetRange{"t", int32(p), from, 10}, w.ranges[0][p])
			}
		})
	}
}

func TestRetentionResetsToLogStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fatal bool
	}{
		{"warn and count", false},
		{"fatal on data loss", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, map[string]int32{"ret": 2})
			b.produce(t, "ret", 0, 0, 10)
			b.produce(t, "ret", 1, 0, 10)
			logs := &logtest.Buffer{}
			c := newEngine(t)
			s := b.stream(t, c, []string{"ret"}, WithRateLimits(RateLimits{MaxRatePerPartition: 4}), WithLogger(logs.Logger(slog.LevelInfo)), WithFatalOnDataLoss(tc.fatal))
			w := watch(s)
			ctx := bounded(t)
			require.NoError(t, c.RunBatches(ctx, 1)) // reads [0, 4) of each
			os := make(kadm.Offsets)
			os.AddOffset("ret", 0, 7, -1)
			resp, err := b.adm.DeleteRecords(ctx, os)
			require.NoError(t, err)
			require.NoError(t, resp.Error())

			err = c.RunBatches(ctx, 1)
			if tc.fatal {
				require.ErrorIs(t, err, ErrDataLoss)
				require.Contains(t, err.Error(), "offsets [4, 7) of ret[0] (3 records)")
				return
			}
			require.NoError(t, err)
			require.Equal(t, []OffsetRange{{"ret", 0, 7, 10}, {"ret", 1, 4, 8}}, w.ranges[1])
			st, _ := StatsOf(s)
			require.Equal(t, int64(3), st.LostRecords)
			require.Contains(t, logs.String(), "level=WARN")
			require.Contains(t, logs.String(), "topic=ret partition=0 from=4 log_start=7 lost=3")
		})
	}
}

func TestRetentionWhileReading(t *testing.T) {
	// Records deleted between planning and reading, or before the re-run
	// of a planned batch, are a loss the fetch finds: the planned range
	// [2, 9) is read from the new log start 6.
	b := startBroker(t, map[string]int32{"ret": 1})
	b.produce(t, "ret", 0, 0, 10)
	logs := &logtest.Buffer{}
	c := newEngine(t)
	s := b.stream(t, c, []string{"ret"}, WithLogger(logs.Logger(slog.LevelInfo)))
	os := make(kadm.Offsets)
	os.AddOffset("ret", 0, 6, -1)
	_, err := b.adm.DeleteRecords(bounded(t), os)
	require.NoError(t, err)
	n := s.Node().(*directNode)
	recs, err := n.r.read(bounded(t), OffsetRange{"ret", 0, 2, 9}, nil)
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.Equal(t, int64(6), recs[0].Offset)
	st, _ := StatsOf(s)
	require.Equal(t, int64(4), st.LostRecords)
	require.Contains(t, logs.String(), "while=reading")

	n.cfg.fatalDataLoss = true
	_, err = n.r.read(bounded(t), OffsetRange{"ret", 0, 2, 9}, nil)
	require.ErrorIs(t, err, ErrDataLoss)
	_, err = n.r.read(bounded(t), OffsetRange{"ret", 0, 5, 9}, nil)
	require.ErrorContains(t, err, "offsets [5, 6) of ret[0] (1 record) are gone")
}

func TestOffsetAboveHighWatermarkIsAnError(t *testing.T) {
	b := startBroker(t, map[string]int32{"hwm": 1})
	b.produce(t, "hwm", 0, 0, 10)
	c := newEngine(t)
	watch(b.stream(t, c, []string{"hwm"}, WithStartOffsets(map[TopicPartition]int64{{"hwm", 0}: 25})))
	err := c.RunBatches(bounded(t), 1)
	var oor *OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor)
	require.Equal(t, OffsetOutOfRangeError{Topic: "hwm", Partition: 0, Offset: 25, HighWatermark: 10}, *oor)
	require.Contains(t, err.Error(), "offset 25 of hwm[0] is above its high watermark 10")
	require.Contains(t, err.Error(), "pass WithStartOffsets", "the library names its option")
}

func TestGroupCommitsFollowBatches(t *testing.T) {
	b := startBroker(t, map[string]int32{"lag": 2})
	b.produce(t, "lag", 0, 0, 10)
	b.produce(t, "lag", 1, 0, 3)
	c := newEngine(t)
	watch(b.stream(t, c, []string{"lag"}, WithGroup("watchers"), WithRateLimits(RateLimits{MaxRatePerPartition: 4})))
	ctx := bounded(t)
	for _, want := range []map[int32]int64{{0: 4, 1: 3}, {0: 8, 1: 3}, {0: 10, 1: 3}} {
		require.NoError(t, c.RunBatches(ctx, 1))
		offs, err := b.adm.FetchOffsets(ctx, "watchers")
		require.NoError(t, err)
		for p, at := range want {
			o, ok := offs.Lookup("lag", p)
			require.True(t, ok)
			require.Equal(t, at, o.At, "partition %d", p)
			require.Contains(t, o.Metadata, "sluice batch ")
		}
	}
	lag, err := b.adm.Lag(ctx, "watchers")
	require.NoError(t, err)
	require.Equal(t, int64(0), lag["watchers"].Lag.Total(), "kadm sees no lag")
}

// sumJob is Spark's "offset recovery" job: it sums integer record values
// into keyed state checkpointed with the stream's positions.
type sumJob struct {
	c     *engine.Context
	s     *dstream.Stream[Record]
	total int
	seen  [][]OffsetRange
	fail  bool
}

func newSumJob(t *testing.T, b *testBroker, dir string) *sumJob {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithParallelism(2), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	j := &sumJob{c: c, s: b.stream(t, c, []string{"recovery"})}
	j.s.Name("kafka")
	keyed := dstream.Map(j.s, func(r Record) dstream.KV[string, int] {
		v, _ := strconv.Atoi(string(r.Value))
		return dstream.Pair("key", v)
	})
	sums := dstream.UpdateStateByKey(keyed, func(vs []int, st int, _ bool) (int, bool) {
		for _, v := range vs {
			st += v
		}
		return st, true
	}).Name("sums")
	dstream.ForEachBatchJob(sums, func(_ context.Context, jb *engine.Job, bt dstream.Batch[dstream.KV[string, int]]) error {
		j.seen = append(j.seen, OffsetRangesOf(jb, sums))
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

func (b *testBroker) produceInts(t *testing.T, topic string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		b.produceValue(t, topic, 0, strconv.Itoa(i))
	}
}

func TestCheckpointRecovery(t *testing.T) {
	t.Run("offset recovery", func(t *testing.T) {
		b := startBroker(t, map[string]int32{"recovery": 1})
		dir := t.TempDir()
		ctx := bounded(t)
		j := newSumJob(t, b, dir)
		for _, g := range [][2]int{{1, 5}, {5, 9}, {9, 11}} {
			b.produceInts(t, "recovery", g[0], g[1])
			require.NoError(t, j.c.RunBatches(ctx, 1))
		}
		require.Equal(t, 55, j.total)
		require.Equal(t, int64(0), j.seen[0][0].From, "starting offset zero")
		require.NoError(t, j.c.Close())

		j = newSumJob(t, b, dir)
		require.NoError(t, j.c.RunBatches(ctx, 0))
		st, _ := StatsOf(j.s)
		require.Equal(t, map[TopicPartition]int64{{"recovery", 0}: 10}, st.Positions, "positions restored")
		for _, g := range [][2]int{{11, 15}, {15, 19}, {19, 21}} {
			b.produceInts(t, "recovery", g[0], g[1])
			require.NoError(t, j.c.RunBatches(ctx, 1))
		}
		require.Equal(t, 210, j.total, "every record counted once across the restart")
	})
	t.Run("a failed batch re-runs over its planned ranges", func(t *testing.T) {
		b := startBroker(t, map[string]int32{"recovery": 1})
		dir := t.TempDir()
		ctx := bounded(t)
		j := newSumJob(t, b, dir)
		b.produceInts(t, "recovery", 1, 4)
		require.NoError(t, j.c.RunBatches(ctx, 1))
		b.produceInts(t, "recovery", 4, 6)
		j.fail = true
		require.Error(t, j.c.RunBatches(ctx, 1))
		planned := j.seen[1]
		require.NoError(t, j.c.Close())

		b.produceInts(t, "recovery", 6, 9) // a fresh plan would take these too
		j = newSumJob(t, b, dir)
		require.NoError(t, j.c.RunBatches(ctx, 1))
		require.Equal(t, planned, j.seen[0], "the re-run reads exactly the planned ranges")
		require.Equal(t, 1+2+3+4+5, j.total)
		require.NoError(t, j.c.RunBatches(ctx, 1))
		require.Equal(t, 36, j.total)
	})
	t.Run("a partition created before a failed batch re-runs is read from its start", func(t *testing.T) {
		// As in an uninterrupted run (TestDirectStreamPicksUpNewPartitions),
		// a partition added after the first plan starts at its earliest
		// offset, not where the reset policy would start it.
		b := startBroker(t, map[string]int32{"grow": 1})
		b.produce(t, "grow", 0, 0, 5)
		dir := t.TempDir()
		ctx := bounded(t)
		start := func(fail bool) (*engine.Context, *seen) {
			c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithCheckpoint(dir))
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			s := b.stream(t, c, []string{"grow"}, WithResetPolicy(Latest), WithStartOffsets(map[TopicPartition]int64{{"grow", 0}: 0}))
			w := watch(s)
			dstream.ForEachBatch(s, func(context.Context, dstream.Batch[Record]) error {
				if fail {
					return errors.New("output failed")
				}
				return nil
			})
			return c, w
		}
		c, _ := start(true)
		require.Error(t, c.RunBatches(ctx, 1), "batch 1 is planned, not committed")
		require.NoError(t, c.Close())
		_, err := b.adm.CreatePartitions(ctx, 1, "grow")
		require.NoError(t, err)
		b.refresh(t)
		b.produce(t, "grow", 1, 0, 3)

		c, w := start(false)
		require.NoError(t, c.RunBatches(ctx, 2))
		require.Equal(t, []OffsetRange{{"grow", 0, 0, 5}}, w.ranges[0], "batch 1 re-runs over its plan")
		require.Equal(t, []OffsetRange{{"grow", 0, 5, 5}, {"grow", 1, 0, 3}}, w.ranges[1])
	})
}
