package exampleutil

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// goodBad is a spec whose generator writes "good" and "bad" records at
// random; its jobs count the bad ones as malformed.
var goodBad = Spec{
	Name:  "goodbad",
	Topic: "goodbad",
	Rate:  100,
	Generator: func() Generator {
		return Generator{Next: func(r *rand.Rand) (key, value []byte) {
			if r.IntN(4) == 0 {
				return nil, []byte("bad")
			}
			return nil, []byte("good")
		}}
	},
}

// counting is a build function that counts the good records it sees and
// marks the bad ones malformed.
type counting struct {
	good, bad atomic.Int64
	onBatch   func(b dstream.Batch[string]) error
}

func (c *counting) build(j *Job) error {
	good := dstream.FlatMap(j.Records, func(r kafkasource.Record) []string {
		if string(r.Value) == "bad" {
			c.bad.Add(1)
			j.Malformed.Add(r, "bad record")
			return nil
		}
		c.good.Add(1)
		return []string{string(r.Value)}
	})
	dstream.ForEachBatch(good, func(ctx context.Context, b dstream.Batch[string]) error {
		if err := Save(ctx, j, "", b.Time, Collect(b)); err != nil {
			return err
		}
		if c.onBatch != nil {
			return c.onBatch(b)
		}
		return nil
	})
	return nil
}

var batchLine = regexp.MustCompile(`^batch \d\d:\d\d:\d\d\.\d{3}: (\d+) records?, (\d+) malformed( \(first goodbad\[\d\]@\d+: bad record\))?, took \S+`)

func run(t *testing.T, ctx context.Context, c *counting, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(ctx, goodBad, args, &out, &errOut, c.build)
	return code, out.String(), errOut.String()
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

func TestRunGeneratesAndCountsMalformed(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out", "r")
	c := &counting{}
	code, out, errOut := run(t, t.Context(), c, "--listen", "127.0.0.1:0", "--checkpoint", filepath.Join(dir, "ck"),
		"--batch", "100ms", "--generate", "400", "--duration", "1200ms", "--save", prefix, "--log-level", "error")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	require.Empty(t, errOut, "no error is logged (warnings such as late batches on a loaded machine are not errors)")
	var batches, records, malformed int64
	for _, l := range lines(out) {
		m := batchLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		batches++
		n, _ := strconv.ParseInt(m[1], 10, 64)
		bad, _ := strconv.ParseInt(m[2], 10, 64)
		records += n
		malformed += bad
		require.Equal(t, bad > 0, m[3] != "", "the first malformed record is named: %q", l)
	}
	require.GreaterOrEqual(t, batches, int64(5), out)
	require.Positive(t, c.bad.Load())
	require.Equal(t, c.good.Load()+c.bad.Load(), records, "the batch lines count every record read")
	require.Equal(t, c.bad.Load(), malformed, "the batch lines count every malformed record")
	require.Regexp(t, `goodbad: stopped \(--duration 1.2s passed\) after `+strconv.FormatInt(batches, 10)+` batch(es)? and `+
		strconv.FormatInt(records, 10)+` records?; run it again to resume from the checkpoint in `, lines(out)[len(lines(out))-1])

	files, err := filepath.Glob(prefix + "-*.jsonl")
	require.NoError(t, err)
	require.Len(t, files, int(batches), "one saved file per batch")
}

func TestRunStopsWhenIdle(t *testing.T) {
	c := &counting{}
	code, out, errOut := run(t, t.Context(), c, "--listen", "127.0.0.1:0", "--checkpoint", "", "--partitions", "1",
		"--batch", "50ms", "--generate", "0", "--stop-when-idle", "2")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	ls := lines(out)
	require.Regexp(t, `^goodbad: embedded Kafka broker on \S+ \(in memory\), topic "goodbad" with 1 partition$`, ls[0])
	require.Contains(t, out, "; Ctrl-C stops, or once 2 batches in a row read nothing\n")
	var idle int
	for _, l := range ls {
		if m := batchLine.FindStringSubmatch(l); m != nil {
			require.Equal(t, "0", m[1])
			idle++
		}
	}
	require.Equal(t, 2, idle)
	require.Equal(t, "goodbad: stopped (the topic stayed drained for 2 batches) after 2 batches and 0 records", ls[len(ls)-1])
}

func TestRunStopsGracefullyAndResumes(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ck")
	ctx, cancel := context.WithCancel(t.Context())
	c := &counting{onBatch: func(dstream.Batch[string]) error { cancel(); return nil }}
	code, out, errOut := run(t, ctx, c, "--listen", "127.0.0.1:0", "--checkpoint", ckpt, "--batch", "50ms", "--generate", "0")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	ls := lines(out)
	require.Regexp(t, batchLine, ls[len(ls)-2], "the batch in flight completes")
	require.Equal(t, "goodbad: stopped (interrupted) after 1 batch and 0 records; run it again to resume from the checkpoint in "+ckpt, ls[len(ls)-1])

	code, out, errOut = run(t, t.Context(), &counting{}, "--listen", "127.0.0.1:0", "--checkpoint", ckpt, "--batch", "50ms",
		"--generate", "0", "--stop-when-idle", "1")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	require.Contains(t, out, "resuming from checkpoint "+ckpt+"; Ctrl-C stops, or once a batch reads nothing\n")
	require.Contains(t, out, "goodbad: stopped (the topic stayed drained for 1 batch) after ")

	code, _, errOut = run(t, t.Context(), &counting{}, "--listen", "127.0.0.1:0", "--checkpoint", ckpt, "--batch", "100ms",
		"--generate", "0", "--stop-when-idle", "1")
	require.Equal(t, ExitFailure, code)
	require.Len(t, lines(errOut), 1, errOut)
	require.Contains(t, errOut, "batch interval 50ms")
	require.Contains(t, errOut, "this job uses 100ms")
	require.Contains(t, errOut, "the same --batch")
}

func TestRunFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())

	cases := []struct {
		name    string
		onBatch func(dstream.Batch[string]) error
		args    []string
		code    int
		want    string
	}{
		{"bad flag", nil, []string{"--top", "-1"}, ExitUsage, "goodbad: --top -1 prints nothing; pass 1 or more."},
		{"unreachable broker", nil, []string{"--brokers", closed, "--checkpoint", ""}, ExitFailure,
			"goodbad: cannot reach Kafka at " + closed + " ("},
		{"failing batch", func(dstream.Batch[string]) error { return errors.New("disk full") },
			[]string{"--listen", "127.0.0.1:0", "--checkpoint", "", "--batch", "50ms", "--generate", "0", "--log-level", "error"}, ExitFailure,
			"goodbad: batch "}, // errors only: a batch late on a loaded machine would warn first
		{"listen address unusable", nil, []string{"--listen", "256.0.0.1:1", "--checkpoint", ""}, ExitFailure,
			"goodbad: cannot start the embedded Kafka broker: embedded broker cannot listen on 256.0.0.1:1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			code, _, errOut := run(t, ctx, &counting{onBatch: c.onBatch}, c.args...)
			require.Equal(t, c.code, code, errOut)
			require.Len(t, lines(errOut), 1, "one line: %q", errOut)
			require.True(t, strings.HasPrefix(errOut, c.want), "%q does not start with %q", errOut, c.want)
		})
	}
}

func TestRunHelp(t *testing.T) {
	code, out, errOut := run(t, t.Context(), &counting{}, "-h")
	require.Equal(t, ExitOK, code)
	require.Empty(t, errOut)
	require.Contains(t, out, "Usage: goodbad [flags]")
}

// TestRunAdviceNamesFlags corrupts the newest checkpoint commit: the error
// names --rollback-on-corrupt, not the library option, and the flag then
// restores the newest commit that verifies.
func TestRunAdviceNamesFlags(t *testing.T) {
	ckpt := filepath.Join(t.TempDir(), "ck")
	code, out, errOut := run(t, t.Context(), &counting{}, "--listen", "127.0.0.1:0", "--checkpoint", ckpt,
		"--batch", "50ms", "--generate", "400", "--duration", "600ms")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	commits, err := filepath.Glob(filepath.Join(ckpt, "commits", "*"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(commits), 2, out)
	newest := commits[len(commits)-1]
	data, err := os.ReadFile(newest)
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	require.NoError(t, os.WriteFile(newest, data, 0o644))

	args := []string{"--listen", "127.0.0.1:0", "--checkpoint", ckpt, "--batch", "50ms", "--generate", "0", "--stop-when-idle", "1"}
	code, _, errOut = run(t, t.Context(), &counting{}, args...)
	require.Equal(t, ExitFailure, code)
	require.Len(t, lines(errOut), 1, errOut)
	require.Contains(t, errOut, "run again with --rollback-on-corrupt")
	require.NotContains(t, errOut, "RollbackOnCorrupt")

	code, _, errOut = run(t, t.Context(), &counting{}, append(args, "--rollback-on-corrupt")...)
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
}

// TestBatchLineSaysOneRecord checks the counts of the batch line read as
// English for one record and for several.
func TestBatchLineSaysOneRecord(t *testing.T) {
	for _, c := range []struct {
		records int64
		want    string
	}{
		{0, "batch 00:00:01.000: 0 records, 0 malformed, took 3ms\n"},
		{1, "batch 00:00:01.000: 1 record, 0 malformed, took 3ms\n"},
		{2, "batch 00:00:01.000: 2 records, 0 malformed, took 3ms\n"},
	} {
		var out bytes.Buffer
		r := &runner{out: &out}
		j := &Job{Malformed: NewCounter("malformed"), dead: &deadLetters{}}
		r.batchLine(j, engine.BatchInfo{Time: time.Unix(1, 0).UTC(), Records: c.records, ProcessingDelay: 3 * time.Millisecond},
			func(error) {})
		require.Equal(t, c.want, out.String())
	}
}
