package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
	"github.com/sluicehq/sluice/examples/internal/exampleutil"
)

func TestParseBehavior(t *testing.T) {
	cases := []struct {
		name, line string
		want       Behavior
		err        string
	}{
		{"seed's example", "page37|5|1.5119122|-1", Behavior{"page37", 5, 1.5119122, -1}, ""},
		{"like", "page1|1|0.5|1", Behavior{"page1", 1, 0.5, 1}, ""},
		{"spaces around fields", " page2 | 3 | 4.25 | 0 ", Behavior{"page2", 3, 4.25, 0}, ""},
		{"too few fields", "page1|1|0.5", Behavior{}, "has 3 fields, want 4"},
		{"too many fields", "page1|1|0.5|1|x", Behavior{}, "has 5 fields, want 4"},
		{"not a record", "hello", Behavior{}, "has 1 field, want 4"},
		{"empty page", "|1|0.5|1", Behavior{}, "empty page id"},
		{"exponent stay", "page1|1|1.5e1|0", Behavior{"page1", 1, 15, 0}, ""},
		{"clicks not a number", "page1|five|0.5|1", Behavior{}, `clicks "five" is not a whole number`},
		{"stay not a number", "page1|1||1", Behavior{}, `stay "" is not a number`},
		{"like not a number", "page1|1|0.5|yes", Behavior{}, `like "yes" is not 1, 0 or -1`},
		{"like out of its set", "page1|1|0.5|2", Behavior{}, `like "2" is not 1, 0 or -1`},
		{"NaN refused", "page1|NaN|0.5|1", Behavior{}, `clicks "NaN" is not a whole number`},
		{"infinity refused", "page1|1|+Inf|1", Behavior{}, `stay "+Inf" is not a number`},
		{"Inf without sign refused", "page1|1|Inf|1", Behavior{}, `stay "Inf" is not a number`},
		{"underscore in clicks refused", "page1|1_0|1|1", Behavior{}, `clicks "1_0" is not a whole number`},
		{"underscore in stay refused", "page1|1|1_0|1", Behavior{}, `stay "1_0" is not a number`},
		{"hex float refused", "page1|1|0x1p3|1", Behavior{}, `stay "0x1p3" is not a number`},
		{"leading plus refused", "page1|+1|1|1", Behavior{}, `clicks "+1" is not a whole number`},
		{"negative stay refused", "page1|1|-1|1", Behavior{}, `stay "-1" is not a number`},
		{"fraction clicks refused", "page1|1.5|1|1", Behavior{}, `clicks "1.5" is not a whole number`},
		{"clicks overflow caught", "page1|99999999999999999999|1|1", Behavior{}, `clicks "99999999999999999999" is out of range`},
		{"stay overflow caught", "page1|1|1e309|1", Behavior{}, `stay "1e309" is out of range`},
		{"non-UTF-8 page refused", "p\xff\xfeg|1|1|1", Behavior{}, "not UTF-8 text"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseBehavior(c.line)
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, got)
		})
	}
}

// FuzzParseBehavior checks that whatever ParseBehavior accepts is UTF-8
// with a non-empty page, whole non-negative clicks, a finite stay >= 0, a
// like in {1, 0, -1} and a finite popularity, and that the same record
// written back in the documented format parses to the same behaviour.
func FuzzParseBehavior(f *testing.F) {
	for _, s := range []string{"page37|5|1.5119122|-1", " page2 | 3 | 4.25 | 0 ", "p|1_0|1|1", "p|1|0x1p3|1",
		"p|1|Inf|1", "p\xff|1|1|1", "p|99999999999999999999|1|1", "p|1|1e308|1", "|1|1|1", "p|1|1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		b, err := ParseBehavior(line)
		if err != nil {
			return
		}
		require.True(t, utf8.ValidString(b.Page) && b.Page != "")
		require.True(t, b.Clicks >= 0 && b.Clicks == math.Trunc(b.Clicks))
		require.True(t, b.Stay >= 0 && !math.IsInf(b.Stay, 0))
		require.Contains(t, []float64{1, 0, -1}, b.Like)
		p := b.Popularity()
		require.False(t, math.IsInf(p, 0) || math.IsNaN(p))
		again, err := ParseBehavior(fmt.Sprintf("%s|%d|%s|%d", b.Page, int64(b.Clicks), strconv.FormatFloat(b.Stay, 'g', -1, 64), int(b.Like)))
		require.NoError(t, err)
		require.Equal(t, b, again)
	})
}

func TestAccumulateSkipsOverflow(t *testing.T) {
	malformed := exampleutil.NewCounter("malformed")
	acc := accumulate(malformed)
	total, ok := acc([]contribution{{Value: 1.2e308, Topic: "t", Offset: 1}, {Value: 1.2e308, Topic: "t", Offset: 2}, {Value: 1, Topic: "t", Offset: 3}}, 0, false)
	require.True(t, ok)
	require.Equal(t, 1.2e308+1, total)
	n, first := malformed.Take()
	require.Equal(t, int64(1), n)
	require.Contains(t, first, "t[0]@2: adding 1.2e+308 would take its page's popularity")
}

func TestPopularity(t *testing.T) {
	cases := []struct {
		name string
		b    Behavior
		want float64
	}{
		{"seed's worked example (page001.html, 1, 0.5, 1)", Behavior{"page001.html", 1, 0.5, 1}, 2.2},
		{"dislike", Behavior{"p", 5, 1.5, -1}, 0.8*5 + 0.8*1.5 - 1},
		{"neutral", Behavior{"p", 2, 0, 0}, 1.6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.InDelta(t, c.want, c.b.Popularity(), 1e-12)
		})
	}
}

func ExampleParseBehavior() {
	b, err := ParseBehavior("page37|5|1.5119122|-1")
	fmt.Println(b.Page, b.Clicks, b.Stay, b.Like, err)
	fmt.Printf("%.4f\n", b.Popularity())
	// Output:
	// page37 5 1.5119122 -1 <nil>
	// 4.2095
}

func TestGeneratorFollowsSeedProducer(t *testing.T) {
	g := newGenerator()
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[float64]bool{}
	for range 2000 {
		k, v := g.Next(r)
		b, err := ParseBehavior(string(v))
		require.NoError(t, err, "%q", v)
		require.Equal(t, b.Page, string(k), "keyed by page")
		n, err := strconv.Atoi(strings.TrimPrefix(b.Page, "page"))
		require.NoError(t, err)
		require.True(t, n >= 1 && n <= pages, b.Page)
		require.True(t, b.Clicks >= 1 && b.Clicks <= maxClicks && b.Clicks == math.Trunc(b.Clicks), "clicks %v", b.Clicks)
		require.True(t, b.Stay >= 0 && b.Stay < maxStay, "stay %v", b.Stay)
		seen[b.Like] = true
	}
	require.Equal(t, map[float64]bool{1: true, 0: true, -1: true}, seen)
}

var (
	topHeader = regexp.MustCompile(`^top (\d+) of (\d+) pages? in state at \S+:$`)
	topRow    = regexp.MustCompile(`^\s+(\d+)\. (page\d+)\s+(-?\d+\.\d{3})$`)
	batchLine = regexp.MustCompile(`^batch \d\d:\d\d:\d\d\.\d{3}: (\d+) records?, (\d+) malformed`)
)

type saved struct {
	Page       string  `json:"page"`
	Popularity float64 `json:"popularity"`
}

// TestEndToEnd runs pagepopularity on its embedded broker and generator
// and checks the printed top 10 and the saved files.
func TestEndToEnd(t *testing.T) {
	bin := exampletest.Build(t, "./examples/pagepopularity")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out", "pop")
	p := exampletest.Start(t, bin, "--listen", "127.0.0.1:0", "--checkpoint", filepath.Join(dir, "ck"),
		"--batch", "200ms", "--generate", "300", "--save", prefix, "--duration", "3s")
	out := p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Empty(t, p.StderrExceptLateBatches(), "nothing on stderr but a late-batch warning, which a loaded machine may cause")
	text := strings.Join(out, "\n")
	require.Regexp(t, `pagepopularity: stopped \(--duration 3s passed\) after \d+ batches`, out[len(out)-1])

	var batches, headers int
	for i, l := range out {
		if batchLine.MatchString(l) {
			batches++
		}
		m := topHeader.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		headers++
		n, _ := strconv.Atoi(m[1])
		inState, _ := strconv.Atoi(m[2])
		require.Equal(t, min(10, inState), n, l)
		prev := math.Inf(1)
		for r := 1; r <= n; r++ {
			row := topRow.FindStringSubmatch(out[i+r])
			require.NotNil(t, row, "row %d after %q: %q", r, l, out[i+r])
			v, err := strconv.ParseFloat(row[3], 64)
			require.NoError(t, err)
			require.LessOrEqual(t, v, prev, "highest first")
			prev = v
		}
	}
	require.GreaterOrEqual(t, batches, 5, text)
	require.Equal(t, batches, headers, "the top pages print every batch")

	files := exampletest.Saved(t, prefix, "")
	require.Len(t, files, batches)
	var last []saved
	for _, path := range files {
		rows := exampletest.ReadJSONLines[saved](t, path)
		for i := 1; i < len(rows); i++ {
			a, b := rows[i-1], rows[i]
			require.True(t, a.Popularity > b.Popularity || a.Popularity == b.Popularity && a.Page < b.Page, "%s: %v before %v", path, a, b)
		}
		require.GreaterOrEqual(t, len(rows), len(last), "pages stay in state")
		last = rows
	}
	require.NotEmpty(t, last)
}

// TestRecoveryAfterKills kills pagepopularity with SIGKILL at random
// moments while it works through a fixed input on a stand-alone broker,
// restarts it from its checkpoint each time, and checks that the last
// popularity it saves sums every record of the input exactly once.
func TestRecoveryAfterKills(t *testing.T) {
	seed := exampletest.Seed(t)
	rnd := rand.New(rand.NewPCG(seed, seed^0x5eed))
	gen := newGenerator()
	malformed := []string{"page1|x|1|1", "page2|1|2", "page3|1|2|3|4", "|1|1|1", "page4|1|1|like"}
	truth := map[string]float64{}
	var keys, values [][]byte
	for i := range 1200 {
		if i%101 == 7 {
			keys = append(keys, []byte("bad"))
			values = append(values, []byte(malformed[i%len(malformed)]))
			continue
		}
		k, v := gen.Next(rnd)
		keys, values = append(keys, k), append(values, v)
		b, err := ParseBehavior(string(v))
		require.NoError(t, err)
		truth[b.Page] += b.Popularity()
	}
	prefix := exampletest.Recover(t, rnd, "./examples/pagepopularity", "user-behavior", keys, values)

	got := map[string]float64{}
	for _, r := range exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix, "")) {
		got[r.Page] = r.Popularity
	}
	require.Len(t, got, len(truth), "pages in state")
	for page, want := range truth {
		require.Contains(t, got, page)
		require.InDelta(t, want, got[page], 1e-5, "popularity of %s", page)
	}
}

// TestHostileRecords runs pagepopularity on records that would poison its
// state or its --save files: sums past the float64 range, a non-UTF-8 page
// id, lenient numbers. Each is counted as malformed and skipped; every run
// saves files that parse, and a rerun on the same checkpoint succeeds.
func TestHostileRecords(t *testing.T) {
	addr := exampletest.StartBroker(t, "user-behavior", 1)
	values := [][]byte{
		[]byte("pageX|1|1.5e308|0"), []byte("pageX|1|1.5e308|0"), // the second would make pageX +Inf
		[]byte("p\xff\xfeg|1|1|1"), []byte("q\xfe|1|1|1"), []byte("q\xff|1|1|1"),
		[]byte("page1|1_0|1|1"), []byte("page1|1|0x1p3|1"), []byte("page1|1|NaN|1"),
		[]byte("page1|2|3.5|1"),
	}
	exampletest.Produce(t, addr, "user-behavior", nil, values)
	bin := exampletest.Build(t, "./examples/pagepopularity")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out", "pop")
	args := []string{"--brokers", addr, "--checkpoint", filepath.Join(dir, "ck"), "--batch", "100ms", "--save", prefix, "--stop-when-idle", "2"}
	for run := range 2 {
		p := exampletest.Start(t, bin, args...)
		out := p.Wait(t, 30*time.Second)
		require.NoError(t, p.Err, "run %d stderr: %s", run, p.Stderr)
		var malformed int
		for _, l := range out {
			if m := batchLine.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[2])
				malformed += n
			}
		}
		if run == 0 {
			require.Equal(t, 7, malformed, strings.Join(out, "\n"))
		}
		rows := exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix, ""))
		got := map[string]float64{}
		for _, r := range rows {
			got[r.Page] = r.Popularity
		}
		require.Len(t, got, 2, "only pageX and page1 are in state: %v", got)
		require.InEpsilon(t, 1.2e308, got["pageX"], 1e-12)
		require.InDelta(t, 0.8*2+0.8*3.5+1, got["page1"], 1e-9)
	}
}
