package dstream_test

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/dstream"
)

// Page views keyed by page, as a producer writing with key = page and
// Kafka's default partitioner leaves them: every view of a page is in one
// partition, so in group mode each member can count the pages of its own
// tasks. CoPartitioned says so; without it, a job in group mode is refused
// when it starts. In single-process mode, as here, it changes nothing.
func ExampleCoPartitioned() {
	c := stateExampleContext(2)
	defer c.Close()
	views := dstream.Queue(c, [][]dstream.KV[string, string]{
		{dstream.Pair("/home", "ann"), dstream.Pair("/docs", "bob"), dstream.Pair("/home", "cy")},
		{dstream.Pair("/docs", "ann")},
	})
	// Filter keeps the records' keys, and so the mark; Map would drop it.
	known := dstream.Filter(dstream.CoPartitioned(views), func(v dstream.KV[string, string]) bool { return v.Value != "" })
	popularity := dstream.UpdateStateByKey(known, func(users []string, n int, _ bool) (int, bool) {
		return n + len(users), true
	}).Name("popularity")
	printBatches(popularity)
	if err := c.RunBatches(context.Background(), 2); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1 [(/docs,1) (/home,2)]
	// 2 [(/docs,2) (/home,2)]
}
