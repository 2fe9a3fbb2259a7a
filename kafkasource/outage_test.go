package kafkasource

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/internal/logtest"
)

// requireOneOutage checks that the records are one WARN naming the broker
// and the error, then one INFO with the outage's duration.
func requireOneOutage(t *testing.T, recs []slog.Record, at, errText string) {
	t.Helper()
	var lines []string
	for _, r := range recs {
		lines = append(lines, r.Level.String()+" "+r.Message)
	}
	require.Len(t, recs, 2, "one WARN when the outage starts, one INFO when it ends; got %q", lines)
	require.Equal(t, slog.LevelWarn, recs[0].Level, lines)
	a := logtest.Attrs(recs[0])
	require.Contains(t, a["at"].String(), at, "the WARN names the broker")
	require.Contains(t, a["error"].String(), errText, "the WARN names the error")
	require.Equal(t, slog.LevelInfo, recs[1].Level, lines)
	require.Contains(t, recs[1].Message, "broker recovered")
	a = logtest.Attrs(recs[1])
	d, err := time.ParseDuration(a["outage"].String())
	require.NoError(t, err, "the INFO gives the outage's duration")
	require.Positive(t, d)
}

// TestBrokerOutageLogsOnce fails every fetch of three partitions, each read
// concurrently, until the broker has refused 12 of them, and checks that
// the retries log one WARN and the recovery one INFO.
func TestBrokerOutageLogsOnce(t *testing.T) {
	b := startBroker(t, map[string]int32{"outage": 3})
	for p := range int32(3) {
		b.produce(t, "outage", p, 0, 20)
	}
	h := logtest.NewRecords()
	c := newEngine(t)
	s := b.stream(t, c, []string{"outage"}, WithLogger(slog.New(h)))
	w := watch(s)
	ctx := bounded(t)
	require.NoError(t, c.RunBatches(ctx, 1))
	require.Empty(t, h.Snapshot(), "no outage yet")

	b.produce(t, "outage", 0, 20, 40)
	b.produce(t, "outage", 1, 20, 40)
	b.produce(t, "outage", 2, 20, 40)
	var failures atomic.Int32
	cl := b.e.Cluster()
	cl.ControlKey(kmsg.Fetch.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		if failures.Add(1) > 12 {
			cl.DropControl()
			return nil, nil, false
		}
		cl.KeepControl()
		return nil, errors.New("broker down"), true
	})
	require.NoError(t, c.RunBatches(ctx, 2))
	require.Greater(t, failures.Load(), int32(12), "the outage happened")
	requireExactlyOnce(t, w.all(), map[TopicPartition]int{{"outage", 0}: 40, {"outage", 1}: 40, {"outage", 2}: 40})
	requireOneOutage(t, h.Snapshot(), "broker 0 ("+b.e.Addrs()[0]+")", "connection") // kgo words a dropped connection in more than one way
	st, _ := StatsOf(s)
	// A failed read-ahead (at most one per batch here, one leader) is not retried: its ranges are fetched by their tasks.
	require.GreaterOrEqual(t, st.Retries, int64(12-2), "every failed fetch of a task was retried")
}

// TestBrokerNotUpLogsOnce starts a batch against a broker address nobody
// listens on yet: kgo retries the connection by itself, which logs one
// WARN through the client's connect hook. Then a broker starts on that
// address, the batch completes, and one INFO says the broker recovered.
func TestBrokerNotUpLogsOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	h := logtest.NewRecords()
	c := newEngine(t)
	s, err := NewDirectStream(c, []string{"late"}, WithBrokers(addr), WithResetPolicy(Earliest),
		WithRetryTimeout(15*time.Second), WithLogger(slog.New(h)))
	require.NoError(t, err)
	w := watch(s)
	ctx := bounded(t)
	done := make(chan error, 1)
	go func() { done <- c.RunBatches(ctx, 1) }()

	select {
	case r := <-h.C:
		require.Equal(t, slog.LevelWarn, r.Level, r.Message)
	case err := <-done:
		t.Fatalf("the batch ended (%v) before the stream logged the outage", err)
	case <-ctx.Done():
		t.Fatal("no WARN while the broker was down")
	}
	kc, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(1, "late"))
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	p, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.ProduceSync(ctx, &kgo.Record{Topic: "late", Value: []byte("v")}).FirstErr())
	require.NoError(t, <-done)
	require.Len(t, w.all(), 1)
	recs := h.Snapshot()
	requireOneOutage(t, recs, addr, "connect")
	require.True(t, strings.Contains(recs[0].Message, "connecting"), recs[0].Message)
}
