package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// The scale-out workload runs its jobs as processes of their own: the
// benchmarks binary started again with memberEnv set to a memberSpec runs
// one member of a group-mode job (or the same job in single-process mode)
// and talks to the harness over its standard input and output.
//
// The process prints "ready" once its context has started (a member has
// joined its group), waits for a "go" line, then runs batches until its
// standard input closes. After every batch it prints
//
//	batch <end, Unix ns> <records> <partitions read, comma-separated, or ->
//
// With IdleStop, once IdleStop batches in a row read nothing after one that
// read records, it runs no more batches and prints "idle", but stays in its
// group (so that its tasks stay where they are) until its standard input
// closes. Then it prints "state <pages in state> <sum of their
// popularities> <records read>" and "done", and exits.
const memberEnv = "SLUICE_BENCH_MEMBER"

// memberSpec is what one scale-out process runs.
type memberSpec struct {
	Brokers []string
	Topic   string
	Group   string
	// Name is the member's name in group mode; empty runs the job in
	// single-process mode, checkpointed in StateDir.
	Name     string
	StateDir string
	Batch    time.Duration
	// Manual runs batches back to back on the manual clock instead of the
	// real clock.
	Manual   bool
	MaxRate  int64 // MaxRatePerPartition; 0 is none
	Session  time.Duration
	IdleStop int
	// LogInfo logs the source's Info lines (tasks assigned, restored) to
	// standard error.
	LogInfo bool
}

// runMember runs the process described by the JSON spec, talking over
// stdin and stdout.
func runMember(spec string, stdin io.Reader, stdout io.Writer) error {
	var ms memberSpec
	if err := json.Unmarshal([]byte(spec), &ms); err != nil {
		return fmt.Errorf("benchmarks: %s holds no member spec: %w", memberEnv, err)
	}
	// runCtx ends the batches: at the end of stdin, or when idle.
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	stdinDone := make(chan struct{})
	var (
		started bool
		idle    int
		keys    int     // pages in state after the last batch
		sum     float64 // their popularities' sum
		total   int64   // records read
	)
	out := bufio.NewWriter(stdout)
	read := map[int32]bool{} // partitions the batch in flight read records of
	opts := []engine.Option{engine.WithJobName("bench-scaleout"), engine.WithListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
		if info.Err != nil {
			return
		}
		parts := "-"
		if len(read) > 0 {
			var ps []string
			for _, p := range slices.Sorted(maps.Keys(read)) {
				ps = append(ps, strconv.Itoa(int(p)))
			}
			parts = strings.Join(ps, ",")
		}
		clear(read)
		total += info.Records
		fmt.Fprintf(out, "batch %d %d %s\n", time.Now().UnixNano(), info.Records, parts)
		_ = out.Flush()
		started = started || info.Records > 0
		if info.Records == 0 && started {
			idle++
		} else {
			idle = 0
		}
		if ms.IdleStop > 0 && idle >= ms.IdleStop {
			stop()
		}
	}})}
	if ms.Manual {
		opts = append(opts, engine.WithManualClock(time.Unix(0, 0)))
	}
	if ms.Name == "" {
		opts = append(opts, engine.WithCheckpoint(ms.StateDir))
	}
	c, err := engine.NewContext(ms.Batch, opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	srcOpts := []kafkasource.Option{
		kafkasource.WithBrokers(ms.Brokers...),
		kafkasource.WithGroup(ms.Group),
		kafkasource.WithResetPolicy(kafkasource.Earliest),
		kafkasource.WithRateLimits(kafkasource.RateLimits{MaxRatePerPartition: ms.MaxRate}),
	}
	if ms.LogInfo {
		srcOpts = append(srcOpts, kafkasource.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	}
	if ms.Name != "" {
		srcOpts = append(srcOpts, kafkasource.AsMember(ms.Name), kafkasource.WithStateDir(ms.StateDir),
			kafkasource.WithMemberOptions(kgo.SessionTimeout(ms.Session), kgo.HeartbeatInterval(ms.Session/10), kgo.RebalanceTimeout(ms.Session)))
	}
	recs, err := kafkasource.NewDirectStream(c, []string{ms.Topic}, srcOpts...)
	if err != nil {
		return err
	}
	// The records are keyed by page: the pairs are keyed like the input.
	pop := dstream.UpdateStateByKey(dstream.CoPartitioned(dstream.FlatMap(recs, behaviorPairs)), accumulate).Name("popularity")
	dstream.ForEachBatchJob(pop, func(_ context.Context, j *engine.Job, b dstream.Batch[dstream.KV[string, float64]]) error {
		for _, r := range kafkasource.OffsetRangesOf(j, recs) {
			if r.Count() > 0 {
				read[r.Partition] = true
			}
		}
		keys, sum = 0, 0
		for kv := range b.All() {
			keys++
			sum += kv.Value
		}
		if math.IsNaN(sum) {
			return errors.New("benchmarks: a popularity is NaN")
		}
		return nil
	})
	if err := c.Start(); err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	_ = out.Flush()

	// "go" starts the batches; the end of stdin stops them.
	goLine := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			if sc.Text() == "go" {
				close(goLine)
			}
		}
		close(stdinDone)
		stop()
	}()
	select {
	case <-goLine:
	case <-runCtx.Done():
		return nil
	}
	if ms.Manual {
		err = c.RunBatches(runCtx, math.MaxInt)
	} else {
		err = c.Run(runCtx)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	select {
	case <-stdinDone:
	default:
		fmt.Fprintln(out, "idle")
		_ = out.Flush()
		<-stdinDone
	}
	fmt.Fprintf(out, "state %d %g %d\ndone\n", keys, sum, total)
	return out.Flush()
}

// memberMain runs this process as a scale-out member when memberEnv is
// set, and reports whether it did.
func memberMain() bool {
	spec, ok := os.LookupEnv(memberEnv)
	if !ok {
		return false
	}
	if err := runMember(spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return true
}
