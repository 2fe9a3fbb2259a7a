package status_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/status"
)

// Serve a job's status and read its latest batch from the JSON API.
func ExampleNew() {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithJobName("words"), engine.WithParallelism(2))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	words := dstream.Queue(c, [][]string{{"a", "b"}, {"c"}})
	dstream.ForEachBatch(words, func(context.Context, dstream.Batch[string]) error { return nil })
	h, err := status.New(c)
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h) // a job would use http.ListenAndServe("127.0.0.1:4040", h)
	defer srv.Close()

	if err := c.RunBatches(context.Background(), 2); err != nil {
		panic(err)
	}
	resp, err := srv.Client().Get(srv.URL + "/api/job")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output:
	// {"name":"words","batch_interval_ms":1000,"zero_time":"1970-01-01T00:00:00Z","checkpointing":false,"parallelism":2,"history":1000,"operators":[{"id":1,"name":"queue-1","kind":"queue","parents":[]},{"id":2,"name":"forEachBatch-1","kind":"forEachBatch","parents":[1]}]}
}
