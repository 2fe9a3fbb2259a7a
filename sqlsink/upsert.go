package sqlsink

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
)

// Upsert inserts rows into a table, updating the row already there when
// one has the same keys: INSERT … ON CONFLICT (keys) DO UPDATE, which both
// PostgreSQL and SQLite understand. Make one with [NewUpsert] and call
// [Upsert.Exec] from a [Write] function.
type Upsert struct {
	table string
	n     int
	query string

	mu     sync.Mutex
	tx     *sql.Tx   // the transaction of the last Exec
	txStmt *sql.Stmt // the query prepared in tx
}

// UpsertOption changes what [NewUpsert] builds.
type UpsertOption func(*upsertConfig)

type upsertConfig struct{ add map[string]bool }

// Additive makes the named value columns add the inserted value to the
// stored one (count = count + excluded.count) instead of replacing it, for
// counts written batch by batch.
func Additive(cols ...string) UpsertOption {
	return func(c *upsertConfig) {
		for _, col := range cols {
			c.add[col] = true
		}
	}
}

// NewUpsert builds the upsert of table in db's SQL dialect: keys are the
// columns of the table's primary key or of a unique index, values the
// columns it sets. [Upsert.Exec] takes the keys' values then the values'.
func NewUpsert(db *sql.DB, table string, keys, values []string, opts ...UpsertOption) (*Upsert, error) {
	c, err := upsertSpec(table, keys, values, opts)
	if err != nil {
		return nil, err
	}
	d := dialectOf(db)
	all := append(append([]string(nil), keys...), values...)
	phs := make([]string, len(all))
	for i := range all {
		phs[i] = d.ph(i + 1)
	}
	q := "INSERT INTO " + table + " (" + strings.Join(all, ", ") + ") VALUES (" + strings.Join(phs, ", ") + ")" +
		onConflict(table, keys, values, c.add)
	return &Upsert{table: table, n: len(all), query: q}, nil
}

// upsertSpec validates an upsert's table and columns and applies opts.
func upsertSpec(table string, keys, values []string, opts []UpsertOption) (upsertConfig, error) {
	c := upsertConfig{add: make(map[string]bool)}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case !ident(table):
		return c, fmt.Errorf("sqlsink: the upsert table name %q is not a plain SQL identifier; use letters, digits, _ and . only", table)
	case len(keys) == 0:
		return c, fmt.Errorf("sqlsink: the upsert into %s has no key columns; name the columns of its primary key or a unique index", table)
	}
	valueSet := make(map[string]bool, len(values))
	for _, col := range append(append([]string(nil), keys...), values...) {
		if !ident(col) || strings.Contains(col, ".") {
			return c, fmt.Errorf("sqlsink: the upsert into %s names the column %q, which is not a plain SQL identifier; use letters, digits and _ only", table, col)
		}
	}
	for _, v := range values {
		valueSet[v] = true
	}
	for col := range c.add {
		if !valueSet[col] {
			return c, fmt.Errorf("sqlsink: the upsert into %s makes %q additive but it is not one of its value columns; add it to the values", table, col)
		}
	}
	return c, nil
}

// onConflict is the ON CONFLICT clause of an upsert into table.
func onConflict(table string, keys, values []string, add map[string]bool) string {
	q := " ON CONFLICT (" + strings.Join(keys, ", ") + ") DO "
	if len(values) == 0 {
		return q + "NOTHING"
	}
	sets := make([]string, len(values))
	for i, v := range values {
		if add[v] {
			sets[i] = v + " = " + table + "." + v + " + excluded." + v
		} else {
			sets[i] = v + " = excluded." + v
		}
	}
	return q + "UPDATE SET " + strings.Join(sets, ", ")
}

// SQL returns the statement the upsert runs.
func (u *Upsert) SQL() string { return u.query }

// Exec upserts one row in tx: args are the keys' values then the values'.
// The statement is prepared once a transaction and reused by every Exec
// in it, so that the database parses it once, not once a row.
func (u *Upsert) Exec(ctx context.Context, tx *sql.Tx, args ...any) error {
	if len(args) != u.n {
		return fmt.Errorf("sqlsink: the upsert into %s got %d values for %d columns; pass the keys' values then the values'", u.table, len(args), u.n)
	}
	st, err := u.stmtIn(ctx, tx)
	if err != nil {
		return fmt.Errorf("sqlsink: the upsert into %s cannot prepare its statement: %w; check that the table exists with the key and value columns given to NewUpsert, and a primary key or unique index on the keys", u.table, err)
	}
	if _, err := st.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("sqlsink: the upsert into %s failed for the row %v: %w", u.table, args, err)
	}
	return nil
}

// stmtIn returns the upsert's statement in tx.
func (u *Upsert) stmtIn(ctx context.Context, tx *sql.Tx) (*sql.Stmt, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tx == tx {
		return u.txStmt, nil
	}
	// Prepared in the transaction, on its connection: a database with one
	// connection (SQLite's writer) has no other to prepare it on. The
	// statement closes with the transaction.
	st, err := tx.PrepareContext(ctx, u.query)
	if err != nil {
		return nil, err
	}
	u.tx, u.txStmt = tx, st
	return st, nil
}

func ident(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '.':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
