package sqlsink

import (
	"database/sql"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/crashtest"
	"github.com/sluicehq/sluice/internal/pgtest"
)

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
	bin := crashtest.Build(t, "./internal/crashchild")
	b := startBroker(t)
	const perPartition = 1000 // 200 batches at 5 records a partition a batch: 20 lives, each killed within a few batches, never reach the end
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

	ckpt, litePath := t.TempDir(), filepath.Join(t.TempDir(), "counts.db")
	res := crashtest.Loop{
		Command: func(killp float64, seed uint64) *exec.Cmd {
			return exec.Command(bin, "-brokers", b.e.Addrs()[0], "-checkpoint", ckpt, "-postgres", dsn, "-sqlite", litePath,
				"-end", strconv.Itoa(perPartition), "-killp", strconv.FormatFloat(killp, 'f', -1, 64), "-seed", strconv.FormatUint(seed, 10))
		},
		KillP: 0.2, SelfKill: true, MaxDelay: 30 * time.Millisecond,
	}.Run(t)
	lastMS, err := strconv.ParseInt(res.Finished, 10, 64)
	if err != nil {
		t.Fatalf("the child's last line %q names no batch time", "finished "+res.Finished)
	}
	t.Logf("last batch at %d ms", lastMS)

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
