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

// brokerFiles returns the contents of the files in the embedded broker's
// data dir.
func brokerFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = string(b)
	}
	return files
}

// TestSecondInstanceLeavesTheFirstsBrokerAlone: a second instance on the
// same --checkpoint is refused by the checkpoint's lock before its embedded
// broker opens DIR-broker, so the first one's broker files stay byte for
// byte as they were and the first keeps running. (An hour-long batch keeps
// the first from writing its group offsets meanwhile.)
func TestSecondInstanceLeavesTheFirstsBrokerAlone(t *testing.T) {
	bin := exampletest.Build(t, "./examples/pagepopularity")
	ck := filepath.Join(t.TempDir(), "ck")
	args := []string{"--checkpoint", ck, "--batch", "1h", "--generate", "0", "--sink", "", "--http", ""}
	first := exampletest.Start(t, bin, args...)
	for l := range first.Lines {
		if strings.Contains(l, "Ctrl-C stops") {
			break
		}
	}
	before := brokerFiles(t, ck+"-broker")
	require.NotEmpty(t, before)

	second := exampletest.Start(t, bin, args...)
	out := strings.Join(second.Wait(t, time.Minute), "\n")
	require.Error(t, second.Err, "the second instance is refused")
	require.Contains(t, second.Stderr.String(), "is in use by another job")
	require.NotContains(t, out, "embedded Kafka broker on", "its broker never started")
	require.NotContains(t, out, "resuming from checkpoint")

	require.Equal(t, before, brokerFiles(t, ck+"-broker"), "the first instance's broker files are untouched")
	select {
	case <-first.Done:
		t.Fatalf("the first instance exited: %v\n%s", first.Err, first.Stderr)
	default:
	}
}
