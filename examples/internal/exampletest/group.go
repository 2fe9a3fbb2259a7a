package exampletest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Helpers for the tests that run an example on several processes, members
// of one consumer group (--member), against a stand-alone broker.

// RequireKcat returns kcat's path. Without kcat the test is skipped, saying
// how to install it, except under CI=true, where it fails.
func RequireKcat(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err == nil {
		return path
	}
	const why = "kcat is not installed; install it (apt-get install kcat, brew install kcat) to run the multi-process tests, which produce and read with it"
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// StartBrokerArgs builds and runs cmd/sluice-broker on a free loopback port
// with a data dir and the extra args (--topic name:partitions, ...), and
// waits for its ready line. It returns the broker's address.
func StartBrokerArgs(t testing.TB, args ...string) string {
	t.Helper()
	bin := Build(t, "./cmd/sluice-broker")
	p := Start(t, bin, append([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--http", ""}, args...)...)
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-p.Lines:
			if !ok {
				<-p.Done
				t.Fatalf("sluice-broker exited before it was ready: %v\n%s", p.Err, p.Stderr)
			}
			if m := brokerReady.FindStringSubmatch(l); m != nil {
				go func() { // keep draining its output
					for range p.Lines {
					}
				}()
				return m[1]
			}
		case <-timeout:
			t.Fatalf("sluice-broker printed no ready line within 20s; stderr:\n%s", p.Stderr)
		}
	}
}

// KcatRecord is one record read by [KcatRead].
type KcatRecord struct {
	Partition int32
	Offset    int64
	Key       string
	Value     string
	Headers   map[string]string
}

// kcatConsume runs kcat to read every partition of topic at addr from its
// start to its end, read committed or not (see [KcatRead]), printing each
// record in format, and returns its output.
func kcatConsume(t testing.TB, addr, topic string, committed bool, format string) []byte {
	t.Helper()
	kcat := RequireKcat(t)
	iso := "read_uncommitted"
	if committed {
		iso = "read_committed"
	}
	args := []string{"-C", "-b", addr, "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "isolation.level=" + iso, "-f", format}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "kcat %s: %s", strings.Join(args, " "), stderr.String())
	return out
}

// KcatRead reads every partition of topic at addr from its start to its end
// with kcat (librdkafka), read committed (isolation.level=read_committed:
// up to the last stable offset, without aborted records) or not (up to the
// high watermark, aborted records too). Keys, values and header values
// must not hold a tab or a newline.
func KcatRead(t testing.TB, addr, topic string, committed bool) []KcatRecord {
	t.Helper()
	out := kcatConsume(t, addr, topic, committed, "%p\t%o\t%k\t%h\t%s\n")
	var recs []KcatRecord
	for line := range strings.Lines(string(out)) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), "\t", 5)
		require.Len(t, f, 5, "kcat line %q", line)
		p, err := strconv.ParseInt(f[0], 10, 32)
		require.NoError(t, err, "kcat line %q", line)
		o, err := strconv.ParseInt(f[1], 10, 64)
		require.NoError(t, err, "kcat line %q", line)
		r := KcatRecord{Partition: int32(p), Offset: o, Key: f[2], Value: f[4], Headers: map[string]string{}}
		if f[3] != "" {
			for h := range strings.SplitSeq(f[3], ",") {
				k, v, _ := strings.Cut(h, "=")
				r.Headers[k] = v
			}
		}
		recs = append(recs, r)
	}
	return recs
}

// WaitFor checks cond every 50ms until it holds, failing the test with what
// after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, cond) {
		t.Fatalf("waited %v for %s", timeout, what)
	}
}

// Eventually checks cond every 50ms until it holds or timeout passes, and
// reports whether it held.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Admin returns a kadm client of addr, closed when the test ends.
func Admin(t testing.TB, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// GroupAtEnd reports whether group's committed offsets of every partition
// of topic have reached the partition's end.
func GroupAtEnd(t testing.TB, adm *kadm.Client, group, topic string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	at := true
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := offs.Lookup(topic, e.Partition)
		at = at && e.Err == nil && ok && o.At == e.Offset
	})
	return at
}

// StableOffsets returns the last stable offset of every partition of topic
// (where read committed readers stop), and whether it is its high watermark
// in every partition, that is no transaction is open on the topic.
func StableOffsets(t testing.TB, adm *kadm.Client, topic string) (map[int32]int64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	require.NoError(t, err)
	ends, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	out := map[int32]int64{}
	closed := true
	stable.Each(func(o kadm.ListedOffset) {
		require.NoError(t, o.Err)
		out[o.Partition] = o.Offset
		e, _ := ends.Lookup(topic, o.Partition)
		closed = closed && e.Offset == o.Offset
	})
	return out, closed
}

// batchLine matches an example's line after each completed batch.
var batchLine = regexp.MustCompile(`^batch \S+: (\d+) records?\b`)

// Member is one process of an example running as a member of its group:
// its standard output is read as it comes, counting completed batches; the
// last lines of it and all of standard error are kept for failure messages.
type Member struct {
	Name string
	Life int // 1 for the first process under Name
	Cmd  *exec.Cmd
	Done chan struct{} // closed when the process has exited and its output is read
	Err  error         // the exit error, valid after Done

	mu      sync.Mutex
	batches int // batch lines
	working int // batch lines that read records
	last    []string
	stderr  bytes.Buffer
	changed chan struct{} // closed and replaced at every batch line
}

// Group runs the members of one example job: bin with Args and --member
// NAME --checkpoint Dir/NAME, a process per member name.
type Group struct {
	T    testing.TB
	Bin  string
	Args []string
	Dir  string // the members' local state dirs, Dir/NAME

	mu    sync.Mutex
	lives map[string]int
	live  map[string]*Member
}

// NewGroup returns a group of bin's processes with the shared args.
func NewGroup(t testing.TB, bin string, args ...string) *Group {
	g := &Group{T: t, Bin: bin, Args: args, Dir: t.TempDir(), lives: map[string]int{}, live: map[string]*Member{}}
	t.Cleanup(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, m := range g.live {
			_ = m.Cmd.Process.Signal(syscall.SIGCONT) // a stopped member dies too
			_ = m.Cmd.Process.Kill()
			<-m.Done
		}
	})
	return g
}

// StateDir returns the local state dir of member name.
func (g *Group) StateDir(name string) string { return filepath.Join(g.Dir, name) }

// Start starts a new life of member name, which must not be running.
func (g *Group) Start(name string) *Member {
	t := g.T
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Nil(t, g.live[name], "member %s is running already", name)
	g.lives[name]++
	args := append(slices.Clone(g.Args), "--member", name, "--checkpoint", g.StateDir(name))
	cmd := exec.Command(g.Bin, args...)
	cmd.Dir = g.Dir
	m := &Member{Name: name, Life: g.lives[name], Cmd: cmd, Done: make(chan struct{}), changed: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = lockedWriter{&m.mu, &m.stderr}
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			m.line(sc.Text())
		}
		m.Err = cmd.Wait()
		close(m.Done)
		m.mu.Lock()
		close(m.changed)
		m.changed = nil
		m.mu.Unlock()
	}()
	g.live[name] = m
	return m
}

func (m *Member) line(l string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.last) == 40 {
		m.last = m.last[1:]
	}
	m.last = append(m.last, l)
	sm := batchLine.FindStringSubmatch(l)
	if sm == nil {
		return
	}
	m.batches++
	if sm[1] != "0" {
		m.working++
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// Batches returns how many batches the member completed, and how many of
// them read records.
func (m *Member) Batches() (all, working int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.batches, m.working
}

// WaitBatches waits until the member has completed n batches in all
// (counting those that read records only, with working) and reports true,
// or reports false if the member exits first; it fails the test after
// timeout.
func (m *Member) WaitBatches(t testing.TB, n int, working bool, timeout time.Duration) bool {
	t.Helper()
	deadline := time.After(timeout)
	for {
		m.mu.Lock()
		got, ch := m.batches, m.changed
		if working {
			got = m.working
		}
		m.mu.Unlock()
		if got >= n {
			return true
		}
		if ch == nil {
			return false
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("member %s (life %d) completed %d of %d batches within %v\n%s", m.Name, m.Life, got, n, timeout, m.Output())
		}
	}
}

// Exited reports whether the member's process has exited.
func (m *Member) Exited() bool {
	select {
	case <-m.Done:
		return true
	default:
		return false
	}
}

// Stderr returns what the member wrote to standard error so far.
func (m *Member) Stderr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stderr.String()
}

// Output returns the last lines of the member's standard output and its
// standard error, for a failure message.
func (m *Member) Output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return "last output lines:\n" + strings.Join(m.last, "\n") + "\nstderr:\n" + m.stderr.String()
}

// Running returns the running life of member name, or nil.
func (g *Group) Running(name string) *Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.live[name]
}

// Names returns the names of the running members.
func (g *Group) Names() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(maps.Keys(g.live))
}

// Kill kills member name with SIGKILL and waits for it to be gone.
func (g *Group) Kill(name string) {
	t := g.T
	t.Helper()
	g.RequireAlive() // a member exits only when killed or stopped
	m := g.take(name)
	_ = m.Cmd.Process.Signal(syscall.SIGKILL) // fails only if it exited already
	<-m.Done
	var ee *exec.ExitError
	require.Truef(t, errors.As(m.Err, &ee), "member %s (life %d): %v", name, m.Life, m.Err)
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("member %s (life %d) died on its own before its kill: %v\n%s", name, m.Life, m.Err, m.Output())
	}
}

// Stop stops member name with SIGTERM, which lets the batch in flight
// commit, and requires it to exit with status 0 within timeout.
func (g *Group) Stop(name string, timeout time.Duration) {
	t := g.T
	t.Helper()
	g.RequireAlive()
	m := g.take(name)
	require.NoError(t, m.Cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-m.Done:
	case <-time.After(timeout):
		_ = m.Cmd.Process.Kill()
		<-m.Done
		t.Fatalf("member %s (life %d) did not stop within %v of SIGTERM\n%s", name, m.Life, timeout, m.Output())
	}
	if m.Err != nil {
		t.Fatalf("member %s (life %d) stopped with an error: %v\n%s", name, m.Life, m.Err, m.Output())
	}
}

// RequireAlive fails the test if a member exited on its own: members exit
// only when the test kills or stops them.
func (g *Group) RequireAlive() {
	t := g.T
	t.Helper()
	for _, name := range g.Names() {
		if m := g.Running(name); m.Exited() {
			t.Fatalf("member %s (life %d) exited: %v\n%s", name, m.Life, m.Err, m.Output())
		}
	}
}

func (g *Group) take(name string) *Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.live[name]
	require.NotNil(g.T, m, "member %s is not running", name)
	delete(g.live, name)
	return m
}

// lockedWriter writes to w holding mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
