package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"time"
)

// workloads lists every workload in the order the harness runs them.
var workloads = []string{"pass", "wordcount", "batchcost", "window", "pagepop", "overhead", "latency", "checkpoint", "scaling", "sinks", "scaleout", "wordcount-scaleout"}

// config is what one run measures and where it writes.
type config struct {
	workloads   []string // subset of workloads, in run order
	records     int      // records of the pass-through input
	lines       int      // lines of the word count input
	largeLines  int      // lines of the batchcost workload's large word count; 0 skips it
	behaviors   int      // records of the page popularity input
	partitions  int      // partitions of every input topic
	parallelism int      // Sluice's parallelism for the main figures
	batch       time.Duration
	batches     int    // batches each throughput input is cut into; 0 reads it in one
	checkpoint  string // "off", "on" or "both"
	repeat      int    // runs of each throughput pair; the median is reported

	emptyBatches     int
	latencyBatches   []time.Duration
	latencyRate      float64 // records/s; 0 means half the sustainable rate
	latencyDuration  time.Duration
	stateSizes       []int
	checkpointRounds int
	costBatches      []int // batch counts of the batchcost sweep
	sinkBatches      int   // batches of the PostgreSQL sinks
	sqliteBatches    int   // batches of the SQLite sinks
	kafkaBatches     int   // batches of the Kafka sinks
	sinkRecords      int   // records per batch of the Kafka sinks
	sqlRows          int   // rows per batch of the SQL sinks

	scaleRecords    int           // records of the scaleout workload's keyed input
	failoverKeys    int           // distinct keys per task of the failover run
	failoverTasks   int           // tasks (partitions) of the failover run
	failoverSession time.Duration // the members' session timeout in the failover run
	failoverBatch   time.Duration // batch interval of the failover run
	scaleLines      int           // lines of the wordcount-scaleout workload's input

	dir        string // scratch dir for checkpoints; "" means a temp dir
	out        string // JSON file
	chart      string // SVG file
	cpuprofile string
	trace      string
	quick      bool
}

func (c *config) has(w string) bool { return slices.Contains(c.workloads, w) }

// checkpointModes returns the checkpoint settings to run: false (off) and/or
// true (on).
func (c *config) checkpointModes() []bool {
	switch c.checkpoint {
	case "off":
		return []bool{false}
	case "on":
		return []bool{true}
	}
	return []bool{false, true}
}

// sweep returns the batch counts of the batchcost workload: -cost-batches
// and -batches, in increasing order, each once.
func (c *config) sweep() []int {
	counts := slices.Clone(c.costBatches)
	if c.batches > 0 {
		counts = append(counts, c.batches)
	}
	slices.Sort(counts)
	return slices.Compact(counts)
}

// errUsage marks a bad flag value.
var errUsage = errors.New("benchmarks: bad flag")

// parseFlags reads the command line into a config. Defaults are the full
// run; -quick shrinks every size that the caller did not set.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("benchmarks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       config
		wl        string
		latencies string
		sizes     string
		costs     string
	)
	fs.StringVar(&wl, "workloads", "all", "comma-separated workloads to run: all or "+strings.Join(workloads, ","))
	fs.IntVar(&cfg.records, "records", 5_000_000, "records of the pass-through input (-quick: 1,000,000)")
	fs.IntVar(&cfg.lines, "lines", 1_000_000, "lines of 8 words of the word count input (-quick: 200,000)")
	fs.IntVar(&cfg.largeLines, "large-lines", 5_000_000, "lines of the batchcost workload's second durable word count, in -batches batches beside the plain loop over the same lines; 0 skips it (-quick: 0)")
	fs.IntVar(&cfg.behaviors, "behaviors", 1_000_000, "pageID|clicks|stay|like records of the page popularity input (-quick: 200,000)")
	fs.IntVar(&cfg.partitions, "partitions", 8, "partitions of every input topic")
	fs.IntVar(&cfg.parallelism, "parallelism", runtime.GOMAXPROCS(0), "Sluice's parallelism for the main figures")
	fs.DurationVar(&cfg.batch, "batch", time.Second, "batch interval of the throughput workloads")
	fs.IntVar(&cfg.batches, "batches", 20, "batches each throughput input is cut into (MaxRatePerPartition × batch seconds = its share); 0 = uncapped")
	fs.StringVar(&cfg.checkpoint, "checkpoint", "both", "checkpoints of the window, pagepop and overhead workloads: off, on or both; latency runs checkpointed unless off")
	fs.IntVar(&cfg.repeat, "repeat", 3, "runs of each throughput pair, alternating; the median is reported (-quick: 1)")
	fs.IntVar(&cfg.emptyBatches, "empty-batches", 200, "empty batches timed per setting (-quick: 50)")
	fs.StringVar(&latencies, "latency-batches", "100ms,1s", "batch intervals of the latency runs")
	fs.Float64Var(&cfg.latencyRate, "latency-rate", 0, "input rate of the latency runs in records/s; 0 = half the sustainable rate measured in this run")
	fs.DurationVar(&cfg.latencyDuration, "latency-duration", 0, "how long each latency run produces; 0 = 50 batches within 10–30 s (-quick: 20 batches within 3–6 s)")
	fs.StringVar(&sizes, "state-sizes", "1000,10000,100000,1000000", "keys in state of the checkpoint workload (-quick: up to 100,000)")
	fs.IntVar(&cfg.checkpointRounds, "checkpoint-batches", 30, "batches timed per state size (-quick: 10)")
	fs.StringVar(&costs, "cost-batches", "10,30,100,300,1000", "batch counts the batchcost workload cuts the word count lines into (-quick: 10,30,100,300); -batches is added")
	fs.IntVar(&cfg.sinkBatches, "sink-batches", 20, "batches each PostgreSQL sink writes, each side of a comparison in turn (-quick: 5)")
	fs.IntVar(&cfg.sqliteBatches, "sqlite-sink-batches", 100, "batches each SQLite sink writes, each side of a comparison in turn (-quick: 5)")
	fs.IntVar(&cfg.kafkaBatches, "kafka-sink-batches", 200, "batches each Kafka sink writes, each side of a comparison in turn (-quick: 20)")
	fs.IntVar(&cfg.sinkRecords, "sink-records", 5000, "records per batch of the Kafka sinks (-quick: 2,000)")
	fs.IntVar(&cfg.sqlRows, "sql-rows", 2000, "upserts per batch of the SQL sinks (-quick: 1,000)")
	fs.IntVar(&cfg.scaleRecords, "scaleout-records", 4_000_000, "pageID|clicks|stay|like records keyed by page that the scaleout workload's members read (-quick: 400,000)")
	fs.IntVar(&cfg.failoverKeys, "failover-keys", 100_000, "distinct keys in state per task when the scaleout workload kills a member (-quick: 20,000)")
	fs.IntVar(&cfg.failoverTasks, "failover-tasks", 4, "tasks (partitions) of the scaleout workload's failover run, split between two members")
	fs.DurationVar(&cfg.failoverSession, "failover-session-timeout", 6*time.Second, "session timeout of the members of the scaleout workload's failover run: how long the group waits for a killed member")
	fs.DurationVar(&cfg.failoverBatch, "failover-batch", 200*time.Millisecond, "batch interval of the scaleout workload's failover run, on the real clock")
	fs.IntVar(&cfg.scaleLines, "scaleout-lines", 1_000_000, "lines of 8 words that the wordcount-scaleout workload's members count, re-keyed by word (-quick: 200,000)")
	fs.StringVar(&cfg.dir, "dir", "", "scratch dir for checkpoints (default: a new temp dir, removed afterwards)")
	fs.StringVar(&cfg.out, "out", "", "JSON results file (default results/latest.json, -quick: results/quick.json, beside this command)")
	fs.StringVar(&cfg.chart, "chart", "", "SVG chart file (default: the JSON file's name with .svg)")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured workloads (input loading excluded) to this file; the scale-out workloads' processes write theirs beside it, named <file>.<group>-<member>")
	fs.StringVar(&cfg.trace, "trace", "", "write an execution trace (runtime/trace) of the measured workloads to this file; read it with go tool trace; the scale-out workloads' processes write theirs beside it, named <file>.<group>-<member>")
	fs.BoolVar(&cfg.quick, "quick", false, "small sizes: a run under a minute")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.quick {
		quickDefaults := map[string]func(){
			"records":             func() { cfg.records = 1_000_000 },
			"lines":               func() { cfg.lines = 200_000 },
			"behaviors":           func() { cfg.behaviors = 200_000 },
			"large-lines":         func() { cfg.largeLines = 0 },
			"repeat":              func() { cfg.repeat = 1 },
			"empty-batches":       func() { cfg.emptyBatches = 50 },
			"state-sizes":         func() { sizes = "1000,10000,100000" },
			"checkpoint-batches":  func() { cfg.checkpointRounds = 10 },
			"cost-batches":        func() { costs = "10,30,100,300" },
			"sink-batches":        func() { cfg.sinkBatches = 5 },
			"kafka-sink-batches":  func() { cfg.kafkaBatches = 20 },
			"sqlite-sink-batches": func() { cfg.sqliteBatches = 5 },
			"sink-records":        func() { cfg.sinkRecords = 2000 },
			"sql-rows":            func() { cfg.sqlRows = 1000 },
			"failover-keys":       func() { cfg.failoverKeys = 20_000 },
			"scaleout-records":    func() { cfg.scaleRecords = 400_000 },
			"scaleout-lines":      func() { cfg.scaleLines = 200_000 },
		}
		for name, f := range quickDefaults {
			if !set[name] {
				f()
			}
		}
	}
	if wl == "all" {
		cfg.workloads = workloads
	} else {
		for _, w := range strings.Split(wl, ",") {
			w = strings.TrimSpace(w)
			if !slices.Contains(workloads, w) {
				return config{}, fmt.Errorf("%w: -workloads names %q; pick from all,%s", errUsage, w, strings.Join(workloads, ","))
			}
		}
		for _, w := range workloads {
			if slices.Contains(strings.Split(wl, ","), w) {
				cfg.workloads = append(cfg.workloads, w)
			}
		}
	}
	var err error
	if cfg.latencyBatches, err = parseList(latencies, time.ParseDuration); err != nil {
		return config{}, fmt.Errorf("%w: -latency-batches: %v; pass durations such as 100ms,1s", errUsage, err)
	}
	if cfg.stateSizes, err = parseList(sizes, strconv.Atoi); err != nil {
		return config{}, fmt.Errorf("%w: -state-sizes: %v; pass key counts such as 1000,1000000", errUsage, err)
	}
	if cfg.costBatches, err = parseList(costs, strconv.Atoi); err != nil {
		return config{}, fmt.Errorf("%w: -cost-batches: %v; pass batch counts such as 10,100,1000", errUsage, err)
	}
	if cfg.out == "" {
		name := "latest.json"
		if cfg.quick {
			name = "quick.json"
		}
		cfg.out = filepath.Join(resultsDir(), name)
	}
	if cfg.chart == "" {
		cfg.chart = strings.TrimSuffix(cfg.out, filepath.Ext(cfg.out)) + ".svg"
	}
	return cfg, cfg.validate()
}

func (c *config) validate() error {
	switch {
	case c.records < 1 || c.lines < 1 || c.behaviors < 1:
		return fmt.Errorf("%w: -records, -lines and -behaviors must be at least 1", errUsage)
	case c.largeLines < 0:
		return fmt.Errorf("%w: -large-lines %d; pass 0 (skip) or more", errUsage, c.largeLines)
	case c.partitions < 1:
		return fmt.Errorf("%w: -partitions %d; pass 1 or more", errUsage, c.partitions)
	case c.parallelism < 1:
		return fmt.Errorf("%w: -parallelism %d; pass 1 or more", errUsage, c.parallelism)
	case c.batch <= 0:
		return fmt.Errorf("%w: -batch %v; pass a positive duration", errUsage, c.batch)
	case c.batches < 0:
		return fmt.Errorf("%w: -batches %d; pass 0 (uncapped) or more", errUsage, c.batches)
	case c.checkpoint != "off" && c.checkpoint != "on" && c.checkpoint != "both":
		return fmt.Errorf("%w: -checkpoint %q; pass off, on or both", errUsage, c.checkpoint)
	case c.repeat < 1:
		return fmt.Errorf("%w: -repeat %d; pass 1 or more", errUsage, c.repeat)
	case c.emptyBatches < 1 || c.checkpointRounds < 1:
		return fmt.Errorf("%w: -empty-batches and -checkpoint-batches must be at least 1", errUsage)
	case c.sinkBatches < 1 || c.sqliteBatches < 1 || c.kafkaBatches < 1 || c.sinkRecords < 1 || c.sqlRows < 1:
		return fmt.Errorf("%w: -sink-batches, -sqlite-sink-batches, -kafka-sink-batches, -sink-records and -sql-rows must be at least 1", errUsage)
	case c.scaleRecords < 1 || c.scaleLines < 1:
		return fmt.Errorf("%w: -scaleout-records and -scaleout-lines must be at least 1", errUsage)
	case c.failoverKeys < 1 || c.failoverTasks < 2:
		return fmt.Errorf("%w: -failover-keys must be at least 1 and -failover-tasks at least 2 (one for each member)", errUsage)
	case c.failoverSession < 100*time.Millisecond || c.failoverBatch <= 0:
		return fmt.Errorf("%w: -failover-session-timeout must be at least 100ms and -failover-batch positive", errUsage)
	case c.latencyRate < 0 || c.latencyDuration < 0:
		return fmt.Errorf("%w: -latency-rate and -latency-duration must not be negative", errUsage)
	}
	for _, d := range c.latencyBatches {
		if d <= 0 {
			return fmt.Errorf("%w: -latency-batches has %v; pass positive durations", errUsage, d)
		}
	}
	if len(c.sweep()) < 2 {
		return fmt.Errorf("%w: -cost-batches needs two batch counts or more to fit a line; pass e.g. 10,100,1000", errUsage)
	}
	for _, n := range c.costBatches {
		if n < 1 {
			return fmt.Errorf("%w: -cost-batches has %d; pass batch counts of 1 or more", errUsage, n)
		}
	}
	for _, n := range c.stateSizes {
		if n < 1 {
			return fmt.Errorf("%w: -state-sizes has %d; pass key counts of 1 or more", errUsage, n)
		}
	}
	return nil
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// resultsDir is benchmarks/results from the module root (where `go run
// ./benchmarks` runs), or results from inside benchmarks/.
func resultsDir() string {
	if _, err := os.Stat("go.mod"); err == nil {
		return filepath.Join("benchmarks", "results")
	}
	return "results"
}

func main() {
	if memberMain() {
		return
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run measures the workloads of cfg, prints the table to stdout, progress
// to progress, and writes the JSON and the chart.
func run(ctx context.Context, cfg config, stdout, progress io.Writer) (err error) {
	h, err := newHarness(cfg, progress)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, h.close()) }()
	if err := h.load(ctx); err != nil {
		return err
	}
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return fmt.Errorf("benchmarks: create the CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("benchmarks: start the CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.trace != "" {
		f, err := os.Create(cfg.trace)
		if err != nil {
			return fmt.Errorf("benchmarks: create the execution trace: %w", err)
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return fmt.Errorf("benchmarks: start the execution trace: %w", err)
		}
		defer trace.Stop()
	}
	steps := map[string]func(context.Context) error{
		"pass":               h.pass,
		"wordcount":          h.wordCount,
		"batchcost":          h.batchCost,
		"window":             h.window,
		"pagepop":            h.pagePopularity,
		"overhead":           h.overhead,
		"latency":            h.latency,
		"checkpoint":         h.checkpointCost,
		"scaling":            h.scaling,
		"sinks":              h.sinks,
		"scaleout":           h.scaleOut,
		"wordcount-scaleout": h.wordCountScaleOut,
	}
	for _, w := range cfg.workloads {
		start := time.Now()
		h.logf("== %s", w)
		if err := steps[w](ctx); err != nil {
			return fmt.Errorf("benchmarks: workload %s: %w", w, err)
		}
		h.loadAfter[w] = loadAverage()
		h.logf("== %s done in %v, load average %s", w, time.Since(start).Round(time.Millisecond), h.loadAfter[w])
	}
	rep := h.report()
	if err := rep.check(); err != nil {
		return err
	}
	if _, err := io.WriteString(stdout, rep.markdown()); err != nil {
		return err
	}
	if err := writeFile(cfg.out, rep.json); err != nil {
		return err
	}
	if err := writeFile(cfg.chart, func(w io.Writer) error { return rep.svg(w) }); err != nil {
		return err
	}
	h.logf("wrote %s and %s", cfg.out, cfg.chart)
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("benchmarks: create the dir of %s: %w", path, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("benchmarks: create %s: %w", path, err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("benchmarks: write %s: %w", path, err)
	}
	return f.Close()
}
