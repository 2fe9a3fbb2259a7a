package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tinyConfig is the harness at a size that runs in seconds: every workload,
// one latency run of 1 s batches.
func tinyConfig(t *testing.T) config {
	dir := t.TempDir()
	cfg, err := parseFlags([]string{
		"-records", "20000", "-lines", "4000", "-large-lines", "8000", "-behaviors", "4000", "-batches", "4", "-repeat", "1",
		"-empty-batches", "10", "-latency-batches", "1s", "-latency-duration", "2500ms", "-latency-rate", "2000",
		"-state-sizes", "100,1000", "-checkpoint-batches", "3", "-cost-batches", "2,50",
		"-state-sizes", "100,1000", "-checkpoint-batches", "3",
		"-sink-batches", "2", "-kafka-sink-batches", "2", "-sqlite-sink-batches", "2", "-sink-records", "200", "-sql-rows", "100",
		"-scaleout-records", "4000", "-scaleout-lines", "2000", "-failover-keys", "2000", "-failover-session-timeout", "500ms", "-failover-batch", "100ms",
		"-dir", filepath.Join(dir, "scratch"), "-out", filepath.Join(dir, "out.json"),
	}, io.Discard)
	require.NoError(t, err)
	return cfg
}

// TestMain runs the test binary as a member of the scaleout workload when
// the workload starts it as one.
func TestMain(m *testing.M) {
	if memberMain() {
		return
	}
	os.Exit(m.Run())
}

func TestHarnessTinyRun(t *testing.T) {
	cfg := tinyConfig(t)
	var stdout, progress bytes.Buffer
	require.NoError(t, run(t.Context(), cfg, &stdout, &progress), "progress:\n%s", progress.String())

	b, err := os.ReadFile(cfg.out)
	require.NoError(t, err)
	var rep report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Equal(t, workloads, rep.Settings.Workloads)
	require.Positive(t, rep.Machine.NumCPU)
	require.NotEmpty(t, rep.Machine.GoVersion)

	table := stdout.String()
	require.Contains(t, table, "| Figure | Sluice | Baseline | Ratio | Target |")
	rows := strings.Count(table, "\n| ") - 1 // less the header
	require.Equal(t, len(rep.Results), rows, "one table row per result")

	seen := map[string]bool{}
	targets := 0
	for _, r := range rep.Results {
		seen[r.Workload] = true
		require.True(t, finite(r.Sluice) && r.Sluice > 0, "%s: sluice %v", r.Figure, r.Sluice)
		require.Contains(t, table, "| "+r.Figure+" |")
		if r.Baseline != nil {
			require.True(t, finite(*r.Baseline) && *r.Baseline > 0, "%s: baseline %v", r.Figure, *r.Baseline)
			require.NotNil(t, r.Ratio, r.Figure)
			require.True(t, finite(*r.Ratio) && *r.Ratio > 0, "%s: ratio %v", r.Figure, *r.Ratio)
			require.InEpsilon(t, r.Sluice / *r.Baseline, *r.Ratio, 1e-9, r.Figure)
		}
		if r.Met != nil {
			targets++
			require.NotEmpty(t, r.Target, r.Figure)
		}
	}
	for _, w := range workloads {
		require.True(t, seen[w], "no result of workload %s", w)
	}

	require.Len(t, rep.BatchCost, 2)
	for _, bc := range rep.BatchCost {
		require.Len(t, bc.Points, 3, "2, 4 and 50 batches")
		require.Positive(t, bc.FixedMS)
		require.Positive(t, bc.Breakdown.Batches)
	}
	// pass-through, word count twice, fixed cost off and on, durable word
	// count of the lines and of the large input, empty batches, latency
	// p99, checkpoint cost, the transactional Kafka sink, the SQL sink into
	// SQLite and, with a PostgreSQL server, into PostgreSQL, two members ÷
	// one and the failover, and the word count's two members ÷ one.
	want := 16
	for _, s := range rep.Skipped {
		require.Contains(t, s, "install", "a skip says how to install what is missing")
		want--
	}
	require.Equal(t, want, targets)

	require.Len(t, rep.Latency, 1)
	lat := rep.Latency[0]
	require.Equal(t, time.Second.Milliseconds(), lat.BatchMS)
	require.Positive(t, lat.Records)
	require.LessOrEqual(t, lat.P50MS, lat.P99MS)
	require.LessOrEqual(t, lat.P99MS, lat.MaxMS)

	require.Len(t, rep.Checkpoint, 2)
	for _, c := range rep.Checkpoint {
		require.True(t, c.CheckpointMS > 0 && c.RestoreMS > 0, "%+v", c)
	}

	svg, err := os.ReadFile(cfg.chart)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(svg, []byte("<svg ")))
	require.True(t, bytes.HasSuffix(svg, []byte("</svg>\n")))
	require.Contains(t, string(svg), "Throughput")
	require.Contains(t, string(svg), "Latency")
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(t *testing.T, c config)
		err  string
	}{
		{"defaults are the full run", nil, func(t *testing.T, c config) {
			require.Equal(t, 5_000_000, c.records)
			require.Equal(t, 8, c.partitions)
			require.Equal(t, workloads, c.workloads)
			require.Equal(t, []int{1_000, 10_000, 100_000, 1_000_000}, c.stateSizes)
			require.Equal(t, "latest.json", filepath.Base(c.out))
			require.Equal(t, strings.TrimSuffix(c.out, ".json")+".svg", c.chart)
		}, ""},
		{"quick shrinks what is not set", []string{"-quick", "-records", "123"}, func(t *testing.T, c config) {
			require.Equal(t, 123, c.records)
			require.Equal(t, 200_000, c.lines)
			require.Equal(t, 1, c.repeat)
			require.Equal(t, "quick.json", filepath.Base(c.out))
		}, ""},
		{"workloads keep the run order", []string{"-workloads", "latency,pass"}, func(t *testing.T, c config) {
			require.Equal(t, []string{"pass", "latency"}, c.workloads)
			require.True(t, c.has("latency"))
			require.False(t, c.has("scaling"))
		}, ""},
		{"checkpoint modes", []string{"-checkpoint", "on"}, func(t *testing.T, c config) {
			require.Equal(t, []bool{true}, c.checkpointModes())
		}, ""},
		{"unknown workload", []string{"-workloads", "pass,nope"}, nil, `names "nope"`},
		{"bad checkpoint mode", []string{"-checkpoint", "sometimes"}, nil, "pass off, on or both"},
		{"bad latency batch", []string{"-latency-batches", "1s,0s"}, nil, "positive durations"},
		{"sweep of one batch count", []string{"-cost-batches", "20", "-batches", "20"}, nil, "two batch counts"},
		{"bad state size", []string{"-state-sizes", "10,x"}, nil, "-state-sizes"},
		{"no partitions", []string{"-partitions", "0"}, nil, "-partitions 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(tc.args, io.Discard)
			if tc.err != "" {
				require.ErrorIs(t, err, errUsage)
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			tc.want(t, c)
		})
	}
}

// TestWordCountMemberSingleProcess runs the word count scale-out job as one
// process in single-process mode and checks that its counts come to the
// input's.
func TestWordCountMemberSingleProcess(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.workloads = nil
	h, err := newHarness(cfg, io.Discard)
	require.NoError(t, err)
	defer func() { require.NoError(t, h.close()) }()
	require.NoError(t, h.loadScaleLines(t.Context()))
	truth := h.scaleLines
	require.Equal(t, int64(cfg.scaleLines*wordsPerLine), truth.words)

	got := &jobState{}
	job := scaleJob{job: jobWordCount, topic: topicScaleLines, records: cfg.scaleLines, outputs: truth.words, group: "test-wordscale"}
	d, _, err := h.scaleRun(t.Context(), job, 0, got)
	require.NoError(t, err)
	require.Positive(t, d)
	require.Equal(t, float64(truth.words), got.sum)
	require.Equal(t, truth.distinct, got.keys)
	require.Equal(t, truth.print, got.print)
	require.Empty(t, got.metrics, "single-process mode has no repartition topic")
}
