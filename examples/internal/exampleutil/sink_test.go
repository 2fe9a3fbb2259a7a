package exampleutil

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseFlagsSink(t *testing.T) {
	cfg, err := ParseFlags(goodBad, []string{"--sink", "kafka:results"}, nil)
	require.NoError(t, err)
	require.Equal(t, "kafka:results", cfg.Sink)
	for arg, want := range map[string]string{
		"nosuch:x": `--sink "nosuch:x" names no known sink; write one of `,
		"kafka:":   `--sink "kafka:" has no valid topic; write it as --sink kafka:results.`,
		"results":  `--sink "results" names no known sink`,
	} {
		_, err := ParseFlags(goodBad, []string{"--sink", arg}, nil)
		require.ErrorContains(t, err, want, arg)
	}

	cfg, err = ParseFlags(goodBad, nil, nil)
	require.NoError(t, err)
	require.Empty(t, cfg.Sink, "no sink by default")
	withSink := goodBad
	withSink.SinkByDefault = true
	cfg, err = ParseFlags(withSink, nil, nil)
	require.NoError(t, err)
	require.Equal(t, "sqlite:"+filepath.Join("sluice-data", "goodbad", "results.db"), cfg.Sink)
	cfg, err = ParseFlags(withSink, []string{"--sink", ""}, nil)
	require.NoError(t, err)
	require.Empty(t, cfg.Sink, `--sink "" turns the default sink off`)
}

// TestRunKafkaSinkMatchesSave runs a job against a broker that outlives it
// and checks that the rows read read_committed from the --sink topic are
// exactly the rows of the --save files.
func TestRunKafkaSinkMatchesSave(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	defer kc.Close()
	addr := kc.ListenAddrs()[0]
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out", "r")
	code, _, errOut := run(t, t.Context(), &counting{}, "--brokers", addr, "--checkpoint", filepath.Join(dir, "ck"),
		"--batch", "100ms", "--generate", "300", "--duration", "1s", "--save", prefix, "--sink", "kafka:results")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)

	files, err := filepath.Glob(prefix + "-*.jsonl")
	require.NoError(t, err)
	want := map[string]int{}
	total := 0
	for _, f := range files {
		fh, err := os.Open(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			want[sc.Text()]++
			total++
		}
		fh.Close()
	}
	require.Positive(t, total)

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("results"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	got := map[string]int{}
	n := 0
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for n < total && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got[string(r.Value)]++; n++ })
	}
	require.Equal(t, want, got, "read_committed rows of --sink kafka:results equal the --save rows")
}
