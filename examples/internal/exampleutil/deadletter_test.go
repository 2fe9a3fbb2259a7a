package exampleutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type score struct {
	Name  string `json:"name"`
	Score Fixed  `json:"score"`
}

func (s score) RowKey() string { return s.Name }

// refusing fails to marshal, as a row with a broken MarshalJSON does.
type refusing struct{ ID int }

func (refusing) MarshalJSON() ([]byte, error) { return nil, errors.New("no encoding for refusing") }

func TestEncodeRowsDeadLetters(t *testing.T) {
	at := time.UnixMilli(1700000000000)
	for _, withFile := range []bool{false, true} {
		var log bytes.Buffer
		d := &deadLetters{job: "scores", logger: slog.New(slog.NewTextHandler(&log, nil))}
		if withFile {
			d.path = filepath.Join(t.TempDir(), "sub", "dead.jsonl")
		}
		rows := []score{{"a", 1.5}, {"inf", Fixed(math.Inf(1))}, {"b<&>", 2}, {"nan", Fixed(math.NaN())}}
		lines, err := encodeRows(d, "totals", at, rows)
		require.NoError(t, err)
		require.Equal(t, []json.RawMessage{json.RawMessage(`{"name":"a","score":1.500000}`), json.RawMessage(`{"name":"b<&>","score":2.000000}`)}, lines,
			"the rows that encode, as --save writes them")

		n, first := d.take()
		require.Equal(t, int64(2), n)
		require.Equal(t, `"inf": json: error calling MarshalJSON for type exampleutil.Fixed: +Inf is not a finite number, which JSON cannot hold`, first)
		require.Equal(t, int64(2), d.total)
		warnings := strings.Split(strings.TrimSpace(log.String()), "\n")
		require.Len(t, warnings, 2, "one warning per row")
		require.Contains(t, warnings[0], "level=WARN")
		require.Contains(t, warnings[0], "key=inf kind=totals")
		require.Contains(t, warnings[1], "key=nan kind=totals")
		require.Contains(t, warnings[1], "NaN is not a finite number")
		if !withFile {
			require.Contains(t, warnings[0], "skipped it (pass --dead-letter FILE to keep such rows)")
			continue
		}
		require.Contains(t, warnings[0], "wrote it to the --dead-letter file")

		// A second batch appends to the file.
		_, err = encodeRows(d, "", at.Add(time.Second), []any{refusing{7}, 3})
		require.NoError(t, err)
		data, err := os.ReadFile(d.path)
		require.NoError(t, err)
		var got []DeadLetter
		for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			var dl DeadLetter
			require.NoError(t, json.Unmarshal([]byte(l), &dl), l)
			got = append(got, dl)
		}
		require.Equal(t, []DeadLetter{
			{Job: "scores", Kind: "totals", BatchTimeMs: 1700000000000, Key: "inf", Element: "{inf +Inf}",
				Error: "json: error calling MarshalJSON for type exampleutil.Fixed: +Inf is not a finite number, which JSON cannot hold"},
			{Job: "scores", Kind: "totals", BatchTimeMs: 1700000000000, Key: "nan", Element: "{nan NaN}",
				Error: "json: error calling MarshalJSON for type exampleutil.Fixed: NaN is not a finite number, which JSON cannot hold"},
			{Job: "scores", Kind: "", BatchTimeMs: 1700000001000, Key: "{7}", Element: "{7}",
				Error: "json: error calling MarshalJSON for type exampleutil.refusing: no encoding for refusing"},
		}, got)
		require.Regexp(t, `^, 1 row not encodable, in .*dead.jsonl \(first "\{7\}": json: error calling MarshalJSON`, d.batchNote())
		require.Empty(t, d.batchNote(), "nothing since the last batch line")
	}
}

func TestEncodeRowsFailsWhenTheDeadLetterFileCannotBeWritten(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	d := &deadLetters{job: "scores", path: filepath.Join(file, "dead.jsonl"), logger: slog.New(slog.DiscardHandler)}
	_, err := encodeRows(d, "", time.Now(), []score{{"inf", Fixed(math.Inf(-1))}})
	require.ErrorContains(t, err, "cannot create the directory of --dead-letter "+d.path)
	lines, err := encodeRows(d, "", time.Now(), []score{{"a", 1}})
	require.NoError(t, err, "rows that encode need no file")
	require.Len(t, lines, 1)
}

// TestRunChecksOutputPathsAtStart gives --save and --dead-letter paths
// under a regular file: the job refuses to start, with one sentence naming
// the flag, before it starts the broker or runs a batch.
func TestRunChecksOutputPathsAtStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	for _, c := range []struct{ flag, value, want string }{
		{"--save", filepath.Join(file, "out"), "goodbad: --save " + filepath.Join(file, "out") + " cannot be written (mkdir " + file + ": not a directory); pass a --save prefix in a directory you can write to\n"},
		{"--dead-letter", filepath.Join(file, "dead.jsonl"), "goodbad: --dead-letter " + filepath.Join(file, "dead.jsonl") + " cannot be written (mkdir " + file + ": not a directory); pass a --dead-letter file in a directory you can write to\n"},
		{"--dead-letter", dir, "goodbad: --dead-letter " + dir + " cannot be written (open " + dir + ": is a directory); pass a --dead-letter file in a directory you can write to\n"},
	} {
		t.Run(c.flag, func(t *testing.T) {
			code, out, errOut := run(t, t.Context(), &counting{}, "--listen", "127.0.0.1:0", "--checkpoint", "",
				"--generate", "0", "--stop-when-idle", "1", "--http", "", c.flag, c.value)
			require.Equal(t, ExitFailure, code)
			require.Equal(t, c.want, errOut)
			require.Empty(t, out, "nothing started")
		})
	}
}
