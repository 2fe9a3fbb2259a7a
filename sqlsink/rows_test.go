package sqlsink

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// testWriteRowsDeadLetters writes a stream whose encode rejects negative
// numbers and returns a short row for 7: the other elements land in the
// table, the rejected ones in the dead-letter table with their reasons, no
// batch fails, and a sink without a dead-letter table only counts them.
func testWriteRowsDeadLetters(t *testing.T, db *sql.DB) {
	ctx := bounded(t)
	if _, err := db.ExecContext(ctx, `CREATE TABLE squares (n BIGINT PRIMARY KEY, sq BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	bulk, err := NewBulk(db, "squares", []string{"n"}, []string{"sq"})
	if err != nil {
		t.Fatal(err)
	}
	encode := func(n int64) ([]any, error) {
		switch {
		case n < 0:
			return nil, errors.New("negative")
		case n == 7:
			return []any{n}, nil
		}
		return []any{n, n * n}, nil
	}
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("sq"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := dstream.Queue(c, [][]int64{{1, -2, 3}, {-4, 7}, {5}})
	sink, err := WriteRows(ctx, in, Config{DB: db, Sink: "squares", DeadLetterTable: "squares_dead"}, bulk, encode)
	if err != nil {
		t.Fatal(err)
	}
	counted, err := WriteRows(ctx, in, Config{DB: db, Sink: "counted"}, bulk, encode)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RunBatches(ctx, 3); err != nil {
		t.Fatalf("a batch with rejected elements failed: %v", err)
	}
	got := map[string]int64{}
	rows, err := db.QueryContext(ctx, `SELECT n, sq FROM squares`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, sq int64
		if err := rows.Scan(&n, &sq); err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprint(n)] = sq
	}
	rows.Close()
	if fmt.Sprint(got) != "map[1:1 3:9 5:25]" {
		t.Fatalf("squares = %v; want 1, 3 and 5 only", got)
	}
	var dead []string
	rows, err = db.QueryContext(ctx, `SELECT job, sink, batch_time_ms, element, error FROM squares_dead`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var job, sk, el, why string
		var ms int64
		if err := rows.Scan(&job, &sk, &ms, &el, &why); err != nil {
			t.Fatal(err)
		}
		dead = append(dead, fmt.Sprintf("%s/%s/%d/%s: %s", job, sk, ms, el, why))
	}
	rows.Close()
	slices.Sort(dead)
	want := []string{"sq/squares/1001000/-2: negative", "sq/squares/1002000/-4: negative", "sq/squares/1002000/7: encode returned 1 values for the 2 columns n, sq"}
	if !slices.Equal(dead, want) {
		t.Fatalf("dead letters = %q; want %q", dead, want)
	}
	if st := sink.Stats(); st.Records != 3 || st.DeadLetters != 3 || st.Batches != 3 || st.Failures != 0 {
		t.Fatalf("Stats = %+v; want 3 rows, 3 dead letters, 3 batches, no failure", st)
	}
	if st := counted.Stats(); st.Records != 3 || st.DeadLetters != 3 || st.Failures != 0 {
		t.Fatalf("Stats without a dead-letter table = %+v; want the rejects counted", st)
	}
	if m := sink.Metrics(); !slices.ContainsFunc(m, func(x engine.Metric) bool { return x.Name == "sink_dead_letters_total" && x.Value == 3 }) {
		t.Fatalf("Metrics = %+v; want sink_dead_letters_total 3", m)
	}
	if _, err := WriteRows(ctx, in, Config{DB: db, Sink: "x", DeadLetterTable: "squares"}, bulk, encode); err == nil || !strings.Contains(err.Error(), "dead-letter table") {
		t.Fatalf("WriteRows with the table as its own dead-letter table = %v", err)
	}
}

func TestSQLiteWriteRowsDeadLetters(t *testing.T) { testWriteRowsDeadLetters(t, openSQLite(t)) }

func TestPostgresWriteRowsDeadLetters(t *testing.T) { testWriteRowsDeadLetters(t, openPostgres(t)) }
