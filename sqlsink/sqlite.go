package sqlsink

import (
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// OpenSQLite opens (creating it if needed) the SQLite database file at
// path for a sink: WAL journal, a 10 s busy timeout, transactions that take
// the write lock when they begin, and one connection, so that the job is
// the database's one writer while readers read beside it.
func OpenSQLite(path string) (*sql.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlsink: OpenSQLite got an empty path; pass the path of the database file")
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlsink: cannot open the SQLite database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlsink: cannot open the SQLite database %s: %w; check that its directory exists and is writable", path, err)
	}
	return db, nil
}
