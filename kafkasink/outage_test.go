package kafkasink

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/logtest"
)

// restartable is a one-broker kfake cluster on a fixed port that keeps its
// topics, records and producer state on disk across a stop and a start: a
// broker that goes down and comes back.
type restartable struct {
	t    *testing.T
	dir  string
	port int
	c    *kfake.Cluster
}

func startRestartable(t *testing.T) *restartable {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	b := &restartable{t: t, dir: t.TempDir(), port: port}
	b.start()
	t.Cleanup(func() { b.c.Close() })
	return b
}

func (b *restartable) start() {
	c, err := kfake.NewCluster(kfake.Ports(b.port), kfake.DataDir(b.dir), kfake.SeedTopics(2, "out"))
	require.NoError(b.t, err)
	b.c = c
}

func (b *restartable) addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// TestSinkBrokerOutageLogsOnce writes a batch with each Kafka writer
// (WriteTo, WriteTxn, and a Txn from OpenTxn), stops the broker, runs the
// next batch, which the producer retries, and starts the broker again: the
// outage logs one WARN when the writes start failing, naming the broker,
// and one INFO with its duration when they recover; the batch completes
// and both batches' records are on the topic.
func TestSinkBrokerOutageLogsOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		committed bool // the writer is transactional: read the topic read_committed
		write     func(ctx context.Context, in *dstream.Stream[int], cfg Config) error
	}{
		{"WriteTo", false, func(_ context.Context, in *dstream.Stream[int], cfg Config) error {
			_, err := WriteTo(in, "out", cfg, encodeInt)
			return err
		}},
		{"WriteTxn", true, func(ctx context.Context, in *dstream.Stream[int], cfg Config) error {
			_, err := WriteTxn(ctx, in, cfg, func(n int) (*kgo.Record, error) {
				return &kgo.Record{Topic: "out", Value: []byte(strconv.Itoa(n))}, nil
			})
			return err
		}},
		{"OpenTxn", true, func(ctx context.Context, in *dstream.Stream[int], cfg Config) error {
			w, err := OpenTxn(ctx, in.Context().JobName(), cfg)
			if err != nil {
				return err
			}
			in.Context().OnClose(func() error { w.Close(); return nil })
			dstream.ForEachBatch(in, func(ctx context.Context, b dstream.Batch[int]) error {
				var recs []*kgo.Record
				for n := range b.All() {
					recs = append(recs, &kgo.Record{Topic: "out", Value: []byte(strconv.Itoa(n))})
				}
				_, err := w.Write(ctx, b.Time, recs)
				return err
			})
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startRestartable(t)
			ctx := bounded(t)
			c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("outage"))
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, c.Close()) })
			h := logtest.NewRecords()
			in := dstream.Queue(c, [][]int{{1, 2, 3}, {4, 5, 6}})
			require.NoError(t, tc.write(ctx, in, Config{Brokers: []string{b.addr()}, Sink: "s", Logger: slog.New(h)}))
			require.NoError(t, c.RunBatches(ctx, 1))
			require.Empty(t, h.Snapshot(), "no outage yet")

			b.c.Close()
			done := make(chan error, 1)
			go func() { done <- c.RunBatches(ctx, 1) }()
			select {
			case r := <-h.C:
				require.Equal(t, slog.LevelWarn, r.Level, r.Message)
			case err := <-done:
				t.Fatalf("the batch ended (%v) with the broker down", err)
			case <-ctx.Done():
				t.Fatal("no WARN while the broker was down")
			}
			b.start()
			require.NoError(t, <-done)

			recs := h.Snapshot()
			var lines []string
			for _, r := range recs {
				lines = append(lines, r.Level.String()+" "+r.Message)
			}
			require.Len(t, recs, 2, "one WARN when the outage starts, one INFO when it ends; got %q", lines)
			require.Equal(t, slog.LevelWarn, recs[0].Level, lines)
			require.Contains(t, recs[0].Message, "kafkasink: ")
			require.Contains(t, logtest.Attrs(recs[0])["at"].String(), b.addr(), "the WARN names the broker")
			require.NotEmpty(t, logtest.Attrs(recs[0])["error"].String(), "the WARN names the error")
			require.Equal(t, slog.LevelInfo, recs[1].Level, lines)
			require.Contains(t, recs[1].Message, "kafkasink: broker recovered")
			require.Contains(t, logtest.Attrs(recs[1])["at"].String(), b.addr(), "the INFO names the broker")
			d, err := time.ParseDuration(logtest.Attrs(recs[1])["outage"].String())
			require.NoError(t, err, "the INFO gives the outage's duration")
			require.Positive(t, d)
			require.ElementsMatch(t, []string{"1", "2", "3", "4", "5", "6"}, readAll(t, []string{b.addr()}, "out", tc.committed))
		})
	}
}
