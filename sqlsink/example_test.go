package sqlsink_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sqlsink"
)

// Example counts words batch by batch into a SQLite table, adding each
// batch's counts to the stored ones in the batch's transaction.
func Example() {
	dir, _ := os.MkdirTemp("", "sqlsink")
	defer os.RemoveAll(dir)
	db, err := sqlsink.OpenSQLite(filepath.Join(dir, "results.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()
	db.ExecContext(ctx, `CREATE TABLE counts (word TEXT PRIMARY KEY, n BIGINT NOT NULL)`)
	up, _ := sqlsink.NewUpsert(db, "counts", []string{"word"}, []string{"n"}, sqlsink.Additive("n"))

	c, _ := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("words"))
	defer c.Close()
	words := dstream.Queue(c, [][]string{{"a", "b", "a"}, {"b", "c"}})
	_, err = sqlsink.Write(ctx, dstream.CountByValue(words), sqlsink.Config{DB: db, Sink: "counts"},
		func(ctx context.Context, tx *sql.Tx, b dstream.Batch[dstream.KV[string, int64]]) error {
			for kv := range b.All() {
				if err := up.Exec(ctx, tx, kv.Key, kv.Value); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.RunBatches(ctx, 2); err != nil {
		fmt.Println(err)
		return
	}
	rows, _ := db.QueryContext(ctx, `SELECT word, n FROM counts ORDER BY word`)
	defer rows.Close()
	for rows.Next() {
		var w string
		var n int64
		rows.Scan(&w, &n)
		fmt.Println(w, n)
	}
	var last int64
	db.QueryRowContext(ctx, `SELECT batch_time_ms FROM sluice_progress WHERE job = 'words' AND sink = 'counts' AND kafka_partition = -1`).Scan(&last)
	fmt.Println("last batch:", last)
	// Output:
	// a 2
	// b 2
	// c 1
	// last batch: 1002000
}

// ExampleBulk upserts each batch's counts into PostgreSQL or SQLite in one
// go; on PostgreSQL through COPY and one merge, in the batch's transaction.
func ExampleBulk() {
	dir, _ := os.MkdirTemp("", "sqlsink")
	defer os.RemoveAll(dir)
	db, err := sqlsink.OpenSQLite(filepath.Join(dir, "results.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()
	db.ExecContext(ctx, `CREATE TABLE counts (word TEXT PRIMARY KEY, n BIGINT NOT NULL)`)
	bulk, err := sqlsink.NewBulk(db, "counts", []string{"word"}, []string{"n"}, sqlsink.Additive("n"))
	if err != nil {
		fmt.Println(err)
		return
	}

	c, _ := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("words"))
	defer c.Close()
	words := dstream.Queue(c, [][]string{{"a", "b", "a"}, {"b", "c"}})
	_, err = sqlsink.Write(ctx, dstream.CountByValue(words), sqlsink.Config{DB: db, Sink: "counts"},
		func(ctx context.Context, tx *sql.Tx, b dstream.Batch[dstream.KV[string, int64]]) error {
			rows := make([][]any, 0, b.Len())
			for kv := range b.All() {
				rows = append(rows, []any{kv.Key, kv.Value})
			}
			return bulk.Exec(ctx, tx, rows)
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.RunBatches(ctx, 2); err != nil {
		fmt.Println(err)
		return
	}
	rows, _ := db.QueryContext(ctx, `SELECT word, n FROM counts ORDER BY word`)
	defer rows.Close()
	for rows.Next() {
		var w string
		var n int64
		rows.Scan(&w, &n)
		fmt.Println(w, n)
	}
	// Output:
	// a 2
	// b 2
	// c 1
}

// ExampleWriteRows turns each element into a row; the one the encode
// function rejects goes to a dead-letter table and the job goes on.
func ExampleWriteRows() {
	dir, _ := os.MkdirTemp("", "sqlsink")
	defer os.RemoveAll(dir)
	db, err := sqlsink.OpenSQLite(filepath.Join(dir, "results.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()
	db.ExecContext(ctx, `CREATE TABLE lengths (word TEXT PRIMARY KEY, len INTEGER NOT NULL)`)
	bulk, _ := sqlsink.NewBulk(db, "lengths", []string{"word"}, []string{"len"})

	c, _ := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("words"))
	defer c.Close()
	words := dstream.Queue(c, [][]string{{"go", ""}, {"sql"}})
	sink, err := sqlsink.WriteRows(ctx, words, sqlsink.Config{DB: db, Sink: "lengths", DeadLetterTable: "lengths_dead"}, bulk,
		func(w string) ([]any, error) {
			if w == "" {
				return nil, errors.New("empty word")
			}
			return []any{w, len(w)}, nil
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.RunBatches(ctx, 2); err != nil {
		fmt.Println(err)
		return
	}
	rows, _ := db.QueryContext(ctx, `SELECT word, len FROM lengths ORDER BY word`)
	defer rows.Close()
	for rows.Next() {
		var w string
		var n int
		rows.Scan(&w, &n)
		fmt.Println(w, n)
	}
	var why string
	db.QueryRowContext(ctx, `SELECT error FROM lengths_dead`).Scan(&why)
	fmt.Printf("dead letters: %d (%s)\n", sink.Stats().DeadLetters, why)
	// Output:
	// go 2
	// sql 3
	// dead letters: 1 (empty word)
}

// ExampleSink_Commit runs an output operation of its own through an opened
// sink: each batch's rows and progress commit together, a batch already
// recorded is skipped, and registering the output with
// dstream.ForEachBatchWith puts the sink's counters on the job's metrics.
func ExampleSink_Commit() {
	dir, _ := os.MkdirTemp("", "sqlsink")
	defer os.RemoveAll(dir)
	db, err := sqlsink.OpenSQLite(filepath.Join(dir, "results.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()
	db.ExecContext(ctx, `CREATE TABLE lines (batch_ms BIGINT NOT NULL, line TEXT NOT NULL)`)
	sink, err := sqlsink.Open(ctx, db, "lines", "out")
	if err != nil {
		fmt.Println(err)
		return
	}
	c, _ := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("lines"))
	defer c.Close()
	lines := dstream.Queue(c, [][]string{{"x", "y"}, {"z"}})
	dstream.ForEachBatchWith(lines, dstream.OutputOptions{Kind: "sqlSink", Metrics: sink.Metrics},
		func(ctx context.Context, _ *engine.Job, b dstream.Batch[string]) error {
			_, err := sink.Commit(ctx, b.Time, nil, func(ctx context.Context, tx *sql.Tx) (int, error) {
				for l := range b.All() {
					if _, err := tx.ExecContext(ctx, `INSERT INTO lines VALUES (?, ?)`, b.Time.UnixMilli(), l); err != nil {
						return 0, err
					}
				}
				return b.Len(), nil
			})
			return err
		})
	if err := c.RunBatches(ctx, 2); err != nil {
		fmt.Println(err)
		return
	}
	// The second batch again, as a job restarted before its checkpoint
	// committed would run it: already recorded, so nothing is written.
	wrote, err := sink.Commit(ctx, time.Unix(1002, 0), nil, func(context.Context, *sql.Tx) (int, error) { return 0, errors.New("not called") })
	fmt.Println("wrote again:", wrote, err)
	st := sink.Stats()
	fmt.Println("records:", st.Records, "batches:", st.Batches, "skipped:", st.Skipped)
	// Output:
	// wrote again: false <nil>
	// records: 3 batches: 2 skipped: 1
}
