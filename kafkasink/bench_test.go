package kafkasink

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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
