package kafkasource

import (
	"math"
	"time"
)

// TopicPartition names one partition of one topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// RateLimits bounds how many records each partition contributes to a batch.
// The zero value means no maximum and a floor of one record per partition,
// Spark's defaults.
type RateLimits struct {
	// MaxRatePerPartition is the most records per second read from each
	// partition. Zero (the default) means unlimited.
	MaxRatePerPartition int64

	// MaxRateOverrides replaces MaxRatePerPartition for the partitions it
	// names, as a custom Spark PerPartitionConfig would.
	MaxRateOverrides map[TopicPartition]int64

	// MinRatePerPartition is the floor on the records a capped partition may
	// contribute to one batch. Zero means Spark's default, 1; a negative
	// value removes the floor.
	MinRatePerPartition int64
}

// maxRate returns the maximum records/s of tp, honouring overrides.
func (l RateLimits) maxRate(tp TopicPartition) int64 {
	if r, ok := l.MaxRateOverrides[tp]; ok {
		return r
	}
	return l.MaxRatePerPartition
}

// minRate returns the per-batch floor of every partition.
func (l RateLimits) minRate() int64 {
	if l.MinRatePerPartition == 0 {
		return 1
	}
	return l.MinRatePerPartition
}

// MaxMessagesPerPartition returns the most records each partition may
// contribute to one batch, or nil for "no cap". It is a pure function and
// safe for concurrent use.
//
// current holds the next offset to read of each partition and latest its
// latest offset; the result has one entry per partition of latest. A
// partition absent from current reads as offset 0, so callers should fill
// current for every partition of latest (new partitions at their start).
//
// rate is the backpressure rate for the whole stream in records/s (the
// [PIDRateEstimator] estimate, or the initial rate before the first
// estimate); rate <= 0 means backpressure is off. With backpressure the rate
// is split across partitions in proportion to their lag (latest − current,
// never below 0) and each share is capped by the partition's maximum rate
// when that is positive. Without it each partition gets its maximum rate.
// When the rates summed over all partitions are not positive (no backpressure
// and no maximum, or backpressure with no lag anywhere) the result is nil.
// Otherwise each partition's cap is floor(batch seconds × rate), but at least
// the minimum rate; a partition whose own rate is zero, such as one without
// lag, therefore still gets the minimum.
//
// This mirrors Spark's DirectKafkaInputDStream.maxMessagesPerPartition with
// DefaultPerPartitionConfig, edge cases included. For batch durations in
// whole milliseconds, Spark's only kind, the arithmetic is Spark's to the
// last bit; shorter fractions are kept rather than truncated. Caps too large
// for int64 saturate, as Java's conversion does, and a rate of +Inf gives
// partitions with lag an unlimited share.
func MaxMessagesPerPartition(l RateLimits, batch time.Duration, current, latest map[TopicPartition]int64, rate float64) map[TopicPartition]int64 {
	limits := make(map[TopicPartition]float64, len(latest))
	if rate > 0 {
		var totalLag int64
		for tp, until := range latest {
			totalLag += max(until-current[tp], 0)
		}
		if totalLag == 0 {
			// Spark divides 0 by 0 here; the NaN sum fails its "> 0" test.
			return nil
		}
		for tp, until := range latest {
			lag := max(until-current[tp], 0)
			var share float64 // 0 without lag, also for an infinite rate
			if lag > 0 {
				share = float64(lag) / float64(totalLag) * rate
			}
			if m := l.maxRate(tp); m > 0 {
				share = math.Min(share, float64(m))
			}
			limits[tp] = share
		}
	} else {
		for tp := range latest {
			limits[tp] = float64(l.maxRate(tp))
		}
	}

	var sum float64
	for _, r := range limits {
		sum += r
	}
	if !(sum > 0) {
		return nil
	}

	secsPerBatch := float64(batch) / float64(time.Second)
	floor := l.minRate()
	caps := make(map[TopicPartition]int64, len(limits))
	for tp, r := range limits {
		caps[tp] = max(saturatingInt64(secsPerBatch*r), floor)
	}
	return caps
}

// saturatingInt64 truncates f toward zero the way Java's double-to-long
// conversion does: NaN becomes 0 and values out of range saturate.
func saturatingInt64(f float64) int64 {
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	default:
		return int64(f)
	}
}
