package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topics of the scale-out workload.
const (
	topicKeyed    = "behavior-keyed" // page popularity input keyed by page, for group mode
	topicFailover = "failover"       // failoverKeys distinct keys per partition
)

// member is one process of the scale-out workload (see memberEnv).
type member struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan struct{} // closed once the process has exited
	err    error         // valid after done
	stderr *syncBuffer
}

// memberEvent is a line a member printed.
type memberEvent struct {
	m       *member
	line    string
	end     time.Time // batch lines: when the batch completed
	records int64
	parts   []int32
	output  int64     // batch lines: what the batch's output added up
	state   *jobState // state lines
	metric  string    // metric lines: the metric's name
	value   float64   // and its value
	timing  string    // timing lines: the rest of the line
}

// jobState is what the members of a run hold in state once stopped: pages
// and the sum of their popularities, or the words counted, their count and
// its fingerprint (see memberEnv).
type jobState struct {
	keys  int
	sum   float64
	print uint64
	// metrics are the members' kafka_repartition_* counters, summed.
	metrics map[string]float64
	// timings say what each member's batches spent their time on.
	timings []string
	cpu     time.Duration // the members' user and system CPU time, once they exited
	// broker is the CPU time of this process (the broker, mostly) while
	// the members read.
	broker time.Duration
	// others is how many cores other processes kept busy meanwhile.
	others float64
	read   int64 // records a member read (state lines)
	// members says what each member held, for an error.
	members []string
}

func (s *jobState) add(o *jobState) {
	s.members = append(s.members, fmt.Sprintf("%d keys after reading %d records", o.keys, o.read))
	s.keys += o.keys
	s.sum += o.sum
	s.print += o.print
}

// addMetric adds a member's metric line to s.
func (s *jobState) addMetric(ev memberEvent) {
	if s.metrics == nil {
		s.metrics = map[string]float64{}
	}
	s.metrics[ev.metric] += ev.value
}

// take adds what ev says of the members' state to s.
func (s *jobState) take(ev memberEvent) {
	switch {
	case ev.state != nil:
		s.add(ev.state)
	case ev.metric != "":
		s.addMetric(ev)
	case ev.timing != "":
		s.timings = append(s.timings, ev.m.name+": "+ev.timing)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startMember starts the benchmarks binary again as the process spec
// describes, with GOMAXPROCS procs (0: the default), sending what it prints
// to events.
func (h *harness) startMember(name string, spec memberSpec, procs int, events chan<- memberEvent) (*member, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), memberEnv+"="+string(js))
	if procs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	m := &member{name: name, cmd: cmd, done: make(chan struct{}), stderr: &syncBuffer{}}
	cmd.Stderr = m.stderr
	if m.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			ev := memberEvent{m: m, line: sc.Text()}
			if f := strings.Fields(ev.line); len(f) == 5 && f[0] == "state" {
				ev.state = &jobState{}
				ev.state.keys, _ = strconv.Atoi(f[1])
				ev.state.sum, _ = strconv.ParseFloat(f[2], 64)
				ev.state.read, _ = strconv.ParseInt(f[3], 10, 64)
				ev.state.print, _ = strconv.ParseUint(f[4], 10, 64)
			} else if rest, ok := strings.CutPrefix(ev.line, "timing "); ok {
				ev.timing = rest
			} else if len(f) == 3 && f[0] == "metric" {
				ev.metric = f[1]
				ev.value, _ = strconv.ParseFloat(f[2], 64)
			} else if len(f) == 5 && f[0] == "batch" {
				ns, _ := strconv.ParseInt(f[1], 10, 64)
				ev.end = time.Unix(0, ns)
				ev.records, _ = strconv.ParseInt(f[2], 10, 64)
				if f[3] != "-" {
					for p := range strings.SplitSeq(f[3], ",") {
						n, _ := strconv.Atoi(p)
						ev.parts = append(ev.parts, int32(n))
					}
				}
				ev.output, _ = strconv.ParseInt(f[4], 10, 64)
			}
			events <- ev
		}
		m.err = cmd.Wait()
		close(m.done)
		events <- memberEvent{m: m, line: "exit"}
	}()
	return m, nil
}

// stopMembers closes the members' standard input, which stops them, and
// waits for them to exit, killing those that take longer than 30s. It
// drains events meanwhile, adding the state lines to state (when not nil).
func stopMembers(events <-chan memberEvent, state *jobState, ms ...*member) error {
	var errs []error
	for _, m := range ms {
		_ = m.stdin.Close()
	}
	deadline := time.After(30 * time.Second)
	for _, m := range ms {
		for waiting := true; waiting; {
			select {
			case <-m.done:
				waiting = false
			case ev := <-events:
				if state != nil {
					state.take(ev)
				}
			case <-deadline:
				_ = m.cmd.Process.Kill()
				<-m.done
				waiting = false
			}
		}
		var ee *exec.ExitError
		if m.err != nil && !(errors.As(m.err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL) {
			errs = append(errs, fmt.Errorf("member %s: %v: %s", m.name, m.err, m.stderr))
		}
	}
	// The lines of exited members are all sent by now (each sends "exit"
	// last, after done is closed): drain them.
	for {
		select {
		case ev := <-events:
			if state != nil {
				state.take(ev)
			}
		default:
			return errors.Join(errs...)
		}
	}
}

// waitReady waits until every member has printed "ready".
func waitReady(ctx context.Context, events <-chan memberEvent, ms ...*member) error {
	ready := map[*member]bool{}
	timeout := time.After(time.Minute)
	for len(ready) < len(ms) {
		select {
		case ev := <-events:
			switch ev.line {
			case "ready":
				ready[ev.m] = true
			case "exit":
				return fmt.Errorf("member %s exited before it was ready: %v: %s", ev.m.name, ev.m.err, ev.m.stderr)
			}
		case <-timeout:
			return errors.New("the members were not ready within a minute")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// waitAssigned waits until group is stable with members members that own
// all partitions of topic between them, and returns who owns which.
func (h *harness) waitAssigned(ctx context.Context, group, topic string, members, partitions int) (map[string][]int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addrs()...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ds, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			d := ds[group]
			owned := map[string][]int32{}
			n := 0
			for _, m := range d.Members {
				if a, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range a.Topics {
						if t.Topic == topic {
							owned[m.MemberID] = append(owned[m.MemberID], t.Partitions...)
							n += len(t.Partitions)
						}
					}
				}
			}
			if d.Err == nil && d.State == "Stable" && len(d.Members) == members && n == partitions {
				return owned, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("group %s did not settle on %d members owning the %d partitions of %s within a minute", group, members, partitions, topic)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// lowerMinSession lets group members of the embedded broker ask for
// session timeouts down to 100ms.
func (h *harness) lowerMinSession(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addrs()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	v := "100"
	rs, err := kadm.NewClient(cl).AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "group.min.session.timeout.ms", Value: &v}})
	for _, r := range rs {
		err = errors.Join(err, r.Err)
	}
	return err
}

// scaleJob is what the processes of a scale-out run read and run.
type scaleJob struct {
	job     string // jobPagePop or jobWordCount
	topic   string
	records int // records in topic: the run ends once they are all read
	// outputs, when not 0, is what the outputs of the run add up to once
	// every record has gone through the job (the word count's words): the
	// run ends with the batch whose output makes the sum, and the members
	// wait for pokes instead of stopping when idle (their repartition
	// records may still come from another member).
	outputs int64
	group   string // prefix of the runs' group names
}

// scaleRun reads job's input once with members processes of the job in
// group mode (0: one process in single-process mode, checkpointed), each
// with GOMAXPROCS 1, and returns the time from telling them to go to the
// end of the batch that read the last record (or made the outputs' sum),
// and the group's name.
func (h *harness) scaleRun(ctx context.Context, job scaleJob, members int, state *jobState) (time.Duration, string, error) {
	h.scaleSeq++
	group := fmt.Sprintf("%s-%d", job.group, h.scaleSeq)
	spec := memberSpec{Brokers: h.broker.Addrs(), Topic: job.topic, Group: group, Job: job.job, Batch: h.cfg.batch, Manual: true,
		MaxRate: h.limits(job.records).MaxRatePerPartition, Session: 6 * time.Second}
	if job.outputs == 0 {
		spec.IdleStop = 2
	} else {
		spec.WaitIdle = true
	}
	events := make(chan memberEvent, 1024)
	var ms []*member
	defer func() { _ = stopMembers(events, nil, ms...) }()
	n := max(members, 1)
	for i := range n {
		s := spec
		dir, err := os.MkdirTemp(h.dir, "member-")
		if err != nil {
			return 0, "", err
		}
		defer os.RemoveAll(dir)
		s.StateDir = dir
		name := "single"
		if members > 0 {
			s.Name = string(rune('a' + i))
			name = s.Name
		}
		if h.cfg.cpuprofile != "" {
			s.CPUProfile = fmt.Sprintf("%s.%s-%s", h.cfg.cpuprofile, group, name)
		}
		if h.cfg.trace != "" {
			s.Trace = fmt.Sprintf("%s.%s-%s", h.cfg.trace, group, name)
		}
		m, err := h.startMember(name, s, 1, events)
		if err != nil {
			return 0, "", err
		}
		ms = append(ms, m)
	}
	if err := waitReady(ctx, events, ms...); err != nil {
		return 0, "", err
	}
	if members > 0 {
		if _, err := h.waitAssigned(ctx, group, job.topic, members, h.cfg.partitions); err != nil {
			return 0, "", err
		}
	}
	start, selfStart, busyStart := time.Now(), selfCPU(), machineBusy()
	for _, m := range ms {
		if _, err := io.WriteString(m.stdin, "go\n"); err != nil {
			return 0, "", err
		}
	}
	var read, output int64
	var last time.Time
	per, batches := map[*member]string{}, map[*member]int{}
	defer func() {
		for _, p := range per {
			h.logf("  %s", p)
		}
	}()
	for read < int64(job.records) || output < job.outputs {
		select {
		case ev := <-events:
			// A member runs no more batches once its tasks read nothing
			// more ("idle"); exiting before it is told to is a failure.
			if ev.line == "exit" {
				return 0, "", fmt.Errorf("member %s exited after %d of %d records in all: %v: %s", ev.m.name, read, job.records, ev.m.err, ev.m.stderr)
			}
			state.take(ev)
			if ev.records > 0 {
				per[ev.m] = fmt.Sprintf("%s: %d batches, last reading at %v", ev.m.name, batches[ev.m]+1, ev.end.Sub(start).Round(time.Millisecond))
				if job.outputs > 0 {
					// The batch committed repartition records the
					// other members may read.
					for _, o := range ms {
						if o != ev.m {
							if _, err := io.WriteString(o.stdin, "poke\n"); err != nil {
								return 0, "", err
							}
						}
					}
				}
			}
			if !ev.end.IsZero() {
				batches[ev.m]++
			}
			read += ev.records
			output += ev.output
			if ev.end.After(last) {
				last = ev.end
			}
		case <-time.After(time.Minute):
			return 0, "", fmt.Errorf("no batch completed for a minute, %d of %d records read, outputs %d of %d", read, job.records, output, job.outputs)
		case <-ctx.Done():
			return 0, "", ctx.Err()
		}
	}
	if read != int64(job.records) || output != job.outputs {
		return 0, "", fmt.Errorf("the members read %d records of %d and their outputs made %d of %d", read, job.records, output, job.outputs)
	}
	state.broker = selfCPU() - selfStart
	busy := machineBusy() - busyStart
	err := stopMembers(events, state, ms...)
	for _, m := range ms {
		if ps := m.cmd.ProcessState; ps != nil {
			state.cpu += ps.UserTime() + ps.SystemTime()
		}
	}
	ms = nil
	for _, t := range state.timings {
		h.logf("  %s", t)
	}
	// What the machine was busy with besides the members and this process,
	// in cores, while the members read (their CPU time before "go" and
	// after the last batch is small, and counted as theirs).
	state.others = max(0, float64(busy-state.cpu-state.broker)/float64(last.Sub(start)))
	return last.Sub(start), group, err
}

// scaleOut measures the keyed page popularity job on two members ÷ one,
// and on one member in group mode ÷ the same job in single-process mode
// (checkpointed), every process with GOMAXPROCS 1; then the failover.
func (h *harness) scaleOut(ctx context.Context) error {
	if err := h.lowerMinSession(ctx); err != nil {
		return fmt.Errorf("lowering the broker's group.min.session.timeout.ms: %w", err)
	}
	// Every run must end with the same pages in state and the same sum of
	// their popularities as the first.
	var want *jobState
	cpu := map[int][]float64{}    // CPU seconds of each run, by members
	others := map[int][]float64{} // cores other processes kept busy, by members
	run := func(members int) runner {
		return func(ctx context.Context) (time.Duration, error) {
			got := &jobState{}
			d, _, err := h.scaleRun(ctx, scaleJob{job: jobPagePop, topic: topicKeyed, records: h.cfg.scaleRecords, group: "bench-scaleout"}, members, got)
			if err != nil {
				return 0, err
			}
			cpu[members] = append(cpu[members], got.cpu.Seconds())
			others[members] = append(others[members], got.others)
			h.logf("%d members (0: single-process mode): %v, the members' CPU %v, the broker's process CPU %v while they read, other processes %.2f cores",
				members, d.Round(time.Millisecond), got.cpu.Round(time.Millisecond), got.broker.Round(time.Millisecond), got.others)
			if want == nil {
				want = got
			} else if got.keys != want.keys || math.Abs(got.sum-want.sum) > 1e-9*math.Max(1, math.Abs(want.sum)) {
				return 0, fmt.Errorf("the run with %d members ended with %d pages summing to %g in state (%s), another with %d pages summing to %g (%s)",
					members, got.keys, got.sum, strings.Join(got.members, ", "), want.keys, want.sum, strings.Join(want.members, ", "))
			}
			return d, nil
		}
	}
	rates, err := h.compare(ctx, h.cfg.scaleRecords, run(0), run(1), run(2))
	if err != nil {
		return err
	}
	if want.keys == 0 {
		return errors.New("the scale-out runs ended with no page in state")
	}
	single, one, two := rates[0], rates[1], rates[2]
	size := thousands(h.cfg.scaleRecords)
	r := h.throughput("scaleout", "2 members ÷ 1, GOMAXPROCS 1 each", fmt.Sprintf("page popularity, %s records keyed by page, 2 members in group mode, each a process with GOMAXPROCS 1 (other processes kept %.2f of the %d cores busy meanwhile)",
		size, median(others[2]), runtime.NumCPU()), two, one, "1 member, GOMAXPROCS 1")
	r.ratioGoal("≥ 1.8×", 1.8)
	h.add(r)
	// On a machine with fewer cores than members and broker, the members
	// share the cores; their CPU time says how well the work splits all
	// the same.
	cpuTwo, cpuOne := median(cpu[2]), median(cpu[1])
	h.add(result{Workload: "scaleout", Label: "CPU time, 2 members ÷ 1", Unit: unitTimes, Better: "lower",
		Figure: fmt.Sprintf("CPU time of the 2 members (user and system) over the same input, %.2f s against %.2f s", cpuTwo, cpuOne),
		Sluice: cpuTwo / cpuOne})
	h.add(h.throughput("scaleout", "group mode on 1 member ÷ single-process", fmt.Sprintf("page popularity, %s records keyed by page, group mode on 1 member, GOMAXPROCS 1", size), one, single, "single-process mode, checkpoints on, GOMAXPROCS 1"))
	return h.failover(ctx)
}

// failover loads failoverKeys distinct keys into each of failoverTasks
// partitions, runs two members (real clock) until they have read them all
// and a trickle of further records keeps every batch reading, kills the
// member that is not the group's first with SIGKILL and times how long the
// other takes to commit a batch that read one of its tasks: session
// timeout, rebalance, restore of the tasks' state from their changelogs
// and the first batch.
func (h *harness) failover(ctx context.Context) error {
	var times, restores []time.Duration
	for range h.cfg.repeat {
		d, restore, err := h.failoverOnce(ctx)
		if err != nil {
			return err
		}
		h.logf("failover in %v, of which restoring the tasks from their changelogs %v", d.Round(time.Millisecond), restore.Round(time.Millisecond))
		times, restores = append(times, d), append(restores, restore)
	}
	ms := make([]float64, len(times))
	for i, d := range times {
		ms[i] = float64(d) / float64(time.Millisecond)
	}
	rs := make([]float64, len(restores))
	for i, d := range restores {
		rs[i] = float64(d) / float64(time.Millisecond)
	}
	failover, session := median(ms), float64(h.cfg.failoverSession)/float64(time.Millisecond)
	r := result{Workload: "scaleout", Label: "failover ÷ session timeout", Unit: unitMS, Better: "lower",
		Figure: fmt.Sprintf("failover: kill -9 to the first batch committed by the new owner, %s keys per task, %d tasks (%+.0f ms against the session timeout, which runs from the last heartbeat; restoring took %.0f ms)",
			thousands(h.cfg.failoverKeys), h.cfg.failoverTasks, failover-session, median(rs)),
		Sluice: failover}
	r.against(session, "session timeout")
	r.goal("≤ session timeout + 10 s", failover-session <= 10_000)
	h.add(r)
	return nil
}

func (h *harness) failoverOnce(ctx context.Context) (failover, restore time.Duration, err error) {
	h.scaleSeq++
	group := fmt.Sprintf("bench-failover-%d", h.scaleSeq)
	spec := memberSpec{Brokers: h.broker.Addrs(), Topic: topicFailover, Group: group, Batch: h.cfg.failoverBatch,
		Session: h.cfg.failoverSession, LogInfo: true}
	events := make(chan memberEvent, 1024)
	var ms []*member
	defer func() { _ = stopMembers(events, nil, ms...) }()
	for _, name := range []string{"a", "b"} {
		s := spec
		s.Name = name
		dir, err := os.MkdirTemp(h.dir, "member-")
		if err != nil {
			return 0, 0, err
		}
		defer os.RemoveAll(dir)
		s.StateDir = dir
		m, err := h.startMember(name, s, 0, events)
		if err != nil {
			return 0, 0, err
		}
		ms = append(ms, m)
	}
	if err := waitReady(ctx, events, ms...); err != nil {
		return 0, 0, err
	}
	if _, err := h.waitAssigned(ctx, group, topicFailover, 2, h.cfg.failoverTasks); err != nil {
		return 0, 0, err
	}
	for _, m := range ms {
		if _, err := io.WriteString(m.stdin, "go\n"); err != nil {
			return 0, 0, err
		}
	}
	a, b := ms[0], ms[1]
	// Both read their share of the keys; then a trickle of records keeps
	// every batch reading.
	loaded := int64(h.cfg.failoverKeys * h.cfg.failoverTasks)
	var read int64
	bParts := map[int32]bool{}
	for read < loaded {
		ev, err := nextEvent(ctx, events)
		if err != nil {
			return 0, 0, err
		}
		read += ev.records
		if ev.m == b {
			for _, p := range ev.parts {
				bParts[p] = true
			}
		}
	}
	if len(bParts) == 0 {
		return 0, 0, errors.New("member b read none of the keys")
	}
	trickleCtx, stopTrickle := context.WithCancel(ctx)
	defer stopTrickle()
	trickled := make(chan error, 1)
	go func() { trickled <- h.trickle(trickleCtx, topicFailover, h.cfg.failoverTasks, h.cfg.failoverBatch/2) }()
	// Kill b after a batch of its that read the trickle.
	for {
		ev, err := nextEvent(ctx, events)
		if err != nil {
			return 0, 0, err
		}
		if ev.m == b && ev.records > 0 {
			break
		}
	}
	killed := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return 0, 0, err
	}
	for {
		ev, err := nextEvent(ctx, events)
		if err != nil && ev.m != b {
			return 0, 0, err
		}
		if ev.m != a {
			continue
		}
		for _, p := range ev.parts {
			if bParts[p] {
				stopTrickle()
				if err := <-trickled; err != nil && !errors.Is(err, context.Canceled) {
					return 0, 0, err
				}
				return ev.end.Sub(killed), restoresTook(a.stderr.String()), nil
			}
		}
	}
}

// restoredLine matches the source's log line for a task it restored.
var restoredLine = regexp.MustCompile(`msg="kafkasource: restored a task's state" task=\d+ .*\brecords=(\d+) .*\btook=(\S+)`)

// restoresTook returns the time the member whose log is stderr took to
// restore the tasks it restored with records, summed.
func restoresTook(stderr string) time.Duration {
	var total time.Duration
	for _, m := range restoredLine.FindAllStringSubmatch(stderr, -1) {
		if m[1] == "0" {
			continue
		}
		d, _ := time.ParseDuration(m[2])
		total += d
	}
	return total
}

// nextEvent returns the next line a member printed, failing on a member
// that exits, or after a minute without a line.
func nextEvent(ctx context.Context, events <-chan memberEvent) (memberEvent, error) {
	select {
	case ev := <-events:
		if ev.line == "exit" {
			return ev, fmt.Errorf("member %s exited: %v: %s", ev.m.name, ev.m.err, ev.m.stderr)
		}
		return ev, nil
	case <-time.After(time.Minute):
		return memberEvent{}, errors.New("no member printed anything for a minute")
	case <-ctx.Done():
		return memberEvent{}, ctx.Err()
	}
}

// trickle writes one record to every partition of topic every interval
// until ctx is done, each to a key its partition holds already.
func (h *harness) trickle(ctx context.Context, topic string, partitions int, interval time.Duration) error {
	cl, err := h.producer()
	if err != nil {
		return err
	}
	defer cl.Close()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		for p := range int32(partitions) {
			k, v := failoverRecord(p, i%h.cfg.failoverKeys)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Key: k, Value: v}, nil)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// failoverRecord is the record of key i of partition p: a behaviour of page
// t<p>-k<i>.
func failoverRecord(p int32, i int) (key, value []byte) {
	k := fmt.Appendf(nil, "t%d-k%06d", p, i)
	return k, fmt.Appendf(nil, "%s|1|1.5|0", k)
}

// loadScaleOut fills the scale-out workload's topics: the page popularity
// input keyed by page (the default partitioner, as co-partitioning wants),
// and failoverKeys keys in each partition of the failover topic.
func (h *harness) loadScaleOut(ctx context.Context) error {
	if err := h.broker.CreateTopic(ctx, topicKeyed, int32(h.cfg.partitions)); err != nil {
		return err
	}
	// Pages are uniform, not Zipf-distributed as in the pagepop workload,
	// so that the partitions, hashed from the pages, hold about as many
	// records each: a member's share of the work is its share of the
	// partitions.
	gen := newUniformBehaviorGen()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addrs()...), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(200_000))
	if err != nil {
		return err
	}
	defer cl.Close()
	var first error
	var mu sync.Mutex
	keep := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			first = cmpOr(first, err)
			mu.Unlock()
		}
	}
	for i := range h.cfg.scaleRecords {
		_, v := gen.next(i)
		page, _, _ := bytes.Cut(v, []byte("|"))
		cl.Produce(ctx, &kgo.Record{Topic: topicKeyed, Key: page, Value: v}, keep)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if first != nil {
		return fmt.Errorf("producing %s: %w", topicKeyed, first)
	}
	h.logf("loaded %d behaviors keyed by page into %s", h.cfg.scaleRecords, topicKeyed)

	if err := h.broker.CreateTopic(ctx, topicFailover, int32(h.cfg.failoverTasks)); err != nil {
		return err
	}
	pc, err := h.producer()
	if err != nil {
		return err
	}
	defer pc.Close()
	for p := range int32(h.cfg.failoverTasks) {
		for i := range h.cfg.failoverKeys {
			k, v := failoverRecord(p, i)
			pc.Produce(ctx, &kgo.Record{Topic: topicFailover, Partition: p, Key: k, Value: v}, keep)
		}
	}
	if err := pc.Flush(ctx); err != nil {
		return err
	}
	if first != nil {
		return fmt.Errorf("producing %s: %w", topicFailover, first)
	}
	h.logf("loaded %d keys into each of the %d partitions of %s", h.cfg.failoverKeys, h.cfg.failoverTasks, topicFailover)
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// selfCPU returns this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy returns the CPU time all processes of the machine have spent
// so far (/proc/stat: every state but idle and iowait), or 0 where it cannot
// be read.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:8] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}
