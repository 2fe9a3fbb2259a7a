package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/pgtest"
	"github.com/sluicehq/sluice/kafkasink"
	"github.com/sluicehq/sluice/sqlsink"
)

// Output topics and tables of the sinks workload: each side of a
// comparison writes to its own, so that both start from the same state.
const (
	sinkTopicTxn   = "sink-txn"
	sinkTopicAlo   = "sink-alo"
	sinkTopicPlain = "sink-plain"
	sinkKeys       = 10_000 // distinct keys of the SQL rows: later batches update earlier rows
)

// sinkRecord is one element of the Kafka sinks' stream: a pass-through
// record's key and value.
type sinkRecord struct{ key, value []byte }

// kafkaSinkInput returns the input of the Kafka sinks: cfg.sinkBatches batches
// of cfg.sinkRecords pass-through records.
func (h *harness) kafkaSinkInput() [][]sinkRecord {
	in := make([][]sinkRecord, h.cfg.sinkBatches)
	for b := range in {
		in[b] = make([]sinkRecord, h.cfg.sinkRecords)
		for i := range in[b] {
			k, v := passRecord(b*h.cfg.sinkRecords + i)
			in[b][i] = sinkRecord{k, v}
		}
	}
	return in
}

// sqlSinkInput returns the input of the SQL sinks: cfg.sinkBatches batches
// of cfg.sqlRows (key, count) rows over sinkKeys keys.
func (h *harness) sqlSinkInput() [][]dstream.KV[string, int64] {
	in := make([][]dstream.KV[string, int64], h.cfg.sinkBatches)
	for b := range in {
		in[b] = make([]dstream.KV[string, int64], h.cfg.sqlRows)
		for i := range in[b] {
			n := b*h.cfg.sqlRows + i
			in[b][i] = dstream.Pair("key-"+strconv.Itoa(n%sinkKeys), int64(n%7+1))
		}
	}
	return in
}

// sinks measures the outputs: the transactional Kafka sink against the
// at-least-once one and a plain kgo producer, and the SQL sink into SQLite
// and PostgreSQL against plain loops of the same upserts.
func (h *harness) sinks(ctx context.Context) error {
	if err := h.kafkaSinks(ctx); err != nil {
		return err
	}
	if err := h.sqliteSinks(ctx); err != nil {
		return err
	}
	return h.postgresSinks(ctx)
}

// sinkRun is one side of a sink comparison: it writes every batch and
// returns the time the batches took, set-up excluded.
type sinkRun func(ctx context.Context, run int) (time.Duration, error)

// compareSinks runs the sides in turn cfg.repeat times and returns each
// one's median time per batch, in ms.
func (h *harness) compareSinks(ctx context.Context, runs ...sinkRun) ([]float64, error) {
	per := make([][]float64, len(runs))
	for rep := range h.cfg.repeat {
		for i, r := range runs {
			d, err := r(ctx, rep)
			if err != nil {
				return nil, err
			}
			per[i] = append(per[i], ms(d)/float64(h.cfg.sinkBatches))
		}
	}
	return medians(per), nil
}

// sinkJob builds a manual-clock job named name over the batches in, adds
// its output with build, and times the batches.
func sinkJob[T any](ctx context.Context, h *harness, name string, in [][]T, build func(s *dstream.Stream[T]) error) (time.Duration, error) {
	c, err := engine.NewContext(h.cfg.batch, engine.WithManualClock(time.Unix(0, 0)),
		engine.WithParallelism(h.cfg.parallelism), engine.WithJobName(name))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := build(dstream.Queue(c, in)); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := c.RunBatches(ctx, len(in)); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (h *harness) kafkaSinks(ctx context.Context) error {
	for _, t := range []string{sinkTopicTxn, sinkTopicAlo, sinkTopicPlain} {
		if err := h.broker.CreateTopic(ctx, t, int32(h.cfg.partitions)); err != nil {
			return err
		}
	}
	in := h.kafkaSinkInput()
	seeds := h.broker.Addrs()
	txn := func(ctx context.Context, run int) (time.Duration, error) {
		return sinkJob(ctx, h, "bench-sinks", in, func(s *dstream.Stream[sinkRecord]) error {
			_, err := kafkasink.WriteTxn(ctx, s, kafkasink.Config{Brokers: seeds, Sink: "txn-" + strconv.Itoa(run)},
				func(r sinkRecord) (*kgo.Record, error) {
					return &kgo.Record{Topic: sinkTopicTxn, Key: r.key, Value: r.value}, nil
				})
			return err
		})
	}
	alo := func(ctx context.Context, _ int) (time.Duration, error) {
		return sinkJob(ctx, h, "bench-sinks", in, func(s *dstream.Stream[sinkRecord]) error {
			_, err := kafkasink.WriteTo(s, sinkTopicAlo, kafkasink.Config{Brokers: seeds},
				func(r sinkRecord) ([]byte, []byte, error) { return r.key, r.value, nil })
			return err
		})
	}
	plain := func(ctx context.Context, _ int) (time.Duration, error) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			return 0, err
		}
		defer cl.Close()
		start := time.Now()
		for _, batch := range in {
			recs := make([]*kgo.Record, len(batch))
			for i, r := range batch {
				recs[i] = &kgo.Record{Topic: sinkTopicPlain, Key: r.key, Value: r.value}
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	per, err := h.compareSinks(ctx, txn, alo, plain)
	if err != nil {
		return err
	}
	n := h.cfg.sinkRecords
	rate := func(msPerBatch float64) float64 { return float64(n) / (msPerBatch / 1e3) }
	shape := fmt.Sprintf("%d batches of %s records, %d partitions", h.cfg.sinkBatches, thousands(n), h.cfg.partitions)
	r := h.throughput("sinks", "Kafka txn sink ÷ at-least-once sink", "Kafka transactional sink (kafkasink.WriteTxn), "+shape,
		rate(per[0]), rate(per[1]), "at-least-once sink")
	r.ratioGoal("≥ 0.8×", 0.8)
	h.add(r)
	h.add(h.throughput("sinks", "Kafka txn sink ÷ plain kgo", "Kafka transactional sink, "+shape,
		rate(per[0]), rate(per[2]), "plain kgo producer, ProduceSync a batch"))
	h.add(h.throughput("sinks", "Kafka at-least-once sink ÷ plain kgo", "Kafka at-least-once sink, "+shape,
		rate(per[1]), rate(per[2]), "plain kgo producer, ProduceSync a batch"))
	h.add(h.batchTime("Kafka transactional sink", n, per[0], per[2], "plain kgo producer"))
	h.add(h.batchTime("Kafka at-least-once sink", n, per[1], per[2], "plain kgo producer"))
	return nil
}

// batchTime is a row of a sink's time per batch of n records against its
// baseline's: at a 1 s batch interval with n records/s in, the difference
// is the latency the sink adds to every batch.
func (h *harness) batchTime(sink string, n int, sluice, baseline float64, baselineName string) result {
	fig := fmt.Sprintf("%s, time per batch of %s records (adds %s to a 1 s batch)", sink, thousands(n), fmtValue(sluice-baseline, unitMS))
	r := result{Workload: "sinks", Label: sink + " ms/batch", Figure: fig, Unit: unitBatch, Sluice: sluice, Better: "lower"}
	r.against(baseline, baselineName)
	return r
}

// benchTable creates (or empties) the table of (key, count) rows.
func benchTable(ctx context.Context, db *sql.DB, table string) error {
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (k TEXT PRIMARY KEY, n BIGINT NOT NULL)"); err != nil {
		return fmt.Errorf("create %s: %w", table, err)
	}
	if _, err := db.ExecContext(ctx, "DELETE FROM "+table); err != nil {
		return fmt.Errorf("empty %s: %w", table, err)
	}
	return nil
}

// sqlSinkRun writes in through sqlsink.Write into table of db with an
// additive upsert, one Exec per row.
func (h *harness) sqlSinkRun(db *sql.DB, table string, in [][]dstream.KV[string, int64]) sinkRun {
	return func(ctx context.Context, run int) (time.Duration, error) {
		if err := benchTable(ctx, db, table); err != nil {
			return 0, err
		}
		up, err := sqlsink.NewUpsert(db, table, []string{"k"}, []string{"n"}, sqlsink.Additive("n"))
		if err != nil {
			return 0, err
		}
		return sinkJob(ctx, h, "bench-sinks", in, func(s *dstream.Stream[dstream.KV[string, int64]]) error {
			_, err := sqlsink.Write(ctx, s, sqlsink.Config{DB: db, Sink: table + "-" + strconv.Itoa(run)},
				func(ctx context.Context, tx *sql.Tx, b dstream.Batch[dstream.KV[string, int64]]) error {
					for kv := range b.All() {
						if err := up.Exec(ctx, tx, kv.Key, kv.Value); err != nil {
							return err
						}
					}
					return nil
				})
			return err
		})
	}
}

// upsertSQL is the statement the plain loops run: the one NewUpsert builds
// for the sink, in the loop's placeholders.
func upsertSQL(table, p1, p2 string) string {
	return "INSERT INTO " + table + " (k, n) VALUES (" + p1 + ", " + p2 + ") ON CONFLICT (k) DO UPDATE SET n = " + table + ".n + excluded.n"
}

func (h *harness) sqliteSinks(ctx context.Context) error {
	dir, err := os.MkdirTemp(h.dir, "sqlite-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sinkDB, err := sqlsink.OpenSQLite(filepath.Join(dir, "sink.db"))
	if err != nil {
		return err
	}
	defer sinkDB.Close()
	loopDB, err := sqlsink.OpenSQLite(filepath.Join(dir, "loop.db"))
	if err != nil {
		return err
	}
	defer loopDB.Close()
	in := h.sqlSinkInput()
	loop := func(ctx context.Context, _ int) (time.Duration, error) {
		const table = "bench_loop"
		if err := benchTable(ctx, loopDB, table); err != nil {
			return 0, err
		}
		q := upsertSQL(table, "?", "?")
		start := time.Now()
		for _, batch := range in {
			tx, err := loopDB.BeginTx(ctx, nil)
			if err != nil {
				return 0, err
			}
			for _, kv := range batch {
				if _, err := tx.ExecContext(ctx, q, kv.Key, kv.Value); err != nil {
					tx.Rollback()
					return 0, err
				}
			}
			if err := tx.Commit(); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	per, err := h.compareSinks(ctx, h.sqlSinkRun(sinkDB, "bench_sink", in), loop)
	if err != nil {
		return err
	}
	h.sqlRows("SQLite", per, "plain database/sql loop (modernc), a transaction a batch")
	return nil
}

// sqlRows adds the rows/s and time-per-batch rows of the SQL sink into db
// against its plain loop.
func (h *harness) sqlRows(db string, per []float64, baselineName string) {
	n := h.cfg.sqlRows
	rate := func(msPerBatch float64) float64 { return float64(n) / (msPerBatch / 1e3) }
	shape := fmt.Sprintf("%d batches of %s upserts over %s keys", h.cfg.sinkBatches, thousands(n), thousands(sinkKeys))
	r := h.throughput("sinks", "SQL sink ÷ plain loop, "+db, "SQL sink (sqlsink.Write, NewUpsert) into "+db+", "+shape,
		rate(per[0]), rate(per[1]), baselineName)
	r.ratioGoal("≥ 0.9×", 0.9)
	h.add(r)
	h.add(h.batchTime("SQL sink into "+db, n, per[0], per[1], "plain loop"))
}

func (h *harness) postgresSinks(ctx context.Context) error {
	dsn, err := pgtest.Start()
	if err != nil {
		h.skip("PostgreSQL sink: " + err.Error())
		return nil
	}
	sinkDB, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer sinkDB.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s: %w", dsn, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	in := h.sqlSinkInput()
	loop := func(ctx context.Context, _ int) (time.Duration, error) {
		const table = "bench_loop"
		if err := benchTable(ctx, sinkDB, table); err != nil {
			return 0, err
		}
		q := upsertSQL(table, "$1", "$2")
		start := time.Now()
		for _, batch := range in {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return 0, err
			}
			for _, kv := range batch {
				if _, err := tx.Exec(ctx, q, kv.Key, kv.Value); err != nil {
					tx.Rollback(ctx)
					return 0, err
				}
			}
			if err := tx.Commit(ctx); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	per, err := h.compareSinks(ctx, h.sqlSinkRun(sinkDB, "bench_sink", in), loop)
	if err != nil {
		return err
	}
	h.sqlRows("PostgreSQL", per, "plain pgx loop, a transaction a batch")
	return nil
}
