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

// newExampleContext returns a manual-clock context: batches run when
// RunBatches asks, at 1 s, 2 s, … from the Unix epoch.
func newExampleContext(parallelism int) *engine.Context {
	c, err := engine.NewContext(time.Second,
		engine.WithManualClock(time.Unix(0, 0)),
		engine.WithParallelism(parallelism))
	if err != nil {
		panic(err)
	}
	return c
}

func ExampleMap() {
	c := newExampleContext(2)
	defer c.Close()
	words := dstream.Queue(c, [][]string{{"a", "bb", "ccc"}, {"dddd"}})
	lengths := dstream.Map(words, func(w string) int { return len(w) })
	dstream.ForEachBatch(lengths, func(_ context.Context, b dstream.Batch[int]) error {
		fmt.Println(b.Time.UnixMilli(), slices.Collect(b.All()))
		return nil
	})
	if err := c.RunBatches(context.Background(), 2); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1000 [1 2 3]
	// 2000 [4]
}

func ExampleReduceByKey() {
	c := newExampleContext(2)
	defer c.Close()
	lines := dstream.Queue(c, [][]string{{"to be or", "not to be"}, {"be quick"}})
	words := dstream.FlatMap(lines, strings.Fields)
	pairs := dstream.Map(words, func(w string) dstream.KV[string, int] { return dstream.Pair(w, 1) })
	counts := dstream.ReduceByKey(pairs, func(a, b int) int { return a + b })
	dstream.ForEachBatch(counts, func(_ context.Context, b dstream.Batch[dstream.KV[string, int]]) error {
		// Keys come in no set order: sort them to print.
		got := slices.SortedFunc(b.All(), func(x, y dstream.KV[string, int]) int { return strings.Compare(x.Key, y.Key) })
		fmt.Println(got)
		return nil
	})
	if err := c.RunBatches(context.Background(), 2); err != nil {
		fmt.Println(err)
	}
	// Output:
	// [(be,2) (not,1) (or,1) (to,2)]
	// [(be,1) (quick,1)]
}

func ExampleJoin() {
	c := newExampleContext(2)
	defer c.Close()
	clicks := dstream.Queue(c, [][]dstream.KV[string, string]{{
		dstream.Pair("u1", "/home"), dstream.Pair("u2", "/cart"), dstream.Pair("u1", "/pay"), dstream.Pair("u3", "/home"),
	}})
	users := dstream.Queue(c, [][]dstream.KV[string, string]{{
		dstream.Pair("u1", "Ada"), dstream.Pair("u2", "Grace"),
	}})
	joined := dstream.Join(clicks, users)
	dstream.ForEachBatch(joined, func(_ context.Context, b dstream.Batch[dstream.KV[string, dstream.Joined[string, string]]]) error {
		var lines []string
		for kv := range b.All() {
			lines = append(lines, kv.String())
		}
		slices.Sort(lines)
		fmt.Println(strings.Join(lines, "\n"))
		return nil
	})
	if err := c.RunBatches(context.Background(), 1); err != nil {
		fmt.Println(err)
	}
	// Output:
	// (u1,(/home,Ada))
	// (u1,(/pay,Ada))
	// (u2,(/cart,Grace))
}

func ExamplePrint() {
	c := newExampleContext(2)
	defer c.Close()
	nums := dstream.Queue(c, [][]int{{1, 2, 3}, {4}})
	dstream.Print(nums, 2) // the first 2 elements of every batch
	if err := c.RunBatches(context.Background(), 2); err != nil {
		fmt.Println(err)
	}
	// Output:
	// -------------------------------------------
	// Time: 1000 ms (1970-01-01T00:00:01Z)
	// -------------------------------------------
	// 1
	// 2
	// ...
	//
	// -------------------------------------------
	// Time: 2000 ms (1970-01-01T00:00:02Z)
	// -------------------------------------------
	// 4
}

func ExampleQueue() {
	c := newExampleContext(3)
	defer c.Close()
	// Batch k gets the k-th slice, split into 3 (the parallelism) contiguous
	// partitions; batches after the last are empty.
	q := dstream.Queue(c, [][]int{{1, 2, 3, 4, 5}, {6}})
	dstream.ForEachBatch(q, func(_ context.Context, b dstream.Batch[int]) error {
		fmt.Println(b.Time.UnixMilli(), b.Parts, b.Len())
		return nil
	})
	if err := c.RunBatches(context.Background(), 3); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1000 [[1] [2 3] [4 5]] 5
	// 2000 [[] [] [6]] 1
	// 3000 [[] [] []] 0
}
