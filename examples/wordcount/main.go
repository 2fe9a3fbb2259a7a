package main

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/examples/internal/exampleutil"
	"github.com/sluicehq/sluice/kafkasource"
)

var spec = exampleutil.Spec{
	Name:      "wordcount",
	Summary:   "Counts the words of the lines in a Kafka topic: every slide it prints the top words of the sliding window with their all-time totals.",
	Topic:     "words",
	Windowed:  true,
	Window:    30 * time.Second,
	Slide:     10 * time.Second,
	Rate:      20,
	Generator: newGenerator,
}

func main() { exampleutil.Main(spec, build) }

// wordCount is one line of the --save files.
type wordCount struct {
	Word  string `json:"word"`
	Count int64  `json:"count"`
}

// RowKey names the row by its word in a warning or dead letter.
func (r wordCount) RowKey() string { return r.Word }

var _ exampleutil.Keyed = wordCount{}

func add(a, b int64) int64 { return a + b }
func sub(a, b int64) int64 { return a - b }

// sumInto adds a batch's counts of a word to its total.
func sumInto(counts []int64, total int64, _ bool) (int64, bool) {
	for _, c := range counts {
		total += c
	}
	return total, true
}

// pairs turns a record into (word, 1) pairs; a value that is not UTF-8 text
// is malformed.
func pairs(malformed *exampleutil.Counter) func(kafkasource.Record) []dstream.KV[string, int64] {
	return func(r kafkasource.Record) []dstream.KV[string, int64] {
		if !utf8.Valid(r.Value) {
			malformed.Add(r, "not UTF-8 text")
			return nil
		}
		words := Words(string(r.Value))
		out := make([]dstream.KV[string, int64], len(words))
		for i, w := range words {
			out[i] = dstream.Pair(w, int64(1))
		}
		return out
	}
}

func build(j *exampleutil.Job) error {
	cfg := j.Config
	// The words are re-keyed, by word: in group mode they go through the
	// repartition topic named after them, <group>-words-repartition.
	words := dstream.FlatMap(j.Records, pairs(j.Malformed)).Name("words")
	window := dstream.ReduceByKeyAndWindowInv(words, add, sub, cfg.Window, cfg.Slide,
		func(kv dstream.KV[string, int64]) bool { return kv.Value > 0 }).Name("window-counts")
	// The batch's count of each word, combined where the words are made
	// (in group mode, before they go through the repartition topic), is
	// what the totals add up.
	counts := dstream.ReduceByKey(words, add).Name("batch-counts")
	totals := dstream.UpdateStateByKey(counts, sumInto).Name("totals")

	// Outputs run in registration order: the totals of a batch are known
	// when its window prints.
	latest := map[string]int64{}
	exampleutil.ForEachBatch(j, "totals", totals, func(ctx context.Context, jb *engine.Job, b dstream.Batch[dstream.KV[string, int64]]) error {
		rows := exampleutil.Collect(b)
		clear(latest)
		for _, kv := range rows {
			latest[kv.Key] = kv.Value
		}
		exampleutil.SortByKey(rows)
		return exampleutil.SaveBatch(ctx, j, jb, "totals", asWordCounts(rows))
	})
	exampleutil.ForEachBatch(j, "", window, func(ctx context.Context, jb *engine.Job, b dstream.Batch[dstream.KV[string, int64]]) error {
		rows := exampleutil.Collect(b)
		exampleutil.SortByValue(rows)
		var inWindow int64
		for _, kv := range rows {
			inWindow += kv.Value
		}
		top := exampleutil.Plural(int64(min(cfg.Top, len(rows))), "word", "words")
		fmt.Fprintf(j.Out, "top %s of window (%s, %s]: %s, %d distinct\n",
			top, b.Time.Add(-cfg.Window).Format("15:04:05"), b.Time.Format("15:04:05"), exampleutil.Plural(inWindow, "word", "words"), len(rows))
		for i, kv := range rows[:min(cfg.Top, len(rows))] {
			fmt.Fprintf(j.Out, "%4d. %-16s %8d   all-time %d\n", i+1, kv.Key, kv.Value, latest[kv.Key])
		}
		return exampleutil.SaveBatch(ctx, j, jb, "", asWordCounts(rows))
	})
	return nil
}

func asWordCounts(kvs []dstream.KV[string, int64]) []wordCount {
	out := make([]wordCount, len(kvs))
	for i, kv := range kvs {
		out[i] = wordCount{kv.Key, kv.Value}
	}
	return out
}
