package sqlsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// broker is an embedded Kafka broker with a two-partition topic "words"
// and a producer that sends each word to the partition it names.
type broker struct {
	e  *kafkasource.Embedded
	cl *kgo.Client
	// truth counts every word produced, the ground truth of the output.
	truth map[string]int64
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	e, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("words", 2))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); e.Close() })
	return &broker{e: e, cl: cl, truth: make(map[string]int64)}
}

// produce writes n records to each partition: word p<partition>-<i mod 3>.
func (b *broker) produce(t *testing.T, n int) {
	t.Helper()
	var recs []*kgo.Record
	for p := range int32(2) {
		for i := range n {
			w := fmt.Sprintf("p%d-%d", p, i%3)
			b.truth[w]++
			recs = append(recs, &kgo.Record{Topic: "words", Partition: p, Value: []byte(w)})
		}
	}
	if err := b.cl.ProduceSync(bounded(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// job counts words per batch and adds the counts to the table counts
// through a sink, then runs an output that fails while failAfter is set:
// the sink's transaction is committed but the checkpoint is not.
type job struct {
	c         *engine.Context
	sink      *Sink
	failAfter bool
	ranges    [][]kafkasource.OffsetRange
}

func newJob(t *testing.T, b *broker, db *sql.DB, start time.Time, opts []engine.Option, srcOpts ...kafkasource.Option) *job {
	t.Helper()
	c, err := engine.NewContext(time.Second, append([]engine.Option{engine.WithManualClock(start), engine.WithJobName("wc")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	src, err := kafkasource.NewDirectStream(c, []string{"words"}, append([]kafkasource.Option{kafkasource.WithBrokers(b.e.Addrs()...),
		kafkasource.WithResetPolicy(kafkasource.Earliest)}, srcOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	counts := dstream.CountByValue(dstream.Map(src, func(r kafkasource.Record) string { return string(r.Value) }))
	ctx := bounded(t)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS counts (word TEXT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	up, err := NewUpsert(db, "counts", []string{"word"}, []string{"n"}, Additive("n"))
	if err != nil {
		t.Fatal(err)
	}
	j := &job{c: c}
	j.sink, err = Write(ctx, counts, Config{DB: db, Sink: "counts"}, func(ctx context.Context, tx *sql.Tx, b dstream.Batch[dstream.KV[string, int64]]) error {
		for kv := range b.All() {
			if err := up.Exec(ctx, tx, kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dstream.ForEachBatchJob(counts, func(_ context.Context, jb *engine.Job, _ dstream.Batch[dstream.KV[string, int64]]) error {
		j.ranges = append(j.ranges, kafkasource.OffsetRangesOf(jb, counts))
		if j.failAfter {
			return errors.New("output after the sink failed")
		}
		return nil
	})
	return j
}

func readCounts(t *testing.T, db *sql.DB) map[string]int64 {
	t.Helper()
	rows, err := db.QueryContext(bounded(t), `SELECT word, n FROM counts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make(map[string]int64)
	for rows.Next() {
		var w string
		var n int64
		if err := rows.Scan(&w, &n); err != nil {
			t.Fatal(err)
		}
		got[w] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func wantCounts(t *testing.T, db *sql.DB, want map[string]int64, when string) {
	t.Helper()
	if got := readCounts(t, db); !maps.Equal(got, want) {
		t.Fatalf("%s: counts = %v; want %v", when, got, want)
	}
}

func openSQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := OpenSQLite(filepath.Join(t.TempDir(), "out.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testExactlyOnceAfterRestart commits a batch in the database, fails it
// after the sink so the checkpoint does not commit, restarts the job on the
// same checkpoint and checks the re-run batch is skipped and every word is
// counted once.
func testExactlyOnceAfterRestart(t *testing.T, db *sql.DB) {
	b := startBroker(t)
	dir := t.TempDir()
	ctx := bounded(t)
	start := time.Unix(1000, 0)
	j := newJob(t, b, db, start, []engine.Option{engine.WithCheckpoint(dir)})
	b.produce(t, 5)
	if err := j.c.RunBatches(ctx, 1); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, db, b.truth, "after the first batch")
	b.produce(t, 4)
	j.failAfter = true
	if err := j.c.RunBatches(ctx, 1); err == nil {
		t.Fatal("the batch whose later output fails succeeded")
	}
	wantCounts(t, db, b.truth, "after the sink committed the failed batch")
	planned := j.ranges[1]
	if err := j.c.Close(); err != nil {
		t.Fatal(err)
	}

	b.produce(t, 2) // a fresh plan would read these too
	j = newJob(t, b, db, start, []engine.Option{engine.WithCheckpoint(dir)})
	if err := j.c.RunBatches(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(j.ranges[0]) != fmt.Sprint(planned) {
		t.Fatalf("the re-run read %v; want the planned %v", j.ranges[0], planned)
	}
	if st := j.sink.Stats(); st.Skipped != 1 || st.Batches != 0 {
		t.Fatalf("Stats after the re-run = %+v; want the batch skipped", st)
	}
	if err := j.c.RunBatches(ctx, 1); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, db, b.truth, "after the restart")
	if st := j.sink.Stats(); st.Batches != 1 || st.Records != 4 || st.Failures != 0 {
		t.Fatalf("Stats = %+v; want 1 batch of 4 distinct words", st)
	}
	off, err := StoredOffsets(ctx, db, "wc", "counts")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[kafkasource.TopicPartition]int64{{Topic: "words", Partition: 0}: 11, {Topic: "words", Partition: 1}: 11}; !maps.Equal(off, want) {
		t.Fatalf("StoredOffsets = %v; want %v", off, want)
	}
	m := j.sink.Metrics()
	if m[0].Name != "sink_records_total" || m[0].Value != 4 || m[2].Name != "sink_failures_total" || m[2].Value != 0 || m[0].Labels["sink"] != "counts" {
		t.Fatalf("Metrics = %+v", m)
	}
}

// testStoredOffsetsRestart runs a job without a checkpoint, then a second
// one started from the offsets stored in the database, with its clock
// starting again where the first one's did: every word is counted once.
func testStoredOffsetsRestart(t *testing.T, db *sql.DB) {
	b := startBroker(t)
	ctx := bounded(t)
	start := time.Unix(1000, 0)
	j := newJob(t, b, db, start, nil)
	b.produce(t, 5)
	if err := j.c.RunBatches(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := j.c.Close(); err != nil {
		t.Fatal(err)
	}
	b.produce(t, 3)
	off, err := StoredOffsets(ctx, db, "wc", "counts")
	if err != nil {
		t.Fatal(err)
	}
	j = newJob(t, b, db, start, nil, kafkasource.WithStartOffsets(off))
	if err := j.c.RunBatches(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if r := j.ranges[0]; len(r) != 2 || r[0].From != 5 || r[1].From != 5 {
		t.Fatalf("the restarted job read %v first; want both partitions from 5", r)
	}
	wantCounts(t, db, b.truth, "after the restart from stored offsets")
	if st := j.sink.Stats(); st.Skipped != 0 || st.Batches != 2 {
		t.Fatalf("Stats = %+v; want both batches written though their times are no newer than the first job's", st)
	}
}

func TestSQLiteExactlyOnceAfterRestart(t *testing.T) { testExactlyOnceAfterRestart(t, openSQLite(t)) }

func TestSQLiteStoredOffsetsRestart(t *testing.T) { testStoredOffsetsRestart(t, openSQLite(t)) }

// TestSkipsRecordedBatch commits batches through the sink directly: a batch
// no newer than the last and reading nothing new is skipped, one reading
// new offsets is written even with an older time.
func TestSkipsRecordedBatch(t *testing.T) {
	db := openSQLite(t)
	ctx := bounded(t)
	if err := EnsureProgressTable(ctx, db); err != nil {
		t.Fatal(err)
	}
	s := &Sink{name: "s", job: "j", db: db, d: dialectOf(db)}
	calls := 0
	write := func(context.Context, *sql.Tx) error { calls++; return nil }
	r := func(from, until int64) []kafkasource.OffsetRange {
		return []kafkasource.OffsetRange{{Topic: "t", Partition: 0, From: from, Until: until}}
	}
	steps := []struct {
		ms          int64
		from, until int64
		wrote       bool
	}{
		{2000, 0, 10, true},
		{2000, 0, 10, false}, // the re-run of a committed batch
		{1000, 5, 10, false}, // older, nothing new
		{1000, 10, 10, false},
		{1000, 10, 12, true}, // older time, new offsets: a job restarted without checkpoint
		{3000, 12, 12, true},
	}
	for i, st := range steps {
		wrote, err := s.commit(ctx, time.UnixMilli(st.ms), r(st.from, st.until), write)
		if err != nil || wrote != st.wrote {
			t.Fatalf("step %d: commit = %v, %v; want %v", i, wrote, err, st.wrote)
		}
	}
	if calls != 3 {
		t.Fatalf("write called %d times; want 3", calls)
	}
	off, err := StoredOffsets(ctx, db, "j", "s")
	if err != nil || off[kafkasource.TopicPartition{Topic: "t"}] != 12 {
		t.Fatalf("StoredOffsets = %v, %v; want t[0] at 12", off, err)
	}
	_, err = s.commit(ctx, time.UnixMilli(4000), r(12, 13), func(context.Context, *sql.Tx) error { return errors.New("disk full") })
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("commit with a failing write = %v; want its error", err)
	}
	if off, _ := StoredOffsets(ctx, db, "j", "s"); off[kafkasource.TopicPartition{Topic: "t"}] != 12 {
		t.Fatalf("a failed write moved the stored offsets to %v", off)
	}
}

func TestWriteRefusesBadConfig(t *testing.T) {
	db := openSQLite(t)
	ctx := bounded(t)
	w := func(context.Context, *sql.Tx, dstream.Batch[int]) error { return nil }
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := dstream.Queue(c, [][]int{{1}})
	if _, err := Write(ctx, in, Config{DB: db, Sink: "s"}, w); err == nil || !strings.Contains(err.Error(), "engine.WithJobName") {
		t.Fatalf("Write without a job name = %v; want a sentence naming engine.WithJobName", err)
	}
	if _, err := Write(ctx, in, Config{DB: db}, w); err == nil || !strings.Contains(err.Error(), "Config.Sink") {
		t.Fatalf("Write without a sink name = %v; want a sentence naming Config.Sink", err)
	}
}

func TestUpsert(t *testing.T) {
	db := openSQLite(t)
	ctx := bounded(t)
	if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT, n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	up, err := NewUpsert(db, "kv", []string{"k"}, []string{"v", "n"}, Additive("n"))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range [][]any{{"a", "x", 1}, {"b", "y", 2}, {"a", "z", 3}} {
		if err := up.Exec(ctx, tx, row...); err != nil {
			t.Fatal(err)
		}
	}
	if err := up.Exec(ctx, tx, "a"); err == nil || !strings.Contains(err.Error(), "kv") {
		t.Fatalf("Exec with too few values = %v; want a sentence naming the table", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var v string
	var n int
	if err := db.QueryRowContext(ctx, `SELECT v, n FROM kv WHERE k = 'a'`).Scan(&v, &n); err != nil || v != "z" || n != 4 {
		t.Fatalf("row a = %q, %d, %v; want z, 4 (v replaced, n added)", v, n, err)
	}
	if _, err := NewUpsert(db, "kv; DROP TABLE kv", []string{"k"}, nil); err == nil {
		t.Fatal("NewUpsert accepted a table name that is not an identifier")
	}
	if _, err := NewUpsert(db, "kv", []string{"k"}, []string{"v"}, Additive("n")); err == nil || !strings.Contains(err.Error(), `"n"`) {
		t.Fatalf("NewUpsert with an additive column that is not a value = %v", err)
	}
}

// TestUpsertNamesTableAndRowOnViolation upserts a row that breaks a unique
// constraint other than the key: the error names the table and the row.
func TestUpsertNamesTableAndRowOnViolation(t *testing.T) {
	db := openSQLite(t)
	ctx := bounded(t)
	if _, err := db.ExecContext(ctx, `CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	up, err := NewUpsert(db, "users", []string{"id"}, []string{"email"})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := up.Exec(ctx, tx, 1, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	err = up.Exec(ctx, tx, 2, "a@example.com")
	if err == nil || !strings.Contains(err.Error(), "users") || !strings.Contains(err.Error(), "[2 a@example.com]") {
		t.Fatalf("a unique violation = %v; want a sentence naming the table users and the row", err)
	}
}

// testManyPartitions commits batches reading more partitions than one
// progress statement records: every partition's offset is stored, and a
// partition read twice in a batch keeps its last range's.
func testManyPartitions(t *testing.T, db *sql.DB) {
	ctx := bounded(t)
	sink, err := Open(ctx, db, "j", "many")
	if err != nil {
		t.Fatal(err)
	}
	want := map[kafkasource.TopicPartition]int64{}
	for batch := range 2 {
		var ranges []kafkasource.OffsetRange
		for p := range int32(2*progressChunk + 7) {
			r := kafkasource.OffsetRange{Topic: "t", Partition: p, From: int64(batch * 10), Until: int64(batch*10 + 10 + int(p))}
			ranges = append(ranges, r)
			want[r.TopicPartition()] = r.Until
		}
		again := kafkasource.OffsetRange{Topic: "t", Partition: 3, From: ranges[3].Until, Until: ranges[3].Until + 5}
		ranges = append(ranges, again)
		want[again.TopicPartition()] = again.Until
		if wrote, err := sink.Commit(ctx, time.Unix(int64(batch+1), 0), ranges, func(context.Context, *sql.Tx) (int, error) { return 0, nil }); err != nil || !wrote {
			t.Fatalf("batch %d: Commit = %v, %v", batch, wrote, err)
		}
	}
	got, err := StoredOffsets(ctx, db, "j", "many")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("stored offsets of %d partitions differ from the %d committed", len(got), len(want))
	}
}

func TestSQLiteManyPartitions(t *testing.T)   { testManyPartitions(t, openSQLite(t)) }
func TestPostgresManyPartitions(t *testing.T) { testManyPartitions(t, openPostgres(t)) }
