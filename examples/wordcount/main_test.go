package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/examples/internal/exampletest"
	"github.com/sluicehq/sluice/examples/internal/exampleutil"
	"github.com/sluicehq/sluice/kafkasource"
)

func TestWords(t *testing.T) {
	cases := []struct {
		name, line string
		want       []string
	}{
		{"empty line", "", nil},
		{"only spaces", " \t  ", nil},
		{"lowercased", "The QUICK Fox", []string{"the", "quick", "fox"}},
		{"trailing punctuation", "end. of, line!", []string{"end", "of", "line"}},
		{"leading punctuation", `"quoted" (parens) ¿qué?`, []string{"quoted", "parens", "qué"}},
		{"inner punctuation stays", "don't e.g. well-known", []string{"don't", "e.g", "well-known"}},
		{"punctuation-only tokens dropped", "a -- b ... c !", []string{"a", "b", "c"}},
		{"any whitespace separates", "a\tb\nc\u00a0d", []string{"a", "b", "c", "d"}},
		{"symbols are not punctuation", "$5 +1", []string{"$5", "+1"}},
		{"unicode letters", "Ünïcödé Straße", []string{"ünïcödé", "straße"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Words(c.line)
			if len(c.want) == 0 {
				require.Empty(t, got)
				return
			}
			require.Equal(t, c.want, got)
		})
	}
}

// FuzzWords holds what the wordcount job makes of any record value to the
// documented format: a value that is not UTF-8 is counted as malformed and
// gives no words; otherwise each (word, 1) pair is one of Words' words, and
// every word is non-empty UTF-8 without whitespace, lowercase, not starting
// or ending with punctuation, found in the lowercased value in order, and
// read back as itself from the words joined by spaces.
func FuzzWords(f *testing.F) {
	for _, s := range []string{"", " \t ", "The QUICK Fox", `"quoted" (parens) ¿qué?`, "don't e.g. well-known",
		"a -- b ... c !", "a\tb\nc\u00a0d", "$5 +1", "Ünïcödé Straße", "caf\xe9 \xff", "İstanbul ΣΊΣΥΦΟΣ", "a\u200bb \u2028c"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		malformed := exampleutil.NewCounter("malformed")
		got := pairs(malformed)(kafkasource.Record{Topic: "lines", Offset: 9, Value: value})
		n, first := malformed.Take()
		if !utf8.Valid(value) {
			require.Empty(t, got, "a value that is not UTF-8 gives no words")
			require.Equal(t, int64(1), n)
			require.Contains(t, first, "lines[0]@9: not UTF-8 text")
			return
		}
		require.Zero(t, n, "UTF-8 text is never malformed: %q", first)
		words := Words(string(value))
		require.Len(t, got, len(words))
		lower := strings.ToLower(string(value))
		for i, w := range words {
			require.Equal(t, dstream.Pair(w, int64(1)), got[i])
			require.NotEmpty(t, w)
			require.True(t, utf8.ValidString(w), "word %q is UTF-8", w)
			require.False(t, strings.ContainsFunc(w, unicode.IsSpace), "word %q holds whitespace", w)
			r0, _ := utf8.DecodeRuneInString(w)
			r1, _ := utf8.DecodeLastRuneInString(w)
			require.False(t, unicode.IsPunct(r0) || unicode.IsPunct(r1), "word %q starts or ends with punctuation", w)
			require.Equal(t, strings.ToLower(w), w, "word %q is lowercase", w)
			at := strings.Index(lower, w)
			require.GreaterOrEqual(t, at, 0, "word %q is in the lowercased value, after the words before it", w)
			lower = lower[at+len(w):]
		}
		require.Equal(t, words, append([]string{}, Words(strings.Join(words, " "))...), "the words read back as themselves")
	})
}

func ExampleWords() {
	fmt.Println(Words(`"Hello, world!" -- it's... A test.`))
	// Output: [hello world it's a test]
}

func TestGeneratorWritesWords(t *testing.T) {
	g := newGenerator()
	r := rand.New(rand.NewPCG(1, 2))
	distinct := map[string]bool{}
	for range 500 {
		k, v := g.Next(r)
		require.NotEmpty(t, k, "keyed, so that lines spread over partitions")
		words := Words(string(v))
		require.GreaterOrEqual(t, len(words), 4, "line %q", v)
		for _, w := range words {
			distinct[w] = true
		}
	}
	require.Greater(t, len(distinct), 100, "a realistic vocabulary")
}

var (
	topHeader = regexp.MustCompile(`^top (\d+) words? of window \((\S+), (\S+)\]: (\d+) words?, (\d+) distinct$`)
	topRow    = regexp.MustCompile(`^\s+(\d+)\. (\S+)\s+(\d+)\s+all-time (\d+)$`)
	batchLine = regexp.MustCompile(`^batch \d\d:\d\d:\d\d\.\d{3}: (\d+) records?, (\d+) malformed`)
)

type saved struct {
	Word  string `json:"word"`
	Count int64  `json:"count"`
}

func atoi(t *testing.T, s string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return v
}

// TestEndToEnd runs wordcount as a newcomer does, on its embedded broker
// and generator, and checks what it prints and saves.
func TestEndToEnd(t *testing.T) {
	bin := exampletest.Build(t, "./examples/wordcount")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out", "wc")
	p := exampletest.Start(t, bin, "--listen", "127.0.0.1:0", "--checkpoint", filepath.Join(dir, "ck"),
		"--batch", "200ms", "--window", "1s", "--slide", "400ms", "--generate", "200", "--top", "5",
		"--save", prefix, "--duration", "3s")
	out := p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Empty(t, p.StderrExceptLateBatches(), "nothing on stderr but a late-batch warning, which a loaded machine may cause")
	text := strings.Join(out, "\n")
	require.Contains(t, out[0], "embedded Kafka broker on 127.0.0.1:")
	require.Regexp(t, `wordcount: stopped \(--duration 3s passed\) after \d+ batches`, out[len(out)-1])

	var batches, headers, fullTops int
	for i, l := range out {
		if batchLine.MatchString(l) {
			batches++
		}
		m := topHeader.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		headers++
		n := int(atoi(t, m[1]))
		if n == 5 {
			fullTops++
		}
		require.LessOrEqual(t, n, 5)
		prev := int64(-1)
		for r := 1; r <= n; r++ {
			row := topRow.FindStringSubmatch(out[i+r])
			require.NotNil(t, row, "row %d after %q: %q\n%s", r, l, out[i+r], text)
			require.Equal(t, int64(r), atoi(t, row[1]))
			count, total := atoi(t, row[3]), atoi(t, row[4])
			require.Positive(t, count)
			require.LessOrEqual(t, count, total, "a window count is at most the all-time total")
			if prev >= 0 {
				require.LessOrEqual(t, count, prev, "rows print highest count first")
			}
			prev = count
		}
	}
	require.GreaterOrEqual(t, batches, 5, text)
	require.GreaterOrEqual(t, headers, 3, text)
	require.Positive(t, fullTops, "some window had at least 5 distinct words:\n%s", text)

	windows := exampletest.Saved(t, prefix, "")
	require.Len(t, windows, headers, "one window file per printed window")
	for _, path := range windows {
		rows := exampletest.ReadJSONLines[saved](t, path)
		for i := 1; i < len(rows); i++ {
			a, b := rows[i-1], rows[i]
			require.True(t, a.Count > b.Count || a.Count == b.Count && a.Word < b.Word, "%s: %v before %v", path, a, b)
		}
		totals := map[string]int64{}
		for _, r := range exampletest.ReadJSONLines[saved](t, strings.Replace(path, "wc-", "wc-totals-", 1)) {
			totals[r.Word] = r.Count
		}
		for _, r := range rows {
			require.Positive(t, r.Count)
			require.LessOrEqual(t, r.Count, totals[r.Word], "%s: word %q", path, r.Word)
		}
	}
	totals := exampletest.Saved(t, prefix, "totals")
	require.Len(t, totals, batches, "one totals file per batch")
	for _, path := range totals {
		rows := exampletest.ReadJSONLines[saved](t, path)
		for i := 1; i < len(rows); i++ {
			require.Less(t, rows[i-1].Word, rows[i].Word, "%s is sorted by word", path)
		}
	}
}

// TestRecoveryAfterKills kills wordcount with SIGKILL at random moments
// while it works through a fixed input on a stand-alone broker, restarts it
// from its checkpoint each time, and checks that the last totals and window
// it saves count every word of the input exactly once.
//
// A restart takes longer than the 100ms slide, so the batch times the job
// missed while it was down are skipped: the window resumes across a gap.
func TestRecoveryAfterKills(t *testing.T) {
	seed := exampletest.Seed(t)
	rnd := rand.New(rand.NewPCG(seed, seed^0x5eed))
	gen := newGenerator()
	truth := map[string]int64{}
	var values [][]byte
	for i := range 1200 {
		if i%97 == 13 {
			values = append(values, []byte("caf\xe9 \xff")) // Latin-1, not UTF-8: malformed
			continue
		}
		_, v := gen.Next(rnd)
		values = append(values, v)
		for _, w := range Words(string(v)) {
			truth[w]++
		}
	}
	prefix := exampletest.Recover(t, rnd, "./examples/wordcount", "words", nil, values, "--window", "60s", "--slide", "100ms")

	got := map[string]int64{}
	for _, r := range exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix, "totals")) {
		got[r.Word] = r.Count
	}
	require.Equal(t, truth, got, "all-time totals after the kills")
	window := map[string]int64{}
	for _, r := range exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix, "")) {
		window[r.Word] = r.Count
	}
	require.Equal(t, truth, window, "the last window covers the whole input")
}

// TestSignalsStopGracefully sends SIGINT or SIGTERM once a batch has
// completed: the job finishes the batch in flight, commits and exits 0, and
// a second run resumes from its checkpoint.
func TestSignalsStopGracefully(t *testing.T) {
	bin := exampletest.Build(t, "./examples/wordcount")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			ckpt := filepath.Join(t.TempDir(), "ck")
			args := []string{"--listen", "127.0.0.1:0", "--checkpoint", ckpt, "--batch", "100ms", "--slide", "100ms", "--generate", "100"}
			p := exampletest.Start(t, bin, args...)
			for l := range p.Lines {
				if batchLine.MatchString(l) {
					require.NoError(t, p.Cmd.Process.Signal(sig))
					break
				}
			}
			out := p.Wait(t, 20*time.Second)
			require.NoError(t, p.Err, "exit status; stderr: %s", p.Stderr)
			require.NotEmpty(t, out)
			require.True(t, strings.HasPrefix(out[len(out)-1], "wordcount: stopped (interrupted) after "), out[len(out)-1])

			p = exampletest.Start(t, bin, append(args, "--stop-when-idle", "1", "--generate", "0")...)
			out = p.Wait(t, 20*time.Second)
			require.NoError(t, p.Err, "stderr: %s", p.Stderr)
			require.Contains(t, strings.Join(out, "\n"), "resuming from checkpoint "+ckpt)
		})
	}
}

// TestGeneratorSpreadsPartitions checks that the generator's records, hashed
// by the producer's default (key) partitioner, land on every partition of
// the two-partition default topic in about equal shares.
func TestGeneratorSpreadsPartitions(t *testing.T) {
	g := newGenerator()
	r := rand.New(rand.NewPCG(5, 6))
	part := kgo.StickyKeyPartitioner(nil).ForTopic("words")
	counts := make([]int, 2)
	for range 2000 {
		k, _ := g.Next(r)
		require.NotEmpty(t, k)
		counts[part.Partition(&kgo.Record{Key: k}, 2)]++
	}
	require.Greater(t, counts[0], 800, "%v", counts)
	require.Greater(t, counts[1], 800, "%v", counts)
}

// TestHostileRecords runs wordcount on lines that are not UTF-8 text
// (Latin-1, lone continuation bytes, a cut multi-byte rune) beside good
// ones: each such line is counted as malformed, named by the batch line,
// and skipped; the totals and the window count only the good lines' words,
// and every saved word is UTF-8.
func TestHostileRecords(t *testing.T) {
	addr := exampletest.StartBroker(t, "words", 1)
	good := []string{"to be or not to be", "café au lait"}
	bad := []string{"caf\xe9 au lait", "\xff\xfe", "to be \xe2\x82"}
	var values [][]byte
	truth := map[string]int64{}
	for i := range good {
		values = append(values, []byte(bad[i]), []byte(good[i]))
		for _, w := range Words(good[i]) {
			truth[w]++
		}
	}
	values = append(values, []byte(bad[2]))
	exampletest.Produce(t, addr, "words", nil, values)
	bin := exampletest.Build(t, "./examples/wordcount")
	prefix := filepath.Join(t.TempDir(), "out", "wc")
	p := exampletest.Start(t, bin, "--brokers", addr, "--checkpoint", "", "--save", prefix, "--http", "",
		"--batch", "100ms", "--window", "60s", "--slide", "100ms", "--stop-when-idle", "2")
	out := p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	var malformed int64
	for _, l := range out {
		if m := batchLine.FindStringSubmatch(l); m != nil {
			malformed += atoi(t, m[2])
			if m[2] != "0" {
				require.Regexp(t, `, \d+ malformed \(first words\[0\]@\d+: not UTF-8 text\)`, l)
			}
		}
	}
	require.Equal(t, int64(len(bad)), malformed, strings.Join(out, "\n"))
	for _, kind := range []string{"totals", ""} {
		got := map[string]int64{}
		for _, r := range exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix, kind)) {
			require.True(t, utf8.ValidString(r.Word), "%q", r.Word)
			got[r.Word] = r.Count
		}
		require.Equal(t, truth, got, "the newest %q file", kind)
	}
}
