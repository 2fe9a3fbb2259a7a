// Command crashchild is the job the SQL sinks' crash test kills: it counts
// the words of a Kafka topic batch by batch and adds the counts to a
// PostgreSQL table (with a bulk upsert) and to a SQLite table (row by row)
// through two sinks, then runs an output that, with probability -killp,
// kills its own process between the sinks' commits and the checkpoint's.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/sluicehq/sluice/sqlsink"
)

func main() {
	brokers := flag.String("brokers", "", "seed broker")
	ckpt := flag.String("checkpoint", "", "checkpoint dir")
	pg := flag.String("postgres", "", "PostgreSQL URL")
	lite := flag.String("sqlite", "", "SQLite file")
	end := flag.Int64("end", 0, "end offset of every partition of the topic words")
	killp := flag.Float64("killp", 0, "probability of a kill after the sinks' commits")
	seed := flag.Uint64("seed", 1, "kill seed")
	flag.Parse()
	if err := run(*brokers, *ckpt, *pg, *lite, *end, *killp, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "crashchild:", err)
		os.Exit(1)
	}
}

const createCounts = `CREATE TABLE IF NOT EXISTS counts (word TEXT PRIMARY KEY, n BIGINT NOT NULL)`

func run(brokers, ckpt, pgURL, litePath string, end int64, killp float64, seed uint64) error {
	ctx := context.Background()
	pg, err := sql.Open("pgx", pgURL)
	if err != nil {
		return err
	}
	defer pg.Close()
	lite, err := sqlsink.OpenSQLite(litePath)
	if err != nil {
		return err
	}
	defer lite.Close()
	for _, db := range []*sql.DB{pg, lite} {
		if _, err := db.ExecContext(ctx, createCounts); err != nil {
			return err
		}
	}
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1_700_000_000, 0)),
		engine.WithCheckpoint(ckpt), engine.WithJobName("crash"))
	if err != nil {
		return err
	}
	defer c.Close()
	src, err := kafkasource.NewDirectStream(c, []string{"words"}, kafkasource.WithBrokers(brokers),
		kafkasource.WithResetPolicy(kafkasource.Earliest), kafkasource.WithRateLimits(kafkasource.RateLimits{MaxRatePerPartition: 5}))
	if err != nil {
		return err
	}
	counts := dstream.CountByValue(dstream.Map(src, func(r kafkasource.Record) string { return string(r.Value) }))
	bulk, err := sqlsink.NewBulk(pg, "counts", []string{"word"}, []string{"n"}, sqlsink.Additive("n"))
	if err != nil {
		return err
	}
	if _, err := sqlsink.Write(ctx, counts, sqlsink.Config{DB: pg, Sink: "pg"}, func(ctx context.Context, tx *sql.Tx, b dstream.Batch[dstream.KV[string, int64]]) error {
		rows := make([][]any, 0, b.Len())
		for kv := range b.All() {
			rows = append(rows, []any{kv.Key, kv.Value})
		}
		return bulk.Exec(ctx, tx, rows)
	}); err != nil {
		return err
	}
	up, err := sqlsink.NewUpsert(lite, "counts", []string{"word"}, []string{"n"}, sqlsink.Additive("n"))
	if err != nil {
		return err
	}
	if _, err := sqlsink.Write(ctx, counts, sqlsink.Config{DB: lite, Sink: "sqlite"}, func(ctx context.Context, tx *sql.Tx, b dstream.Batch[dstream.KV[string, int64]]) error {
		for kv := range b.All() {
			if err := up.Exec(ctx, tx, kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	done := false
	dstream.ForEachBatchJob(counts, func(_ context.Context, j *engine.Job, _ dstream.Batch[dstream.KV[string, int64]]) error {
		if rng.Float64() < killp {
			fmt.Println("self-kill")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		rs := kafkasource.OffsetRangesOf(j, counts)
		done = len(rs) > 0
		for _, r := range rs {
			done = done && r.Until == end
		}
		return nil
	})
	c.AddListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
		if info.Err == nil {
			fmt.Printf("batch %d\n", info.Time.UnixMilli())
		}
	}})
	if err := c.RunBatches(ctx, 0); err != nil {
		return err
	}
	for !done {
		if err := c.RunBatches(ctx, 1); err != nil {
			return err
		}
	}
	fmt.Printf("finished %d\n", c.LastBatch().UnixMilli())
	return nil
}
