// Package exampletest runs the example programs as their users do, for the
// examples' tests: it builds them, starts a stand-alone sluice-broker,
// produces input with kcat (or franz-go when kcat is absent), runs an
// example, kills it with SIGKILL at random moments and restarts it, and
// reads the files its --save flag writes.
package exampletest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/sqlsink"
)

// ModuleRoot returns the directory holding go.mod, searched upwards from
// the working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the working directory")
		dir = parent
	}
}

// Build compiles the main package pkg (a path such as "./examples/wordcount",
// relative to the module root) into a temporary directory and returns the
// binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = ModuleRoot(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build %s: %s", pkg, out)
	return bin
}

// Proc is a running example or broker process whose standard output is
// read line by line.
type Proc struct {
	Cmd    *exec.Cmd
	Dir    string        // the working directory, fresh for the process
	Lines  chan string   // standard output, closed when it ends
	Done   chan struct{} // closed when the process has exited and its output is read
	Stderr *bytes.Buffer // valid after Done
	Err    error         // the exit error, valid after Done
}

// Start runs bin with args in a fresh working directory, so that the
// default paths under sluice-data/ land there. The process is killed when
// the test ends.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &Proc{Cmd: cmd, Dir: cmd.Dir, Lines: make(chan string, 1024), Done: make(chan struct{}), Stderr: new(bytes.Buffer)}
	cmd.Stderr = p.Stderr
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.Lines <- sc.Text()
		}
		close(p.Lines)
		p.Err = cmd.Wait()
		close(p.Done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		p.drain()
	})
	return p
}

// drain discards unread output and waits for the process to be gone.
func (p *Proc) drain() {
	for range p.Lines {
	}
	<-p.Done
}

// Wait reads the rest of the output and waits for the process to exit,
// failing the test if that takes longer than timeout. It returns the lines
// read.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) []string {
	t.Helper()
	var lines []string
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.Lines:
			if !ok {
				<-p.Done
				return lines
			}
			lines = append(lines, l)
		case <-deadline:
			_ = p.Cmd.Process.Kill()
			t.Fatalf("%s did not exit within %v; output so far:\n%s\nstderr:\n%s",
				filepath.Base(p.Cmd.Path), timeout, strings.Join(lines, "\n"), p.Stderr)
		}
	}
}

// lateBatches matches the engine's warning that batches run late.
var lateBatches = regexp.MustCompile(`^time=\S+ level=WARN msg="batches run late: `)

// StderrExceptLateBatches returns the lines the process wrote to standard
// error, less the engine's warning that batches run late: whether that one
// comes depends on how loaded the machine running the test is (a process
// kept off the CPU for longer than a batch interval starts its next batch
// late), not on the job. Valid after Done.
func (p *Proc) StderrExceptLateBatches() []string {
	var lines []string
	for l := range strings.Lines(p.Stderr.String()) {
		l = strings.TrimSuffix(l, "\n")
		if !lateBatches.MatchString(l) {
			lines = append(lines, l)
		}
	}
	return lines
}

var brokerReady = regexp.MustCompile(`^sluice-broker listening on (\S+);`)

// StartBroker builds and runs cmd/sluice-broker on a free loopback port
// with a data dir, creating topic with the given partitions, and waits for
// its ready line. It returns the broker's address.
func StartBroker(t testing.TB, topic string, partitions int) string {
	t.Helper()
	return StartBrokerArgs(t, "--topic", topic+":"+strconv.Itoa(partitions))
}

// Produce writes values (keys too when keys is not nil) to topic at addr:
// with kcat when it is installed (kcat -P, with -K: for keys), otherwise
// with franz-go. It then checks that the topic holds exactly that many
// records more than before. Values must not hold a newline, nor keys a
// colon.
func Produce(t testing.TB, addr, topic string, keys, values [][]byte) {
	t.Helper()
	require.True(t, keys == nil || len(keys) == len(values))
	before := TopicRecords(t, addr, topic)
	if path, err := exec.LookPath("kcat"); err == nil {
		var in bytes.Buffer
		for i, v := range values {
			require.False(t, bytes.ContainsAny(v, "\n"), "value %d holds a newline", i)
			if keys != nil {
				require.False(t, bytes.ContainsAny(keys[i], ":\n"), "key %d holds a colon or newline", i)
				in.Write(keys[i])
				in.WriteByte(':')
			}
			in.Write(v)
			in.WriteByte('\n')
		}
		args := []string{"-P", "-b", addr, "-t", topic}
		if keys != nil {
			args = append(args, "-K:")
		}
		cmd := exec.Command(path, args...)
		cmd.Stdin = &in
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "kcat %s: %s", strings.Join(args, " "), out)
		t.Logf("produced %d records with kcat", len(values))
	} else {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
		require.NoError(t, err)
		defer cl.Close()
		recs := make([]*kgo.Record, len(values))
		for i, v := range values {
			recs[i] = &kgo.Record{Value: v}
			if keys != nil {
				recs[i].Key = keys[i]
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
		t.Logf("kcat is not installed; produced %d records with franz-go", len(values))
	}
	require.Equal(t, before+int64(len(values)), TopicRecords(t, addr, topic), "records in topic %s after producing", topic)
}

// TopicRecords returns how many records topic holds: the sum of its
// partitions' end offsets minus their start offsets.
func TopicRecords(t testing.TB, addr, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	starts, err := adm.ListStartOffsets(ctx, topic)
	require.NoError(t, err)
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		require.NoError(t, o.Err)
		s, _ := starts.Lookup(o.Topic, o.Partition)
		n += o.Offset - s.Offset
	})
	return n
}

// Kills says how RunWithKills interrupts a job.
type Kills struct {
	// N is how many times the job is killed before it may finish.
	N int
	// Trigger says whether an output line marks a moment to kill after.
	Trigger func(line string) bool
	// MaxDelay bounds the random delay between a trigger line and the
	// kill (uniform in [0, MaxDelay)).
	MaxDelay time.Duration
	// Timeout bounds the whole run.
	Timeout time.Duration
}

// RunWithKills runs bin with args, kills it with SIGKILL k.N times, each
// time a random delay after a randomly chosen trigger line (one of the next
// few), restarts it after each kill, and then waits for the last run to
// exit on its own with status 0. It returns the last run's output.
func RunWithKills(t testing.TB, rnd *rand.Rand, k Kills, bin string, args ...string) []string {
	t.Helper()
	deadline := time.Now().Add(k.Timeout)
	for killed, life := 0, 1; ; life++ {
		p := Start(t, bin, args...)
		if killed == k.N {
			out := p.Wait(t, time.Until(deadline))
			require.NoError(t, p.Err, "last run (life %d) failed; stderr:\n%s\noutput:\n%s", life, p.Stderr, strings.Join(out, "\n"))
			return out
		}
		skip := rnd.IntN(4)
		var seen []string
		timeout := time.After(time.Until(deadline))
	life:
		for {
			select {
			case l, ok := <-p.Lines:
				if !ok {
					<-p.Done
					if p.Err != nil {
						t.Fatalf("life %d failed (%v) after %d kills; stderr:\n%s\noutput:\n%s",
							life, p.Err, killed, p.Stderr, strings.Join(seen, "\n"))
					}
					t.Fatalf("life %d finished after %d of %d kills: the input ran out too soon; make it larger.\noutput:\n%s",
						life, killed, k.N, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if !k.Trigger(l) {
					continue
				}
				if skip > 0 {
					skip--
					continue
				}
				// The delay places the kill at a random moment after the
				// line: before, during or after the next step.
				time.Sleep(time.Duration(rnd.Int64N(int64(k.MaxDelay))))
				require.NoError(t, p.Cmd.Process.Signal(syscall.SIGKILL))
				p.drain()
				var ee *exec.ExitError
				require.True(t, errors.As(p.Err, &ee), "life %d: %v", life, p.Err)
				killed++
				t.Logf("life %d: killed after %q (%d lines)", life, l, len(seen))
				break life
			case <-timeout:
				t.Fatalf("life %d: no trigger line before the deadline; stderr:\n%s\noutput:\n%s", life, p.Stderr, strings.Join(seen, "\n"))
			}
		}
	}
}

// SinkRows returns the rows of kind ("" for the main results) an example's
// SQL sink wrote to the table sluice_results of the SQLite file path, as
// JSON text by batch time in milliseconds.
func SinkRows(t testing.TB, path, kind string) map[int64][]string {
	t.Helper()
	db, err := sqlsink.OpenSQLite(path)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT batch_time_ms, row FROM sluice_results WHERE kind = ? ORDER BY batch_time_ms, row_index`, kind)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64][]string{}
	for rows.Next() {
		var ms int64
		var row string
		require.NoError(t, rows.Scan(&ms, &row))
		out[ms] = append(out[ms], row)
	}
	require.NoError(t, rows.Err())
	return out
}

// SavedRows returns the lines of every file --save PREFIX wrote for kind,
// by batch time in milliseconds, as SinkRows gives a sink's (where a batch
// without rows has no entry).
func SavedRows(t testing.TB, prefix, kind string) map[int64][]string {
	t.Helper()
	out := map[int64][]string{}
	for _, f := range Saved(t, prefix, kind) {
		name := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		ms, err := strconv.ParseInt(name[strings.LastIndexByte(name, '-')+1:], 10, 64)
		require.NoError(t, err, f)
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		if s := strings.TrimSuffix(string(data), "\n"); s != "" {
			out[ms] = strings.Split(s, "\n")
		}
	}
	return out
}

// SinkOffsets returns the offsets the SQL sink of an example's results
// (kind "") stored in the SQLite file path for job: one past the last
// offset its newest batch read of every partition.
func SinkOffsets(t testing.TB, path, job string) map[string]int64 {
	t.Helper()
	db, err := sqlsink.OpenSQLite(path)
	require.NoError(t, err)
	defer db.Close()
	off, err := sqlsink.StoredOffsets(context.Background(), db, job, "results")
	require.NoError(t, err)
	out := map[string]int64{}
	for tp, o := range off {
		out[tp.Topic+"/"+strconv.Itoa(int(tp.Partition))] = o
	}
	return out
}

// EndOffsets returns the end offset of every partition of topic, keyed as
// SinkOffsets keys them.
func EndOffsets(t testing.TB, addr, topic string) map[string]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		require.NoError(t, o.Err)
		out[o.Topic+"/"+strconv.Itoa(int(o.Partition))] = o.Offset
	})
	return out
}

// Recover is the kill-and-restart run every example's recovery test makes:
// it produces values (keys too when not nil) to topic on a stand-alone
// broker with 2 partitions, builds the example pkg and runs it with
// RunWithKills, killing it 6 times, each a few milliseconds after a
// "batch " or "top " line, on that input with --generate 0, --batch 50ms,
// --max-rate-per-partition 400, --stop-when-idle 3, a fresh --checkpoint
// --sink sqlite:DIR/results.db and the extra args. It checks that the last
// run stopped because the topic stayed drained, that the sink holds
// exactly the rows of the --save files, batch by batch, and that its
// progress rows stop at the topic's end offsets; it returns the --save
// prefix it wrote to.
func Recover(t testing.TB, rnd *rand.Rand, pkg, topic string, keys, values [][]byte, extra ...string) (prefix string) {
	t.Helper()
	addr := StartBroker(t, topic, 2)
	Produce(t, addr, topic, keys, values)
	bin := Build(t, pkg)

	dir := t.TempDir()
	prefix = filepath.Join(dir, "out", filepath.Base(pkg))
	results := filepath.Join(dir, "results.db")
	args := append([]string{"--brokers", addr, "--topic", topic, "--checkpoint", filepath.Join(dir, "ck"), "--save", prefix,
		"--sink", "sqlite:" + results,
		"--generate", "0", "--batch", "50ms", "--max-rate-per-partition", "400", "--stop-when-idle", "3"}, extra...)
	out := RunWithKills(t, rnd, Kills{
		N:        6,
		Trigger:  func(l string) bool { return strings.HasPrefix(l, "batch ") || strings.HasPrefix(l, "top ") },
		MaxDelay: 3 * time.Millisecond,
		Timeout:  45 * time.Second,
	}, bin, args...)
	require.Regexp(t, `stopped \(the topic stayed drained for 3 batches\)`, out[len(out)-1])
	require.Equal(t, SavedRows(t, prefix, ""), SinkRows(t, results, ""), "the --sink rows, batch by batch, after the kills")
	require.Equal(t, EndOffsets(t, addr, topic), SinkOffsets(t, results, filepath.Base(pkg)), "the --sink's stored offsets after the kills")
	return prefix
}

// Newest returns the newest file --save PREFIX wrote for kind ("" for the
// main results): the one with the highest batch time.
func Newest(t testing.TB, prefix, kind string) string {
	t.Helper()
	files := Saved(t, prefix, kind)
	require.NotEmpty(t, files, "no %s-%s*.jsonl file", prefix, kind)
	return files[len(files)-1]
}

// Saved returns the files --save PREFIX wrote for kind ("" for the main
// results), oldest batch first.
func Saved(t testing.TB, prefix, kind string) []string {
	t.Helper()
	head := filepath.Base(prefix) + "-"
	if kind != "" {
		head += kind + "-"
	}
	entries, err := os.ReadDir(filepath.Dir(prefix))
	require.NoError(t, err)
	type file struct {
		ms   int64
		path string
	}
	var files []file
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), head)
		if !ok {
			continue
		}
		ms, ok := strings.CutSuffix(rest, ".jsonl")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			continue // another kind's file
		}
		files = append(files, file{v, filepath.Join(filepath.Dir(prefix), e.Name())})
	}
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.ms, b.ms) })
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.path
	}
	return paths
}

// ReadJSONLines decodes every line of path into a T, failing on any line
// that does not parse.
func ReadJSONLines[T any](t testing.TB, path string) []T {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []T
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" && i == 0 {
			break // an empty file
		}
		var v T
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&v), "%s line %d: %q", path, i+1, line)
		out = append(out, v)
	}
	return out
}

// Seed returns a random seed, or the one in SLUICE_TEST_SEED, and logs it so
// that a failing run can be repeated.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "SLUICE_TEST_SEED")
		seed = v
	}
	t.Logf("seed %d (repeat with SLUICE_TEST_SEED=%d)", seed, seed)
	return seed
}
