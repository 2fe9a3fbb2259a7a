package crashtest

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildChild compiles the job the test kills, with the race detector
// when the test runs with it.
func buildChild(t *testing.T) string {
	if raceEnabled {
		return Build(t, "./child", "-race")
	}
	return Build(t, "./child")
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

	ckpt, crashOut := t.TempDir(), t.TempDir()
	Loop{
		Command: func(float64, uint64) *exec.Cmd {
			return exec.Command(bin, "-checkpoint", ckpt, "-out", crashOut, "-batches", strconv.Itoa(batches))
		},
		MaxDelay: 3 * time.Millisecond,
	}.Run(t)
	got := readOutputs(t, crashOut)
	require.Equal(t, slices.Sorted(maps.Keys(want)), slices.Sorted(maps.Keys(got)), "the same output files")
	for name, lines := range want {
		require.Equal(t, lines, got[name], "output file %s", name)
	}
}
