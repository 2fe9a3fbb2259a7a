package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
	"github.com/sluicehq/sluice/examples/internal/exampleutil"
)

// TestUnencodableRowsDoNotFailBatches resumes pagepopularity from a
// checkpoint whose state holds a popularity of +Inf, as a version that let
// sums overflow wrote it. The row that JSON cannot hold is named in one
// warning and skipped, then, with --dead-letter, written to that file;
// every batch commits and the other pages reach --save and --sink.
func TestUnencodableRowsDoNotFailBatches(t *testing.T) {
	addr := exampletest.StartBroker(t, "user-behavior", 1)
	exampletest.Produce(t, addr, "user-behavior", nil, [][]byte{
		[]byte("pageX|1|1.5e308|0"), []byte("pageX|1|1.5e308|0"), []byte("page1|2|3.5|1"), []byte("page2|1|1|1")})
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck")
	common := []string{"--brokers", addr, "--checkpoint", ck, "--batch", "100ms", "--stop-when-idle", "2", "--http", ""}

	// The old update function: a plain sum, which overflows to +Inf.
	sum := func(cs []contribution, total float64, _ bool) (float64, bool) {
		for _, c := range cs {
			total += c.Value
		}
		return total, true
	}
	var out, errOut bytes.Buffer
	code := exampleutil.Run(t.Context(), spec, append(common, "--sink", ""), &out, &errOut,
		func(j *exampleutil.Job) error { return buildWith(j, sum) })
	require.Equal(t, exampleutil.ExitOK, code, "stderr: %s", errOut.String())
	require.Contains(t, out.String(), "+Inf", "the old version's state holds +Inf")

	bin := exampletest.Build(t, "./examples/pagepopularity")
	prefix := filepath.Join(dir, "out", "pop")
	results := filepath.Join(dir, "results.db")
	deadFile := filepath.Join(dir, "dead", "letters.jsonl")
	warn := regexp.MustCompile(`level=WARN msg="cannot encode a result row; (skipped it|wrote it to the --dead-letter file)[^"]*" key=pageX `)
	for _, withDead := range []bool{false, true} {
		args := append(common, "--save", prefix, "--sink", "sqlite:"+results)
		if withDead {
			args = append(args, "--dead-letter", deadFile)
		}
		p := exampletest.Start(t, bin, args...)
		lines := p.Wait(t, 30*time.Second)
		require.NoError(t, p.Err, "--dead-letter %v: stderr: %s", withDead, p.Stderr)
		text := strings.Join(lines, "\n")
		require.Regexp(t, `stopped \(the topic stayed drained for 2 batches\)`, lines[len(lines)-1])

		// Every batch names the row once, in the warning and the batch line.
		var batches int
		for _, l := range lines {
			if strings.HasPrefix(l, "batch ") {
				batches++
				want := `, 1 row not encodable, skipped \(first "pageX": `
				if withDead {
					want = `, 1 row not encodable, in ` + regexp.QuoteMeta(deadFile) + ` \(first "pageX": `
				}
				require.Regexp(t, want+`json: error calling MarshalJSON for type exampleutil.Fixed: \+Inf is not a finite number`, l)
			}
		}
		require.GreaterOrEqual(t, batches, 2, text)
		warnings := p.StderrExceptLateBatches()
		require.Len(t, warnings, batches, "one warning per batch: %s", p.Stderr)
		for _, w := range warnings {
			require.Regexp(t, warn, w)
		}

		got := map[string]float64{}
		for _, r := range exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix, "")) {
			got[r.Page] = r.Popularity
		}
		require.Equal(t, map[string]float64{"page1": 0.8*2 + 0.8*3.5 + 1, "page2": 0.8 + 0.8 + 1}, got)
		require.Equal(t, exampletest.SavedRows(t, prefix, ""), exampletest.SinkRows(t, results, ""), "--sink gets the rows --save gets")

		if !withDead {
			require.NoFileExists(t, deadFile)
			continue
		}
		data, err := os.ReadFile(deadFile)
		require.NoError(t, err)
		entries := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		require.Len(t, entries, batches, "one dead letter per batch")
		for _, e := range entries {
			var dl exampleutil.DeadLetter
			dec := json.NewDecoder(strings.NewReader(e))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&dl), e)
			require.Equal(t, "pagepopularity", dl.Job)
			require.Equal(t, "pageX", dl.Key)
			require.Equal(t, "{pageX +Inf}", dl.Element)
			require.Contains(t, dl.Error, "+Inf is not a finite number")
			require.Contains(t, exampletest.SavedRows(t, prefix, ""), dl.BatchTimeMs, "a dead letter names its batch")
		}
	}
}
