package sqlsink

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

type bulkRow struct {
	n     int64
	label string
}

// readBulkTable returns table's rows by "k1/k2".
func readBulkTable(t *testing.T, db *sql.DB, table string) map[string]bulkRow {
	t.Helper()
	rows, err := db.QueryContext(bounded(t), `SELECT k1, k2, n, label FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make(map[string]bulkRow)
	for rows.Next() {
		var k1, label string
		var k2, n int64
		if err := rows.Scan(&k1, &k2, &n, &label); err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprintf("%s/%d", k1, k2)] = bulkRow{n, label}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// testBulkEqualsRowByRow writes the same batches of random rows, keys
// repeated within and across batches, into one table with Upsert row by
// row and into another with Bulk through a sink: the tables end equal, and
// equal to the sums and last labels computed here.
func testBulkEqualsRowByRow(t *testing.T, db *sql.DB, wantCopies bool) {
	ctx := bounded(t)
	for _, table := range []string{"by_row", "by_bulk"} {
		if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (k1 TEXT NOT NULL, k2 INTEGER NOT NULL, n BIGINT NOT NULL, label TEXT NOT NULL, extra TEXT DEFAULT 'x', PRIMARY KEY (k1, k2))`); err != nil {
			t.Fatal(err)
		}
	}
	up, err := NewUpsert(db, "by_row", []string{"k1", "k2"}, []string{"n", "label"}, Additive("n"))
	if err != nil {
		t.Fatal(err)
	}
	bulk, err := NewBulk(db, "by_bulk", []string{"k1", "k2"}, []string{"n", "label"}, Additive("n"))
	if err != nil {
		t.Fatal(err)
	}
	rowSink, err := Open(ctx, db, "j", "by-row")
	if err != nil {
		t.Fatal(err)
	}
	bulkSink, err := Open(ctx, db, "j", "by-bulk")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	want := make(map[string]bulkRow)
	for batch, size := range []int{1, 1200, 300, 3} {
		rows := make([][]any, size)
		for i := range rows {
			k1, k2 := fmt.Sprintf("w%d", rng.IntN(40)), rng.IntN(30)
			n, label := rng.Int64N(1000)-100, fmt.Sprintf("b%d-%d", batch, i)
			rows[i] = []any{k1, k2, n, label}
			k := fmt.Sprintf("%s/%d", k1, k2)
			want[k] = bulkRow{want[k].n + n, label}
		}
		at := time.Unix(1000+int64(batch), 0)
		if _, err := rowSink.Commit(ctx, at, nil, func(ctx context.Context, tx *sql.Tx) (int, error) {
			for _, r := range rows {
				if err := up.Exec(ctx, tx, r...); err != nil {
					return 0, err
				}
			}
			return len(rows), nil
		}); err != nil {
			t.Fatal(err)
		}
		if wrote, err := bulkSink.Commit(ctx, at, nil, func(ctx context.Context, tx *sql.Tx) (int, error) { return len(rows), bulk.Exec(ctx, tx, rows) }); err != nil || !wrote {
			t.Fatalf("batch %d: bulk commit = %v, %v", batch, wrote, err)
		}
		byRow, byBulk := readBulkTable(t, db, "by_row"), readBulkTable(t, db, "by_bulk")
		if !maps.Equal(byRow, want) {
			t.Fatalf("batch %d: the row-by-row table differs from the truth", batch)
		}
		if !maps.Equal(byBulk, byRow) {
			t.Fatalf("batch %d: the bulk table holds %d rows, the row-by-row one %d, and they differ", batch, len(byBulk), len(byRow))
		}
	}
	if got := bulk.copies.Load(); (got > 0) != wantCopies {
		t.Fatalf("COPY ran %d times; want it to run: %v", got, wantCopies)
	}
	var extra string
	if err := db.QueryRowContext(ctx, `SELECT extra FROM by_bulk LIMIT 1`).Scan(&extra); err != nil || extra != "x" {
		t.Fatalf("a column the bulk upsert does not set = %q, %v; want its default", extra, err)
	}

	// Outside a sink's transaction the rows go in by INSERT, to the same effect.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	copies := bulk.copies.Load()
	rows := [][]any{{"w1", 1, int64(5), "plain"}, {"w1", 1, int64(6), "plain2"}}
	if err := bulk.Exec(ctx, tx, rows); err != nil {
		t.Fatal(err)
	}
	if err := bulk.Exec(ctx, tx, [][]any{{"w1", 1, int64(1)}}); err == nil || !strings.Contains(err.Error(), "by_bulk") {
		t.Fatalf("a row short of a column = %v; want a sentence naming the table", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want["w1/1"] = bulkRow{want["w1/1"].n + 11, "plain2"}
	if got := readBulkTable(t, db, "by_bulk"); !maps.Equal(got, want) {
		t.Fatalf("after a bulk upsert outside a sink: w1/1 = %v; want %v", got["w1/1"], want["w1/1"])
	}
	if bulk.copies.Load() != copies {
		t.Fatal("COPY ran outside a sink's transaction")
	}
}

func TestSQLiteBulkEqualsRowByRow(t *testing.T) { testBulkEqualsRowByRow(t, openSQLite(t), false) }

func TestPostgresBulkEqualsRowByRow(t *testing.T) {
	testBulkEqualsRowByRow(t, openPostgres(t), true)
}

func TestNewBulkRefusesBadColumns(t *testing.T) {
	db := openSQLite(t)
	if _, err := NewBulk(db, "t", nil, []string{"v"}); err == nil || !strings.Contains(err.Error(), "key columns") {
		t.Fatalf("NewBulk without keys = %v", err)
	}
	if _, err := NewBulk(db, "t", []string{"k"}, []string{"v; DROP TABLE t"}); err == nil {
		t.Fatal("NewBulk accepted a column that is not an identifier")
	}
}

// testBulkForms checks each form of the bulk merge (only additive values,
// no additive value, no value at all) against row-by-row upserts, with keys
// repeated within a call and two calls in one transaction.
func testBulkForms(t *testing.T, db *sql.DB) {
	ctx := bounded(t)
	for i, c := range []struct {
		name   string
		values []string
		opts   []UpsertOption
	}{
		{"sums", []string{"n"}, []UpsertOption{Additive("n")}},
		{"last", []string{"n", "label"}, nil},
		{"keys", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			tables := []string{fmt.Sprintf("form%d_row", i), fmt.Sprintf("form%d_bulk", i)}
			for _, table := range tables {
				if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (k TEXT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, label TEXT NOT NULL DEFAULT '')`); err != nil {
					t.Fatal(err)
				}
			}
			up, err := NewUpsert(db, tables[0], []string{"k"}, c.values, c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			bulk, err := NewBulk(db, tables[1], []string{"k"}, c.values, c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			sink, err := Open(ctx, db, "j", "forms-"+c.name)
			if err != nil {
				t.Fatal(err)
			}
			row := func(i int) []any {
				r := []any{fmt.Sprintf("k%d", i%7)}
				for _, v := range c.values {
					if v == "n" {
						r = append(r, int64(i))
					} else {
						r = append(r, fmt.Sprintf("l%d", i))
					}
				}
				return r
			}
			for batch := range 2 {
				var calls [2][][]any
				for i := range 30 {
					calls[i%2] = append(calls[i%2], row(batch*30+i))
				}
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, rows := range calls {
					for _, r := range rows {
						if err := up.Exec(ctx, tx, r...); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				if _, err := sink.Commit(ctx, time.Unix(int64(batch+1), 0), nil, func(ctx context.Context, tx *sql.Tx) (int, error) {
					for _, rows := range calls {
						if err := bulk.Exec(ctx, tx, rows); err != nil {
							return 0, err
						}
					}
					return 30, nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			read := func(table string) string {
				rows, err := db.QueryContext(ctx, `SELECT k, n, label FROM `+table+` ORDER BY k`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var b strings.Builder
				for rows.Next() {
					var k, label string
					var n int64
					if err := rows.Scan(&k, &n, &label); err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&b, "%s=%d,%s ", k, n, label)
				}
				return b.String()
			}
			if byRow, byBulk := read(tables[0]), read(tables[1]); byRow != byBulk || byRow == "" {
				t.Fatalf("row by row: %s\nbulk:       %s", byRow, byBulk)
			}
		})
	}
}

func TestSQLiteBulkForms(t *testing.T)   { testBulkForms(t, openSQLite(t)) }
func TestPostgresBulkForms(t *testing.T) { testBulkForms(t, openPostgres(t)) }
