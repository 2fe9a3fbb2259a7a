package sqlsink

import (
	"bufio"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/pgtest"
)

// buildCrashChild compiles the job the crash test kills, and reads every
// Go file of the module it is built from, so that the test's cache key
// changes with them.
func buildCrashChild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "crashchild")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/crashchild").CombinedOutput(); err != nil {
		t.Fatalf("build the child: %v: %s", err, out)
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./internal/crashchild").Output()
	if err != nil {
		t.Fatalf("list the child's packages: %v", err)
	}
	for _, dir := range strings.Fields(string(out)) {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if _, err := os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	return bin
}

// TestCrashExactlyOnce kills a child job that adds word counts to a
// PostgreSQL table (bulk upserts through COPY) and to a SQLite table (row
// by row) at least 20 times, at random moments (the parent's SIGKILL) and
// between the sinks' commits and the checkpoint's (the child's own),
// restarting it from its checkpoint each time. At the end both tables hold
// the counts of the words produced, and each sink's progress rows the end
// offsets of the topic and the time of the job's last batch.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped with -short")
	}
	pg := openPostgres(t)
	dsn := pgtest.DSN(t) + "&search_path=" + strings.ToLower(t.Name())
	bin := buildCrashChild(t)
	b := startBroker(t)
	const perPartition = 400 // 80 batches at 5 records a partition a batch
	var recs []*kgo.Record
	truth := map[string]int64{}
	for p := range int32(2) {
		for i := range perPartition {
			w := fmt.Sprintf("w%d", (i*7+int(p)*3)%23)
			truth[w]++
			recs = append(recs, &kgo.Record{Topic: "words", Partition: p, Value: []byte(w)})
		}
	}
	if err := b.cl.ProduceSync(bounded(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	ckpt, litePath := t.TempDir(), filepath.Join(t.TempDir(), "counts.db")
	child := func(killp float64) *exec.Cmd {
		return exec.Command(bin, "-brokers", b.e.Addrs()[0], "-checkpoint", ckpt, "-postgres", dsn, "-sqlite", litePath,
			"-end", strconv.Itoa(perPartition), "-killp", strconv.FormatFloat(killp, 'f', -1, 64), "-seed", strconv.FormatUint(rng.Uint64(), 10))
	}
	start := time.Now()
	kills, selfKills, lastMS := 0, 0, int64(0)
	for kills < 20 {
		cmd := child(0.2)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		finished, self := false, false
		target := 1 + rng.IntN(2)
		for seen := 0; sc.Scan(); {
			switch l := sc.Text(); {
			case strings.HasPrefix(l, "finished "):
				finished = true
				lastMS, _ = strconv.ParseInt(strings.TrimPrefix(l, "finished "), 10, 64)
			case l == "self-kill":
				self = true
			case strings.HasPrefix(l, "batch "):
				if seen++; seen == target {
					time.AfterFunc(time.Duration(rng.IntN(30000))*time.Microsecond, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
				}
			}
		}
		err = cmd.Wait()
		if finished {
			// A kill timed after the last batch may land once the job has finished.
			if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL) {
				t.Fatalf("child: %v: %s", err, stderr.String())
			}
			break
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child died on its own: %v: %s", err, stderr.String())
		}
		kills++
		if self {
			selfKills++
		}
	}
	if lastMS == 0 {
		out, err := child(0).CombinedOutput()
		if err != nil {
			t.Fatalf("final run: %v: %s", err, out)
		}
		for l := range strings.Lines(string(out)) {
			if s, ok := strings.CutPrefix(strings.TrimSpace(l), "finished "); ok {
				lastMS, _ = strconv.ParseInt(s, 10, 64)
			}
		}
	}
	t.Logf("%d kills in %v, %d of them between the sinks' commits and the checkpoint's; last batch at %d ms",
		kills, time.Since(start).Round(time.Millisecond), selfKills, lastMS)
	if kills < 20 {
		t.Fatalf("the child finished after %d kills; want 20", kills)
	}
	if selfKills == 0 {
		t.Fatal("no kill fell between the sinks' commits and the checkpoint's")
	}

	lite, err := OpenSQLite(litePath)
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	for _, c := range []struct {
		name string
		db   *sql.DB
	}{{"pg", pg}, {"sqlite", lite}} {
		if got := readCounts(t, c.db); !maps.Equal(got, truth) {
			t.Errorf("%s: counts = %v; want %v", c.name, got, truth)
		}
		checkProgress(t, c.db, c.name, perPartition, lastMS)
	}
}

// checkProgress checks the progress rows of the sink: each partition of
// words at end, stored by the job's last batch, and nothing else.
func checkProgress(t *testing.T, db *sql.DB, sink string, end, lastMS int64) {
	t.Helper()
	rows, err := db.QueryContext(bounded(t), `SELECT job, topic, kafka_partition, until_offset, batch_time_ms FROM `+ProgressTable+` WHERE sink = $1`, sink)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var job, topic string
		var p, until, ms int64
		if err := rows.Scan(&job, &topic, &p, &until, &ms); err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprintf("%s/%s/%d", job, topic, p)] = fmt.Sprintf("until %d at %d", until, ms)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"crash//-1":     fmt.Sprintf("until -1 at %d", lastMS),
		"crash/words/0": fmt.Sprintf("until %d at %d", end, lastMS),
		"crash/words/1": fmt.Sprintf("until %d at %d", end, lastMS),
	}
	if !maps.Equal(got, want) {
		t.Errorf("%s: progress rows = %v; want %v", sink, got, want)
	}
}
