package sqlsink

import (
	"database/sql"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/sluicehq/sluice/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// openPostgres opens the test server's database with a fresh schema of the
// test's own, so that tests do not see each other's tables.
func openPostgres(t *testing.T) *sql.DB {
	t.Helper()
	dsn := pgtest.DSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
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
