package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
)

// TestLostFormatFile deletes the FORMAT file of a checkpoint wordcount
// wrote at --batch 100ms. A run at --batch 200ms is refused with a sentence
// naming both intervals, and leaves FORMAT missing; a run at --batch 100ms
// resumes, says in its log that FORMAT was rebuilt from the newest verified
// commit, and keeps the totals: they count the words of both inputs.
func TestLostFormatFile(t *testing.T) {
	addr := exampletest.StartBroker(t, "words", 2)
	bin := exampletest.Build(t, "./examples/wordcount")
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ck")
	prefix := filepath.Join(dir, "out", "wc")
	args := func(batch string) []string {
		return []string{"--brokers", addr, "--checkpoint", ckpt, "--save", prefix, "--http", "",
			"--batch", batch, "--window", "1s", "--slide", batch, "--stop-when-idle", "2"}
	}
	truth := map[string]int64{}
	produce := func(lines ...string) {
		values := make([][]byte, len(lines))
		for i, l := range lines {
			values[i] = []byte(l)
			for _, w := range Words(l) {
				truth[w]++
			}
		}
		exampletest.Produce(t, addr, "words", nil, values)
	}
	totals := func() map[string]int64 {
		got := map[string]int64{}
		for _, r := range exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix, "totals")) {
			got[r.Word] = r.Count
		}
		return got
	}

	produce("to be or not to be", "that is the question")
	p := exampletest.Start(t, bin, args("100ms")...)
	out := p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Equal(t, truth, totals(), strings.Join(out, "\n"))

	format := filepath.Join(ckpt, "FORMAT")
	require.FileExists(t, format)
	require.NoError(t, os.Remove(format))

	p = exampletest.Start(t, bin, append(args("200ms"), "--log-level", "error")...)
	p.Wait(t, 30*time.Second)
	require.Error(t, p.Err, "a run at another --batch is refused")
	stderr := strings.TrimSuffix(p.Stderr.String(), "\n")
	require.NotContains(t, stderr, "\n", "one line")
	require.Regexp(t, `^wordcount: checkpoint does not match the job: checkpoint dir \S+ was written with batch interval 100ms \(its commit \d+ says so\) but this job uses 200ms; `, stderr)
	require.Contains(t, stderr, "the same --batch")
	require.NoFileExists(t, format, "the refused run writes no FORMAT")

	produce("whether tis nobler in the mind to suffer")
	p = exampletest.Start(t, bin, args("100ms")...)
	out = p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Contains(t, strings.Join(out, "\n"), "resuming from checkpoint "+ckpt)
	require.Contains(t, p.Stderr.String(), "the FORMAT file was missing; rebuilt it from the newest verified commit")
	require.FileExists(t, format)
	require.Equal(t, truth, totals(), "the totals restored from the checkpoint, plus the new line")
}

// TestOtherWindowRefused resumes a checkpoint written with --window 1s
// under --window 500ms and under --slide 200ms: each is refused with a
// sentence naming the window operator, the settings it was written with and
// the flags, and its generator writes nothing; the settings it was written
// with resume.
func TestOtherWindowRefused(t *testing.T) {
	addr := exampletest.StartBroker(t, "words", 1)
	exampletest.Produce(t, addr, "words", nil, [][]byte{[]byte("to be or not to be")})
	bin := exampletest.Build(t, "./examples/wordcount")
	ckpt := filepath.Join(t.TempDir(), "ck")
	args := func(window, slide string) []string {
		return []string{"--brokers", addr, "--checkpoint", ckpt, "--http", "",
			"--batch", "100ms", "--window", window, "--slide", slide, "--stop-when-idle", "2"}
	}
	p := exampletest.Start(t, bin, args("1s", "100ms")...)
	p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)

	for _, other := range [][2]string{{"500ms", "100ms"}, {"1s", "200ms"}} {
		p = exampletest.Start(t, bin, append(args(other[0], other[1]), "--log-level", "error", "--generate", "1000")...)
		p.Wait(t, 30*time.Second)
		require.Error(t, p.Err, "--window %s --slide %s is refused", other[0], other[1])
		stderr := strings.TrimSuffix(p.Stderr.String(), "\n")
		require.NotContains(t, stderr, "\n", "one line")
		require.Contains(t, stderr, `operator "window-counts" was checkpointed with window 1s, slide 100ms but this job builds it with window `+other[0]+", slide "+other[1])
		require.Contains(t, stderr, "the same --batch, --window and --slide")
		require.Equal(t, int64(1), exampletest.TopicRecords(t, addr, "words"), "a refused run's generator wrote nothing")
	}

	p = exampletest.Start(t, bin, args("1s", "100ms")...)
	out := p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Contains(t, strings.Join(out, "\n"), "resuming from checkpoint "+ckpt)
}
