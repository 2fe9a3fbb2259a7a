package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
	"github.com/sluicehq/sluice/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// TestPostgresSink runs ipcount with --sink postgres://… against a real
// PostgreSQL server: sluice_results holds, batch by batch, the rows of the
// --save files, and sluice_progress the offsets of the newest batch.
func TestPostgresSink(t *testing.T) {
	dsn := pgtest.DSN(t)
	admin, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer admin.Close()
	_, err = admin.Exec(`DROP SCHEMA IF EXISTS ipcount_sink CASCADE; CREATE SCHEMA ipcount_sink`)
	require.NoError(t, err)
	dsn += "&search_path=ipcount_sink"

	bin := exampletest.Build(t, "./examples/ipcount")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out", "ip")
	p := exampletest.Start(t, bin, "--listen", "127.0.0.1:0", "--checkpoint", filepath.Join(dir, "ck"), "--batch", "200ms",
		"--window", "1s", "--slide", "400ms", "--generate", "300", "--duration", "2s", "--http", "", "--save", prefix, "--sink", dsn)
	p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)

	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT batch_time_ms, row FROM sluice_results WHERE job = 'ipcount' AND kind = '' ORDER BY batch_time_ms, row_index`)
	require.NoError(t, err)
	defer rows.Close()
	got := map[int64][]string{}
	for rows.Next() {
		var ms int64
		var row string
		require.NoError(t, rows.Scan(&ms, &row))
		got[ms] = append(got[ms], row)
	}
	require.NoError(t, rows.Err())
	saved := exampletest.SavedRows(t, prefix, "")
	require.NotEmpty(t, saved)
	require.Equal(t, saved, got, "the PostgreSQL sink's rows, batch by batch")

	var partitions, stored int64
	require.NoError(t, db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(until_offset), 0) FROM sluice_progress WHERE job = 'ipcount' AND sink = 'results' AND topic = 'access-log'`).Scan(&partitions, &stored))
	require.Equal(t, int64(2), partitions, "a progress row per partition")
	require.Positive(t, stored)
}
