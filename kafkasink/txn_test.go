package kafkasink

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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

// readAll returns the values on topic at the given isolation, reading up to
// the high watermark.
func readAll(t *testing.T, seeds []string, topic string, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
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
