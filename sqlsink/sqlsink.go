// Package sqlsink writes the batches of a stream into a database/sql
// database exactly once. [Write] registers an output that opens one
// transaction per batch, calls the user's function to write the batch's
// rows in it, and records in the same transaction the batch time and the
// Kafka offsets the batch read in the progress table sluice_progress.
// The engine commits its checkpoint after the outputs, so a batch re-run
// after a crash between the database commit and the checkpoint commit finds
// itself recorded and writes nothing.
//
// # Progress table
//
// sluice_progress, created when missing, holds one row per job, sink,
// topic and partition:
//
//	job TEXT, sink TEXT, topic TEXT, kafka_partition INTEGER,
//	until_offset BIGINT, batch_time_ms BIGINT
//
// until_offset is one past the last offset the newest recorded batch read
// of the partition, batch_time_ms that batch's time in Unix milliseconds.
// One more row per job and sink, with an empty topic and kafka_partition
// −1, holds the newest recorded batch time even for batches that read no
// Kafka partition.
//
// # Starting from the database
//
// [StoredOffsets] reads the until offsets back as the map
// kafkasource.WithStartOffsets takes, so that a job keeps its results and
// its offsets in one place and can restart from them without a checkpoint
// directory.
//
// # Upserts
//
// [NewUpsert] builds the INSERT … ON CONFLICT DO UPDATE of one row, with
// [Additive] columns for counts added batch by batch; [NewBulk] does the
// same for many rows at once, through COPY and one merge on PostgreSQL and
// prepared multi-row statements on SQLite, for large batches.
// [WriteRows] takes an encode function from element to row instead of a
// write function and upserts each batch's rows with a [Bulk]; an element
// it rejects goes to a dead-letter table (Config.DeadLetterTable) in the
// batch's transaction and never fails the batch.
//
// # Drivers
//
// Any database/sql driver whose SQL has INSERT … ON CONFLICT works: SQLite
// (modernc.org/sqlite, opened with [OpenSQLite]: WAL journal, a busy
// timeout, one writer) and PostgreSQL (github.com/jackc/pgx/v5/stdlib).
// Placeholders are $1, $2, … for PostgreSQL and ? otherwise, found from the
// driver's type.
package sqlsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/sinkstats"
	"github.com/sluicehq/sluice/kafkasource"
)

// ProgressTable is the name of the table that records the batches a sink
// committed.
const ProgressTable = "sluice_progress"

// Config configures [Write].
type Config struct {
	// DB is the database; required.
	DB *sql.DB
	// Sink names the sink within the job (engine.WithJobName); with the
	// job's name it keys the sink's rows in sluice_progress. Required.
	Sink string
	// DeadLetterTable, for [WriteRows], receives in the batch's
	// transaction the elements the encode function rejected, one row
	// each (job, sink, batch_time_ms, element as text, error); created
	// when missing. Empty (the default): rejected elements are only
	// counted.
	DeadLetterTable string
}

// Stats are a sink's counters.
type Stats struct {
	Records  int64 // elements of committed batches
	Batches  int64 // batches committed
	Failures int64 // batches whose transaction failed
	Skipped  int64 // re-run batches found already committed
	// DeadLetters counts the elements of committed batches the encode
	// function of [WriteRows] rejected.
	DeadLetters int64
}

// Sink is the handle of an output registered by [Write]. Its methods are
// safe for concurrent use.
type Sink struct {
	name, job string
	db        *sql.DB
	d         dialect
	c         sinkstats.Counters
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	return Stats{Records: s.c.Records.Load(), Batches: s.c.Batches.Load(), Failures: s.c.Failures.Load(), Skipped: s.c.Skipped.Load(),
		DeadLetters: s.c.DeadLetters.Load()}
}

// Metrics returns the sink's counters as the output's node reports them on
// a job's status (package status): sink_records_total,
// sink_batches_total, sink_failures_total, sink_dead_letters_total,
// sink_skipped_batches_total and the histogram sink_write_seconds of the
// time each batch's transaction took, labelled sink=<Config.Sink>.
func (s *Sink) Metrics() []engine.Metric { return s.c.Metrics(s.name) }

type dialect struct{ dollar bool }

func dialectOf(db *sql.DB) dialect {
	t := reflect.TypeOf(db.Driver()).String()
	return dialect{dollar: strings.Contains(t, "stdlib") || strings.Contains(t, "pq") || strings.Contains(strings.ToLower(t), "postgres")}
}

// ph returns the i-th placeholder, from 1.
func (d dialect) ph(i int) string {
	if d.dollar {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

func (d dialect) rebind(q string) string {
	if !d.dollar {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

const createProgress = `CREATE TABLE IF NOT EXISTS ` + ProgressTable + ` (
	job TEXT NOT NULL,
	sink TEXT NOT NULL,
	topic TEXT NOT NULL,
	kafka_partition INTEGER NOT NULL,
	until_offset BIGINT NOT NULL,
	batch_time_ms BIGINT NOT NULL,
	PRIMARY KEY (job, sink, topic, kafka_partition)
)`

// EnsureProgressTable creates sluice_progress in db when it is missing.
func EnsureProgressTable(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, createProgress); err != nil {
		return fmt.Errorf("sqlsink: cannot create the table %s: %w; grant the database user CREATE on its schema or create the table as the package documents", ProgressTable, err)
	}
	return nil
}

// Write registers an output operation that writes every batch of s exactly
// once: it opens a transaction on cfg.DB, calls write with it and the
// batch, records the batch time and the offset ranges the batch read (from
// the Kafka direct stream upstream of s, if any) in sluice_progress, and
// commits, before the checkpoint commits. A batch no newer than the newest
// recorded one is skipped without calling write. An error from write, or
// from the commit, rolls the transaction back and fails the batch. The job
// must be named with engine.WithJobName.
func Write[T any](ctx context.Context, s *dstream.Stream[T], cfg Config, write func(ctx context.Context, tx *sql.Tx, b dstream.Batch[T]) error) (*Sink, error) {
	if write == nil {
		return nil, errors.New("sqlsink: Write got a nil write function; pass one that writes the batch's rows with the transaction it gets")
	}
	return sqlWrite(ctx, s, cfg, func(ctx context.Context, tx *sql.Tx, b dstream.Batch[T]) (int64, int64, error) {
		return int64(b.Len()), 0, write(ctx, tx, b)
	})
}

// Open returns a sink of job on db for writers that run their own output
// operation: each batch goes through [Sink.Commit]. Such a writer reports
// the sink's metrics by registering its output with
// dstream.ForEachBatchWith(s, dstream.OutputOptions{Kind: "sqlSink",
// Metrics: sink.Metrics}, …).
func Open(ctx context.Context, db *sql.DB, job, sink string) (*Sink, error) {
	switch {
	case db == nil:
		return nil, errors.New("sqlsink: Open got no database; pass an opened *sql.DB")
	case job == "" || sink == "":
		return nil, errors.New("sqlsink: Open got an empty job or sink name; name both so that a restart finds the batches already committed")
	}
	if err := EnsureProgressTable(ctx, db); err != nil {
		return nil, err
	}
	return &Sink{name: sink, job: job, db: db, d: dialectOf(db)}, nil
}

// Commit runs write and records the batch at batch reading ranges in one
// transaction, unless the batch is already recorded (then write is not
// called); it reports whether it committed. write returns the rows it
// wrote. Commit counts the batch in the sink's [Stats] and [Sink.Metrics]
// as [Write] does: its rows when it commits, a failure when it fails, a
// skipped batch when the batch was recorded, and its time.
func (s *Sink) Commit(ctx context.Context, batch time.Time, ranges []kafkasource.OffsetRange, write func(context.Context, *sql.Tx) (int, error)) (bool, error) {
	return s.count(ctx, batch, ranges, func(ctx context.Context, tx *sql.Tx) (int64, int64, error) {
		n, err := write(ctx, tx)
		return int64(n), 0, err
	})
}

// count commits the batch with write, which returns the rows it wrote and
// the elements it dead-lettered, and counts the outcome.
func (s *Sink) count(ctx context.Context, batch time.Time, ranges []kafkasource.OffsetRange, write func(context.Context, *sql.Tx) (int64, int64, error)) (bool, error) {
	start := time.Now()
	defer func() { s.c.ObserveWrite(time.Since(start)) }()
	var n, dead int64
	wrote, err := s.commit(ctx, batch, ranges, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		n, dead, err = write(ctx, tx)
		return err
	})
	switch {
	case err != nil:
		s.c.Failures.Add(1)
	case !wrote:
		s.c.Skipped.Add(1)
	default:
		s.c.Batches.Add(1)
		s.c.Records.Add(n)
		s.c.DeadLetters.Add(dead)
	}
	return wrote, err
}

func (s *Sink) commit(ctx context.Context, batch time.Time, ranges []kafkasource.OffsetRange, write func(context.Context, *sql.Tx) error) (bool, error) {
	wrote, err := s.commitTx(ctx, batch, ranges, write)
	if err != nil && ctx.Err() == nil {
		if lost := s.lost(ctx, batch, err); lost != nil {
			return false, lost
		}
	}
	return wrote, err
}

// lost returns the sentence for a batch that failed with err because the
// database went away, or nil when the database answers a ping.
func (s *Sink) lost(ctx context.Context, batch time.Time, err error) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s.db.PingContext(pctx) == nil {
		return nil
	}
	// The driver's own error, below the sentences of this package.
	cause := err
	for strings.HasPrefix(cause.Error(), "sqlsink:") {
		u := errors.Unwrap(cause)
		if u == nil {
			break
		}
		cause = u
	}
	return fmt.Errorf("sqlsink: sink %s lost its database during the batch at %d ms, whose transaction is rolled back (%w); bring the database back and restart the job, which re-runs the batch once", s.name, batch.UnixMilli(), cause)
}

func (s *Sink) commitTx(ctx context.Context, batch time.Time, ranges []kafkasource.OffsetRange, write func(context.Context, *sql.Tx) error) (bool, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("sqlsink: sink %s cannot connect to the database: %w; check that the database is reachable, the job re-runs the batch when it is back", s.name, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlsink: sink %s cannot begin a transaction: %w; check that the database is reachable, the job re-runs the batch when it is back", s.name, err)
	}
	defer tx.Rollback()
	ms := batch.UnixMilli()
	done, err := s.recorded(ctx, tx, ms, ranges)
	if err != nil {
		return false, err
	}
	if done {
		return false, nil
	}
	if err := write(context.WithValue(ctx, txConnKey{}, txConn{tx, conn}), tx); err != nil {
		return false, fmt.Errorf("sqlsink: sink %s failed to write the batch at %d ms: %w", s.name, ms, err)
	}
	if err := s.record(ctx, tx, ms, ranges); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlsink: sink %s cannot commit the batch at %d ms: %w; check that the database is reachable, the job re-runs the batch when it is back", s.name, ms, err)
	}
	return true, nil
}

// progressChunk is the most progress rows one statement records: 6
// parameters a row, under SQLite's historical limit of 999.
const progressChunk = 150

// record upserts the progress rows of the batch at ms reading ranges, the
// batch row and one a partition, with one statement (one per
// progressChunk partitions).
func (s *Sink) record(ctx context.Context, tx *sql.Tx, ms int64, ranges []kafkasource.OffsetRange) error {
	type row struct {
		tp    kafkasource.TopicPartition
		until int64
	}
	rows := make([]row, 0, len(ranges)+1)
	rows = append(rows, row{kafkasource.TopicPartition{Partition: -1}, -1})
	at := make(map[kafkasource.TopicPartition]int, len(ranges))
	for _, r := range ranges {
		// One row a partition: a statement may not update a row twice.
		if i, ok := at[r.TopicPartition()]; ok {
			rows[i].until = r.Until
			continue
		}
		at[r.TopicPartition()] = len(rows)
		rows = append(rows, row{r.TopicPartition(), r.Until})
	}
	for len(rows) > 0 {
		n := min(len(rows), progressChunk)
		var q strings.Builder
		q.WriteString(`INSERT INTO ` + ProgressTable + ` (job, sink, topic, kafka_partition, until_offset, batch_time_ms) VALUES `)
		args := make([]any, 0, 6*n)
		for i, r := range rows[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteByte('(')
			for j := range 6 {
				if j > 0 {
					q.WriteString(", ")
				}
				q.WriteString(s.d.ph(len(args) + j + 1))
			}
			q.WriteByte(')')
			args = append(args, s.job, s.name, r.tp.Topic, r.tp.Partition, r.until, ms)
		}
		q.WriteString(` ON CONFLICT (job, sink, topic, kafka_partition) DO UPDATE SET until_offset = excluded.until_offset, batch_time_ms = excluded.batch_time_ms`)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("sqlsink: sink %s cannot record its progress in the table %s: %w; check the table has the columns the package documents", s.name, ProgressTable, err)
		}
		rows = rows[n:]
	}
	return nil
}

// recorded reports whether the batch at ms reading ranges is already
// recorded: its time is no newer than the newest recorded batch and it
// reads nothing past the recorded until offsets. A job restarted without
// a checkpoint whose clock starts again below the recorded time still
// writes the batches that read new records.
func (s *Sink) recorded(ctx context.Context, tx *sql.Tx, ms int64, ranges []kafkasource.OffsetRange) (bool, error) {
	lock := ""
	if s.d.dollar {
		lock = " FOR UPDATE"
	}
	rows, err := tx.QueryContext(ctx, s.d.rebind(`SELECT topic, kafka_partition, until_offset, batch_time_ms FROM `+ProgressTable+
		` WHERE job = ? AND sink = ?`+lock), s.job, s.name)
	if err != nil {
		return false, fmt.Errorf("sqlsink: sink %s cannot read the table %s: %w; check that the database is reachable and the table is the one the package creates", s.name, ProgressTable, err)
	}
	defer rows.Close()
	last := int64(-1 << 63)
	until := make(map[kafkasource.TopicPartition]int64)
	for rows.Next() {
		var tp kafkasource.TopicPartition
		var u, bt int64
		if err := rows.Scan(&tp.Topic, &tp.Partition, &u, &bt); err != nil {
			return false, fmt.Errorf("sqlsink: sink %s cannot read the table %s: %w; check the table has the columns the package documents", s.name, ProgressTable, err)
		}
		if tp.Partition < 0 {
			last = bt
			continue
		}
		until[tp] = u
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("sqlsink: sink %s cannot read the table %s: %w; check that the database is reachable", s.name, ProgressTable, err)
	}
	if ms > last {
		return false, nil
	}
	for _, r := range ranges {
		if u, ok := until[r.TopicPartition()]; r.Count() > 0 && (!ok || r.Until > u) {
			return false, nil
		}
	}
	return true, nil
}

// StoredOffsets returns the offsets the newest batch committed by job's
// sink stopped at, one past the last offset read of every partition, as
// kafkasource.WithStartOffsets takes them. It returns an empty map when the
// sink committed nothing or the progress table does not exist yet.
func StoredOffsets(ctx context.Context, db *sql.DB, job, sink string) (map[kafkasource.TopicPartition]int64, error) {
	if err := EnsureProgressTable(ctx, db); err != nil {
		return nil, err
	}
	d := dialectOf(db)
	rows, err := db.QueryContext(ctx, d.rebind(`SELECT topic, kafka_partition, until_offset FROM `+ProgressTable+
		` WHERE job = ? AND sink = ? AND kafka_partition >= 0`), job, sink)
	if err != nil {
		return nil, fmt.Errorf("sqlsink: cannot read the table %s: %w; check that the database is reachable", ProgressTable, err)
	}
	defer rows.Close()
	out := make(map[kafkasource.TopicPartition]int64)
	for rows.Next() {
		var tp kafkasource.TopicPartition
		var until int64
		if err := rows.Scan(&tp.Topic, &tp.Partition, &until); err != nil {
			return nil, fmt.Errorf("sqlsink: cannot read the table %s: %w; check the table has the columns the package documents", ProgressTable, err)
		}
		out[tp] = until
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlsink: cannot read the table %s: %w; check that the database is reachable", ProgressTable, err)
	}
	return out, nil
}
