package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Units of results.
const (
	unitRate  = "records/s"
	unitMS    = "ms"
	unitBatch = "ms/batch"
	unitTimes = "×"
	unitBytes = "bytes/record"
)

// result is one row of the table: a figure of Sluice, the baseline it is
// compared with, their ratio, and the target it is held to.
type result struct {
	Workload string `json:"workload"`
	Figure   string `json:"figure"`
	// Label is the figure's short name, for the chart.
	Label        string   `json:"label"`
	Unit         string   `json:"unit"`
	Sluice       float64  `json:"sluice"`
	Baseline     *float64 `json:"baseline,omitempty"`
	BaselineName string   `json:"baseline_name,omitempty"`
	// Ratio is Sluice ÷ baseline.
	Ratio *float64 `json:"ratio,omitempty"`
	// Better says which way Sluice's figure is better: "higher" or "lower".
	Better string `json:"better"`
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`

	goalRatio float64 // the ratio a "≥ x×" target asks for, for the chart
}

func (r *result) goal(target string, met bool) {
	r.Target, r.Met = target, &met
}

// ratioGoal sets a target of a ratio of at least least.
func (r *result) ratioGoal(target string, least float64) {
	r.goal(target, *r.Ratio >= least)
	r.goalRatio = least
}

// against sets the baseline r is compared with, named name, and the ratio
// of r's figure to it.
func (r *result) against(baseline float64, name string) {
	r.Baseline, r.BaselineName, r.Ratio = ptr(baseline), name, ptr(r.Sluice/baseline)
}

func ptr[T any](v T) *T { return &v }

// throughput is a records/s row of Sluice against a baseline.
func (h *harness) throughput(workload, label, figure string, sluice, baseline float64, baselineName string) result {
	r := result{Workload: workload, Label: label, Figure: figure, Unit: unitRate, Sluice: sluice, Better: "higher"}
	r.against(baseline, baselineName)
	return r
}

// speedup is a row of Sluice's speed-up against the baseline's.
func (h *harness) speedup(label, figure string, sluice, baseline float64, baselineName string) result {
	r := result{Workload: "scaling", Label: label, Figure: figure, Unit: unitTimes, Sluice: sluice, Better: "higher"}
	r.against(baseline, baselineName)
	return r
}

func (h *harness) add(r result) {
	h.results = append(h.results, r)
	line := fmt.Sprintf("%s: %s", r.Figure, fmtValue(r.Sluice, r.Unit))
	if r.Baseline != nil {
		line += fmt.Sprintf(" vs %s %s (%.2f×)", r.BaselineName, fmtValue(*r.Baseline, r.Unit), *r.Ratio)
	}
	if r.Met != nil {
		line += fmt.Sprintf(", target %s %s", r.Target, metText(*r.Met))
	}
	h.logf("%s", line)
}

// report is what a run writes: the machine, the settings and the figures.
type report struct {
	Generated time.Time `json:"generated"`
	Command   string    `json:"command"`
	Machine   machine   `json:"machine"`
	Settings  settings  `json:"settings"`
	// ProduceRate is the rate the producer loaded the pass-through input
	// at, alone; SustainableRate estimates what the machine sustains
	// producing and reading with Sluice at once, 1/(1/produce + 1/read).
	ProduceRate     float64            `json:"produce_rate,omitempty"`
	SluicePassRate  float64            `json:"sluice_pass_rate,omitempty"`
	SustainableRate float64            `json:"sustainable_rate,omitempty"`
	Results         []result           `json:"results"`
	Latency         []latencyResult    `json:"latency,omitempty"`
	Checkpoint      []checkpointResult `json:"checkpoint,omitempty"`
	BatchCost       []batchCostResult  `json:"batch_cost,omitempty"`
	// Skipped names what could not be measured on this machine and how to
	// make it measurable.
	Skipped []string `json:"skipped,omitempty"`
}

type machine struct {
	NumCPU       int    `json:"num_cpu"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	CPUModel     string `json:"cpu_model"`
	GoVersion    string `json:"go_version"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	LoadAvgStart string `json:"load_avg_start"`
	LoadAvgEnd   string `json:"load_avg_end"`
	// LoadAvgAfter is the load average at the end of each workload: other
	// work on the machine shares its cores with the run.
	LoadAvgAfter map[string]string `json:"load_avg_after"`
	Commit       string            `json:"commit,omitempty"`
}

type settings struct {
	Workloads        []string `json:"workloads"`
	Records          int      `json:"records"`
	Lines            int      `json:"lines"`
	WordsPerLine     int      `json:"words_per_line"`
	Vocabulary       int      `json:"vocabulary"`
	Behaviors        int      `json:"behaviors"`
	Pages            int      `json:"pages"`
	Partitions       int      `json:"partitions"`
	Parallelism      int      `json:"parallelism"`
	BatchMS          int64    `json:"batch_ms"`
	Batches          int      `json:"batches"`
	Checkpoint       string   `json:"checkpoint"`
	Repeat           int      `json:"repeat"`
	EmptyBatches     int      `json:"empty_batches"`
	LatencyBatchesMS []int64  `json:"latency_batches_ms"`
	StateSizes       []int    `json:"state_sizes"`
	CheckpointRounds int      `json:"checkpoint_batches"`
	CostBatches      []int    `json:"cost_batches"`
	SinkBatches      int      `json:"sink_batches"`
	SQLiteBatches    int      `json:"sqlite_sink_batches"`
	KafkaSinkBatches int      `json:"kafka_sink_batches"`
	SinkRecords      int      `json:"sink_records"`
	SQLRows          int      `json:"sql_rows"`
	ScaleoutRecords  int      `json:"scaleout_records"`
	ScaleoutLines    int      `json:"scaleout_lines"`
	Quick            bool     `json:"quick"`
}

func (h *harness) report() *report {
	h.loadAvg[1] = loadAverage()
	cfg := h.cfg
	lat := make([]int64, len(cfg.latencyBatches))
	for i, d := range cfg.latencyBatches {
		lat[i] = d.Milliseconds()
	}
	rep := &report{
		Generated: time.Now().UTC().Round(time.Second),
		Command:   strings.Join(append([]string{"go run ./benchmarks"}, os.Args[1:]...), " "),
		Machine: machine{
			NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: cpuModel(),
			GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
			LoadAvgStart: h.loadAvg[0], LoadAvgEnd: h.loadAvg[1], LoadAvgAfter: h.loadAfter, Commit: gitCommit(),
		},
		Settings: settings{
			Workloads: cfg.workloads, Records: cfg.records, Lines: cfg.lines, WordsPerLine: wordsPerLine,
			Vocabulary: vocabularySize, Behaviors: cfg.behaviors, Pages: pageCount, Partitions: cfg.partitions,
			Parallelism: cfg.parallelism, BatchMS: cfg.batch.Milliseconds(), Batches: cfg.batches,
			Checkpoint: cfg.checkpoint, Repeat: cfg.repeat, EmptyBatches: cfg.emptyBatches,
			LatencyBatchesMS: lat, StateSizes: cfg.stateSizes, CheckpointRounds: cfg.checkpointRounds, CostBatches: cfg.costBatches,
			SinkBatches: cfg.sinkBatches, SQLiteBatches: cfg.sqliteBatches, KafkaSinkBatches: cfg.kafkaBatches, SinkRecords: cfg.sinkRecords, SQLRows: cfg.sqlRows,
			ScaleoutRecords: cfg.scaleRecords, ScaleoutLines: cfg.scaleLines, Quick: cfg.quick,
		},
		ProduceRate:    h.produceRate,
		SluicePassRate: h.passRate,
		Results:        h.results,
		Latency:        h.latencies,
		Checkpoint:     h.checkpoints,
		BatchCost:      h.batchCosts,
		Skipped:        h.skipped,
	}
	if h.produceRate > 0 && h.passRate > 0 {
		rep.SustainableRate = sustainable(h.produceRate, h.passRate)
	}
	return rep
}

// check refuses a report with a figure that is not a positive finite
// number: a measurement went wrong.
func (r *report) check() error {
	bad := func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) || x < 0 }
	for _, res := range r.Results {
		if bad(res.Sluice) || (res.Baseline != nil && bad(*res.Baseline)) || (res.Ratio != nil && (bad(*res.Ratio) || *res.Ratio == 0)) {
			return fmt.Errorf("benchmarks: %s has a bad figure (sluice %v, baseline %v, ratio %v)", res.Figure, res.Sluice, deref(res.Baseline), deref(res.Ratio))
		}
	}
	return nil
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func (r *report) json(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// markdown renders the machine line and the table.
func (r *report) markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), GOMAXPROCS %d, %s %s/%s; load average %s at start, %s at end.\n\n",
		m.NumCPU, m.CPUModel, m.GOMAXPROCS, m.GoVersion, m.OS, m.Arch, m.LoadAvgStart, m.LoadAvgEnd)
	b.WriteString("| Figure | Sluice | Baseline | Ratio | Target |\n")
	b.WriteString("|---|---:|---|---:|---|\n")
	for _, res := range r.Results {
		base, ratio := "—", "—"
		if res.Baseline != nil {
			base = fmt.Sprintf("%s (%s)", fmtValue(*res.Baseline, res.Unit), res.BaselineName)
			ratio = fmt.Sprintf("%.2f×", *res.Ratio)
		}
		target := "—"
		if res.Met != nil {
			target = res.Target + ": " + metText(*res.Met)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", res.Figure, fmtValue(res.Sluice, res.Unit), base, ratio, target)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "\nSkipped: %s\n", s)
	}
	return b.String()
}

func metText(met bool) string {
	if met {
		return "met"
	}
	return "**missed**"
}

// fmtValue formats a figure with its unit: rates in M or k records/s,
// durations in ms with three significant digits.
func fmtValue(v float64, unit string) string {
	switch unit {
	case unitRate:
		if v >= 1e6 {
			return fmt.Sprintf("%.2f M rec/s", v/1e6)
		}
		return fmt.Sprintf("%.0f k rec/s", v/1e3)
	case unitTimes:
		return fmt.Sprintf("%.2f×", v)
	case unitBytes:
		return fmt.Sprintf("%.1f B/record", v)
	case unitMS, unitBatch:
		suffix := " ms"
		if unit == unitBatch {
			suffix = " ms/batch"
		}
		switch {
		case v >= 100:
			return fmt.Sprintf("%.0f%s", v, suffix)
		case v >= 10:
			return fmt.Sprintf("%.1f%s", v, suffix)
		}
		return fmt.Sprintf("%.3f%s", v, suffix)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

func fmtRate(v float64) string { return fmtValue(v, unitRate) }

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// gitCommit returns the short commit the tree is at, marked "+dirty" when
// tracked files changed, or "" outside a git work tree.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}

// sustainable estimates the rate a machine sustains producing and reading
// at once when each alone runs at produce and read records/s on the same
// cores.
func sustainable(produce, read float64) float64 { return 1 / (1/produce + 1/read) }
