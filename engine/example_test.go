package engine_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

func ExampleNewContext() {
	// A job with 1 s batches on a manual clock from the Unix epoch: batches
	// run when RunBatches asks, at 1000 ms, 2000 ms, …
	c, err := engine.NewContext(time.Second,
		engine.WithManualClock(time.Unix(0, 0)),
		engine.WithParallelism(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	nums := dstream.Queue(c, [][]int{{1, 2, 3}, {4}})
	dstream.Print(dstream.Map(nums, func(x int) int { return x * x }), 10)
	if err := c.RunBatches(context.Background(), 2); err != nil {
		fmt.Println(err)
	}
	// Output:
	// -------------------------------------------
	// Time: 1000 ms (1970-01-01T00:00:01Z)
	// -------------------------------------------
	// 1
	// 4
	// 9
	//
	// -------------------------------------------
	// Time: 2000 ms (1970-01-01T00:00:02Z)
	// -------------------------------------------
	// 16
}

func ExampleContext_RunBatches() {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.AddListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
		fmt.Printf("batch %d ms: %d records, %d of %d outputs ok, failed: %v\n",
			info.Time.UnixMilli(), info.Records, info.OutputOpsSucceeded, info.OutputOps, info.Err != nil)
	}})

	errFull := errors.New("sink is full")
	sink := 0
	dstream.ForEachBatch(dstream.Queue(c, [][]string{{"a", "b"}, {"c"}, {"d", "e"}}),
		func(_ context.Context, b dstream.Batch[string]) error {
			if sink+b.Len() > 4 {
				return errFull
			}
			sink += b.Len()
			return nil
		})

	// Run three batches now; the third fails.
	err = c.RunBatches(context.Background(), 3)
	var be *engine.BatchError
	if errors.As(err, &be) {
		fmt.Printf("batch %d ms failed: %v\n", be.Time.UnixMilli(), errors.Is(err, errFull))
	}
	// A failed context runs no more batches.
	fmt.Println(errors.Is(c.RunBatches(context.Background(), 1), engine.ErrFailed))
	// Output:
	// batch 1000 ms: 2 records, 1 of 1 outputs ok, failed: false
	// batch 2000 ms: 1 records, 1 of 1 outputs ok, failed: false
	// batch 3000 ms: 2 records, 0 of 1 outputs ok, failed: true
	// batch 3000 ms failed: true
	// true
}
