package dstream_test

import (
	"context"
	"iter"
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// The public API contract: these assignments stop compiling if a signature
// drifts from the one programs outside the repo compile against.
var (
	_ func(time.Duration, ...engine.Option) (*engine.Context, error) = engine.NewContext
	_ func(int) engine.Option                                        = engine.WithParallelism
	_ func(string) engine.Option                                     = engine.WithCheckpoint
	_ func(time.Time) engine.Option                                  = engine.WithManualClock
	_ func(*slog.Logger) engine.Option                               = engine.WithLogger
	_ func(*engine.Context, context.Context) error                   = (*engine.Context).Run
	_ func(*engine.Context, context.Context, int) error              = (*engine.Context).RunBatches
	_ func(*engine.Context) error                                    = (*engine.Context).Close

	_ func(string, int) dstream.KV[string, int]                                                                                          = dstream.Pair[string, int]
	_ func(dstream.Batch[int]) iter.Seq[int]                                                                                             = dstream.Batch[int].All
	_ func(dstream.Batch[int]) int                                                                                                       = dstream.Batch[int].Len
	_ func(*engine.Context, [][]int) *dstream.Stream[int]                                                                                = dstream.Queue[int]
	_ func(*dstream.Stream[int], func(int) string) *dstream.Stream[string]                                                               = dstream.Map[int, string]
	_ func(*dstream.Stream[int], func(int) []string) *dstream.Stream[string]                                                             = dstream.FlatMap[int, string]
	_ func(*dstream.Stream[int], func(int) bool) *dstream.Stream[int]                                                                    = dstream.Filter[int]
	_ func(...*dstream.Stream[int]) *dstream.Stream[int]                                                                                 = dstream.Union[int]
	_ func(*dstream.Stream[int]) *dstream.Stream[int64]                                                                                  = dstream.Count[int]
	_ func(*dstream.Stream[int]) *dstream.Stream[dstream.KV[int, int64]]                                                                 = dstream.CountByValue[int]
	_ func(*dstream.Stream[int], func(int, int) int) *dstream.Stream[int]                                                                = dstream.Reduce[int]
	_ func(*dstream.Stream[kv], func(int, int) int) *dstream.Stream[kv]                                                                  = dstream.ReduceByKey[string, int]
	_ func(*dstream.Stream[kv]) *dstream.Stream[dstream.KV[string, []int]]                                                               = dstream.GroupByKey[string, int]
	_ func(*dstream.Stream[int], time.Duration, time.Duration) *dstream.Stream[int]                                                      = dstream.Window[int]
	_ func(*dstream.Stream[kv], func(int, int) int, time.Duration, time.Duration) *dstream.Stream[kv]                                    = dstream.ReduceByKeyAndWindow[string, int]
	_ func(*dstream.Stream[kv], func(int, int) int, func(int, int) int, time.Duration, time.Duration, func(kv) bool) *dstream.Stream[kv] = dstream.ReduceByKeyAndWindowInv[string, int]
	_ func(*dstream.Stream[int], time.Duration, time.Duration) *dstream.Stream[int64]                                                    = dstream.CountByWindow[int]
	_ func(*dstream.Stream[int], time.Duration, time.Duration) *dstream.Stream[dstream.KV[int, int64]]                                   = dstream.CountByValueAndWindow[int]
	_ func(*dstream.Stream[kv], func([]int, float64, bool) (float64, bool)) *dstream.Stream[dstream.KV[string, float64]]                 = dstream.UpdateStateByKey[string, int, float64]
	_ func(*dstream.Stream[int], func(context.Context, dstream.Batch[int]) error)                                                        = dstream.ForEachBatch[int]
	_ func(*dstream.Stream[int], int)                                                                                                    = dstream.Print[int]
	_ func(*dstream.Stream[int], string, string)                                                                                         = dstream.SaveAsTextFiles[int]

	_ func(kafkasource.RateLimits, time.Duration, map[kafkasource.TopicPartition]int64, map[kafkasource.TopicPartition]int64, float64) map[kafkasource.TopicPartition]int64 = kafkasource.MaxMessagesPerPartition
	_ func(time.Duration, float64, float64, float64, float64) *kafkasource.PIDRateEstimator                                                                                 = kafkasource.NewPIDRateEstimator
	_ func(*kafkasource.PIDRateEstimator, time.Time, int64, time.Duration, time.Duration) (float64, bool)                                                                   = (*kafkasource.PIDRateEstimator).Compute
)

type kv = dstream.KV[string, int]

// The contract's struct shapes.
var (
	_ = dstream.KV[string, int]{Key: "k", Value: 1}
	_ = dstream.Batch[int]{Time: time.Time{}, Parts: [][]int{{1}}}
	_ = kafkasource.TopicPartition{Topic: "t", Partition: 0}
	_ = kafkasource.RateLimits{MaxRatePerPartition: 1, MaxRateOverrides: map[kafkasource.TopicPartition]int64{}, MinRatePerPartition: 1}
)
