package kafkasink

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/topictest"
)

func cluster(t testing.TB) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "out", "dead"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// readAll returns the values on topic read committed or not, each
// partition up to its end.
func readAll(t *testing.T, seeds []string, topic string, committed bool) []string {
	t.Helper()
	return topictest.ReadToEnd(t, seeds, topic, committed)
}

func recs(n int, tag string) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := range out {
		out[i] = &kgo.Record{Topic: "out", Value: []byte(tag + strconv.Itoa(i))}
	}
	return out
}

func TestTxnSkipsCommittedBatchAfterRestart(t *testing.T) {
	seeds := cluster(t)
	ctx := context.Background()
	w, err := NewTxn(ctx, seeds, "job", "s")
	if err != nil {
		t.Fatal(err)
	}
	b1, b2 := time.UnixMilli(1000), time.UnixMilli(2000)
	for _, b := range []time.Time{b1, b2} {
		if ok, err := w.Write(ctx, b, recs(3, strconv.FormatInt(b.UnixMilli(), 10)+"-")); err != nil || !ok {
			t.Fatalf("Write(%v) = %v, %v", b, ok, err)
		}
	}
	w.Close()
	w2, err := NewTxn(ctx, seeds, "job", "s")
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if last, ok := w2.LastCommitted(); !ok || !last.Equal(b2) {
		t.Fatalf("LastCommitted after restart = %v, %v; want %v", last, ok, b2)
	}
	if ok, err := w2.Write(ctx, b2, recs(3, "dup-")); err != nil || ok {
		t.Fatalf("re-run Write = %v, %v; want skipped", ok, err)
	}
	if got := readAll(t, seeds, "out", true); len(got) != 6 {
		t.Fatalf("read_committed got %d records %v; want 6", len(got), got)
	}
}

func TestTxnFencesZombie(t *testing.T) {
	seeds := cluster(t)
	ctx := context.Background()
	old, err := NewTxn(ctx, seeds, "job", "s")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Write(ctx, time.UnixMilli(1000), recs(2, "old-a")); err != nil {
		t.Fatal(err)
	}
	young, err := NewTxn(ctx, seeds, "job", "s")
	if err != nil {
		t.Fatal(err)
	}
	defer young.Close()
	if _, err := young.Write(ctx, time.UnixMilli(2000), recs(2, "young")); err != nil {
		t.Fatal(err)
	}
	_, err = old.Write(ctx, time.UnixMilli(3000), recs(2, "old-b"))
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie Write error = %v; want ErrFenced", err)
	}
	for _, v := range readAll(t, seeds, "out", true) {
		if len(v) > 5 && v[:5] == "old-b" {
			t.Fatalf("read_committed sees the fenced producer's record %q", v)
		}
	}
}

func TestNewTxnWantsJobName(t *testing.T) {
	if _, err := NewTxn(context.Background(), []string{"127.0.0.1:1"}, "", "s"); err == nil {
		t.Fatal("NewTxn accepted an empty job name")
	}
}

// TestTxnMarkerAfterAbortedAndOpenTransactions restarts a writer whose last
// transaction aborted, and then one whose predecessor died with a
// transaction open: each finds the last committed batch, and the read of the
// marker topic ends at its stable end rather than at a deadline.
func TestTxnMarkerAfterAbortedAndOpenTransactions(t *testing.T) {
	seeds := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b1 := time.UnixMilli(1000)
	w, err := NewTxn(ctx, seeds, "job", "s")
	require.NoError(t, err)
	ok, err := w.Write(ctx, b1, recs(2, "a-"))
	require.NoError(t, err)
	require.True(t, ok)
	// A transaction with a marker for batch 2000 that aborts.
	require.NoError(t, w.cl.BeginTransaction())
	marker := &kgo.Record{Topic: w.markerTopic, Partition: 0, Key: []byte("job/s"), Value: []byte("2000")}
	require.NoError(t, w.cl.ProduceSync(ctx, append(recs(2, "aborted-"), marker)...).FirstErr())
	require.NoError(t, w.cl.EndTransaction(ctx, kgo.TryAbort))
	w.Close()

	w2, err := NewTxn(ctx, seeds, "job", "s")
	require.NoError(t, err)
	last, ok := w2.LastCommitted()
	require.True(t, ok)
	require.Equal(t, b1, last, "the aborted marker must not count")
	// w2 dies with a transaction open that holds a marker for batch 3000.
	require.NoError(t, w2.cl.BeginTransaction())
	marker.Value = []byte("3000")
	require.NoError(t, w2.cl.ProduceSync(ctx, append(recs(2, "open-"), marker)...).FirstErr())

	w3, err := NewTxn(ctx, seeds, "job", "s")
	require.NoError(t, err)
	defer w3.Close()
	last, ok = w3.LastCommitted()
	require.True(t, ok)
	require.Equal(t, b1, last, "the fenced instance's open transaction must not count")
	ok, err = w3.Write(ctx, time.UnixMilli(2000), recs(2, "b-"))
	require.NoError(t, err)
	require.True(t, ok)
	w2.Close()
	require.ElementsMatch(t, []string{"a-0", "a-1", "b-0", "b-1"}, readAll(t, seeds, "out", true))
}
