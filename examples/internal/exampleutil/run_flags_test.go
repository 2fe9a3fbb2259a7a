package exampleutil

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
)

// goodBadCluster starts a one-broker kfake cluster with topic goodbad of
// one partition.
func goodBadCluster(t *testing.T) (addr string, adm *kadm.Client, produce func(n int)) {
	addr, adm, produce, _ = goodBadKfake(t)
	return addr, adm, produce
}

// goodBadKfake is goodBadCluster that also returns the cluster.
func goodBadKfake(t *testing.T) (addr string, adm *kadm.Client, produce func(n int), kc *kfake.Cluster) {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, goodBad.Topic))
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	addr = kc.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	produce = func(n int) {
		t.Helper()
		// A client of its own each time: a recreated topic has a new ID.
		p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(goodBad.Topic))
		require.NoError(t, err)
		defer p.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		for range n {
			require.NoError(t, p.ProduceSync(ctx, &kgo.Record{Value: []byte("good")}).FirstErr())
		}
	}
	return addr, kadm.NewClient(cl), produce, kc
}

// readAll runs the goodbad job on the cluster at addr until it has read
// nothing for two batches, and returns its exit status, standard error and
// how many records it read. It logs errors only, so that standard error
// holds no warning of a batch late on a loaded machine.
func readAll(t *testing.T, addr string, args ...string) (code int, stderr string, read int64) {
	t.Helper()
	c := &counting{}
	code, _, stderr = run(t, t.Context(), c, append([]string{"--brokers", addr, "--http", "", "--batch", "50ms",
		"--stop-when-idle", "2", "--log-level", "error"}, args...)...)
	return code, stderr, c.good.Load() + c.bad.Load()
}

// TestRunStartOffsets checks where --start-offsets starts a job whose
// checkpoint holds no position: by default at the group's committed
// offsets, else the earliest; with earliest or latest at the log's start
// or end whatever the group committed; with topic:partition:offset there.
func TestRunStartOffsets(t *testing.T) {
	addr, _, produce := goodBadCluster(t)
	produce(10)
	for _, c := range []struct {
		name  string
		args  []string
		reads int64
	}{
		{"a new group starts at the earliest offset", []string{"--group", "g"}, 10},
		{"the group's committed offsets come next", []string{"--group", "g"}, 0},
		{"earliest ignores the group's offsets", []string{"--group", "g", "--start-offsets", "earliest"}, 10},
		{"latest starts at the end", []string{"--group", "h", "--start-offsets", "latest"}, 0},
		{"an offset of a partition", []string{"--group", "i", "--start-offsets", "goodbad:0:7"}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stderr, read := readAll(t, addr, append([]string{"--checkpoint", ""}, c.args...)...)
			require.Equal(t, ExitOK, code, stderr)
			require.Equal(t, c.reads, read)
		})
	}
}

// TestRunOffsetAboveHighWatermark recreates the topic under a job's
// checkpoint: the job refuses to run with one sentence naming the flags
// (not the library option), and the advice it gives, a fresh --checkpoint
// dir with --start-offsets earliest, reads the new topic from its start
// although the group committed higher offsets.
func TestRunOffsetAboveHighWatermark(t *testing.T) {
	addr, adm, produce := goodBadCluster(t)
	produce(10)
	ckpt := t.TempDir()
	code, stderr, read := readAll(t, addr, "--checkpoint", ckpt)
	require.Equal(t, ExitOK, code, stderr)
	require.Equal(t, int64(10), read)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := adm.DeleteTopic(ctx, goodBad.Topic)
	require.NoError(t, err)
	created, err := adm.CreateTopic(ctx, 1, 1, nil, goodBad.Topic)
	require.NoError(t, err)
	require.NoError(t, created.Err)
	produce(2)

	code, stderr, _ = readAll(t, addr, "--checkpoint", ckpt)
	require.Equal(t, ExitFailure, code)
	require.Len(t, lines(stderr), 1, stderr)
	require.Contains(t, stderr, "goodbad: offset 10 of goodbad[0] is above its high watermark 2")
	require.Contains(t, stderr, "a fresh --checkpoint dir and --start-offsets earliest")
	require.NotContains(t, stderr, "WithStartOffsets")

	code, stderr, read = readAll(t, addr, "--checkpoint", t.TempDir(), "--start-offsets", "earliest")
	require.Equal(t, ExitOK, code, stderr)
	require.Equal(t, int64(2), read, "the new topic's records, from its start")
}

// TestRunLogFlags checks --log-level and --log-format on what the job logs
// on standard error: nothing below the level, and with json one object a
// line.
func TestRunLogFlags(t *testing.T) {
	args := []string{"--listen", "127.0.0.1:0", "--checkpoint", "", "--http", "", "--batch", "50ms", "--generate", "0", "--stop-when-idle", "1"}

	code, _, stderr := run(t, t.Context(), &counting{}, args...)
	require.Equal(t, ExitOK, code, stderr)
	// Warnings may come (a batch late on a loaded machine); INFO does not.
	require.NotContains(t, stderr, "level=INFO", "warnings and errors only, by default")

	code, _, stderr = run(t, t.Context(), &counting{}, append(args, "--log-level", "info")...)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stderr, `level=INFO msg="embedded Kafka broker started"`)

	code, _, stderr = run(t, t.Context(), &counting{}, append(args, "--log-level", "info", "--log-format", "json")...)
	require.Equal(t, ExitOK, code, stderr)
	var msgs []string
	for _, l := range lines(stderr) {
		var rec struct{ Level, Msg string }
		require.NoError(t, json.Unmarshal([]byte(l), &rec), "a JSON object: %q", l)
		require.NotEmpty(t, rec.Level, l)
		msgs = append(msgs, rec.Msg)
	}
	require.Contains(t, msgs, "embedded Kafka broker started")
}

// TestRunParallelism checks that --parallelism reaches the engine, and that
// 0 leaves it at the engine's default, GOMAXPROCS.
func TestRunParallelism(t *testing.T) {
	for _, c := range []struct {
		flag string
		want int
	}{
		{"3", 3},
		{"0", runtime.GOMAXPROCS(0)},
	} {
		var got int
		build := func(j *Job) error {
			got = j.Context.Parallelism()
			return (&counting{}).build(j)
		}
		code := Run(t.Context(), goodBad, []string{"--listen", "127.0.0.1:0", "--checkpoint", "", "--http", "", "--batch", "50ms",
			"--generate", "0", "--stop-when-idle", "1", "--parallelism", c.flag}, io.Discard, io.Discard, build)
		require.Equal(t, ExitOK, code)
		require.Equal(t, c.want, got, "--parallelism %s", c.flag)
	}
}

// TestRunRetryTimeout stops the broker after the first batch that read
// records: the next batch retries it for --retry-timeout, not the default
// 30 s, and the job then stops with one line saying for how long it
// retried.
func TestRunRetryTimeout(t *testing.T) {
	addr, _, produce, kc := goodBadKfake(t)
	produce(5)
	var once sync.Once
	c := &counting{onBatch: func(b dstream.Batch[string]) error {
		if b.Len() > 0 {
			once.Do(kc.Close)
		}
		return nil
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()
	code, _, stderr := run(t, ctx, c, "--brokers", addr, "--checkpoint", "", "--http", "", "--batch", "50ms",
		"--retry-timeout", "700ms", "--log-level", "error")
	require.Equal(t, ExitFailure, code, stderr)
	require.Len(t, lines(stderr), 1, stderr)
	m := regexp.MustCompile(`failed for (\S+):`).FindStringSubmatch(stderr)
	require.NotNil(t, m, stderr)
	retried, err := time.ParseDuration(m[1])
	require.NoError(t, err)
	// About 700ms (the last request may end past it), far from the default 30s.
	require.Less(t, retried, 10*time.Second, "--retry-timeout bounds the retries: %s", stderr)
	require.Contains(t, stderr, "or run again with a longer --retry-timeout", "the advice names the flag")
	require.NotContains(t, stderr, "WithRetryTimeout", "not the library option")
	require.Contains(t, stderr, "the checkpoint keeps the last committed batch, so running again resumes from there")
}

// TestRunRefusesOtherBatchBeforeStarting runs a job at --batch 100ms on a
// checkpoint written at 50ms: it is refused in one line naming both
// intervals and the flag before it starts anything, its embedded broker
// included, and prints nothing on standard output.
func TestRunRefusesOtherBatchBeforeStarting(t *testing.T) {
	ckpt := filepath.Join(t.TempDir(), "ck")
	args := []string{"--listen", "127.0.0.1:0", "--checkpoint", ckpt, "--http", "", "--generate", "0", "--stop-when-idle", "1", "--log-level", "info"}
	code, _, stderr := run(t, t.Context(), &counting{}, append(args, "--batch", "50ms")...)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stderr, "embedded Kafka broker started")

	code, stdout, stderr := run(t, t.Context(), &counting{}, append(args, "--batch", "100ms")...)
	require.Equal(t, ExitFailure, code)
	require.Empty(t, stdout)
	require.Len(t, lines(stderr), 1, "only the error, no log of a broker starting: %s", stderr)
	require.Contains(t, stderr, "was written with batch interval 50ms (its FORMAT says so) but this job uses 100ms")
	require.Contains(t, stderr, "the same --batch")
}
