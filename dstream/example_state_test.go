package dstream_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// stateExampleContext returns a manual-clock context with the given
// parallelism: batches run when RunBatches asks, at 1 s, 2 s, … from the
// Unix epoch.
func stateExampleContext(parallelism int) *engine.Context {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(parallelism))
	if err != nil {
		panic(err)
	}
	return c
}

// printBatches prints every batch of s on one line, elements sorted.
func printBatches[T any](s *dstream.Stream[T]) {
	dstream.ForEachBatch(s, func(_ context.Context, b dstream.Batch[T]) error {
		var out []string
		for x := range b.All() {
			out = append(out, fmt.Sprint(x))
		}
		slices.Sort(out)
		fmt.Println(b.Time.Unix(), out)
		return nil
	})
}

func ExampleUpdateStateByKey() {
	c := stateExampleContext(2)
	defer c.Close()
	lines := dstream.Queue(c, [][]string{{"to be or", "not to be"}, {"be quick"}, {}})
	pairs := dstream.Map(dstream.FlatMap(lines, strings.Fields), func(w string) dstream.KV[string, int] { return dstream.Pair(w, 1) })
	// Running counts: every key in state is updated every batch, with no
	// values when it has no data.
	totals := dstream.UpdateStateByKey(pairs, func(values []int, total int, _ bool) (int, bool) {
		for _, v := range values {
			total += v
		}
		return total, true
	})
	printBatches(totals)
	if err := c.RunBatches(context.Background(), 3); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1 [(be,2) (not,1) (or,1) (to,2)]
	// 2 [(be,3) (not,1) (or,1) (quick,1) (to,2)]
	// 3 [(be,3) (not,1) (or,1) (quick,1) (to,2)]
}

func ExampleUpdateStateByKeyWith() {
	c := stateExampleContext(2)
	defer c.Close()
	pairs := dstream.Map(dstream.Queue(c, [][]string{{"a"}, {}, {}}), func(w string) dstream.KV[string, int] { return dstream.Pair(w, 1) })
	// Counts start from an initial state; a key without data loses one, and
	// goes when it reaches zero.
	counts := dstream.UpdateStateByKeyWith(pairs, func(values []int, n int, _ bool) (int, bool) {
		if len(values) == 0 {
			n--
		}
		for _, v := range values {
			n += v
		}
		return n, n > 0
	}, dstream.StateOptions[string, int]{Initial: map[string]int{"a": 1, "b": 2}, Partitions: 1})
	printBatches(counts)
	if err := c.RunBatches(context.Background(), 3); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1 [(a,2) (b,1)]
	// 2 [(a,1)]
	// 3 []
}

func ExampleUpdateStateByKeyWithTime() {
	c := stateExampleContext(2)
	defer c.Close()
	pairs := dstream.Map(dstream.Queue(c, [][]string{{"a", "b"}, {"a"}, {}, {}}), func(w string) dstream.KV[string, int] { return dstream.Pair(w, 1) })
	// Remember when each key was last seen, and forget keys unseen for more
	// than a second.
	lastSeen := dstream.UpdateStateByKeyWithTime(pairs, func(t time.Time, key string, values []int, seen int64, _ bool) (int64, bool) {
		if len(values) > 0 {
			return t.Unix(), true
		}
		return seen, t.Unix()-seen <= 1
	}, dstream.StateOptions[string, int64]{})
	printBatches(lastSeen)
	if err := c.RunBatches(context.Background(), 4); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1 [(a,1) (b,1)]
	// 2 [(a,2) (b,1)]
	// 3 [(a,2)]
	// 4 []
}

func ExampleMapWithState() {
	c := stateExampleContext(2)
	defer c.Close()
	clicks := dstream.Map(dstream.Queue(c, [][]string{{"ann", "bob", "ann"}, {"bob"}, {}, {}, {}}),
		func(user string) dstream.KV[string, int] { return dstream.Pair(user, 1) })
	// Sessions: count each user's clicks, and report the session when the
	// user has been idle for more than 2 s.
	spec := dstream.NewStateSpec(func(t time.Time, user string, click dstream.Optional[int], s *dstream.State[int]) (string, bool) {
		n, _ := s.Get()
		if s.IsTimingOut() {
			return fmt.Sprintf("%s: session of %d clicks ended", user, n), true
		}
		s.Update(n + click.Value)
		return "", false
	}).WithTimeout(2 * time.Second)
	sessions := dstream.MapWithState(clicks, spec)
	printBatches(sessions.Stream)
	printBatches(sessions.StateSnapshots())
	if err := c.RunBatches(context.Background(), 5); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1 []
	// 1 [(ann,2) (bob,1)]
	// 2 []
	// 2 [(ann,2) (bob,2)]
	// 3 []
	// 3 [(ann,2) (bob,2)]
	// 4 [ann: session of 2 clicks ended]
	// 4 [(bob,2)]
	// 5 [bob: session of 2 clicks ended]
	// 5 []
}

func ExampleNewSimpleStateSpec() {
	c := stateExampleContext(1)
	defer c.Close()
	words := dstream.Map(dstream.Queue(c, [][]string{{"a", "b", "a"}, {"a"}}),
		func(w string) dstream.KV[string, int] { return dstream.Pair(w, 1) })
	// The simple form emits what the function returns for every record: here
	// each record's running count.
	counts := dstream.MapWithState(words, dstream.NewSimpleStateSpec(func(w string, one dstream.Optional[int], s *dstream.State[int]) string {
		n, _ := s.Get()
		s.Update(n + one.Value)
		return fmt.Sprintf("%s#%d", w, n+one.Value)
	}))
	dstream.ForEachBatch(counts.Stream, func(_ context.Context, b dstream.Batch[string]) error {
		fmt.Println(slices.Collect(b.All())) // one partition: in input order
		return nil
	})
	if err := c.RunBatches(context.Background(), 2); err != nil {
		fmt.Println(err)
	}
	// Output:
	// [a#1 b#1 a#2]
	// [a#3]
}
