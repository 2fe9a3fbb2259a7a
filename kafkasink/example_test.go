package kafkasink_test

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasink"
	"github.com/sluicehq/sluice/kafkasource"
)

// Write the elements of a stream to a topic; the batch time travels in a
// header.
func ExampleWriteTo() {
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("counts", 1))
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	words := dstream.Queue(c, [][]string{{"a", "b", "a"}})
	counts := dstream.CountByValue(words)
	sink, err := kafkasink.WriteTo(counts, "counts", kafkasink.Config{Brokers: broker.Addrs()}, func(kv dstream.KV[string, int64]) ([]byte, []byte, error) {
		return []byte(kv.Key), fmt.Appendf(nil, "%d", kv.Value), nil
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := c.RunBatches(ctx, 1); err != nil {
		panic(err)
	}
	fmt.Println("written:", sink.Stats().Records)

	consumer, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...), kgo.ConsumeTopics("counts"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		panic(err)
	}
	defer consumer.Close()
	got := map[string]string{}
	for len(got) < 2 {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got[string(r.Key)] = string(r.Value) + " at " + string(r.Headers[0].Value) + " ms"
		})
	}
	fmt.Println(got["a"])
	fmt.Println(got["b"])
	// Output:
	// written: 2
	// 2 at 1000 ms
	// 1 at 1000 ms
}
