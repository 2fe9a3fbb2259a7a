// Command crashchild is the job the sink's crash test kills: a
// deterministic Queue input written with kafkasink.WriteTxn, then an output
// that, with probability -killp, kills its own process between the sink's
// commit and the checkpoint's. With the same probability it also kills
// itself inside a batch's transaction, once a reader sees the batch's first
// record on the broker uncommitted: a parent's kill at a random moment
// often falls between transactions, and the test must see aborted records
// to show that read_committed hides them.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasink"
)

// Input is batch k's elements: k*7%5+1 of them, "k-i".
func Input(n int) [][]string {
	in := make([][]string, n)
	for k := range in {
		for i := range k*7%5 + 1 {
			in[k] = append(in[k], strconv.Itoa(k)+"-"+strconv.Itoa(i))
		}
	}
	return in
}

func main() {
	brokers := flag.String("brokers", "", "seed broker")
	ckpt := flag.String("checkpoint", "", "checkpoint dir")
	batches := flag.Int("batches", 40, "batches in all")
	killp := flag.Float64("killp", 0, "probability of a kill after the sink's commit")
	seed := flag.Uint64("seed", 1, "kill seed")
	flag.Parse()
	if err := run(*brokers, *ckpt, *batches, *killp, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "crashchild:", err)
		os.Exit(1)
	}
}

func run(brokers, ckpt string, batches int, killp float64, seed uint64) error {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1_700_000_000, 0)),
		engine.WithCheckpoint(ckpt), engine.WithJobName("crash"))
	if err != nil {
		return err
	}
	defer c.Close()
	in := dstream.Queue(c, Input(batches))
	ctx := context.Background()
	mid := rand.New(rand.NewPCG(seed+1, seed>>1|1))
	if _, err := kafkasink.WriteTxn(ctx, in, kafkasink.Config{Brokers: []string{brokers}, Sink: "out"},
		func(s string) (*kgo.Record, error) {
			if k, ok := strings.CutSuffix(s, "-1"); ok && mid.Float64() < killp && seen(ctx, brokers, k+"-0") {
				fmt.Println("mid-kill")
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			return &kgo.Record{Topic: "out", Value: []byte(s)}, nil
		}); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	dstream.ForEachBatch(in, func(context.Context, dstream.Batch[string]) error {
		if rng.Float64() < killp {
			fmt.Println("self-kill")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return nil
	})
	c.AddListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
		if info.Err == nil {
			fmt.Printf("batch %d\n", info.Time.UnixMilli())
		}
	}})
	if err := c.RunBatches(ctx, 0); err != nil {
		return err
	}
	done := max(int(c.LastBatch().Sub(c.Zero())/time.Second), 0)
	if err := c.RunBatches(ctx, batches-done); err != nil {
		return err
	}
	fmt.Println("finished")
	return nil
}

// seen reports whether a read_uncommitted reader of topic out finds a
// record whose value is v within two seconds.
func seen(ctx context.Context, brokers, v string) bool {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return false
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		found := false
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == v })
		if found {
			return true
		}
	}
	return false
}
