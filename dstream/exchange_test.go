package dstream_test

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/keyhash"
)

// This file runs jobs in group mode through exchanges without Kafka:
// exchangingSource is a taskSource that keeps its exchanges in memory, in
// a memExchange its members share, as a Kafka source keeps them in
// repartition topics: what a batch writes is seen once the batch commits,
// and by batches after it only (a batch of another member running at the
// same time has not committed yet); each task's records are read once, by
// its owner, from where the last batch that read them stopped.

// memExchange holds the exchanges of a job's members.
type memExchange struct {
	mu   sync.Mutex
	log  map[string][][]memRecord // per exchange and task, the committed records
	read map[string][]int         // per exchange and task, the committed read position
}

type memRecord struct {
	batch      int // the batch that wrote it
	member     any // the source of the member that wrote it
	key, value []byte
}

func newMemExchange() *memExchange {
	return &memExchange{log: map[string][][]memRecord{}, read: map[string][]int{}}
}

// records returns the committed records of exchange, per task.
func (x *memExchange) records(exchange string) [][]memRecord {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.log[exchange]
}

func (x *memExchange) exchanges() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var names []string
	for n := range x.log {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// exchangingSource is a member's source, an engine.Exchanger.
type exchangingSource[T any] struct {
	*taskSource[T]
	x       *memExchange
	mu      sync.Mutex
	pending []pendingRecord
	reads   map[string]map[int]int // the read positions the batch reached
}

type pendingRecord struct {
	exchange   string
	task       int
	batch      int
	key, value []byte
}

var _ engine.Exchanger = (*exchangingSource[int])(nil)

func (s *exchangingSource[T]) ExchangeWrite(j *engine.Job, exchange string, task int, key, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, pendingRecord{exchange, task, batchIndex(j), key, value})
	return nil
}

func (s *exchangingSource[T]) ExchangeRead(ctx context.Context, j *engine.Job, exchange string, task int, each func(key, value []byte) error) error {
	if !slices.Contains(s.owned(j), task) {
		return nil
	}
	k := batchIndex(j)
	s.x.mu.Lock()
	var recs []memRecord
	from := 0
	if log := s.x.log[exchange]; log != nil {
		from = s.x.read[exchange][task]
		to := from
		for to < len(log[task]) && log[task][to].batch < k {
			to++
		}
		recs = log[task][from:to]
	}
	s.x.mu.Unlock()
	for _, r := range recs {
		if err := each(slices.Clone(r.key), slices.Clone(r.value)); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reads == nil {
		s.reads = map[string]map[int]int{}
	}
	if s.reads[exchange] == nil {
		s.reads[exchange] = map[int]int{}
	}
	s.reads[exchange][task] = from + len(recs)
	return nil
}

// Commit commits the batch's records and read positions.
func (s *exchangingSource[T]) Commit(ctx context.Context, j *engine.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.x.mu.Lock()
	defer s.x.mu.Unlock()
	grow := func(name string) {
		if s.x.log[name] == nil {
			s.x.log[name] = make([][]memRecord, s.tasks)
			s.x.read[name] = make([]int, s.tasks)
		}
	}
	for name, tasks := range s.reads {
		grow(name)
		for task, at := range tasks {
			s.x.read[name][task] = at
		}
	}
	for _, r := range s.pending {
		grow(r.exchange)
		s.x.log[r.exchange][r.task] = append(s.x.log[r.exchange][r.task], memRecord{r.batch, s, r.key, r.value})
	}
	s.pending, s.reads = nil, nil
	return nil
}

// reKeyed is s keyed anew, by its values mod 7: not like the job's input.
func reKeyed(s *dstream.Stream[dstream.KV[string, int]]) *dstream.Stream[dstream.KV[string, int]] {
	return dstream.Map(s, func(x dstream.KV[string, int]) dstream.KV[string, int] {
		return dstream.Pair("w"+strconv.Itoa(x.Value%7), x.Value)
	}).Name("words")
}

// TestExchangeMatchesSingleProcess runs keyed operators over a stream that
// is not keyed like the job's input, as two members whose tasks move, and
// compares with a single process: each operator runs one batch behind its
// input, reading at batch k+1 what batch k wrote, so that the members'
// output of batch k+1 is the single process's of batch k.
func TestExchangeMatchesSingleProcess(t *testing.T) {
	type kv = dstream.KV[string, int]
	sum := func(a, b int) int { return a + b }
	sub := func(a, b int) int { return a - b }
	sumAll := func(vs []int) int {
		n := 0
		for _, v := range vs {
			n += v
		}
		return n
	}
	cases := []struct {
		name  string
		empty []int
		build func(s *dstream.Stream[kv]) *dstream.Stream[kv]
	}{
		{"ReduceByKey", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKey(reKeyed(s), sum)
		}},
		{"GroupByKey", []int{3}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.MapValues(dstream.GroupByKey(reKeyed(s)), sumAll)
		}},
		{"CombineByKey", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			type minMax struct{ Min, Max int }
			mm := dstream.CombineByKey(reKeyed(s),
				func(v int) minMax { return minMax{v, v} },
				func(c minMax, v int) minMax { return minMax{min(c.Min, v), max(c.Max, v)} },
				func(a, b minMax) minMax { return minMax{min(a.Min, b.Min), max(a.Max, b.Max)} })
			return dstream.MapValues(mm, func(c minMax) int { return c.Max*1000 + c.Min })
		}},
		{"CountByValue", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			values := dstream.Map(s, func(x kv) int { return x.Value % 5 })
			counts := dstream.CountByValue(values)
			return dstream.Map(counts, func(x dstream.KV[int, int64]) kv { return dstream.Pair(strconv.Itoa(x.Key), int(x.Value)) })
		}},
		{"UpdateStateByKey", []int{4}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.UpdateStateByKey(reKeyed(s), func(vs []int, st int, ok bool) (int, bool) {
				if len(vs) == 0 && st > 100 {
					return 0, false
				}
				return st + sumAll(vs), true
			})
		}},
		{"ReduceByKeyAndWindow", []int{2}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindow(reKeyed(s), sum, 3*testBatch, testBatch)
		}},
		{"ReduceByKeyAndWindow with its inverse", []int{5}, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.ReduceByKeyAndWindowInv(reKeyed(s), sum, sub, 3*testBatch, testBatch, func(x kv) bool { return x.Value != 0 })
		}},
		{"GroupByKeyAndWindow", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			return dstream.MapValues(dstream.GroupByKeyAndWindow(reKeyed(s), 2*testBatch, testBatch), sumAll)
		}},
		{"MapWithState", nil, func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			// The count of a key's records so far: the same numbers in
			// whatever order a batch's records of a key come.
			spec := dstream.NewStateSpec(func(_ time.Time, key string, _ dstream.Optional[int], st *dstream.State[int]) (kv, bool) {
				n, _ := st.Get()
				st.Update(n + 1)
				return dstream.Pair(key, n+1), true
			})
			return dstream.MapWithState(reKeyed(s), spec).Stream
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := keyedInput(len(moving)+2, 4, 10, 12, tc.empty...)
			x := newMemExchange()
			group, single := runGroup(t, x, 4, input, moving, len(input)+1, tc.build)
			require.Len(t, group, len(single), "output batches")
			require.Empty(t, group[0], "the first batch reads what no batch wrote")
			for i := range len(input) {
				require.ElementsMatch(t, single[i], group[i+1], "output batch %d of the members, batch %d of the single process", i+2, i+1)
			}
			require.Len(t, x.exchanges(), 1, "one exchange")
		})
	}
}

// TestExchangeSharedByOperators checks that keyed operators reading one
// stream share its exchange: one record per key, task and member at each
// batch, holding each operator's part, in the task its key's stable hash
// gives; and that single-process mode has no exchange.
func TestExchangeSharedByOperators(t *testing.T) {
	type kv = dstream.KV[string, int]
	sum := func(a, b int) int { return a + b }
	build := func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
		words := reKeyed(s)
		totals := dstream.UpdateStateByKey(words, func(vs []int, st int, ok bool) (int, bool) { return st + len(vs), true }).Name("totals")
		window := dstream.ReduceByKeyAndWindow(words, sum, 4*testBatch, testBatch).Name("window")
		return dstream.Union(totals, window)
	}
	input := keyedInput(len(moving), 4, 10, 12)
	x := newMemExchange()
	group, single := runGroup(t, x, 4, input, moving, len(input)+1, build)
	for i := range len(input) {
		require.ElementsMatch(t, single[i], group[i+1], "output batch %d", i+2)
	}
	require.Equal(t, []string{"words"}, x.exchanges())
	tags := []uint32{fnv32a("totals"), fnv32a("window")}
	hash := keyhash.For[string]()
	type seen struct {
		batch  int
		member any
		key    string
	}
	once := map[seen]bool{}
	recs := x.records("words")
	written := 0
	for task, rs := range recs {
		for _, r := range rs {
			key := string(r.key)
			require.Equal(t, task, keyhash.Partition(hash(key), 4), "key %q in task %d", key, task)
			s := seen{r.batch, r.member, key}
			require.False(t, once[s], "key %q written twice by one member at batch %d", key, r.batch)
			once[s] = true
			require.Equal(t, byte(1), r.value[0], "version")
			parts := r.value[1:]
			var got []uint32
			for len(parts) > 0 {
				got = append(got, binary.BigEndian.Uint32(parts))
				size, n := binary.Uvarint(parts[4:])
				parts = parts[4+n+int(size):]
			}
			require.Equal(t, tags, got, "the parts of key %q, by operator name", key)
			written++
		}
	}
	require.NotZero(t, written)

	// In single-process mode, no exchange.
	c := newTestContext(t, 2)
	collect(build(newTaskSource(c, &taskSource[kv]{input: input, tasks: 4})))
	for _, n := range c.Nodes() {
		require.NotEqual(t, "exchange", n.Meta().Kind)
	}
}

func fnv32a(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// TestExchangeCombinesOnTheMapSide checks that a member writes one record
// per key and batch, however many of its records and partitions have the
// key, and that their counts sum to the input's.
func TestExchangeCombinesOnTheMapSide(t *testing.T) {
	type kv = dstream.KV[string, int]
	input := keyedInput(3, 2, 6, 40)
	x := newMemExchange()
	runGroup(t, x, 2, input, [][]int{{0, 1}}, len(input)+1, func(s *dstream.Stream[kv]) *dstream.Stream[dstream.KV[string, int64]] {
		ones := dstream.Map(s, func(x kv) dstream.KV[string, int64] { return dstream.Pair(x.Key, int64(1)) }).Name("ones")
		return dstream.ReduceByKey(ones, func(a, b int64) int64 { return a + b })
	})
	want, got := 0, 0
	for _, b := range input {
		for _, p := range b {
			want += len(p)
		}
	}
	records := 0
	for _, rs := range x.records("ones") {
		for _, r := range rs {
			records++
			size, n := binary.Uvarint(r.value[5:])
			v, m := binary.Varint(r.value[5+n:])
			require.Equal(t, int(size), m, "one varint")
			got += int(v)
		}
	}
	require.Equal(t, want, got, "the counts written sum to the records read")
	require.LessOrEqual(t, records, 3*6*2, "at most one record per key, member and batch")
	require.Less(t, records, want/4, "records are combined")
}

// TestExchangeRefusals checks what group mode refuses with an exchanging
// source, each in one sentence.
func TestExchangeRefusals(t *testing.T) {
	type kv = dstream.KV[string, int]
	sum := func(a, b int) int { return a + b }
	type point struct{ X, Y int }
	cases := []struct {
		name  string
		build func(s *dstream.Stream[kv])
		want  string // "" when the job starts
	}{
		{"a float32 key", func(s *dstream.Stream[kv]) {
			f := dstream.Map(s, func(x kv) dstream.KV[float32, int] { return dstream.Pair(float32(x.Value), 1) })
			collect(dstream.ReduceByKey(f, sum))
		}, `dstream: operator "reduceByKey-1" (reduceByKey) repartitions its stream by key in group mode, but its key type float32 has no hash that is the same in every process; key it by a string, an integer, a float64 or a bool`},
		{"a struct key", func(s *dstream.Stream[kv]) {
			p := dstream.Map(s, func(x kv) dstream.KV[point, int] { return dstream.Pair(point{x.Value, 0}, 1) })
			collect(dstream.UpdateStateByKey(p, func(vs []int, st int, ok bool) (int, bool) { return st + len(vs), true }))
		}, `dstream: operator "updateStateByKey-1" (updateStateByKey) repartitions its stream by key in group mode, but its key type dstream_test.point has no hash that is the same in every process`},
		{"a stream that does not produce at every batch", func(s *dstream.Stream[kv]) {
			w := dstream.ReduceByKeyAndWindow(dstream.CoPartitioned(s), sum, 2*testBatch, 2*testBatch)
			rekeyed := dstream.Map(w, func(x kv) kv { return dstream.Pair("x", x.Value) }).Name("rekeyed")
			collect(dstream.ReduceByKey(rekeyed, sum))
		}, `dstream: stream "rekeyed" produces every 2s, not every batch (1s), and group mode repartitions only streams that produce at every batch; key the stream before windowing it`},
		{"a join of streams not keyed like the input", func(s *dstream.Stream[kv]) {
			m := dstream.Map(s, func(x kv) kv { return x })
			collect(dstream.Join(m, m))
		}, `dstream: operator "join-1" (join) joins streams that group mode has not keyed alike`},
		{"a join of a stream keyed like the input and one keyed by an exchange", func(s *dstream.Stream[kv]) {
			counts := dstream.ReduceByKey(reKeyed(s), sum)
			collect(dstream.Join(dstream.CoPartitioned(s), counts))
		}, `dstream: operator "join-1" (join) joins streams that group mode has not keyed alike`},
		{"a Map after a keyed operator over an exchange", func(s *dstream.Stream[kv]) {
			words := reKeyed(s)
			counts := dstream.Map(dstream.ReduceByKey(words, sum), func(x kv) kv { return x })
			collect(dstream.Join(counts, dstream.ReduceByKey(words, sum)))
		}, `dstream: operator "join-1" (join) joins streams that group mode has not keyed alike`},
		{"a re-keyed stream", func(s *dstream.Stream[kv]) {
			collect(dstream.ReduceByKey(reKeyed(s), sum))
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := engine.NewContext(testBatch, engine.WithManualClock(time.Unix(0, 0)))
			require.NoError(t, err)
			defer func() { require.NoError(t, c.Close()) }()
			src := &exchangingSource[kv]{taskSource: &taskSource[kv]{tasks: 2, distributed: true}, x: newMemExchange()}
			tc.build(dstream.NewSource(c, src, "taskSource", src.read))
			err = c.Start()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "\n", "one sentence")
		})
	}
}

// TestExchangeKeyedOutputs checks that the output of a keyed operator
// that read an exchange is keyed by it: keyed operators and joins over it
// need no exchange of their own, and run one batch behind the input, as
// the operator before them.
func TestExchangeKeyedOutputs(t *testing.T) {
	type kv = dstream.KV[string, int]
	sum := func(a, b int) int { return a + b }
	cases := []struct {
		name  string
		build func(s *dstream.Stream[kv]) *dstream.Stream[kv]
	}{
		{"UpdateStateByKey over ReduceByKey", func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			counts := dstream.Filter(dstream.ReduceByKey(reKeyed(s), sum), func(x kv) bool { return x.Value%3 != 0 })
			return dstream.UpdateStateByKey(counts, func(vs []int, st int, ok bool) (int, bool) { return st + len(vs), true })
		}},
		{"Join of two keyed operators' outputs", func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
			words := reKeyed(s)
			counts := dstream.ReduceByKey(words, sum)
			totals := dstream.UpdateStateByKey(words, func(vs []int, st int, ok bool) (int, bool) { return st + len(vs), true })
			joined := dstream.Join(counts, totals)
			return dstream.MapValues(joined, func(j dstream.Joined[int, int]) int { return j.Left*1000 + j.Right })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := keyedInput(len(moving)+2, 4, 10, 12)
			x := newMemExchange()
			group, single := runGroup(t, x, 4, input, moving, len(input)+1, tc.build)
			require.Empty(t, group[0])
			for i := range len(input) {
				require.ElementsMatch(t, single[i], group[i+1], "output batch %d", i+2)
			}
			require.Equal(t, []string{"words"}, x.exchanges(), "one exchange")
		})
	}
}

// TestExchangeNotForCoPartitionedStreams checks that a stream keyed like
// the job's input goes through no exchange, even when the source has one.
func TestExchangeNotForCoPartitionedStreams(t *testing.T) {
	type kv = dstream.KV[string, int]
	input := keyedInput(len(moving), 4, 10, 12)
	x := newMemExchange()
	group, single := runGroup(t, x, 4, input, moving, len(input), func(s *dstream.Stream[kv]) *dstream.Stream[kv] {
		return dstream.ReduceByKey(dstream.CoPartitioned(s), func(a, b int) int { return a + b })
	})
	for i := range single {
		require.ElementsMatch(t, single[i], group[i], "output batch %d", i+1)
	}
	require.Empty(t, x.exchanges())
}
