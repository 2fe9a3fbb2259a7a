package kafkasink

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// BenchmarkTxnAgainstPlain writes the same batches of 5000 records with
// Txn (one transaction and marker a batch) and with a plain idempotent kgo
// producer (ProduceSync a batch), alternating, and reports the plain
// producer's time per batch divided by Txn's (throughput ratio, 1 = as
// fast) and the time Txn adds per batch.
func BenchmarkTxnAgainstPlain(b *testing.B) {
	seeds := cluster(b)
	ctx := context.Background()
	w, err := NewTxn(ctx, seeds, "bench", "s")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	plain, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	batch := func() []*kgo.Record {
		recs := make([]*kgo.Record, 5000)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: "out", Value: []byte("value-" + strconv.Itoa(i))}
		}
		return recs
	}
	var txnT, plainT time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if _, err := w.Write(ctx, time.UnixMilli(int64(i+1)*1000), batch()); err != nil {
			b.Fatal(err)
		}
		txnT += time.Since(start)
		start = time.Now()
		if err := plain.ProduceSync(ctx, batch()...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		plainT += time.Since(start)
	}
	b.ReportMetric(float64(plainT)/float64(txnT), "plain/txn")
	b.ReportMetric(float64(txnT-plainT)/float64(b.N)/1e6, "added-ms/batch")
}

// benchSinkJob runs one batch of 5000 records a loop through the output
// add registers, on a manual-clock job at parallelism 2, and reports the
// records per second.
func benchSinkJob(b *testing.B, add func(s *dstream.Stream[int]) error) {
	batches := make([][]int, 100_000)
	in := make([]int, 5000)
	for i := range in {
		in[i] = i
	}
	for i := range batches {
		batches[i] = in
	}
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithParallelism(2), engine.WithJobName("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := add(dstream.Queue(c, batches)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.RunBatches(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(5000*b.N)/b.Elapsed().Seconds(), "records/s")
}

func benchValue(i int) []byte { return strconv.AppendInt([]byte("value-"), int64(i), 10) }

// BenchmarkWriteTxnJob times WriteTxn in a job, one batch of 5000 records
// an iteration; BenchmarkWriteToJob the at-least-once writer on the same
// batches.
func BenchmarkWriteTxnJob(b *testing.B) {
	seeds := cluster(b)
	benchSinkJob(b, func(s *dstream.Stream[int]) error {
		_, err := WriteTxn(context.Background(), s, Config{Brokers: seeds, Sink: "bench"}, func(i int) (*kgo.Record, error) {
			return &kgo.Record{Topic: "out", Value: benchValue(i)}, nil
		})
		return err
	})
}

func BenchmarkWriteToJob(b *testing.B) {
	seeds := cluster(b)
	benchSinkJob(b, func(s *dstream.Stream[int]) error {
		_, err := WriteTo(s, "out", Config{Brokers: seeds}, func(i int) ([]byte, []byte, error) { return nil, benchValue(i), nil })
		return err
	})
}
