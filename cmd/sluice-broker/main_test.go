package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// binary is the sluice-broker built once for the tests that run it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-broker-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice-broker:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testCtx ends with the test or after a generous bound, so a broken broker
// fails the test instead of hanging it.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// broker is a running sluice-broker subprocess.
type broker struct {
	cmd    *exec.Cmd
	addr   string
	line   string
	page   string // the status page's URL; empty with --http ""
	stderr *bytes.Buffer
}

var readyLine = regexp.MustCompile(`^sluice-broker listening on (\S+); topics: (.+); data dir: (.+?)(?:; status page: (http://\S+/))?$`)

// startBroker runs sluice-broker with args and waits until it prints its
// ready line.
func startBroker(t *testing.T, args ...string) *broker {
	t.Helper()
	ctx := testCtx(t)
	cmd := exec.CommandContext(ctx, binary, args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	b := &broker{cmd: cmd, stderr: new(bytes.Buffer)}
	cmd.Stderr = b.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		require.True(t, ok, "sluice-broker exited before it was ready: %s", b.stderr)
		m := readyLine.FindStringSubmatch(line)
		require.NotNil(t, m, "unexpected ready line %q", line)
		b.addr, b.line, b.page = m[1], line, m[4]
	case <-ctx.Done():
		t.Fatalf("sluice-broker printed no ready line: %v; stderr: %s", ctx.Err(), b.stderr)
	}
	return b
}

// stop sends sig and returns the exit status.
func (b *broker) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	require.NoError(t, b.cmd.Process.Signal(sig))
	err := b.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, err)
	return b.cmd.ProcessState.ExitCode()
}

func TestBrokerServesAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	const n = 100

	first := startBroker(t, "--listen", "127.0.0.1:0", "--topic", "words:8", "--topic", "clicks:2", "--data-dir", dir, "--http", "")
	require.Contains(t, first.line, "topics: words:8 clicks:2")
	require.True(t, strings.HasSuffix(first.line, "data dir: "+dir), "no status page with --http \"\": %s", first.line)
	host, port, err := net.SplitHostPort(first.addr)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
	require.NotEqual(t, "0", port)

	cl, err := kgo.NewClient(kgo.SeedBrokers(first.addr), kgo.DefaultProduceTopic("words"))
	require.NoError(t, err)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = kgo.KeyStringRecord(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	require.NoError(t, cl.ProduceSync(testCtx(t), recs...).FirstErr())
	cl.Close()
	require.Equal(t, 0, first.stop(t, syscall.SIGTERM), "stderr: %s", first.stderr)
	require.Empty(t, first.stderr.String())

	// The data dir it saved serves the next run, stopped by SIGINT.
	second := startBroker(t, "--listen", "127.0.0.1:0", "--topic", "words:8", "--data-dir", dir)
	cl, err = kgo.NewClient(
		kgo.SeedBrokers(second.addr),
		kgo.ConsumeTopics("words"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	require.NoError(t, err)
	defer cl.Close()
	ctx := testCtx(t)
	got := make(map[string]string, n)
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %d of %d records", len(got), n)
		require.NoError(t, fs.Err())
		for r := range fs.RecordsAll() {
			got[string(r.Key)] = string(r.Value)
		}
	}
	want := make(map[string]string, n)
	for i := range n {
		want[fmt.Sprintf("k%d", i)] = fmt.Sprintf("v%d", i)
	}
	require.Equal(t, want, got)
	require.Equal(t, 0, second.stop(t, syscall.SIGINT), "stderr: %s", second.stderr)
}

func TestBrokerBadFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))

	tests := []struct {
		name string
		args []string
		want []string // each in the one line on stderr
	}{
		{"topic without count", []string{"--topic", "words"}, []string{"--topic", "--topic words:8"}},
		{"topic with zero partitions", []string{"--topic", "words:0"}, []string{"--topic", "at least 1", "--topic words:8"}},
		{"topic with a word for a count", []string{"--topic", "words:eight"}, []string{"--topic", "--topic words:8"}},
		{"topic without name", []string{"--topic", ":8"}, []string{"--topic", "no topic name", "--topic words:8"}},
		{"topic twice with two counts", []string{"--topic", "words:8", "--topic", "words:4"}, []string{"--topic words", "keep one"}},
		{"flag without value", []string{"--topic"}, []string{"--topic", "needs a value"}},
		{"listen without port", []string{"--listen", "localhost"}, []string{"--listen", "--listen 127.0.0.1:9092"}},
		{"listen with a port out of range", []string{"--listen", "127.0.0.1:70000"}, []string{"--listen", "0 to 65535"}},
		{"unknown flag", []string{"--partitions", "8"}, []string{"unknown flag --partitions", "-h"}},
		{"positional argument", []string{"words:8"}, []string{`unexpected argument "words:8"`, "flag"}},
		{"data dir is a file", []string{"--data-dir", file}, []string{"--data-dir", "not a directory"}},
		{"session timeout of zero", []string{"--group-min-session-timeout", "0s"}, []string{"--group-min-session-timeout", "positive", "500ms"}},
		{"session timeout below a millisecond", []string{"--group-min-session-timeout", "1500us"}, []string{"--group-min-session-timeout", "whole number of milliseconds"}},
		{"http without port", []string{"--http", "localhost"}, []string{"--http", "--http 127.0.0.1:4040", `--http ""`}},
		{"http with a port out of range", []string{"--http", "127.0.0.1:70000"}, []string{"--http", "0 to 65535"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(testCtx(t), binary, tt.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, exitUsage, ee.ExitCode())
			require.Empty(t, stdout.String())
			msg := stderr.String()
			require.Equal(t, 1, strings.Count(msg, "\n"), "one line: %q", msg)
			require.True(t, strings.HasPrefix(msg, "sluice-broker: "), msg)
			require.True(t, strings.HasSuffix(msg, ".\n"), "a sentence: %q", msg)
			for _, w := range tt.want {
				require.Contains(t, msg, w)
			}
		})
	}
}

// TestBrokerGroupMinSessionTimeout joins a group with a 1s session timeout:
// refused by the default minimum (6s, as Kafka's), accepted once
// --group-min-session-timeout lowers it.
func TestBrokerGroupMinSessionTimeout(t *testing.T) {
	join := func(addr string) error {
		prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("words"))
		require.NoError(t, err)
		defer prod.Close()
		require.NoError(t, prod.ProduceSync(testCtx(t), kgo.StringRecord("one")).FirstErr())
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("short"), kgo.ConsumeTopics("words"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond))
		require.NoError(t, err)
		defer cl.Close()
		ctx := testCtx(t)
		for {
			fs := cl.PollFetches(ctx)
			require.NoError(t, ctx.Err(), "the member neither joined nor was refused")
			if err := fs.Err(); err != nil {
				return err
			}
			if fs.NumRecords() > 0 {
				return nil
			}
		}
	}
	def := startBroker(t, "--listen", "127.0.0.1:0", "--topic", "words:1", "--http", "")
	require.ErrorIs(t, join(def.addr), kerr.InvalidSessionTimeout, "a 1s session under the default minimum")

	low := startBroker(t, "--listen", "127.0.0.1:0", "--topic", "words:1", "--http", "", "--group-min-session-timeout", "500ms")
	require.NoError(t, join(low.addr), "a 1s session with --group-min-session-timeout 500ms")
	require.Equal(t, 0, low.stop(t, syscall.SIGTERM), "stderr: %s", low.stderr)
}

func TestBrokerPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()

	var stderr bytes.Buffer
	cmd := exec.CommandContext(testCtx(t), binary, "--listen", taken.Addr().String())
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, exitFailure, ee.ExitCode())
	require.Contains(t, stderr.String(), "cannot listen on "+taken.Addr().String())
}

func TestBrokerHelp(t *testing.T) {
	out, err := exec.CommandContext(testCtx(t), binary, "-h").Output()
	require.NoError(t, err)
	for _, f := range []string{"-listen", "-topic", "-data-dir", "-group-min-session-timeout", "SIGTERM"} {
		require.Contains(t, string(out), f)
	}
}

func Example_badFlag() {
	status := run(context.Background(), func() {}, []string{"--topic", "words"}, os.Stdout, os.Stdout)
	fmt.Println("exit status", status)
	// Output:
	// sluice-broker: --topic "words" needs a partition count; write it as --topic words:8.
	// exit status 2
}
