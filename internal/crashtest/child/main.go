// Command child is the job the recovery test kills: a word count over a
// deterministic Queue input with every kind of stateful operator, a
// checkpoint, and each operator's output saved per batch.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

func main() {
	ckpt := flag.String("checkpoint", "", "checkpoint dir (empty: none)")
	out := flag.String("out", "", "output dir")
	batches := flag.Int("batches", 40, "batches to run in all")
	flag.Parse()
	if err := run(*ckpt, *out, *batches); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
}

// Input returns the deterministic input: n batches of lines of words.
func Input(n int) [][]string {
	rng := rand.New(rand.NewPCG(7, 11))
	in := make([][]string, n)
	for k := range in {
		lines := rng.IntN(12)
		for range lines {
			words := make([]string, 1+rng.IntN(6))
			for i := range words {
				words[i] = fmt.Sprintf("w%02d", rng.IntN(30))
			}
			in[k] = append(in[k], strings.Join(words, " "))
		}
	}
	return in
}

func add(a, b int64) int64 { return a + b }
func sub(a, b int64) int64 { return a - b }

func run(ckpt, out string, batches int) error {
	opts := []engine.Option{engine.WithManualClock(time.Unix(1_700_000_000, 0)), engine.WithParallelism(2)}
	if ckpt != "" {
		opts = append(opts, engine.WithCheckpoint(ckpt), engine.WithCheckpointOptions(engine.SnapshotEvery(3), engine.KeepCommits(3)))
	}
	c, err := engine.NewContext(time.Second, opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	lines := dstream.Queue(c, Input(batches))
	words := dstream.FlatMap(lines, strings.Fields)
	pairs := dstream.Map(words, func(w string) dstream.KV[string, int64] { return dstream.Pair(w, int64(1)) })

	totals := dstream.UpdateStateByKey(pairs, func(vs []int64, s int64, _ bool) (int64, bool) {
		for _, v := range vs {
			s += v
		}
		return s, true
	})
	inv := dstream.ReduceByKeyAndWindowInv(pairs, add, sub, 4*time.Second, 2*time.Second,
		func(kv dstream.KV[string, int64]) bool { return kv.Value > 0 })
	plain := dstream.ReduceByKeyAndWindow(pairs, add, 3*time.Second, time.Second)
	win := dstream.Count(dstream.Window(words, 5*time.Second, time.Second))
	running := mapWithState(pairs)

	dir := func(name string) string { return filepath.Join(out, name) }
	dstream.SaveAsTextFiles(totals, dir("totals"), "txt")
	dstream.SaveAsTextFiles(inv, dir("window-inv"), "txt")
	dstream.SaveAsTextFiles(plain, dir("window-plain"), "txt")
	dstream.SaveAsTextFiles(win, dir("window-count"), "txt")
	dstream.SaveAsTextFiles(running, dir("mapwithstate"), "txt")

	c.AddListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
		if info.Err == nil {
			fmt.Printf("batch %d\n", info.Time.UnixMilli())
		}
	}})
	if err := c.RunBatches(context.Background(), 0); err != nil {
		return err
	}
	done := max(int(c.LastBatch().Sub(c.Zero())/time.Second), 0) // LastBatch is the zero time before any batch
	if err := c.RunBatches(context.Background(), batches-done); err != nil {
		return err
	}
	fmt.Println("finished")
	return nil
}
