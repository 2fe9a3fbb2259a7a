package sqlsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// WriteRows registers an output that writes every batch of s exactly once
// as [Write] does, turning each element into a row with encode (the keys'
// values then the values', as [Bulk.Exec] takes them) and upserting the
// batch's rows with b in the batch's transaction. An element encode
// rejects (an error, or a row of the wrong length) never fails the batch:
// it goes to cfg.DeadLetterTable in the same transaction, or is only
// counted, in [Stats].DeadLetters either way.
func WriteRows[T any](ctx context.Context, s *dstream.Stream[T], cfg Config, b *Bulk, encode func(T) ([]any, error)) (*Sink, error) {
	switch {
	case encode == nil:
		return nil, errors.New("sqlsink: WriteRows got a nil encode function; pass one that returns an element's row")
	case b == nil:
		return nil, errors.New("sqlsink: WriteRows got no bulk upsert; make one with NewBulk")
	case cfg.DeadLetterTable != "" && (!ident(cfg.DeadLetterTable) || cfg.DeadLetterTable == b.table):
		return nil, fmt.Errorf("sqlsink: the dead-letter table name %q is not a plain SQL identifier apart from the table %s; use letters, digits, _ and . only", cfg.DeadLetterTable, b.table)
	}
	var insDead string
	if cfg.DeadLetterTable != "" && cfg.DB != nil {
		create := `CREATE TABLE IF NOT EXISTS ` + cfg.DeadLetterTable + ` (job TEXT NOT NULL, sink TEXT NOT NULL, batch_time_ms BIGINT NOT NULL, element TEXT NOT NULL, error TEXT NOT NULL)`
		if _, err := cfg.DB.ExecContext(ctx, create); err != nil {
			return nil, fmt.Errorf("sqlsink: cannot create the dead-letter table %s: %w; grant the database user CREATE on its schema or create it as Config.DeadLetterTable documents", cfg.DeadLetterTable, err)
		}
		insDead = dialectOf(cfg.DB).rebind(`INSERT INTO ` + cfg.DeadLetterTable + ` (job, sink, batch_time_ms, element, error) VALUES (?, ?, ?, ?, ?)`)
	}
	var sink *Sink
	sink, err := sqlWrite(ctx, s, cfg, func(ctx context.Context, tx *sql.Tx, batch dstream.Batch[T]) (int64, int64, error) {
		rows := make([][]any, 0, batch.Len())
		var dead int64
		for x := range batch.All() {
			row, err := encode(x)
			if err == nil && len(row) != len(b.all) {
				err = fmt.Errorf("encode returned %d values for the %d columns %s", len(row), len(b.all), strings.Join(b.all, ", "))
			}
			if err == nil {
				rows = append(rows, row)
				continue
			}
			dead++
			if insDead != "" {
				if _, err := tx.ExecContext(ctx, insDead, sink.job, sink.name, batch.Time.UnixMilli(), fmt.Sprint(x), err.Error()); err != nil {
					return 0, 0, fmt.Errorf("sqlsink: cannot insert into the dead-letter table %s: %w", cfg.DeadLetterTable, err)
				}
			}
		}
		return int64(len(rows)), dead, b.Exec(ctx, tx, rows)
	})
	return sink, err
}

// sqlWrite is Write with a function that reports the rows it wrote and the
// elements it dead-lettered.
func sqlWrite[T any](ctx context.Context, s *dstream.Stream[T], cfg Config, f func(context.Context, *sql.Tx, dstream.Batch[T]) (int64, int64, error)) (*Sink, error) {
	switch {
	case cfg.DB == nil:
		return nil, errors.New("sqlsink: Write got no database; set Config.DB to an opened *sql.DB")
	case cfg.Sink == "":
		return nil, errors.New("sqlsink: the sink has no name; set Config.Sink so that its progress rows are found after a restart")
	}
	job := s.Context().JobName()
	if job == "" {
		return nil, errors.New("sqlsink: the job has no name; name it with engine.WithJobName so that a restart finds the batches it already committed")
	}
	if err := EnsureProgressTable(ctx, cfg.DB); err != nil {
		return nil, err
	}
	sink := &Sink{name: cfg.Sink, job: job, db: cfg.DB, d: dialectOf(cfg.DB)}
	dstream.ForEachBatchWith(s, dstream.OutputOptions{Kind: "sqlSink", Metrics: sink.Metrics}, func(ctx context.Context, j *engine.Job, b dstream.Batch[T]) error {
		_, err := sink.count(ctx, b.Time, kafkasource.OffsetRangesOf(j, s), func(ctx context.Context, tx *sql.Tx) (int64, int64, error) {
			return f(ctx, tx, b)
		})
		return err
	})
	return sink, nil
}
