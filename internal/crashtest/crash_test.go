package crashtest

import (
	"bufio"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildChild compiles the job the test kills.
func buildChild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "child")
	cmd := exec.Command("go", "build", "-race", "-o", bin, "./child")
	if !raceEnabled {
		cmd = exec.Command("go", "build", "-o", bin, "./child")
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build child: %s", out)
	readChildSources(t)
	return bin
}

// readChildSources reads every Go file of the module's packages the child
// is built from. The child is built outside the test cache's sight; files
// the test reads are part of its cache key, so a change to the engine or
// its operators runs the test again instead of reporting a cached pass.
func readChildSources(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./child").Output()
	require.NoError(t, err, "list the child's packages")
	for _, dir := range strings.Fields(string(out)) {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			_, err := os.ReadFile(f)
			require.NoError(t, err)
		}
	}
}

// readOutputs returns every output file of a run, each as its sorted lines:
// keyed operators write keys in no set order.
func readOutputs(t *testing.T, dir string) map[string][]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := map[string][]string{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		slices.Sort(lines)
		files[e.Name()] = lines
	}
	return files
}

// TestKillAndRestartGivesTheSameResults kills the job at random moments (at
// least 20 times), restarts it from its checkpoint each time, and checks that
// every output file equals the one an uninterrupted run writes.
func TestKillAndRestartGivesTheSameResults(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped with -short")
	}
	bin := buildChild(t)
	const batches = 80

	refOut := t.TempDir()
	out, err := exec.Command(bin, "-out", refOut, "-batches", strconv.Itoa(batches)).CombinedOutput()
	require.NoError(t, err, "reference run: %s", out)
	want := readOutputs(t, refOut)
	require.Len(t, want, 5*batches-batches/2, "every operator wrote its batches (the slide-2s window every other batch)")

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	ckpt, crashOut := t.TempDir(), t.TempDir()
	kills := 0
	for kills < 20 {
		cmd := exec.Command(bin, "-checkpoint", ckpt, "-out", crashOut, "-batches", strconv.Itoa(batches))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		// Kill at a random moment after the child completes its next batch
		// (so every life makes progress), a random few milliseconds in.
		sc := bufio.NewScanner(stdout)
		finished := false
		target := 1 + rng.IntN(2)
		for seen := 0; sc.Scan(); {
			if sc.Text() == "finished" {
				finished = true
				break
			}
			if seen++; seen == target {
				time.AfterFunc(time.Duration(rng.IntN(3000))*time.Microsecond, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
			}
		}
		err = cmd.Wait()
		if finished {
			require.NoError(t, err, stderr.String())
			break
		}
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "child died on its own: %s", stderr.String())
		require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), stderr.String())
		kills++
	}
	// Run to the end.
	out, err = exec.Command(bin, "-checkpoint", ckpt, "-out", crashOut, "-batches", strconv.Itoa(batches)).CombinedOutput()
	require.NoError(t, err, "final run: %s", out)
	t.Logf("%d kills", kills)
	require.GreaterOrEqual(t, kills, 20)
	got := readOutputs(t, crashOut)
	require.Equal(t, slices.Sorted(maps.Keys(want)), slices.Sorted(maps.Keys(got)), "the same output files")
	for name, lines := range want {
		require.Equal(t, lines, got[name], "output file %s", name)
	}
}
