package kafkasource_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readmeJob runs the README's "A job in code" snippet. Between the snippet
// markers it is the README's code line for line, except for the replacements
// in readmeJobEdits, which point it at the test's broker and clock.
func readmeJob(ctx context.Context, broker string, start time.Time, batches int) error {
	// README snippet begin
	c, err := engine.NewContext(time.Second, engine.WithCheckpoint("ckpt"), engine.WithManualClock(start))
	if err != nil {
		return err
	}
	defer c.Close()

	records, err := kafkasource.NewDirectStream(c, []string{"words"},
		kafkasource.WithBrokers(broker),
		kafkasource.WithGroup("wordcount"),
		kafkasource.WithRateLimits(kafkasource.RateLimits{MaxRatePerPartition: 10_000}))
	if err != nil {
		return err
	}
	words := dstream.FlatMap(records, func(r kafkasource.Record) []string { return strings.Fields(string(r.Value)) })
	pairs := dstream.Map(words, func(w string) dstream.KV[string, int64] { return dstream.Pair(w, int64(1)) })
	add := func(a, b int64) int64 { return a + b }
	sub := func(a, b int64) int64 { return a - b }
	nonZero := func(kv dstream.KV[string, int64]) bool { return kv.Value != 0 }

	windowed := dstream.ReduceByKeyAndWindowInv(pairs, add, sub, 30*time.Second, 10*time.Second, nonZero)
	totals := dstream.UpdateStateByKey(pairs, func(vs []int64, total int64, _ bool) (int64, bool) {
		for _, v := range vs {
			total += v
		}
		return total, true
	}).Name("totals")

	dstream.Print(windowed, 10)
	dstream.SaveAsTextFiles(totals, "out/totals", "txt")
	return c.RunBatches(ctx, batches) // until ctx is cancelled: the batch in flight finishes and commits
	// README snippet end
}

// readmeJobEdits turn readmeJob's lines into the README's.
var readmeJobEdits = strings.NewReplacer(
	`, engine.WithManualClock(start))`, `)`,
	`kafkasource.WithBrokers(broker)`, `kafkasource.WithBrokers("127.0.0.1:9092")`,
	`c.RunBatches(ctx, batches)`, `c.Run(ctx)`,
)

func TestReadmeJobInCodeMatchesReadme(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## A job in code\n\n```go\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal(`README.md has no "## A job in code" section with a go block`)
	}
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?s)// README snippet begin\n(.*?)\t// README snippet end`).FindSubmatch(src)
	if body == nil {
		t.Fatal("readme_test.go lost its snippet markers")
	}
	var code strings.Builder
	for _, line := range strings.SplitAfter(string(body[1]), "\n") {
		code.WriteString(strings.TrimPrefix(line, "\t"))
	}
	if got, want := readmeJobEdits.Replace(code.String()), string(m[1]); got != want {
		t.Errorf("README's job-in-code snippet and readmeJob differ; make them agree.\nreadmeJob, edited:\n%s\nREADME:\n%s", got, want)
	}
}

// TestReadmeJobInCodeDropsZeroCounts runs the snippet on the embedded broker:
// words produced before batch 1 are in the windows ending at 10 s, 20 s and
// 30 s with their counts, and once they have left the window they are gone
// from its output, not printed with count 0, while the all-time totals keep
// them.
func TestReadmeJobInCodeDropsZeroCounts(t *testing.T) {
	t.Chdir(t.TempDir())
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("words", 2))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...), kgo.DefaultProduceTopic("words"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The stream starts where its group's committed offsets are, or at the
	// end of the partitions (reset policy Latest) without them: commit the
	// group at the partitions' start so it reads what is produced next.
	var start kadm.Offsets
	start.Add(kadm.Offset{Topic: "words", Partition: 0, At: 0, LeaderEpoch: -1})
	start.Add(kadm.Offset{Topic: "words", Partition: 1, At: 0, LeaderEpoch: -1})
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, "wordcount", start); err != nil {
		t.Fatal(err)
	}
	lines := []string{"to be or not to be", "that is the question", "to sleep"}
	want := make(map[string]int64)
	for i, line := range lines {
		for _, w := range strings.Fields(line) {
			want[w]++
		}
		r := kgo.StringRecord(line)
		r.Partition = int32(i % 2)
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var wantLines []string
	for w, n := range want {
		wantLines = append(wantLines, fmt.Sprintf("(%s,%d)", w, n))
	}
	slices.Sort(wantLines)

	stdout, err := os.Create("stdout")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = stdout
	err = readmeJob(ctx, broker.Addrs()[0], time.Unix(1_700_000_000, 0), 40)
	os.Stdout = saved
	stdout.Close()
	if err != nil {
		t.Fatal(err)
	}

	printed, err := os.ReadFile("stdout")
	if err != nil {
		t.Fatal(err)
	}
	// Each Print block: a "Time:" header between dashes, then one line per
	// pair (the 9 distinct words fit in Print's 10).
	var windows [][]string
	sc := bufio.NewScanner(strings.NewReader(string(printed)))
	for sc.Scan() {
		switch line := sc.Text(); {
		case strings.HasPrefix(line, "Time: "):
			windows = append(windows, nil)
		case line == "-------------------------------------------" || line == "":
		case len(windows) > 0:
			windows[len(windows)-1] = append(windows[len(windows)-1], line)
		}
	}
	if len(windows) != 4 {
		t.Fatalf("printed %d windows over 40 one-second batches, want 4 (one every 10 s):\n%s", len(windows), printed)
	}
	for i, w := range windows[:3] {
		if got := slices.Sorted(slices.Values(w)); !slices.Equal(got, wantLines) {
			t.Errorf("window %d printed %q, want the counts of the words produced %q", i+1, got, wantLines)
		}
	}
	if len(windows[3]) != 0 {
		t.Errorf("window 4, after every word left it, = %q; want it empty, zero counts dropped", windows[3])
	}

	last := fmt.Sprintf("out/totals-%d.txt", time.Unix(1_700_000_040, 0).UnixMilli())
	saved2, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(strings.Fields(string(saved2))))
	if !slices.Equal(got, wantLines) {
		t.Errorf("%s holds %q, want the all-time totals %q", last, got, wantLines)
	}
}
