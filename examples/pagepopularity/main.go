package main

import (
	"context"
	"fmt"
	"math"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/examples/internal/exampleutil"
	"github.com/sluicehq/sluice/kafkasource"
)

var spec = exampleutil.Spec{
	Name:          "pagepopularity",
	Summary:       "Ranks pages by popularity (0.8·clicks + 0.8·stay + like, summed for ever) from pageID|clicks|stayMinutes|like records and prints the top pages every batch.",
	Topic:         "user-behavior",
	Rate:          20,
	Generator:     newGenerator,
	SinkByDefault: true,
}

func main() { exampleutil.Main(spec, build) }

// pagePopularity is one line of the --save files.
type pagePopularity struct {
	Page       string            `json:"page"`
	Popularity exampleutil.Fixed `json:"popularity"`
}

// RowKey names the row by its page in a warning or dead letter.
func (r pagePopularity) RowKey() string { return r.Page }

var _ exampleutil.Keyed = pagePopularity{}

// contribution is what one record adds to its page's popularity, and
// where the record is, to name it when it cannot be added.
type contribution struct {
	Value     float64
	Topic     string
	Partition int32
	Offset    int64
}

// accumulate returns the update function that adds a batch's contributions
// to a page's popularity. A contribution that would make the total
// non-finite is malformed: counted in malformed and skipped, so that no
// input leaves a page's state at ±Inf for ever.
func accumulate(malformed *exampleutil.Counter) func([]contribution, float64, bool) (float64, bool) {
	return func(cs []contribution, total float64, _ bool) (float64, bool) {
		for _, c := range cs {
			next := total + c.Value
			if math.IsInf(next, 0) || math.IsNaN(next) {
				malformed.Add(kafkasource.Record{Topic: c.Topic, Partition: c.Partition, Offset: c.Offset},
					fmt.Sprintf("adding %g would take its page's popularity %g past the float64 range", c.Value, total))
				continue
			}
			total = next
		}
		return total, true
	}
}

// rounded is v at the six decimals the --save files hold, so that pages
// rank the same whatever order their sums were taken in.
func rounded(v float64) float64 {
	if math.Abs(v) >= 1<<52/1e6 {
		return v // no decimals left to round, and v*1e6 could overflow
	}
	r := math.Round(v*1e6) / 1e6
	if r == 0 {
		return 0 // not -0, which would save as -0.000000
	}
	return r
}

func build(j *exampleutil.Job) error { return buildWith(j, accumulate(j.Malformed)) }

// buildWith builds the job with update as the popularity's update function.
func buildWith(j *exampleutil.Job, update func([]contribution, float64, bool) (float64, bool)) error {
	cfg := j.Config
	contributions := dstream.FlatMap(j.Records, func(r kafkasource.Record) []dstream.KV[string, contribution] {
		b, err := ParseBehavior(string(r.Value))
		if err != nil {
			j.Malformed.Add(r, err.Error())
			return nil
		}
		return []dstream.KV[string, contribution]{dstream.Pair(b.Page, contribution{b.Popularity(), r.Topic, r.Partition, r.Offset})}
	})
	// Records are keyed by page (the generator writes them so; --member
	// needs every producer to), so the pages are keyed like the input.
	popularity := dstream.UpdateStateByKey(dstream.CoPartitioned(contributions), update).Name("popularity")
	exampleutil.ForEachBatch(j, "", popularity, func(ctx context.Context, jb *engine.Job, b dstream.Batch[dstream.KV[string, float64]]) error {
		rows := exampleutil.Collect(b)
		for i := range rows {
			rows[i].Value = rounded(rows[i].Value)
		}
		exampleutil.SortByValue(rows)
		top := rows[:min(cfg.Top, len(rows))]
		fmt.Fprintf(j.Out, "top %d of %s in state at %s:\n", len(top), exampleutil.Plural(int64(len(rows)), "page", "pages"), b.Time.Format("15:04:05.000"))
		for i, kv := range top {
			fmt.Fprintf(j.Out, "%4d. %-10s %12.3f\n", i+1, kv.Key, kv.Value)
		}
		saved := make([]pagePopularity, len(rows))
		for i, kv := range rows {
			saved[i] = pagePopularity{kv.Key, exampleutil.Fixed(kv.Value)}
		}
		return exampleutil.SaveBatch(ctx, j, jb, "", saved)
	})
	return nil
}
