package dstream_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// windowExampleContext returns a manual-clock context with 1-second batches
// at 1 s, 2 s, … from the Unix epoch, and a checkpoint in dir unless dir is
// empty.
func windowExampleContext(dir string) *engine.Context {
	opts := []engine.Option{engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(2)}
	if dir != "" {
		opts = append(opts, engine.WithCheckpoint(dir))
	}
	c, err := engine.NewContext(time.Second, opts...)
	if err != nil {
		panic(err)
	}
	return c
}

// printSorted prints each batch of s as its time in seconds and its
// elements sorted, as keyed windows come in no set order.
func printSorted[T any](s *dstream.Stream[T]) { printLabeled("", s) }

// printLabeled is printSorted with a label before each line.
func printLabeled[T any](label string, s *dstream.Stream[T]) {
	dstream.ForEachBatch(s, func(_ context.Context, b dstream.Batch[T]) error {
		var xs []string
		for x := range b.All() {
			xs = append(xs, fmt.Sprint(x))
		}
		slices.Sort(xs)
		fmt.Printf("%s%ds: %s\n", label, b.Time.Unix(), strings.Join(xs, " "))
		return nil
	})
}

func ExampleWindow() {
	c := windowExampleContext("")
	defer c.Close()
	nums := dstream.Queue(c, [][]int{{1}, {2, 3}, {4}, {5}, {6}})
	// The last 3 seconds, every 2 seconds: emitted at 2 s and 4 s only, the
	// first window partial. Elements come in time order.
	windows := dstream.Window(nums, 3*time.Second, 2*time.Second)
	dstream.ForEachBatch(windows, func(_ context.Context, b dstream.Batch[int]) error {
		fmt.Println(b.Time.Unix(), slices.Collect(b.All()))
		return nil
	})
	if err := c.RunBatches(context.Background(), 5); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2 [1 2 3]
	// 4 [2 3 4 5]
}

func ExampleReduceByKeyAndWindow() {
	c := windowExampleContext("")
	defer c.Close()
	views := dstream.Queue(c, [][]dstream.KV[string, int]{
		{dstream.Pair("/home", 1), dstream.Pair("/cart", 1)},
		{dstream.Pair("/home", 1)},
		{},
		{},
	})
	// Views per page over the last 2 seconds. Without an inverse function a
	// page that had no view in the window is left out.
	printSorted(dstream.ReduceByKeyAndWindow(views, func(a, b int) int { return a + b }, 2*time.Second, time.Second))
	if err := c.RunBatches(context.Background(), 4); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1s: (/cart,1) (/home,1)
	// 2s: (/cart,1) (/home,2)
	// 3s: (/home,1)
	// 4s:
}

func ExampleReduceByKeyAndWindowInv() {
	c := windowExampleContext("")
	defer c.Close()
	views := dstream.Queue(c, [][]dstream.KV[string, int]{
		{dstream.Pair("/home", 1), dstream.Pair("/cart", 1)},
		{dstream.Pair("/home", 1)},
		{},
		{},
	})
	add := func(a, b int) int { return a + b }
	sub := func(a, b int) int { return a - b }
	// The same count, moved along by adding the batch that enters the window
	// and subtracting the one that leaves. Pages whose views have all left
	// stay at 0 unless the keep function drops them.
	all := dstream.ReduceByKeyAndWindowInv(views, add, sub, 2*time.Second, time.Second, nil)
	nonZero := dstream.ReduceByKeyAndWindowInv(views, add, sub, 2*time.Second, time.Second,
		func(kv dstream.KV[string, int]) bool { return kv.Value != 0 })
	printLabeled("all ", all)
	printLabeled("non-zero ", nonZero)
	if err := c.RunBatches(context.Background(), 4); err != nil {
		fmt.Println(err)
	}
	// Output:
	// all 1s: (/cart,1) (/home,1)
	// non-zero 1s: (/cart,1) (/home,1)
	// all 2s: (/cart,1) (/home,2)
	// non-zero 2s: (/cart,1) (/home,2)
	// all 3s: (/cart,0) (/home,1)
	// non-zero 3s: (/home,1)
	// all 4s: (/cart,0) (/home,0)
	// non-zero 4s:
}

func ExampleCountByValueAndWindow() {
	c := windowExampleContext("")
	defer c.Close()
	words := dstream.Queue(c, [][]string{{"a"}, {"b", "b"}, {"a", "b"}})
	printSorted(dstream.CountByValueAndWindow(words, 2*time.Second, time.Second))
	if err := c.RunBatches(context.Background(), 4); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1s: (a,1)
	// 2s: (a,1) (b,2)
	// 3s: (a,1) (b,3)
	// 4s: (a,1) (b,1)
}

func ExampleCountByWindow() {
	c := windowExampleContext("")
	defer c.Close()
	events := dstream.Queue(c, [][]string{{"x", "y"}, {"z"}, {}, {}})
	printSorted(dstream.CountByWindow(events, 2*time.Second, time.Second))
	if err := c.RunBatches(context.Background(), 4); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1s: 2
	// 2s: 3
	// 3s: 1
	// 4s: 0
}

func ExampleGroupByKeyAndWindow() {
	c := windowExampleContext("")
	defer c.Close()
	temps := dstream.Queue(c, [][]dstream.KV[string, int]{
		{dstream.Pair("oslo", -3), dstream.Pair("rome", 14)},
		{dstream.Pair("oslo", -1)},
		{dstream.Pair("oslo", 2)},
	})
	// A tumbling window of 2 seconds: each reading is in exactly one window.
	printSorted(dstream.GroupByKeyAndWindow(temps, 2*time.Second, 2*time.Second))
	if err := c.RunBatches(context.Background(), 4); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2s: (oslo,[-3 -1]) (rome,[14])
	// 4s: (oslo,[2])
}

func ExampleReduceByWindow() {
	c := windowExampleContext("")
	defer c.Close()
	latencies := dstream.Queue(c, [][]int{{12, 40}, {7}, {}, {}})
	maxOf := func(a, b int) int { return max(a, b) }
	printSorted(dstream.ReduceByWindow(latencies, maxOf, 2*time.Second, time.Second))
	if err := c.RunBatches(context.Background(), 4); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1s: 40
	// 2s: 40
	// 3s: 7
	// 4s:
}

// A windowed job with a checkpoint stops after 3 batches; the same graph,
// built again over the same directory, resumes with the window's content.
// WindowCodecs chooses how keys and values are written.
func ExampleWindowCodecs() {
	dir, err := os.MkdirTemp("", "sluice-window-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	input := [][]dstream.KV[string, int64]{
		{dstream.Pair("a", int64(1))}, {dstream.Pair("b", int64(2))}, {dstream.Pair("a", int64(3))},
		{}, {dstream.Pair("b", int64(4))},
	}
	run := func(batches int) {
		c := windowExampleContext(dir)
		defer c.Close()
		sums := dstream.ReduceByKeyAndWindow(dstream.Queue(c, input), func(a, b int64) int64 { return a + b }, 3*time.Second, time.Second)
		printSorted(dstream.WindowCodecs(sums.Name("sums"), state.String(), state.Int64()))
		if err := c.RunBatches(context.Background(), batches); err != nil {
			fmt.Println(err)
		}
	}
	run(3)
	fmt.Println("restart")
	run(2)
	// Output:
	// 1s: (a,1)
	// 2s: (a,1) (b,2)
	// 3s: (a,4) (b,2)
	// restart
	// 4s: (a,3) (b,2)
	// 5s: (a,3) (b,4)
}
