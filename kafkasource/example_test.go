package kafkasource_test

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// Read a topic of the embedded broker batch by batch and print each
// batch's offset ranges and records.
func ExampleNewDirectStream() {
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("clicks", 2))
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	producer, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		panic(err)
	}
	defer producer.Close()
	ctx := context.Background()
	produce := func(partition int32, keys ...string) {
		for _, k := range keys {
			rec := &kgo.Record{Topic: "clicks", Partition: partition, Key: []byte(k), Value: []byte("page-" + k)}
			if err := producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
				panic(err)
			}
		}
	}

	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	clicks, err := kafkasource.NewDirectStream(c, []string{"clicks"},
		kafkasource.WithBrokers(broker.Addrs()...),
		kafkasource.WithResetPolicy(kafkasource.Earliest),
		kafkasource.WithRateLimits(kafkasource.RateLimits{MaxRatePerPartition: 2}))
	if err != nil {
		panic(err)
	}
	dstream.ForEachBatchJob(clicks, func(_ context.Context, j *engine.Job, b dstream.Batch[kafkasource.Record]) error {
		fmt.Println("batch", b.Time.Unix(), kafkasource.OffsetRangesOf(j, clicks))
		for r := range b.All() {
			fmt.Printf("  %s[%d]@%d %s=%s\n", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
		}
		return nil
	})

	produce(0, "a", "b", "c")
	produce(1, "d")
	if err := c.RunBatches(ctx, 2); err != nil {
		panic(err)
	}
	// Output:
	// batch 1 [clicks[0] [0, 2) clicks[1] [0, 1)]
	//   clicks[0]@0 a=page-a
	//   clicks[0]@1 b=page-b
	//   clicks[1]@0 d=page-d
	// batch 2 [clicks[0] [2, 3) clicks[1] [1, 1)]
	//   clicks[0]@2 c=page-c
}

// Run a job as member "a" of group "clicks-job": started three times with
// names a, b and c (each its own process, against one shared broker), the
// three share the topic's partitions, and when one dies the others take
// its partitions over at the offsets its last batch committed.
func ExampleAsMember() {
	broker, err := kafkasource.StartEmbedded(kafkasource.EmbeddedTopic("clicks", 2))
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	producer, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...), kgo.DefaultProduceTopic("clicks"))
	if err != nil {
		panic(err)
	}
	defer producer.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, page := range []string{"home", "cart", "home", "help"} {
		if err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte(page), Value: []byte("view")}).FirstErr(); err != nil {
			panic(err)
		}
	}

	c, err := engine.NewContext(100 * time.Millisecond)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	clicks, err := kafkasource.NewDirectStream(c, []string{"clicks"},
		kafkasource.WithBrokers(broker.Addrs()...),
		kafkasource.WithGroup("clicks-job"),
		kafkasource.AsMember("a"),
		kafkasource.WithMemberOptions(kgo.SessionTimeout(10*time.Second)),
		kafkasource.WithResetPolicy(kafkasource.Earliest))
	if err != nil {
		panic(err)
	}
	read := 0
	dstream.ForEachBatch(clicks, func(_ context.Context, b dstream.Batch[kafkasource.Record]) error {
		read += b.Len()
		if read == 4 {
			cancel() // the batch in flight commits, then Run returns
		}
		return nil
	})
	if err := c.Run(ctx); err != nil && ctx.Err() == nil {
		panic(err)
	}
	fmt.Println("member a read", read, "records")
	// Output:
	// member a read 4 records
}
