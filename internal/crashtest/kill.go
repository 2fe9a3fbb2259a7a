package crashtest

import (
	"bufio"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Build compiles the main package pkg (a path such as "./internal/child",
// from the test's directory) with the go build flags flags, and returns
// the binary. It also reads every Go file of the module's packages the
// child is built from: the child is built outside the test cache's sight,
// and files a test reads are part of its cache key, so a change to them
// runs the test again instead of reporting a cached pass.
func Build(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	args := append(append([]string{"build"}, flags...), "-o", bin, pkg)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v: %s", pkg, err, out)
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", pkg).Output()
	if err != nil {
		t.Fatalf("list the packages of %s: %v", pkg, err)
	}
	for _, dir := range strings.Fields(string(out)) {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if _, err := os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	return bin
}

// Loop kills a child job again and again and restarts it, until it has
// been killed Kills times; then it runs the child to its end.
//
// The child speaks on its standard output, one line each: "batch …" when
// a batch completes, "self-kill" just before it kills itself between its
// sinks' commit and its checkpoint's (the kill point a parent's timing
// would rarely hit), and "finished …" when it has run every batch. Each
// life is killed (SIGKILL) at a random moment up to MaxDelay after its
// first or second batch, so every life makes progress.
type Loop struct {
	// Command returns the command of one life of the child. killp is the
	// probability with which the child kills itself after a batch's
	// sinks have committed (0 for the last, uninterrupted run), seed the
	// seed of its own random choices.
	Command func(killp float64, seed uint64) *exec.Cmd
	// Kills is the least number of kills; 20 if zero.
	Kills int
	// KillP is the killp of every life but the last.
	KillP float64
	// SelfKill, when set, requires a kill at the injected point: the loop
	// goes on past Kills until the child has killed itself once, and
	// fails if it finishes first.
	SelfKill bool
	// MaxDelay bounds the parent's kill after the batch it waits for.
	MaxDelay time.Duration
}

// Result is what a [Loop] saw.
type Result struct {
	Kills     int    // lives that ended killed
	SelfKills int    // of them, the child's own kills at the injected point
	Finished  string // the rest of the child's "finished" line
}

// Run runs the loop, logging its seed (so a failing schedule can be read
// back) and what it did, and fails t when a life ends otherwise than
// killed or finished, or when the child finishes before the kills wanted.
func (l Loop) Run(t testing.TB) Result {
	t.Helper()
	want := l.Kills
	if want == 0 {
		want = 20
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	start := time.Now()
	var res Result
	finished := false
	for !finished && (res.Kills < want || l.SelfKill && res.SelfKills == 0) {
		cmd := l.Command(l.KillP, rng.Uint64())
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		self := false
		target := 1 + rng.IntN(2)
		delay := time.Duration(rng.Int64N(int64(l.MaxDelay) + 1))
		for seen := 0; sc.Scan(); {
			switch line := sc.Text(); {
			case line == "finished" || strings.HasPrefix(line, "finished "):
				finished = true
				res.Finished = strings.TrimSpace(strings.TrimPrefix(line, "finished"))
			case line == "self-kill":
				self = true
			case strings.HasPrefix(line, "batch "):
				if seen++; seen == target {
					time.AfterFunc(delay, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
				}
			}
		}
		err = cmd.Wait()
		killed := false
		if ee, ok := err.(*exec.ExitError); ok {
			ws, _ := ee.Sys().(syscall.WaitStatus)
			killed = ws.Signaled() && ws.Signal() == syscall.SIGKILL
		}
		switch {
		case finished && err != nil && !killed: // a kill timed after the last batch may land once the job has finished
			t.Fatalf("child: %v: %s", err, stderr.String())
		case finished:
		case !killed:
			t.Fatalf("child died on its own: %v: %s", err, stderr.String())
		default:
			res.Kills++
			if self {
				res.SelfKills++
			}
		}
	}
	if !finished {
		out, err := l.Command(0, rng.Uint64()).CombinedOutput()
		if err != nil {
			t.Fatalf("final run: %v: %s", err, out)
		}
		for line := range strings.Lines(string(out)) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "finished"); ok {
				res.Finished = strings.TrimSpace(rest)
			}
		}
	}
	if l.SelfKill {
		t.Logf("%d kills in %v, %d of them at the injected point between the sinks' commit and the checkpoint's",
			res.Kills, time.Since(start).Round(time.Millisecond), res.SelfKills)
	} else {
		t.Logf("%d kills in %v", res.Kills, time.Since(start).Round(time.Millisecond))
	}
	if res.Kills < want {
		t.Fatalf("the child finished after %d kills; want %d", res.Kills, want)
	}
	if l.SelfKill && res.SelfKills == 0 {
		t.Fatal("the child finished before it killed itself between the sinks' commit and the checkpoint's")
	}
	return res
}
