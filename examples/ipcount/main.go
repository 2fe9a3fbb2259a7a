package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/examples/internal/exampleutil"
	"github.com/sluicehq/sluice/kafkasource"
)

var spec = exampleutil.Spec{
	Name:          "ipcount",
	Summary:       "Counts requests per client_real_ip in JSON access-log lines over a sliding window and prints the busiest addresses every slide.",
	Topic:         "access-log",
	Windowed:      true,
	Window:        30 * time.Second,
	Slide:         10 * time.Second,
	Rate:          50,
	Generator:     newGenerator,
	SinkByDefault: true,
}

func main() { exampleutil.Main(spec, build) }

// ipCount is one line of the --save files.
type ipCount struct {
	IP    string `json:"ip"`
	Count int64  `json:"count"`
}

// RowKey names the row by its address in a warning or dead letter.
func (r ipCount) RowKey() string { return r.IP }

var _ exampleutil.Keyed = ipCount{}

func add(a, b int64) int64 { return a + b }
func sub(a, b int64) int64 { return a - b }

func build(j *exampleutil.Job) error {
	cfg := j.Config
	without := j.Counter("without client_real_ip")
	requests := dstream.FlatMap(j.Records, func(r kafkasource.Record) []dstream.KV[string, int64] {
		ip, ok, err := ClientIP(r.Value)
		switch {
		case err != nil:
			j.Malformed.Add(r, err.Error())
			return nil
		case !ok:
			without.Add(r, "")
			return nil
		}
		return []dstream.KV[string, int64]{dstream.Pair(ip, int64(1))}
	}).Name("requests") // re-keyed by address: in group mode through <group>-requests-repartition
	counts := dstream.ReduceByKeyAndWindowInv(requests, add, sub, cfg.Window, cfg.Slide,
		func(kv dstream.KV[string, int64]) bool { return kv.Value > 0 }).Name("ip-counts")
	exampleutil.ForEachBatch(j, "", counts, func(ctx context.Context, jb *engine.Job, b dstream.Batch[dstream.KV[string, int64]]) error {
		rows := exampleutil.Collect(b)
		exampleutil.SortByValue(rows)
		var total int64
		for _, kv := range rows {
			total += kv.Value
		}
		top := rows[:min(cfg.Top, len(rows))]
		fmt.Fprintf(j.Out, "top %d of %s in window (%s, %s]: %s\n",
			len(top), exampleutil.Plural(int64(len(rows)), "IP", "IPs"), b.Time.Add(-cfg.Window).Format("15:04:05"), b.Time.Format("15:04:05"),
			exampleutil.Plural(total, "request", "requests"))
		for i, kv := range top {
			fmt.Fprintf(j.Out, "%4d. %-16s %8d\n", i+1, kv.Key, kv.Value)
		}
		saved := make([]ipCount, len(rows))
		for i, kv := range rows {
			saved[i] = ipCount{kv.Key, kv.Value}
		}
		return exampleutil.SaveBatch(ctx, j, jb, "", saved)
	})
	return nil
}
