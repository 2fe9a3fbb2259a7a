// Package kafkasource reads Kafka topics into Sluice streams, one batch of
// offset ranges at a time, and runs an in-process Kafka broker for tests and
// examples.
//
// # Rate control
//
// How many records each partition contributes to a batch follows Spark's
// direct Kafka stream. [MaxMessagesPerPartition] turns [RateLimits] (a
// maximum rate per partition, with per-partition overrides, and a minimum per
// batch) and the backpressure rate into a cap per partition, splitting the
// rate across partitions by lag. [PIDRateEstimator] computes that
// backpressure rate from how long completed batches took. Both are pure and
// mirror Spark 3.5 to the edge cases, so Spark's own test cases check them.
//
// # Embedded broker
//
// [StartEmbedded] runs a single-broker Kafka cluster (franz-go's kfake) in the
// current process on a loopback address. It speaks the real Kafka wire
// protocol, so kgo, kcat and other clients can use it; with
// [EmbeddedDataDir] its log survives a restart. The sluice-broker command runs
// one stand-alone.
package kafkasource
