package exampletest

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStderrExceptLateBatches drops the engine's late-batch warning, as a
// job stopped by the machine for longer than its batch interval prints it,
// and keeps every other line, warnings included.
func TestStderrExceptLateBatches(t *testing.T) {
	late := `time=2026-12-04T20:13:19.411Z level=WARN msg="batches run late: this batch started more than one batch interval after its time; the job is behind (batches take longer than the interval, or the machine is overloaded)" time_ms=1796415198800 scheduling_delay=611ms batch_interval=200ms`
	other := `time=2026-12-04T20:13:19.500Z level=WARN msg="cannot encode a result row; skipped it" key=pageX`
	quoted := `time=2026-12-04T20:13:19.600Z level=ERROR msg="batch failed" error="batches run late: "`
	cases := []struct {
		name, stderr string
		want         []string
	}{
		{"empty", "", nil},
		{"only the late-batch warning", late + "\n", nil},
		{"other lines kept, in order", other + "\n" + late + "\n" + quoted + "\n", []string{other, quoted}},
		{"no final newline", late + "\n" + other, []string{other}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &Proc{Stderr: bytes.NewBufferString(c.stderr)}
			require.Equal(t, c.want, p.StderrExceptLateBatches())
		})
	}
}
