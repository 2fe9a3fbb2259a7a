package main

import (
	"encoding/json"
	"os"
	"regexp"
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
func soTruth(s *exampletest.ScaleOut, lines int, written map[string]int64) map[string]int64 {
	recs := exampletest.KcatRead(s.T, s.Addr, soInput, true)
	require.Len(s.T, recs, lines, "records in %s", soInput)
	want := map[string]int64{}
	for _, r := range recs {
		for _, f := range strings.Fields(r.Value) {
			want[strings.ToLower(strings.Trim(f, ".,!?"))]++
		}
	}
	require.Equal(s.T, written, want, "the words of %s read back", soInput)
	return want
}

// countRow decodes a row of the output topics, {"word":…,"count":…}.
func countRow(value string) (string, int64, error) {
	var r wordCount
	err := json.Unmarshal([]byte(value), &r)
	return r.Word, r.Count, err
}

// TestScaleOutKill9: three members, then a fourth, one of them killed with
// SIGKILL at a random moment 12 times (restarted at once, or after the
// next kill) while more lines arrive, with a window longer than the run:
// read committed, the final window and the final totals both equal the
// word counts of the input, and the repartition topic holds every word in
// the partition of its hash, its counts summing to the input's, once (read uncommitted, the records of the
// killed members' aborted transactions too, which would count twice).
func TestScaleOutKill9(t *testing.T) {
	s := exampletest.NewScaleOut(t, "./examples/wordcount", soInput, soPartitions, soGroup)
	written := map[string]int64{}
	var lines int
	add := func(n int) {
		for w, c := range soLines(s, n, &lines) {
			written[w] += c
		}
	}
	add(2000)
	// A 10-minute window, longer than the run, sliding every 500ms.
	g := s.Members(40, "--sink", "kafka:"+soOutput, "--window", "10m", "--slide", "500ms")
	for _, name := range []string{"a", "b", "c"} {
		g.Start(name)
	}
	s.KillAtRandom(g, 12, "d", func(k int) {
		if k%3 == 1 {
			add(600)
		}
	})
	add(600)
	// 11 batches: two slides of the window at least.
	marks := s.Finish(g, 11, []string{soExchange}, []string{soOutput, soTotals})

	want := soTruth(s, lines, written)
	exampletest.RequireCounts(t, "the window's rows after the input was all read", want, s.FinalCounts(soOutput, marks[soOutput], countRow))
	exampletest.RequireCounts(t, "the totals' rows after the input was all read", want, s.FinalCounts(soTotals, marks[soTotals], countRow))
	st := exampletest.CheckRepartition(t, exampletest.Repartition{
		Addr: s.Addr, Topic: soExchange, Partitions: soPartitions, Consumers: []string{"batch-counts", "window-counts"},
		Decode: decodeCount, Want: want,
	})
	var sum int64
	for _, c := range want {
		sum += c
	}
	t.Logf("%d lines, %d words (%d distinct); %s: %d records read committed (%.1f B a line), %d read uncommitted (%d aborted, holding %d words of the window and %d of the totals)",
		lines, sum, len(want), soExchange, st.Committed, float64(st.Bytes)/float64(lines), st.Uncommitted, st.Uncommitted-st.Committed, st.Aborted["window-counts"], st.Aborted["batch-counts"])
}

// TestScaleOutRestoresFromTheChangelogAlone kills member b, deletes its
// local state dir and starts it again while lines keep coming: the tasks it
// gets back are restored, window and totals, from their changelogs alone,
// and go on reading their repartition partitions where the group's
// offsets say; the final window and totals are exact.
func TestScaleOutRestoresFromTheChangelogAlone(t *testing.T) {
	s := exampletest.NewScaleOut(t, "./examples/wordcount", soInput, soPartitions, soGroup)
	written := map[string]int64{}
	var lines int
	add := func(n int) {
		for w, c := range soLines(s, n, &lines) {
			written[w] += c
		}
	}
	add(2000)
	g := s.Members(40, "--sink", "kafka:"+soOutput, "--window", "10m", "--slide", "500ms")
	g.Start("a")
	g.Start("b")
	s.WaitBatches(g, "b", 5, true)
	g.Kill("b")
	require.NoError(t, os.RemoveAll(g.StateDir("b")))
	add(600)
	b := g.Start("b")
	s.WaitBatches(g, "b", 2, true)
	var fromChangelog int
	for _, m := range restoredLine.FindAllStringSubmatch(b.Stderr(), -1) {
		records, _ := strconv.Atoi(m[2])
		read, _ := strconv.Atoi(m[3])
		require.Equal(t, records, read, "task %s: with no local state, all %d records come from the changelog", m[1], records)
		fromChangelog += read
	}
	require.NotZero(t, fromChangelog, "b restored no records from the changelog:\n%s", b.Stderr())
	t.Logf("b restored %d records from the changelogs alone", fromChangelog)
	add(600)
	marks := s.Finish(g, 11, []string{soExchange}, []string{soOutput, soTotals})

	want := soTruth(s, lines, written)
	exampletest.RequireCounts(t, "the window's rows after the input was all read", want, s.FinalCounts(soOutput, marks[soOutput], countRow))
	exampletest.RequireCounts(t, "the totals' rows after the input was all read", want, s.FinalCounts(soTotals, marks[soTotals], countRow))
	exampletest.CheckRepartition(t, exampletest.Repartition{
		Addr: s.Addr, Topic: soExchange, Partitions: soPartitions, Consumers: []string{"batch-counts", "window-counts"},
		Decode: decodeCount, Want: want,
	})
}

// restoredLine matches the source's log line for a task it restored.
var restoredLine = regexp.MustCompile(`msg="kafkasource: restored a task's state" task=(\d+) .*\brecords=(\d+) from_changelog=(\d+)`)
