package exampleutil

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/metricstest"
	"github.com/sluicehq/sluice/kafkasource"
	"github.com/sluicehq/sluice/sqlsink"
	"github.com/sluicehq/sluice/status"
)

// TestSQLiteSinkWritesBatchOnce writes two batches to a sqlite: sink, then
// re-writes the second as a restarted job would: its rows land once.
func TestSQLiteSinkWritesBatchOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("ex"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	path := filepath.Join(t.TempDir(), "out.db")
	value := "sqlite:" + path
	if _, err := sinkScheme(value); err != nil {
		t.Fatal(err)
	}
	j := &Job{Context: c}
	t1, t2 := time.UnixMilli(2000), time.UnixMilli(3000)
	r1 := []kafkasource.OffsetRange{{Topic: "in", Partition: 0, From: 0, Until: 5}}
	r2 := []kafkasource.OffsetRange{{Topic: "in", Partition: 0, From: 5, Until: 8}}
	for i, w := range []struct {
		t      time.Time
		ranges []kafkasource.OffsetRange
		rows   []json.RawMessage
	}{{t1, r1, []json.RawMessage{[]byte(`{"K":"a"}`), []byte(`{"K":"b"}`)}}, {t2, r2, []json.RawMessage{[]byte(`{"K":"c"}`)}}, {t2, r2, []json.RawMessage{[]byte(`{"K":"dup"}`)}}} {
		s, err := openSink(ctx, value, j, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, "", w.t, w.ranges, w.rows); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sqlsink.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT row FROM sluice_results WHERE job = 'ex' ORDER BY batch_time_ms, row_index`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if want := `[{"K":"a"} {"K":"b"} {"K":"c"}]`; fmtRows(got) != want {
		t.Fatalf("rows = %v; want %s", got, want)
	}
	off, err := sqlsink.StoredOffsets(ctx, db, "ex", "results")
	if err != nil || off[kafkasource.TopicPartition{Topic: "in", Partition: 0}] != 8 || len(off) != 1 {
		t.Fatalf("stored offsets = %v, %v; want in[0] at 8, the end of the second batch's range", off, err)
	}
	if _, err := sinkScheme("sqlite:"); err == nil {
		t.Fatal("--sink sqlite: without a path was accepted")
	}
}

// TestSQLiteSinkMetricsOnStatus runs two outputs registered with
// ForEachBatch, of two kinds, into a sqlite: sink and checks the rows each
// kind's sink reports on /metrics against the rows sluice_results holds.
func TestSQLiteSinkMetricsOnStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("ex"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	path := filepath.Join(t.TempDir(), "out.db")
	j := &Job{Context: c}
	if j.sink, err = openSink(ctx, "sqlite:"+path, j, nil); err != nil {
		t.Fatal(err)
	}
	defer j.sink.Close()
	words := dstream.Queue(c, [][]string{{"a", "b", "c"}, {"d"}, {}, {"e", "f"}})
	ForEachBatch(j, "", words, func(ctx context.Context, _ *engine.Job, b dstream.Batch[string]) error {
		return Save(ctx, j, "", b.Time, Collect(b))
	})
	ForEachBatch(j, "firsts", words, func(ctx context.Context, _ *engine.Job, b dstream.Batch[string]) error {
		return Save(ctx, j, "firsts", b.Time, Collect(b)[:min(1, b.Len())])
	})
	h, err := status.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RunBatches(ctx, 4); err != nil {
		t.Fatal(err)
	}
	db, err := sqlsink.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fams := metricstest.Scrape(t, h)
	for kind, sink := range map[string]string{"": "results", "firsts": "results-firsts"} {
		var rows float64
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sluice_results WHERE job = 'ex' AND kind = ?`, kind).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{"sink": sink, "job_name": "ex"}
		if got := metricstest.Value(t, fams, "sluice_sink_records_total", labels); got != rows || rows == 0 {
			t.Errorf("sink %s: sluice_sink_records_total = %v; sluice_results holds %v rows of kind %q", sink, got, rows, kind)
		}
		for name, want := range map[string]float64{"sluice_sink_batches_total": 4, "sluice_sink_failures_total": 0, "sluice_sink_write_seconds": 4} {
			if got := metricstest.Value(t, fams, name, labels); got != want {
				t.Errorf("sink %s: %s = %v; want %v", sink, name, got, want)
			}
		}
	}
}

func fmtRows(rs []string) string {
	out := "["
	for i, r := range rs {
		if i > 0 {
			out += " "
		}
		out += r
	}
	return out + "]"
}
