package exampleutil

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/sluicehq/sluice/sqlsink"
)

// The sqlite and postgres schemes write each batch's rows as JSON text to
// the table sluice_results (job, kind, batch_time_ms, row_index, row) in
// one transaction per batch with [sqlsink.Sink], which records the batch
// and the offset ranges it read in sluice_progress in the same
// transaction: every batch lands exactly once. The rows go in with one
// [sqlsink.Bulk] upsert a batch (COPY and one merge on PostgreSQL,
// multi-row statements on SQLite).
func init() {
	RegisterSink(SinkScheme{Name: "sqlite", Form: "sqlite:PATH", Check: checkSQLSink, Open: openSQLSink})
	RegisterSink(SinkScheme{Name: "postgres", Form: "postgres://USER@HOST:PORT/DB", Check: checkSQLSink, Open: openSQLSink})
}

func checkSQLSink(value string) error {
	if value == "sqlite:" {
		return usagef("--sink %q has no database file; write it as --sink sqlite:results.db.", value)
	}
	if strings.HasPrefix(value, "postgres:") && !strings.HasPrefix(value, "postgres://") {
		return usagef("--sink %q is not a PostgreSQL URL; write it as --sink postgres://user@localhost:5432/db.", value)
	}
	return nil
}

const createResults = `CREATE TABLE IF NOT EXISTS sluice_results (
	job TEXT NOT NULL, kind TEXT NOT NULL, batch_time_ms BIGINT NOT NULL, row_index INTEGER NOT NULL, row TEXT NOT NULL,
	PRIMARY KEY (job, kind, batch_time_ms, row_index))`

type sqlSink struct {
	db   *sql.DB
	job  string
	bulk *sqlsink.Bulk

	mu    sync.Mutex               // guards sinks against Metrics
	sinks map[string]*sqlsink.Sink // by kind
}

func openSQLSink(ctx context.Context, value string, j *Job, _ []string) (Sink, error) {
	var db *sql.DB
	var err error
	pg := strings.HasPrefix(value, "postgres://")
	if pg {
		db, err = sql.Open("pgx", value)
		if err == nil {
			err = db.PingContext(ctx)
		}
	} else {
		path := strings.TrimPrefix(value, "sqlite:")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("cannot create the directory of %s: %w", path, err)
		}
		db, err = sqlsink.OpenSQLite(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, createResults); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot create the table sluice_results: %w", err)
	}
	bulk, err := sqlsink.NewBulk(db, "sluice_results", []string{"job", "kind", "batch_time_ms", "row_index"}, []string{"row"})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &sqlSink{db: db, job: j.Context.JobName(), bulk: bulk, sinks: map[string]*sqlsink.Sink{}}, nil
}

func (s *sqlSink) Write(ctx context.Context, kind string, t time.Time, ranges []kafkasource.OffsetRange, rows []json.RawMessage) error {
	s.mu.Lock()
	sk, ok := s.sinks[kind]
	s.mu.Unlock()
	if !ok {
		name := "results"
		if kind != "" {
			name += "-" + kind
		}
		var err error
		if sk, err = sqlsink.Open(ctx, s.db, s.job, name); err != nil {
			return err
		}
		s.mu.Lock()
		s.sinks[kind] = sk
		s.mu.Unlock()
	}
	ms := t.UnixMilli()
	values := make([][]any, len(rows))
	for i, r := range rows {
		values[i] = []any{s.job, kind, ms, i, string(r)}
	}
	// A batch not yet recorded has no rows in sluice_results (its earlier
	// attempt rolled back), so the upsert only inserts.
	_, err := sk.Commit(ctx, t, ranges, func(ctx context.Context, tx *sql.Tx) (int, error) {
		return len(values), s.bulk.Exec(ctx, tx, values)
	})
	return err
}

// Metrics returns the metrics of the sqlsink.Sink of kind: rows written,
// batches committed, failed and skipped, time per batch.
func (s *sqlSink) Metrics(kind string) []engine.Metric {
	s.mu.Lock()
	sk := s.sinks[kind]
	s.mu.Unlock()
	if sk == nil {
		return nil
	}
	return sk.Metrics()
}

func (s *sqlSink) Close() error { return s.db.Close() }
