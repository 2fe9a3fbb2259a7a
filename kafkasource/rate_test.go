package kafkasource_test

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/kafkasource"
)

// offsets builds a map of one topic's partitions 0, 1, … to the given offsets.
func offsets(topic string, offs ...int64) map[kafkasource.TopicPartition]int64 {
	m := make(map[kafkasource.TopicPartition]int64, len(offs))
	for p, o := range offs {
		m[kafkasource.TopicPartition{Topic: topic, Partition: int32(p)}] = o
	}
	return m
}

func TestMaxMessagesPerPartition(t *testing.T) {
	const topic = "maxMessagesPerPartition"
	tp := func(p int32) kafkasource.TopicPartition {
		return kafkasource.TopicPartition{Topic: topic, Partition: p}
	}

	tests := []struct {
		name    string
		limits  kafkasource.RateLimits
		batch   time.Duration
		current map[kafkasource.TopicPartition]int64
		latest  map[kafkasource.TopicPartition]int64
		rate    float64
		want    map[kafkasource.TopicPartition]int64 // nil: no cap
	}{
		// Ported from Spark's DirectKafkaStreamSuite.
		{
			name:    "maxMessagesPerPartition with backpressure disabled",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 100},
			batch:   100 * time.Millisecond,
			current: offsets(topic, 0, 0),
			latest:  offsets(topic, 50, 50),
			want:    offsets(topic, 10, 10),
		},
		{
			name:    "maxMessagesPerPartition with no lag",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 100},
			batch:   100 * time.Millisecond,
			current: offsets(topic, 0, 0),
			latest:  offsets(topic, 0, 0),
			rate:    100,
			want:    nil,
		},
		{
			name: "maxMessagesPerPartition respects max rate",
			limits: kafkasource.RateLimits{
				MaxRatePerPartition: 100,
				MaxRateOverrides:    map[kafkasource.TopicPartition]int64{tp(0): 50, tp(1): 100},
			},
			batch:   100 * time.Millisecond,
			current: offsets(topic, 0, 0),
			latest:  offsets(topic, 1000, 1000),
			rate:    1000,
			want:    offsets(topic, 5, 10),
		},
		{
			name:    "using rate controller/rate 100",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 100},
			batch:   500 * time.Millisecond,
			current: offsets(topic, 0),
			latest:  offsets(topic, 5000),
			rate:    100,
			want:    offsets(topic, 50),
		},
		{
			name:    "using rate controller/rate 50",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 100},
			batch:   500 * time.Millisecond,
			current: offsets(topic, 50),
			latest:  offsets(topic, 5000),
			rate:    50,
			want:    offsets(topic, 25),
		},
		{
			name:    "using rate controller/rate 20",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 100},
			batch:   500 * time.Millisecond,
			current: offsets(topic, 75),
			latest:  offsets(topic, 5000),
			rate:    20,
			want:    offsets(topic, 10),
		},
		{
			name:    "backpressure.initialRate should honor maxRatePerPartition",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 1000},
			batch:   500 * time.Millisecond,
			current: offsets(topic, 0),
			latest:  offsets(topic, 1000),
			rate:    500,
			want:    offsets(topic, 250),
		},
		{
			name:    "use backpressure.initialRate with backpressure",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 300},
			batch:   500 * time.Millisecond,
			current: offsets(topic, 0),
			latest:  offsets(topic, 1000),
			rate:    1000,
			want:    offsets(topic, 150),
		},
		{
			name:    "maxMessagesPerPartition with zero offset and rate equal to the specified minimum with default 1",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 100, MinRatePerPartition: 5},
			batch:   60 * time.Second,
			current: offsets(topic, 0, 0, 0, 0),
			latest:  offsets(topic, 0, 100, 200, 300),
			rate:    1,
			want:    offsets(topic, 5, 10, 20, 30),
		},

		// Edge cases of the same computation.
		{
			name:    "no backpressure and no max rate: no cap",
			batch:   time.Second,
			current: offsets(topic, 0, 0),
			latest:  offsets(topic, 10, 20),
			want:    nil,
		},
		{
			name:    "no partitions: no cap",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 100},
			batch:   time.Second,
			current: offsets(topic),
			latest:  offsets(topic),
			rate:    100,
			want:    nil,
		},
		{
			name:    "backpressure without max rate splits the rate by lag",
			batch:   time.Second,
			current: offsets(topic, 10, 10),
			latest:  offsets(topic, 110, 210),
			rate:    300,
			want:    offsets(topic, 100, 200),
		},
		{
			name:    "backpressure with no lag and no max rate: no cap",
			batch:   time.Second,
			current: offsets(topic, 7, 7),
			latest:  offsets(topic, 7, 7),
			rate:    300,
			want:    nil,
		},
		{
			name:    "a partition without lag still gets the minimum rate",
			batch:   time.Second,
			current: offsets(topic, 40, 0),
			latest:  offsets(topic, 40, 100),
			rate:    100,
			want:    offsets(topic, 1, 100),
		},
		{
			name:    "current past latest counts as no lag",
			batch:   time.Second,
			current: offsets(topic, 90, 0),
			latest:  offsets(topic, 40, 100),
			rate:    100,
			want:    offsets(topic, 1, 100),
		},
		{
			name:    "a partition missing from current reads from offset 0",
			batch:   time.Second,
			current: offsets(topic, 0),
			latest:  offsets(topic, 10, 30),
			rate:    40,
			want:    offsets(topic, 10, 30),
		},
		{
			name: "an override of 0 is capped at the minimum when others have a max rate",
			limits: kafkasource.RateLimits{
				MaxRatePerPartition: 100,
				MaxRateOverrides:    map[kafkasource.TopicPartition]int64{tp(1): 0},
			},
			batch:   100 * time.Millisecond,
			current: offsets(topic, 0, 0),
			latest:  offsets(topic, 50, 50),
			want:    offsets(topic, 10, 1),
		},
		{
			name: "an override of 0 leaves the backpressure share uncapped",
			limits: kafkasource.RateLimits{
				MaxRatePerPartition: 10,
				MaxRateOverrides:    map[kafkasource.TopicPartition]int64{tp(1): 0},
			},
			batch:   time.Second,
			current: offsets(topic, 0, 0),
			latest:  offsets(topic, 100, 100),
			rate:    100,
			want:    offsets(topic, 10, 50),
		},
		{
			name:    "a negative minimum removes the floor",
			limits:  kafkasource.RateLimits{MinRatePerPartition: -1},
			batch:   time.Second,
			current: offsets(topic, 40, 0),
			latest:  offsets(topic, 40, 100),
			rate:    100,
			want:    offsets(topic, 0, 100),
		},
		{
			name:    "fractions of a record round down",
			batch:   time.Second,
			current: offsets(topic, 0, 0, 0),
			latest:  offsets(topic, 1, 1, 1),
			rate:    10,
			want:    offsets(topic, 3, 3, 3),
		},
		{
			name:    "caps beyond int64 saturate",
			batch:   time.Second,
			current: offsets(topic, 0),
			latest:  offsets(topic, 1),
			rate:    1e30,
			want:    offsets(topic, math.MaxInt64),
		},
		{
			name:    "an infinite rate caps only by max rate and floor",
			limits:  kafkasource.RateLimits{MaxRateOverrides: map[kafkasource.TopicPartition]int64{tp(1): 70}},
			batch:   time.Second,
			current: offsets(topic, 0, 0, 5),
			latest:  offsets(topic, 10, 10, 5),
			rate:    math.Inf(1),
			want:    offsets(topic, math.MaxInt64, 70, 1),
		},
		{
			name:    "a sub-millisecond batch keeps its fraction",
			limits:  kafkasource.RateLimits{MaxRatePerPartition: 4_000_000},
			batch:   500 * time.Microsecond,
			current: offsets(topic, 0),
			latest:  offsets(topic, 10_000),
			want:    offsets(topic, 2000),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kafkasource.MaxMessagesPerPartition(tt.limits, tt.batch, tt.current, tt.latest, tt.rate)
			if tt.want == nil {
				require.Nil(t, got)
				return
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestMaxMessagesPerPartitionLeavesInputsAlone(t *testing.T) {
	current := offsets("t", 0, 5)
	latest := offsets("t", 100, 50)
	limits := kafkasource.RateLimits{MaxRatePerPartition: 10}
	got := kafkasource.MaxMessagesPerPartition(limits, time.Second, current, latest, 20)
	require.Equal(t, offsets("t", 10, 6), got) // 20/s split 100:45, first share capped at 10
	require.Equal(t, offsets("t", 0, 5), current)
	require.Equal(t, offsets("t", 100, 50), latest)
}

func BenchmarkMaxMessagesPerPartition(b *testing.B) {
	const partitions = 64
	current := make(map[kafkasource.TopicPartition]int64, partitions)
	latest := make(map[kafkasource.TopicPartition]int64, partitions)
	for p := range int32(partitions) {
		tp := kafkasource.TopicPartition{Topic: "events", Partition: p}
		current[tp] = int64(p) * 1000
		latest[tp] = int64(p)*1000 + int64(p)*37 + 1
	}
	limits := kafkasource.RateLimits{MaxRatePerPartition: 10_000}
	b.ReportAllocs()
	for b.Loop() {
		if got := kafkasource.MaxMessagesPerPartition(limits, time.Second, current, latest, 50_000); len(got) != partitions {
			b.Fatalf("got %d caps, want %d", len(got), partitions)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/partitions, "ns/partition")
}

func ExampleMaxMessagesPerPartition() {
	tp := func(p int32) kafkasource.TopicPartition {
		return kafkasource.TopicPartition{Topic: "clicks", Partition: p}
	}
	current := map[kafkasource.TopicPartition]int64{tp(0): 0, tp(1): 0, tp(2): 500}
	latest := map[kafkasource.TopicPartition]int64{tp(0): 300, tp(1): 100, tp(2): 500}
	limits := kafkasource.RateLimits{MaxRatePerPartition: 200}

	// Backpressure at 400 records/s, split by lag (3:1:0), capped at 200/s
	// per partition; a 2 s batch doubles it; the partition without lag
	// keeps the floor of 1.
	caps := kafkasource.MaxMessagesPerPartition(limits, 2*time.Second, current, latest, 400)
	byPartition := func(a, b kafkasource.TopicPartition) int { return cmp.Compare(a.Partition, b.Partition) }
	for _, k := range slices.SortedFunc(maps.Keys(caps), byPartition) {
		fmt.Printf("partition %d: %d records\n", k.Partition, caps[k])
	}

	// Without backpressure and without a max rate nothing is capped.
	fmt.Println(kafkasource.MaxMessagesPerPartition(kafkasource.RateLimits{}, time.Second, current, latest, 0) == nil)
	// Output:
	// partition 0: 400 records
	// partition 1: 200 records
	// partition 2: 1 records
	// true
}
