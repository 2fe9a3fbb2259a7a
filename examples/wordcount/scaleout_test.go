package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
)

// The scale-out test runs wordcount as several processes, members of one
// consumer group (--member), against a stand-alone sluice-broker: lines
// are produced with kcat, the words go through the repartition topic
// wordcount-words-repartition (group wordcount, stream "words"), and the
// results are read from the --sink kafka: topics with kcat, read
// committed, and compared with counts taken here from the input topic as
// kcat reads it back.

// Shape of the scale-out run.
const (
	soPartitions = 6
	soInput      = "lines"
	soGroup      = "wordcount"
	soOutput     = "counts"             // the window's rows
	soTotals     = soOutput + "-totals" // the all-time totals' rows
	soWords      = 120                  // the vocabulary
)

// soExchange is the repartition topic of the words.
var soExchange = exampletest.RepartitionTopic(soGroup, "words")

// soLines writes n lines of 3 to 12 words of the vocabulary w0 ... w119
// (the first capitalized, some followed by a comma, each line ending in
// '.', '!' or '?') to the input with kcat, each with a key of its own;
// it returns how many times each word was written.
func soLines(s *exampletest.ScaleOut, n int, seq *int) map[string]int64 {
	count := map[string]int64{}
	keys, values := make([][]byte, n), make([][]byte, n)
	for i := range n {
		var b strings.Builder
		words := 3 + s.Rng.IntN(10)
		for j := range words {
			w := "w" + strconv.Itoa(s.Rng.IntN(soWords))
			count[w]++
			if j == 0 {
				w = strings.ToUpper(w)
			} else {
				b.WriteByte(' ')
			}
			b.WriteString(w)
			if j < words-1 && s.Rng.IntN(8) == 0 {
				b.WriteByte(',')
			}
		}
		b.WriteByte(".!?"[s.Rng.IntN(3)])
		*seq++
		keys[i], values[i] = []byte("line-"+strconv.Itoa(*seq)), []byte(b.String())
	}
	exampletest.Produce(s.T, s.Addr, soInput, keys, values)
	return count
}

// soTruth reads the input back with kcat and counts its words as the
// example's documentation defines them (whitespace-separated, lowercased,
// leading and trailing punctuation trimmed); they must be the words
// written.
func soTruth(s *exampletest.ScaleOut, in *exampletest.Tally) map[string]int64 {
	return s.ReadBack(in, "words", func(value string, counts map[string]int64) {
		for _, f := range strings.Fields(value) {
			counts[strings.ToLower(strings.Trim(f, ".,!?"))]++
		}
	})
}

// countRow decodes a row of the output topics, {"word":…,"count":…}.
func countRow(value string) (string, int64, error) {
	var r wordCount
	err := json.Unmarshal([]byte(value), &r)
	return r.Word, r.Count, err
}

// soRun starts a scale-out run of wordcount with 2000 lines written to
// its input, and returns the tally of the lines and the group of members,
// none started yet, with a 10-minute window, longer than the run, sliding
// every 500ms.
func soRun(t *testing.T) (*exampletest.ScaleOut, *exampletest.Tally, *exampletest.Group) {
	s := exampletest.NewScaleOut(t, "./examples/wordcount", soInput, soPartitions, soGroup)
	in := exampletest.NewTally(func(n int, seq *int) map[string]int64 { return soLines(s, n, seq) })
	in.Write(2000)
	return s, in, s.Members(40, "--sink", "kafka:"+soOutput, "--window", "10m", "--slide", "500ms")
}

// soCheck checks, once the run has finished at marks, that the final
// window and the final totals both equal the word counts of the input, and
// that the repartition topic holds every word in the partition of its
// hash, its counts summing to the input's, once. It returns the counts
// and what the repartition topic holds.
func soCheck(s *exampletest.ScaleOut, in *exampletest.Tally, marks map[string]map[int32]int64) (map[string]int64, exampletest.RepartitionStats) {
	t := s.T
	t.Helper()
	want := soTruth(s, in)
	exampletest.RequireCounts(t, "the window's rows after the input was all read", want, s.FinalCounts(soOutput, marks[soOutput], countRow))
	exampletest.RequireCounts(t, "the totals' rows after the input was all read", want, s.FinalCounts(soTotals, marks[soTotals], countRow))
	st := exampletest.CheckRepartition(t, exampletest.Repartition{
		Addr: s.Addr, Topic: soExchange, Partitions: soPartitions, Consumers: []string{"batch-counts", "window-counts"},
		Decode: decodeCount, Want: want,
	})
	return want, st
}

// TestScaleOutKill9: three members, then a fourth, one of them killed with
// SIGKILL at a random moment 12 times (restarted at once, or after the
// next kill) while more lines arrive, with a window longer than the run:
// read committed, the final window and the final totals both equal the
// word counts of the input, and the repartition topic holds every word in
// the partition of its hash, its counts summing to the input's, once (read uncommitted, the records of the
// killed members' aborted transactions too, which would count twice).
func TestScaleOutKill9(t *testing.T) {
	s, in, g := soRun(t)
	marks := s.KillNine(g, in, 600, soExchange, soOutput, soTotals)
	want, st := soCheck(s, in, marks)
	t.Logf("%d lines, %d words (%d distinct); %s: %d records read committed (%.1f B a line), %d read uncommitted (%d aborted, holding %d words of the window and %d of the totals)",
		in.Records, exampletest.Sum(want), len(want), soExchange, st.Committed, float64(st.Bytes)/float64(in.Records), st.Uncommitted, st.Uncommitted-st.Committed, st.Aborted["window-counts"], st.Aborted["batch-counts"])
}

// TestScaleOutRestoresFromTheChangelogAlone kills member b, deletes its
// local state dir and starts it again while lines keep coming: the tasks it
// gets back are restored, window and totals, from their changelogs alone,
// and go on reading their repartition partitions where the group's
// offsets say; the final window and totals are exact.
func TestScaleOutRestoresFromTheChangelogAlone(t *testing.T) {
	s, in, g := soRun(t)
	g.Start("a")
	g.Start("b")
	s.WaitBatches(g, "b", 5, true)
	g.Kill("b")
	require.NoError(t, os.RemoveAll(g.StateDir("b")))
	in.Write(600)
	b := g.Start("b")
	s.WaitBatches(g, "b", 2, true)
	t.Logf("b restored %d records from the changelogs alone", exampletest.RequireRestoredFromChangelog(t, b))
	in.Write(600)
	soCheck(s, in, s.Finish(g, 11, []string{soExchange}, []string{soOutput, soTotals}))
}
