package sqlsink

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/metricstest"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/sluicehq/sluice/status"
)

// testSinkMetricsOnStatus runs a job reading the embedded broker into a
// WriteRows sink (one row per record, some records rejected), a Write
// sink whose last batch fails, and an output of its own committing
// through an opened Sink, and checks the sinks' counters on /metrics
// against the rows the database holds.
func testSinkMetricsOnStatus(t *testing.T, db *sql.DB) {
	ctx := bounded(t)
	b := startBroker(t)
	for _, table := range []string{"seen", "opened"} {
		if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (part BIGINT NOT NULL, off BIGINT NOT NULL, word TEXT NOT NULL, PRIMARY KEY (part, off))`); err != nil {
			t.Fatal(err)
		}
	}
	bulk, err := NewBulk(db, "seen", []string{"part", "off"}, []string{"word"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithJobName("metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in, err := kafkasource.NewDirectStream(c, []string{"words"}, kafkasource.WithBrokers(b.e.Addrs()...), kafkasource.WithResetPolicy(kafkasource.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := WriteRows(ctx, in, Config{DB: db, Sink: "seen", DeadLetterTable: "seen_dead"}, bulk, func(r kafkasource.Record) ([]any, error) {
		if strings.HasSuffix(string(r.Value), "-2") {
			return nil, errors.New("words ending in 2 are refused")
		}
		return []any{r.Partition, r.Offset, string(r.Value)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := 0
	failing, err := Write(ctx, in, Config{DB: db, Sink: "failing"}, func(context.Context, *sql.Tx, dstream.Batch[kafkasource.Record]) error {
		if batch++; batch == 4 {
			return errors.New("the fourth batch is refused")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := Open(ctx, db, "metrics", "opened")
	if err != nil {
		t.Fatal(err)
	}
	ins := dialectOf(db).rebind(`INSERT INTO opened (part, off, word) VALUES (?, ?, ?)`)
	write := func(b dstream.Batch[kafkasource.Record]) func(context.Context, *sql.Tx) (int, error) {
		return func(ctx context.Context, tx *sql.Tx) (int, error) {
			for r := range b.All() {
				if _, err := tx.ExecContext(ctx, ins, r.Partition, r.Offset, string(r.Value)); err != nil {
					return 0, err
				}
			}
			return b.Len(), nil
		}
	}
	var last dstream.Batch[kafkasource.Record]
	var lastRanges []kafkasource.OffsetRange
	dstream.ForEachBatchWith(in, dstream.OutputOptions{Kind: "sqlSink", Metrics: opened.Metrics}, func(ctx context.Context, j *engine.Job, b dstream.Batch[kafkasource.Record]) error {
		last, lastRanges = b, kafkasource.OffsetRangesOf(j, in)
		_, err := opened.Commit(ctx, b.Time, lastRanges, write(b))
		return err
	})
	h, err := status.New(c)
	if err != nil {
		t.Fatal(err)
	}
	b.produce(t, 5)
	if err := c.RunBatches(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b.produce(t, 4)
	if err := c.RunBatches(ctx, 2); err != nil { // the second reads nothing
		t.Fatal(err)
	}
	b.produce(t, 3)
	if err := c.RunBatches(ctx, 1); err == nil || !strings.Contains(err.Error(), "the fourth batch is refused") {
		t.Fatalf("the fourth batch ended with %v; want the failing sink's error", err)
	}

	count := func(table string) float64 {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return float64(n)
	}
	fams := metricstest.Scrape(t, h)
	get := func(name, sink string) float64 {
		return metricstest.Value(t, fams, name, map[string]string{"sink": sink, "job_name": "metrics"})
	}
	// 2 partitions × (5 + 4 + 3) records, one of each partition's batch
	// ending in -2.
	if got := count("seen"); got != 18 || get("sluice_sink_records_total", "seen") != got {
		t.Fatalf("seen holds %v rows, sink_records_total says %v; want 18 both", got, get("sluice_sink_records_total", "seen"))
	}
	if got := count("seen_dead"); got != 6 || get("sluice_sink_dead_letters_total", "seen") != got {
		t.Fatalf("seen_dead holds %v rows, sink_dead_letters_total says %v; want 6 both", got, get("sluice_sink_dead_letters_total", "seen"))
	}
	for name, want := range map[string]float64{
		"sluice_sink_batches_total": 4, "sluice_sink_failures_total": 0, "sluice_sink_skipped_batches_total": 0, "sluice_sink_write_seconds": 4,
	} {
		if got := get(name, "seen"); got != want {
			t.Errorf("%s{sink=seen} = %v; want %v", name, got, want)
		}
	}
	// The failing sink committed the three batches before the fourth, of
	// 0 + 2×5 + 2×4 records.
	for name, want := range map[string]float64{
		"sluice_sink_records_total": 18, "sluice_sink_batches_total": 3, "sluice_sink_failures_total": 1, "sluice_sink_write_seconds": 4,
	} {
		if got := get(name, "failing"); got != want {
			t.Errorf("%s{sink=failing} = %v; want %v", name, got, want)
		}
	}
	// The output committing through the opened sink comes after the failing
	// sink, so it ran the first three batches, of 2×5 + 2×4 + 0 records;
	// the third committed again is skipped.
	if wrote, err := opened.Commit(ctx, last.Time, lastRanges, write(last)); err != nil || wrote {
		t.Fatalf("committing the last batch again = %v, %v; want it skipped", wrote, err)
	}
	fams = metricstest.Scrape(t, h)
	if got := count("opened"); got != 18 || get("sluice_sink_records_total", "opened") != got {
		t.Fatalf("opened holds %v rows, sink_records_total says %v; want 18 both", got, get("sluice_sink_records_total", "opened"))
	}
	for name, want := range map[string]float64{
		"sluice_sink_batches_total": 3, "sluice_sink_failures_total": 0, "sluice_sink_skipped_batches_total": 1, "sluice_sink_write_seconds": 4,
	} {
		if got := get(name, "opened"); got != want {
			t.Errorf("%s{sink=opened} = %v; want %v", name, got, want)
		}
	}
	if st := rows.Stats(); st.Records != 18 || st.DeadLetters != 6 || st.Batches != 4 {
		t.Errorf("Stats = %+v; want 18 records, 6 dead letters, 4 batches", st)
	}
	if st := failing.Stats(); st.Failures != 1 {
		t.Errorf("Stats of the failing sink = %+v; want 1 failure", st)
	}
	if op := metricstest.Sample(t, fams, "sluice_sink_records_total", map[string]string{"sink": "seen", "operator": "sqlSink-1"}); op == nil {
		t.Error("sink_records_total of the first SQL sink is not labelled operator=sqlSink-1")
	}
}

func TestSQLiteSinkMetricsOnStatus(t *testing.T)   { testSinkMetricsOnStatus(t, openSQLite(t)) }
func TestPostgresSinkMetricsOnStatus(t *testing.T) { testSinkMetricsOnStatus(t, openPostgres(t)) }
