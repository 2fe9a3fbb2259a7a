package sqlsink

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// Bulk upserts many rows into a table at once, with the effect of an
// [Upsert] run row by row in their order: a key given twice ends with its
// last row's values, or, for [Additive] columns, with the sum of its rows'
// values added to the stored one. Make one with [NewBulk] and call
// [Bulk.Exec] from a [Write] or [Sink.Commit] function.
//
// On PostgreSQL, Exec copies the rows with COPY (pgx's CopyFrom) into a
// temporary table of the transaction's connection, then merges them into
// the table with one INSERT … SELECT … ON CONFLICT DO UPDATE, all in the
// sink's transaction, so that the rows and the batch's progress row still
// commit together. COPY needs the connection beneath the transaction:
// Exec finds it in the context a sink passes its write function (keep that
// context, or one derived from it); in any other transaction it fills the
// temporary table with multi-row INSERTs instead. On SQLite, Exec runs one
// prepared multi-row INSERT … ON CONFLICT DO UPDATE per chunk of rows.
type Bulk struct {
	table        string
	keys, values []string
	all          []string
	add          map[string]bool
	pg           bool
	tmp          string
	merge        string // PostgreSQL: from the temporary table into the table
	copies       atomic.Int64
}

// NewBulk builds the bulk upsert of table in db's SQL dialect, with the
// same keys, values and options as [NewUpsert]. The table must exist.
func NewBulk(db *sql.DB, table string, keys, values []string, opts ...UpsertOption) (*Bulk, error) {
	c, err := upsertSpec(table, keys, values, opts)
	if err != nil {
		return nil, err
	}
	b := &Bulk{table: table, keys: keys, values: values, all: append(append([]string(nil), keys...), values...),
		add: c.add, pg: dialectOf(db).dollar}
	if b.pg {
		b.tmp = "sluice_bulk_" + strings.ReplaceAll(table, ".", "_")
		b.merge = b.pgMerge()
	}
	return b, nil
}

// pgMerge is the statement that moves the rows of the temporary table
// into the table, merged by key as row-by-row upserts would leave them: the
// newest row's values, the sum of the additive ones'. The temporary table
// is emptied by the same statement, so that a second Exec in the
// transaction starts from nothing.
func (b *Bulk) pgMerge() string {
	keys := strings.Join(b.keys, ", ")
	additive := 0
	for _, v := range b.values {
		if b.add[v] {
			additive++
		}
	}
	sel := make([]string, 0, len(b.all))
	sel = append(sel, b.keys...)
	var from string
	switch {
	case additive > 0 && additive == len(b.values):
		// Only sums: a plain grouping, no order needed.
		for _, v := range b.values {
			sel = append(sel, "sum("+v+")")
		}
		from = " FROM staged GROUP BY " + keys
	case additive == 0:
		sel = append(sel, b.values...)
		from = " FROM staged ORDER BY " + keys + ", sluice_seq DESC"
		sel[0] = "DISTINCT ON (" + keys + ") " + sel[0]
	default:
		for _, v := range b.values {
			if b.add[v] {
				sel = append(sel, "sum("+v+") OVER (PARTITION BY "+keys+")")
			} else {
				sel = append(sel, v)
			}
		}
		from = " FROM staged ORDER BY " + keys + ", sluice_seq DESC"
		sel[0] = "DISTINCT ON (" + keys + ") " + sel[0]
	}
	return "WITH staged AS (DELETE FROM " + b.tmp + " RETURNING *) INSERT INTO " + b.table + " (" + strings.Join(b.all, ", ") + ") SELECT " +
		strings.Join(sel, ", ") + from + onConflict(b.table, b.keys, b.values, b.add)
}

// sqliteChunk is the most rows one SQLite statement carries, kept under
// SQLite's historical limit of 999 parameters.
func (b *Bulk) sqliteChunk() int { return max(1, 999/len(b.all)) }

// Exec upserts rows in tx: each row holds the keys' values then the
// values', as [Upsert.Exec] takes them. An error names the table; the
// transaction is then to be rolled back, as a sink does.
func (b *Bulk) Exec(ctx context.Context, tx *sql.Tx, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	for i, r := range rows {
		if len(r) != len(b.all) {
			return fmt.Errorf("sqlsink: the bulk upsert into %s got %d values for %d columns in row %d; pass the keys' values then the values'", b.table, len(r), len(b.all), i)
		}
	}
	if b.pg {
		return b.execPostgres(ctx, tx, rows)
	}
	return b.execSQLite(ctx, tx, rows)
}

func (b *Bulk) execSQLite(ctx context.Context, tx *sql.Tx, rows [][]any) error {
	chunk := b.sqliteChunk()
	var full *sql.Stmt
	args := make([]any, 0, chunk*len(b.all))
	for len(rows) > 0 {
		n := min(chunk, len(rows))
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		var err error
		if n == chunk {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, b.sqliteInsert(n)); err != nil {
					return fmt.Errorf("sqlsink: the bulk upsert into %s cannot prepare its statement: %w; check that the table exists with the key and value columns given to NewBulk, and a primary key or unique index on the keys", b.table, err)
				}
				defer full.Close()
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, b.sqliteInsert(n), args...)
		}
		if err != nil {
			return fmt.Errorf("sqlsink: the bulk upsert into %s failed for one of the rows %v … %v: %w", b.table, rows[0], rows[n-1], err)
		}
		rows = rows[n:]
	}
	return nil
}

// sqliteInsert is the upsert of n rows.
func (b *Bulk) sqliteInsert(n int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(b.all)), ", ") + ")"
	return "INSERT INTO " + b.table + " (" + strings.Join(b.all, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(one+", ", n), ", ") + onConflict(b.table, b.keys, b.values, b.add)
}

// txConnKey keys, in the context a sink gives its write function, the
// connection beneath the sink's transaction.
type txConnKey struct{}

type txConn struct {
	tx   *sql.Tx
	conn *sql.Conn
}

func (b *Bulk) execPostgres(ctx context.Context, tx *sql.Tx, rows [][]any) error {
	create := "CREATE TEMPORARY TABLE IF NOT EXISTS " + b.tmp + " ON COMMIT DELETE ROWS AS SELECT " +
		strings.Join(b.all, ", ") + ", 0::bigint AS sluice_seq FROM " + b.table + " WITH NO DATA"
	if _, err := tx.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("sqlsink: the bulk upsert into %s cannot create its temporary table: %w; check that the table exists with the columns %s", b.table, err, strings.Join(b.all, ", "))
	}
	cols := append(append([]string(nil), b.all...), "sluice_seq")
	copied := false
	if tc, ok := ctx.Value(txConnKey{}).(txConn); ok && tc.tx == tx {
		err := tc.conn.Raw(func(dc any) error {
			pc, ok := dc.(interface{ Conn() *pgx.Conn })
			if !ok {
				return nil
			}
			copied = true
			b.copies.Add(1)
			i := 0
			row := make([]any, len(cols))
			_, err := pc.Conn().CopyFrom(ctx, pgx.Identifier{b.tmp}, cols, pgx.CopyFromFunc(func() ([]any, error) {
				if i == len(rows) {
					return nil, nil
				}
				copy(row, rows[i])
				row[len(row)-1] = int64(i)
				i++
				return row, nil
			}))
			if err != nil {
				return fmt.Errorf("sqlsink: the bulk upsert into %s failed to copy its rows: %w", b.table, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if !copied {
		if err := b.insertTemp(ctx, tx, rows); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, b.merge); err != nil {
		return fmt.Errorf("sqlsink: the bulk upsert into %s failed to merge its %d rows: %w", b.table, len(rows), err)
	}
	return nil
}

// insertTemp fills the temporary table with multi-row INSERTs, where COPY
// has no connection to run on.
func (b *Bulk) insertTemp(ctx context.Context, tx *sql.Tx, rows [][]any) error {
	per := len(b.all) + 1
	chunk := max(1, 65535/per)
	for start := 0; start < len(rows); start += chunk {
		part := rows[start:min(start+chunk, len(rows))]
		var q strings.Builder
		q.WriteString("INSERT INTO " + b.tmp + " (" + strings.Join(b.all, ", ") + ", sluice_seq) VALUES ")
		args := make([]any, 0, len(part)*per)
		for i, r := range part {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteByte('(')
			for j := range per {
				if j > 0 {
					q.WriteString(", ")
				}
				q.WriteString("$" + strconv.Itoa(len(args)+j+1))
			}
			q.WriteByte(')')
			args = append(append(args, r...), int64(start+i))
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("sqlsink: the bulk upsert into %s failed to stage its rows: %w", b.table, err)
		}
	}
	return nil
}
