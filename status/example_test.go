package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/status"
)

// Serve a job's status and read the job from the JSON API.
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
	var job struct {
		Name            string    `json:"name"`
		BatchIntervalMS int64     `json:"batch_interval_ms"`
		StartTime       time.Time `json:"start_time"`
		Parallelism     int       `json:"parallelism"`
		History         int       `json:"history"`
		Operators       []struct {
			ID      int    `json:"id"`
			Name    string `json:"name"`
			Kind    string `json:"kind"`
			Parents []int  `json:"parents"`
		} `json:"operators"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&job); err != nil {
		panic(err)
	}
	fmt.Printf("job %s: batches every %d ms, started: %v, parallelism %d, history of %d batches\n",
		job.Name, job.BatchIntervalMS, !job.StartTime.IsZero(), job.Parallelism, job.History)
	for _, op := range job.Operators {
		fmt.Printf("operator %d %s (%s), parents %v\n", op.ID, op.Name, op.Kind, op.Parents)
	}
	// Output:
	// job words: batches every 1000 ms, started: true, parallelism 2, history of 1000 batches
	// operator 1 queue-1 (queue), parents []
	// operator 2 forEachBatch-1 (forEachBatch), parents [1]
}
