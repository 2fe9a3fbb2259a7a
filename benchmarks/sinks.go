package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// Output topics of the Kafka sinks workload: each side of the comparison
// writes to its own.
const (
	sinkTopicTxn   = "sink-txn"
	sinkTopicAlo   = "sink-alo"
	sinkTopicPlain = "sink-plain"
	sinkKeys       = 10_000 // distinct keys of the SQL rows: later batches update earlier rows
)

// sinkRecord is one element of the Kafka sinks' stream: a pass-through
// record's key and value.
type sinkRecord struct{ key, value []byte }

// kafkaSinkInput returns the input of the Kafka sinks: cfg.kafkaBatches
// batches of cfg.sinkRecords pass-through records.
func (h *harness) kafkaSinkInput() [][]sinkRecord {
	in := make([][]sinkRecord, h.cfg.kafkaBatches)
	for b := range in {
		in[b] = make([]sinkRecord, h.cfg.sinkRecords)
		for i := range in[b] {
			k, v := passRecord(b*h.cfg.sinkRecords + i)
			in[b][i] = sinkRecord{k, v}
		}
	}
	return in
}

// sqlSinkInput returns the input of the SQL sinks: batches batches of
// cfg.sqlRows (key, count) rows over sinkKeys keys.
func (h *harness) sqlSinkInput(batches int) [][]dstream.KV[string, int64] {
	in := make([][]dstream.KV[string, int64], batches)
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
// and PostgreSQL, row by row and in bulk, against plain loops of the same
// upserts.
func (h *harness) sinks(ctx context.Context) error {
	if err := h.kafkaSinks(ctx); err != nil {
		return err
	}
	if err := h.sqliteSinks(ctx); err != nil {
		return err
	}
	return h.postgresSinks(ctx)
}

// sinkSide is one side of a sink comparison. start prepares a run (a
// fresh job, topic or table, untimed) and returns step, which writes batch
// i, and stop, which releases the run.
type sinkSide func(ctx context.Context, run int) (step func(ctx context.Context, i int) error, stop func() error, err error)

// compareSinks runs the sides cfg.repeat times and returns each one's
// median, over the runs, of its mean time per batch, in ms; and the median
// of its batches' times over all runs, which a few batches stalled by the
// machine's other work move less. In a run the sides take turns batch by
// batch (which goes first changes every batch), so that the machine's
// load, shared with the database server and the broker, falls on all of
// them alike.
func (h *harness) compareSinks(ctx context.Context, batches int, sides ...sinkSide) (per, batchMedians []float64, err error) {
	means := make([][]float64, len(sides))
	all := make([][]float64, len(sides))
	for rep := range h.cfg.repeat {
		times, err := h.sinkRun(ctx, rep, batches, sides)
		if err != nil {
			return nil, nil, err
		}
		for i, ts := range times {
			var sum float64
			for _, t := range ts {
				sum += t
			}
			means[i] = append(means[i], sum/float64(len(ts)))
			all[i] = append(all[i], ts...)
		}
	}
	return medians(means), medians(all), nil
}

// sinkRun is one run of compareSinks: the time in ms each side took over
// each batch.
func (h *harness) sinkRun(ctx context.Context, run, batches int, sides []sinkSide) (times [][]float64, err error) {
	steps := make([]func(context.Context, int) error, len(sides))
	for i, side := range sides {
		step, stop, err := side(ctx, run)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, stop()) }()
		steps[i] = step
	}
	times = make([][]float64, len(sides))
	for b := range batches {
		for k := range steps {
			i := (b + k) % len(steps)
			start := time.Now()
			if err := steps[i](ctx, b); err != nil {
				return nil, err
			}
			times[i] = append(times[i], ms(time.Since(start)))
		}
	}
	return times, nil
}

// sinkJob builds a manual-clock job named name over the batches in and
// adds its output with build; its step runs the next batch.
func sinkJob[T any](h *harness, name string, in [][]T, build func(s *dstream.Stream[T]) error) (func(context.Context, int) error, func() error, error) {
	c, err := engine.NewContext(h.cfg.batch, engine.WithManualClock(time.Unix(0, 0)),
		engine.WithParallelism(h.cfg.parallelism), engine.WithJobName(name))
	if err != nil {
		return nil, nil, err
	}
	if err := build(dstream.Queue(c, in)); err != nil {
		c.Close()
		return nil, nil, err
	}
	return func(ctx context.Context, _ int) error { return c.RunBatches(ctx, 1) }, c.Close, nil
}

func (h *harness) kafkaSinks(ctx context.Context) error {
	for _, t := range []string{sinkTopicTxn, sinkTopicAlo, sinkTopicPlain} {
		if err := h.broker.CreateTopic(ctx, t, int32(h.cfg.partitions)); err != nil {
			return err
		}
	}
	in := h.kafkaSinkInput()
	seeds := h.broker.Addrs()
	txn := func(ctx context.Context, run int) (func(context.Context, int) error, func() error, error) {
		return sinkJob(h, "bench-sinks", in, func(s *dstream.Stream[sinkRecord]) error {
			_, err := kafkasink.WriteTxn(ctx, s, kafkasink.Config{Brokers: seeds, Sink: "txn-" + strconv.Itoa(run)},
				func(r sinkRecord) (*kgo.Record, error) {
					return &kgo.Record{Topic: sinkTopicTxn, Key: r.key, Value: r.value}, nil
				})
			return err
		})
	}
	alo := func(ctx context.Context, _ int) (func(context.Context, int) error, func() error, error) {
		return sinkJob(h, "bench-sinks", in, func(s *dstream.Stream[sinkRecord]) error {
			_, err := kafkasink.WriteTo(s, sinkTopicAlo, kafkasink.Config{Brokers: seeds},
				func(r sinkRecord) ([]byte, []byte, error) { return r.key, r.value, nil })
			return err
		})
	}
	plain := func(ctx context.Context, _ int) (func(context.Context, int) error, func() error, error) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context, b int) error {
			recs := make([]*kgo.Record, len(in[b]))
			for i, r := range in[b] {
				recs[i] = &kgo.Record{Topic: sinkTopicPlain, Key: r.key, Value: r.value}
			}
			return cl.ProduceSync(ctx, recs...).FirstErr()
		}, func() error { cl.Close(); return nil }, nil
	}
	per, med, err := h.compareSinks(ctx, h.cfg.kafkaBatches, txn, alo, plain)
	if err != nil {
		return err
	}
	n := h.cfg.sinkRecords
	shape := fmt.Sprintf("%d batches of %s records, %d partitions", h.cfg.kafkaBatches, thousands(n), h.cfg.partitions)
	r := h.throughput("sinks", "Kafka txn sink ÷ at-least-once sink", "Kafka transactional sink (kafkasink.WriteTxn), "+shape,
		rate(n, per[0]), rate(n, per[1]), "at-least-once sink (kafkasink.WriteTo)")
	r.ratioGoal("≥ 0.8×", 0.8)
	h.add(r)
	h.add(h.throughput("sinks", "Kafka txn sink ÷ at-least-once sink, median batch", "Kafka transactional sink, median batch, "+shape,
		rate(n, med[0]), rate(n, med[1]), "at-least-once sink, median batch"))
	h.add(h.throughput("sinks", "Kafka txn sink ÷ plain kgo", "Kafka transactional sink, "+shape,
		rate(n, per[0]), rate(n, per[2]), "plain kgo producer, ProduceSync a batch"))
	h.add(h.throughput("sinks", "Kafka at-least-once sink ÷ plain kgo", "Kafka at-least-once sink, "+shape,
		rate(n, per[1]), rate(n, per[2]), "plain kgo producer, ProduceSync a batch"))
	h.add(h.batchTime("Kafka transactional sink", n, per[0], per[2], "plain kgo producer"))
	h.add(h.batchTime("Kafka at-least-once sink", n, per[1], per[2], "plain kgo producer"))
	return nil
}

// rate is the records per second of n records in msPerBatch.
func rate(n int, msPerBatch float64) float64 { return float64(n) / (msPerBatch / 1e3) }

// batchTime is a row of a sink's time per batch of n records against its
// baseline's. The sink's time is what it adds to the processing time of
// every batch at a 1 s batch interval with n records/s in; the difference
// is what it adds over writing the same records by hand.
func (h *harness) batchTime(sink string, n int, sluice, baseline float64, baselineName string) result {
	fig := fmt.Sprintf("%s, time per batch of %s records: what it adds to a 1 s batch (%s more than the %s)",
		sink, thousands(n), fmtValue(sluice-baseline, unitMS), baselineName)
	r := result{Workload: "sinks", Label: sink + " ms/batch", Figure: fig, Unit: unitBatch, Sluice: sluice, Better: "lower"}
	r.against(baseline, baselineName)
	return r
}

// benchTable creates (or empties) table, of (key, count) rows with the key
// as primary key, or without a key when keyed is false.
func benchTable(ctx context.Context, db *sql.DB, table string, keyed bool) error {
	def := "k TEXT PRIMARY KEY, n BIGINT NOT NULL"
	if !keyed {
		def = "k TEXT NOT NULL, n BIGINT NOT NULL"
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+table+" ("+def+")"); err != nil {
		return fmt.Errorf("create %s: %w", table, err)
	}
	if _, err := db.ExecContext(ctx, "DELETE FROM "+table); err != nil {
		return fmt.Errorf("empty %s: %w", table, err)
	}
	return nil
}

// sqlSinkRow writes in through sqlsink.Write into table of db with an
// additive upsert, one Exec a row.
func (h *harness) sqlSinkRow(db *sql.DB, table string, in [][]dstream.KV[string, int64]) sinkSide {
	return func(ctx context.Context, run int) (func(context.Context, int) error, func() error, error) {
		if err := benchTable(ctx, db, table, true); err != nil {
			return nil, nil, err
		}
		up, err := sqlsink.NewUpsert(db, table, []string{"k"}, []string{"n"}, sqlsink.Additive("n"))
		if err != nil {
			return nil, nil, err
		}
		return sinkJob(h, "bench-sinks", in, func(s *dstream.Stream[dstream.KV[string, int64]]) error {
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

// sqlSinkBulk writes in through sqlsink.WriteRows, the bulk path, into
// table of db with an additive upsert.
func (h *harness) sqlSinkBulk(db *sql.DB, table string, in [][]dstream.KV[string, int64]) sinkSide {
	return func(ctx context.Context, run int) (func(context.Context, int) error, func() error, error) {
		if err := benchTable(ctx, db, table, true); err != nil {
			return nil, nil, err
		}
		bulk, err := sqlsink.NewBulk(db, table, []string{"k"}, []string{"n"}, sqlsink.Additive("n"))
		if err != nil {
			return nil, nil, err
		}
		return sinkJob(h, "bench-sinks", in, func(s *dstream.Stream[dstream.KV[string, int64]]) error {
			_, err := sqlsink.WriteRows(ctx, s, sqlsink.Config{DB: db, Sink: table + "-" + strconv.Itoa(run)}, bulk,
				func(kv dstream.KV[string, int64]) ([]any, error) { return []any{kv.Key, kv.Value}, nil })
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
	// One file for each side, so that none waits on another's writer.
	dbs := map[string]*sql.DB{}
	for _, name := range []string{"sink-row", "loop-row", "sink-bulk", "loop-bulk"} {
		db, err := sqlsink.OpenSQLite(filepath.Join(dir, name+".db"))
		if err != nil {
			return err
		}
		defer db.Close()
		dbs[name] = db
	}
	in := h.sqlSinkInput(h.cfg.sqliteBatches)
	loopRow := func(ctx context.Context, _ int) (func(context.Context, int) error, func() error, error) {
		const table = "bench_loop"
		db := dbs["loop-row"]
		if err := benchTable(ctx, db, table, true); err != nil {
			return nil, nil, err
		}
		q := upsertSQL(table, "?", "?")
		return func(ctx context.Context, b int) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			// Prepared once a batch, as the sink's upsert is: SQLite
			// parses it once, not once a row.
			st, err := tx.PrepareContext(ctx, q)
			if err != nil {
				return err
			}
			for _, kv := range in[b] {
				if _, err := st.ExecContext(ctx, kv.Key, kv.Value); err != nil {
					return err
				}
			}
			return tx.Commit()
		}, noStop, nil
	}
	// The plain bulk loop runs what a hand-written one would: the
	// multi-row upsert of as many rows as SQLite's 999 parameters hold,
	// prepared once, and one statement for the rest of the batch.
	loopBulk := func(ctx context.Context, _ int) (func(context.Context, int) error, func() error, error) {
		const table, chunk = "bench_loop", 999 / 2
		db := dbs["loop-bulk"]
		if err := benchTable(ctx, db, table, true); err != nil {
			return nil, nil, err
		}
		multi := func(n int) string {
			return "INSERT INTO " + table + " (k, n) VALUES " + strings.TrimSuffix(strings.Repeat("(?, ?), ", n), ", ") +
				" ON CONFLICT (k) DO UPDATE SET n = " + table + ".n + excluded.n"
		}
		full, err := db.PrepareContext(ctx, multi(chunk))
		if err != nil {
			return nil, nil, err
		}
		args := make([]any, 0, 2*chunk)
		return func(ctx context.Context, b int) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			st := tx.StmtContext(ctx, full)
			for rows := in[b]; len(rows) > 0; {
				n := min(chunk, len(rows))
				args = args[:0]
				for _, kv := range rows[:n] {
					args = append(args, kv.Key, kv.Value)
				}
				if n == chunk {
					_, err = st.ExecContext(ctx, args...)
				} else {
					_, err = tx.ExecContext(ctx, multi(n), args...)
				}
				if err != nil {
					return err
				}
				rows = rows[n:]
			}
			return tx.Commit()
		}, full.Close, nil
	}
	per, _, err := h.compareSinks(ctx, h.cfg.sqliteBatches, h.sqlSinkRow(dbs["sink-row"], "bench_sink", in), loopRow,
		h.sqlSinkBulk(dbs["sink-bulk"], "bench_sink", in), loopBulk)
	if err != nil {
		return err
	}
	h.sqlRows("SQLite", h.cfg.sqliteBatches, per[0], per[1], "plain database/sql loop (modernc), a transaction and a prepared statement a batch")
	h.sqlBulkRows("SQLite", h.cfg.sqliteBatches, per[2], per[3], "plain database/sql loop of prepared multi-row upserts, a transaction a batch", "")
	return nil
}

func noStop() error { return nil }

// sqlShape describes the SQL sinks' input of batches batches.
func (h *harness) sqlShape(batches int) string {
	return fmt.Sprintf("%d batches of %s upserts over %s keys", batches, thousands(h.cfg.sqlRows), thousands(sinkKeys))
}

// sqlRows adds the rows/s and time-per-batch rows of the SQL sink's row by
// row upserts into db against the plain loop's.
func (h *harness) sqlRows(db string, batches int, sink, loop float64, baselineName string) {
	n := h.cfg.sqlRows
	r := h.throughput("sinks", "SQL sink ÷ plain loop, "+db, "SQL sink (sqlsink.Write, NewUpsert, an Exec a row) into "+db+", "+h.sqlShape(batches),
		rate(n, sink), rate(n, loop), baselineName)
	r.ratioGoal("≥ 0.9×", 0.9)
	h.add(r)
	h.add(h.batchTime("SQL sink into "+db+", row by row", n, sink, loop, "plain loop"))
}

// sqlBulkRows adds the rows/s and time-per-batch rows of the SQL sink's
// bulk path into db against the plain bulk loop's, and, when rawName is
// set, against raw's.
func (h *harness) sqlBulkRows(db string, batches int, sink, loop float64, loopName string, rawName string, raw ...float64) {
	n := h.cfg.sqlRows
	fig := "SQL sink's bulk path (sqlsink.WriteRows, NewBulk) into " + db + ", " + h.sqlShape(batches)
	h.add(h.throughput("sinks", "SQL bulk sink ÷ plain bulk loop, "+db, fig, rate(n, sink), rate(n, loop), loopName))
	if rawName != "" {
		h.add(h.throughput("sinks", "SQL bulk sink ÷ raw COPY, "+db, fig, rate(n, sink), rate(n, raw[0]), rawName))
	}
	h.add(h.batchTime("SQL sink into "+db+", bulk", n, sink, loop, "plain bulk loop"))
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
	connect := func(ctx context.Context) (*pgx.Conn, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", dsn, err)
		}
		return conn, nil
	}
	closeConn := func(conn *pgx.Conn) func() error {
		return func() error { return conn.Close(context.WithoutCancel(ctx)) }
	}
	in := h.sqlSinkInput(h.cfg.sinkBatches)
	loopRow := func(ctx context.Context, _ int) (func(context.Context, int) error, func() error, error) {
		const table = "bench_loop"
		if err := benchTable(ctx, sinkDB, table, true); err != nil {
			return nil, nil, err
		}
		conn, err := connect(ctx)
		if err != nil {
			return nil, nil, err
		}
		q := upsertSQL(table, "$1", "$2")
		return func(ctx context.Context, b int) error {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			for _, kv := range in[b] {
				if _, err := tx.Exec(ctx, q, kv.Key, kv.Value); err != nil {
					return err
				}
			}
			return tx.Commit(ctx)
		}, closeConn(conn), nil
	}
	// copyRows feeds a batch's rows to CopyFrom.
	copyRows := func(b int) pgx.CopyFromSource {
		i := -1
		row := make([]any, 2)
		return pgx.CopyFromFunc(func() ([]any, error) {
			if i++; i == len(in[b]) {
				return nil, nil
			}
			row[0], row[1] = in[b][i].Key, in[b][i].Value
			return row, nil
		})
	}
	// The plain bulk loop is the same upserts by hand: COPY into a
	// temporary table made once, and one merge, a transaction a batch.
	loopBulk := func(ctx context.Context, _ int) (func(context.Context, int) error, func() error, error) {
		const table = "bench_loop_bulk"
		if err := benchTable(ctx, sinkDB, table, true); err != nil {
			return nil, nil, err
		}
		conn, err := connect(ctx)
		if err != nil {
			return nil, nil, err
		}
		if _, err := conn.Exec(ctx, "CREATE TEMPORARY TABLE staging (k TEXT, n BIGINT) ON COMMIT DELETE ROWS"); err != nil {
			conn.Close(ctx)
			return nil, nil, err
		}
		merge := "INSERT INTO " + table + " (k, n) SELECT k, sum(n) FROM staging GROUP BY k ON CONFLICT (k) DO UPDATE SET n = " + table + ".n + excluded.n"
		return func(ctx context.Context, b int) error {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"staging"}, []string{"k", "n"}, copyRows(b)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, merge); err != nil {
				return err
			}
			return tx.Commit(ctx)
		}, closeConn(conn), nil
	}
	// Raw COPY appends the rows to a table without a key: what COPY costs
	// alone, no upsert.
	rawCopy := func(ctx context.Context, _ int) (func(context.Context, int) error, func() error, error) {
		const table = "bench_raw_copy"
		if err := benchTable(ctx, sinkDB, table, false); err != nil {
			return nil, nil, err
		}
		conn, err := connect(ctx)
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context, b int) error {
			_, err := conn.CopyFrom(ctx, pgx.Identifier{table}, []string{"k", "n"}, copyRows(b))
			return err
		}, closeConn(conn), nil
	}
	per, _, err := h.compareSinks(ctx, h.cfg.sinkBatches, h.sqlSinkRow(sinkDB, "bench_sink", in), loopRow,
		h.sqlSinkBulk(sinkDB, "bench_sink_bulk", in), loopBulk, rawCopy)
	if err != nil {
		return err
	}
	h.sqlRows("PostgreSQL", h.cfg.sinkBatches, per[0], per[1], "plain pgx loop, a transaction a batch")
	h.sqlBulkRows("PostgreSQL", h.cfg.sinkBatches, per[2], per[3], "plain pgx CopyFrom into a temporary table and one merge, a transaction a batch",
		"raw pgx CopyFrom, appending to a table without a key", per[4])
	return nil
}
