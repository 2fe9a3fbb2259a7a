package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// The scale-out workloads run their jobs as processes of their own: the
// benchmarks binary started again with memberEnv set to a memberSpec runs
// one member of a group-mode job (or the same job in single-process mode)
// and talks to the harness over its standard input and output.
//
// The process prints "ready" once its context has started (a member has
// joined its group), waits for a "go" line, then runs batches until its
// standard input closes. After every batch it prints
//
//	batch <end, Unix ns> <records> <partitions read, comma-separated, or -> <output>
//
// where output is what the batch's output added up (the word count: the
// words it counted; page popularity: 0).
//
// With IdleStop, once IdleStop batches in a row read nothing after one that
// read records, it runs no more batches and prints "idle", but stays in its
// group (so that its tasks stay where they are) until its standard input
// closes. With WaitIdle, a batch that read nothing and output nothing is
// followed by the next one only once a "poke" line has come that it has
// not acted on yet (the harness pokes a member when another one has
// committed a batch that read records, whose repartition records it may
// read), or once the standard input closes. Then it prints a "metric <name>
// <value>" line for each kafka_repartition_* metric of its Kafka source,
// "timing <what the batches that read or output something spent their time
// on>", "state <keys in state or output> <their sum> <records read> <fingerprint>"
// and "done", and exits. The fingerprint of the word count is the sum of
// fnv64a(word) × count over its counts (mod 2⁶⁴), which adds up across
// members however the words were split among them; page popularity's is 0.
const memberEnv = "SLUICE_BENCH_MEMBER"

// memberSpec is what one scale-out process runs.
type memberSpec struct {
	Brokers []string
	Topic   string
	Group   string
	// Job is the job the process runs: jobPagePop (the default) or
	// jobWordCount.
	Job string
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
	// WaitIdle waits for a poke after a batch that read and output
	// nothing (see memberEnv).
	WaitIdle bool
	// LogInfo logs the source's Info lines (tasks assigned, restored) to
	// standard error.
	LogInfo bool
	// CPUProfile and Trace, when set, are the files the process writes a
	// CPU profile and an execution trace of its batches to, from "go" to
	// the end of its standard input.
	CPUProfile, Trace string
}

// Jobs a scale-out process runs.
const (
	// jobPagePop is page popularity over records keyed by page
	// (dstream.CoPartitioned, no repartition).
	jobPagePop = "pagepop"
	// jobWordCount is the word count of lines, re-keyed by word: in group
	// mode its pairs, the stream named wordsExchange, go through the
	// repartition topic.
	jobWordCount = "wordcount"
)

// wordsExchange names the word count's re-keyed stream, and so its
// exchange: its repartition topic is <group>-words-repartition.
const wordsExchange = "words"

// runMember runs the process described by the JSON spec, talking over
// stdin and stdout.
func runMember(spec string, stdin io.Reader, stdout io.Writer) error {
	var ms memberSpec
	if err := json.Unmarshal([]byte(spec), &ms); err != nil {
		return fmt.Errorf("benchmarks: %s holds no member spec: %w", memberEnv, err)
	}
	if ms.Job == "" {
		ms.Job = jobPagePop
	}
	// runCtx ends the batches: at the end of stdin, or when idle.
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	stdinDone := make(chan struct{})
	pokes := make(chan struct{}, 1) // holds a poke not acted on yet
	var (
		started bool
		idle    int
		keys    int     // pages in state after the last batch, or words counted
		sum     float64 // their popularities' sum, or the words' count
		print   uint64  // the word count's fingerprint
		total   int64   // records read
		output  int64   // what the batch's output added up
		busy    timing  // the batches that read or output something
		pause   = func() {}
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
		fmt.Fprintf(out, "batch %d %d %s %d\n", time.Now().UnixNano(), info.Records, parts, output)
		_ = out.Flush()
		quiet := info.Records == 0 && output == 0
		output = 0
		started = started || info.Records > 0
		if info.Records == 0 && started {
			idle++
		} else {
			idle = 0
		}
		if ms.IdleStop > 0 && idle >= ms.IdleStop {
			stop()
		}
		if !quiet {
			busy.add(info)
		}
		if ms.WaitIdle && quiet {
			// Nothing more to do until another member commits what this
			// one may read: stop the batches until a poke.
			pause()
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
	noteRead := func(j *engine.Job) {
		for _, r := range kafkasource.OffsetRangesOf(j, recs) {
			if r.Count() > 0 {
				read[r.Partition] = true
			}
		}
	}
	switch ms.Job {
	case jobPagePop:
		// The records are keyed by page: the pairs are keyed like the input.
		pop := dstream.UpdateStateByKey(dstream.CoPartitioned(dstream.FlatMap(recs, behaviorPairs)), accumulate).Name("popularity")
		dstream.ForEachBatchJob(pop, func(_ context.Context, j *engine.Job, b dstream.Batch[dstream.KV[string, float64]]) error {
			noteRead(j)
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
	case jobWordCount:
		// The lines are not keyed by word: in group mode the pairs go
		// through the repartition topic to the task that owns their word.
		counts := dstream.ReduceByKey(wordPairs(recs).Name(wordsExchange), add).Name("counts")
		seen := map[string]bool{}
		dstream.ForEachBatchJob(counts, func(_ context.Context, j *engine.Job, b dstream.Batch[dstream.KV[string, int64]]) error {
			noteRead(j)
			var n int64
			for kv := range b.All() {
				if !seen[kv.Key] {
					seen[kv.Key] = true
					keys++
				}
				n += kv.Value
				print += wordPrint(kv.Key, kv.Value)
			}
			output += n
			sum += float64(n)
			return nil
		})
	default:
		return fmt.Errorf("benchmarks: member spec names job %q; pick %s or %s", ms.Job, jobPagePop, jobWordCount)
	}
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
			switch sc.Text() {
			case "go":
				close(goLine)
			case "poke":
				select {
				case pokes <- struct{}{}:
				default: // one not acted on yet is enough
				}
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
	if ms.CPUProfile != "" {
		f, err := os.Create(ms.CPUProfile)
		if err != nil {
			return fmt.Errorf("benchmarks: create the member's CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("benchmarks: start the member's CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if ms.Trace != "" {
		f, err := os.Create(ms.Trace)
		if err != nil {
			return fmt.Errorf("benchmarks: create the member's execution trace: %w", err)
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return fmt.Errorf("benchmarks: start the member's execution trace: %w", err)
		}
		defer trace.Stop()
	}
	if ms.Manual {
		for {
			var batchCtx context.Context
			batchCtx, pause = context.WithCancel(runCtx)
			err = c.RunBatches(batchCtx, math.MaxInt)
			pause()
			if !errors.Is(err, context.Canceled) || runCtx.Err() != nil {
				break
			}
			select { // paused: run again after a poke
			case <-pokes:
				continue
			case <-runCtx.Done():
			}
			break
		}
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
	for _, m := range repartitionMetrics(c) {
		fmt.Fprintf(out, "metric %s %g\n", m.Name, m.Value)
	}
	fmt.Fprintf(out, "timing %s\n", busy)
	fmt.Fprintf(out, "state %d %g %d %d\ndone\n", keys, sum, total, print)
	return out.Flush()
}

// timing sums what batches spent their time on (see engine.BatchInfo).
type timing struct {
	batches                                  int
	processing, planning, reading, computing time.Duration
	output                                   time.Duration
}

func (t *timing) add(info engine.BatchInfo) {
	t.batches++
	t.processing += info.ProcessingDelay
	t.planning += info.PlanningDelay
	t.reading += info.ReadingDelay
	t.computing += info.ComputingDelay
	t.output += info.OutputDelay
}

// String is the sums and the batches' mean processing time.
func (t timing) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	mean := time.Duration(0)
	if t.batches > 0 {
		mean = t.processing / time.Duration(t.batches)
	}
	return fmt.Sprintf("%d batches, %v processing (%v a batch): planning %v, reading %v, computing %v, outputs %v",
		t.batches, r(t.processing), mean.Round(100*time.Microsecond), r(t.planning), r(t.reading), r(t.computing), r(t.output))
}

// repartitionMetrics returns the kafka_repartition_* counters of c's
// nodes, each summed over its labels.
func repartitionMetrics(c *engine.Context) []engine.Metric {
	sums := map[string]float64{}
	for _, n := range c.Nodes() {
		r, ok := n.(engine.MetricsReporter)
		if !ok {
			continue
		}
		for _, m := range r.Metrics() {
			if strings.HasPrefix(m.Name, "kafka_repartition_") && m.Kind == engine.CounterMetric {
				sums[m.Name] += m.Value
			}
		}
	}
	var ms []engine.Metric
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		ms = append(ms, engine.Metric{Name: name, Kind: engine.CounterMetric, Value: sums[name]})
	}
	return ms
}

// wordPrint is a word count's share of the fingerprint of the counts:
// fnv64a(word) × count.
func wordPrint(word string, count int64) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, word)
	return h.Sum64() * uint64(count)
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
