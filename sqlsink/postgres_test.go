package sqlsink

import (
	"context"
	"database/sql"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/pgtest"
	"github.com/sluicehq/sluice/kafkasource"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// openPostgres opens the test server's database with a fresh schema of the
// test's own, so that tests do not see each other's tables (nor an earlier
// run's under -count).
func openPostgres(t testing.TB) *sql.DB {
	t.Helper()
	dsn := pgtest.DSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if _, err := admin.Exec(`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE; CREATE SCHEMA ` + schema); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn+"&search_path="+schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPostgresExactlyOnceAfterRestart(t *testing.T) {
	testExactlyOnceAfterRestart(t, openPostgres(t))
}

func TestPostgresStoredOffsetsRestart(t *testing.T) { testStoredOffsetsRestart(t, openPostgres(t)) }

// TestPostgresLostMidBatch crashes the database server in the middle of a
// batch's writes: the batch fails with one sentence saying the sink lost
// its database and how to resume, and a job restarted from the checkpoint
// once the server is back re-runs it, counting every word once.
func TestPostgresLostMidBatch(t *testing.T) {
	db := openPostgres(t)
	b := startBroker(t)
	ctx := bounded(t)
	dir := t.TempDir()
	if _, err := db.ExecContext(ctx, `CREATE TABLE counts (word TEXT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	up, err := NewUpsert(db, "counts", []string{"word"}, []string{"n"}, Additive("n"))
	if err != nil {
		t.Fatal(err)
	}
	var crash func()
	start := func() (*engine.Context, *Sink) {
		c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("wc"), engine.WithCheckpoint(dir))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		src, err := kafkasource.NewDirectStream(c, []string{"words"}, kafkasource.WithBrokers(b.e.Addrs()...), kafkasource.WithResetPolicy(kafkasource.Earliest))
		if err != nil {
			t.Fatal(err)
		}
		counts := dstream.CountByValue(dstream.Map(src, func(r kafkasource.Record) string { return string(r.Value) }))
		sink, err := Write(ctx, counts, Config{DB: db, Sink: "counts"}, func(ctx context.Context, tx *sql.Tx, b dstream.Batch[dstream.KV[string, int64]]) error {
			i := 0
			for kv := range b.All() {
				if i++; i == 2 && crash != nil {
					crash()
				}
				if err := up.Exec(ctx, tx, kv.Key, kv.Value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return c, sink
	}

	c, sink := start()
	b.produce(t, 5)
	if err := c.RunBatches(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b.produce(t, 4)
	crash = func() { pgtest.Crash(t) }
	err = c.RunBatches(ctx, 1)
	crash = nil
	if err == nil {
		t.Fatal("the batch during which the database went away succeeded")
	}
	msg := err.Error()
	t.Logf("the failed batch: %s", msg)
	for _, part := range []string{"sink counts lost its database during the batch at 1002000 ms", "rolled back", "restart the job"} {
		if !strings.Contains(msg, part) {
			t.Fatalf("the failed batch says %q; want a sentence with %q", msg, part)
		}
	}
	if st := sink.Stats(); st.Failures != 1 || st.Batches != 1 {
		t.Fatalf("Stats = %+v; want 1 batch and 1 failure", st)
	}
	c.Close()

	pgtest.Restart(t)
	b.produce(t, 2)
	c, sink = start()
	if err := c.RunBatches(ctx, 2); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, db, b.truth, "after the restart")
	if st := sink.Stats(); st.Batches != 2 || st.Skipped != 0 {
		t.Fatalf("Stats after the restart = %+v; want the failed batch and the next one written", st)
	}
	off, err := StoredOffsets(ctx, db, "wc", "counts")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[kafkasource.TopicPartition]int64{{Topic: "words", Partition: 0}: 11, {Topic: "words", Partition: 1}: 11}; !maps.Equal(off, want) {
		t.Fatalf("StoredOffsets = %v; want %v", off, want)
	}
}
