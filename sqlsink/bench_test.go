package sqlsink

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/pgtest"
)

// benchRows are the batches of the benchmarks: 2000 (key, count) rows a
// batch over 10,000 keys, so that later batches update earlier rows.
func benchRows(batches int) [][]dstream.KV[string, int64] {
	in := make([][]dstream.KV[string, int64], batches)
	for b := range in {
		in[b] = make([]dstream.KV[string, int64], 2000)
		for i := range in[b] {
			n := b*2000 + i
			in[b][i] = dstream.Pair("key-"+strconv.Itoa(n%10_000), int64(n%7+1))
		}
	}
	return in
}

// benchUpsertAgainstLoop writes the same batches of 2000 upserts into db
// with Write and NewUpsert (one Exec a row) and with loop, alternating,
// and reports the sink's rows/s over the loop's (1 = as fast) and the time
// the sink adds per batch.
func benchUpsertAgainstLoop(b *testing.B, db *sql.DB, loop func(ctx context.Context, rows []dstream.KV[string, int64]) error) {
	// Cancellable, as a job's is: pgx watches such a context during each
	// query.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, table := range []string{"bench_sink", "bench_loop"} {
		if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (k TEXT PRIMARY KEY, n BIGINT NOT NULL)"); err != nil {
			b.Fatal(err)
		}
	}
	const batches = 100_000
	in := benchRows(50)
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithJobName("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	up, err := NewUpsert(db, "bench_sink", []string{"k"}, []string{"n"}, Additive("n"))
	if err != nil {
		b.Fatal(err)
	}
	queue := make([][]dstream.KV[string, int64], batches)
	for i := range queue {
		queue[i] = in[i%len(in)]
	}
	if _, err := Write(ctx, dstream.Queue(c, queue), Config{DB: db, Sink: "bench"}, func(ctx context.Context, tx *sql.Tx, b dstream.Batch[dstream.KV[string, int64]]) error {
		for kv := range b.All() {
			if err := up.Exec(ctx, tx, kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	var sinkT, loopT time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if err := c.RunBatches(ctx, 1); err != nil {
			b.Fatal(err)
		}
		sinkT += time.Since(start)
		start = time.Now()
		if err := loop(ctx, in[i%len(in)]); err != nil {
			b.Fatal(err)
		}
		loopT += time.Since(start)
	}
	b.ReportMetric(float64(loopT)/float64(sinkT), "loop/sink")
	b.ReportMetric(float64(sinkT-loopT)/float64(b.N)/1e6, "added-ms/batch")
}

const loopUpsert = "INSERT INTO bench_loop (k, n) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET n = bench_loop.n + excluded.n"

// BenchmarkPostgresUpsertAgainstPgx is benchUpsertAgainstLoop into
// PostgreSQL against a plain pgx loop (one transaction a batch, tx.Exec a
// row, pgx's statement cache).
func BenchmarkPostgresUpsertAgainstPgx(b *testing.B) {
	db := openPostgres(b)
	var schema string
	if err := db.QueryRow("SELECT current_schema()").Scan(&schema); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), pgtest.DSN(b)+"&search_path="+schema)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	benchUpsertAgainstLoop(b, db, func(ctx context.Context, rows []dstream.KV[string, int64]) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		for _, kv := range rows {
			if _, err := tx.Exec(ctx, loopUpsert, kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	})
}

// BenchmarkSQLiteUpsertAgainstLoop is benchUpsertAgainstLoop into SQLite
// against a plain database/sql loop (one transaction and one prepared
// statement a batch).
func BenchmarkSQLiteUpsertAgainstLoop(b *testing.B) {
	db := openSQLite(b)
	benchUpsertAgainstLoop(b, db, func(ctx context.Context, rows []dstream.KV[string, int64]) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		st, err := tx.PrepareContext(ctx, strings.ReplaceAll(strings.ReplaceAll(loopUpsert, "$1", "?"), "$2", "?"))
		if err != nil {
			return err
		}
		for _, kv := range rows {
			if _, err := st.ExecContext(ctx, kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return tx.Commit()
	})
}
