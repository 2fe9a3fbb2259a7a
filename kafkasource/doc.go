// Package kafkasource reads Kafka topics into Sluice streams, one batch of
// offset ranges at a time, and runs an in-process Kafka broker for tests and
// examples.
//
// # Direct stream
//
// [NewDirectStream] is Spark's createDirectStream: at every batch it asks
// the cluster for the end (last stable offset) of every subscribed
// partition, plans one [OffsetRange] per partition as until = min(latest,
// from + cap), and reads each non-empty range in a task of its own, read
// committed, stopping exactly at until. Partitions added while the job runs
// are picked up at their earliest offset. Output operations see each
// batch's ranges through [OffsetRangesOf], as Spark's HasOffsetRanges.
//
// Starting offsets come, in order, from the checkpoint
// (engine.WithCheckpoint), [WithStartOffsets], the committed offsets of
// [WithGroup], then [WithResetPolicy]. An offset that retention deleted is
// reset to the log start with a WARN naming the partition and the records
// lost (or an error with [WithFatalOnDataLoss]); an offset above the high
// watermark is an [*OffsetOutOfRangeError]. After every batch the stream
// commits its positions to the group, so that lag tools see progress: with
// a checkpoint, once the batch's commit is durable, in the background while
// later batches run. A failed group commit is logged and counted, not
// fatal: the checkpoint, not the group, is the truth when both exist.
// Broker errors are retried with backoff for up to [WithRetryTimeout]. An
// outage logs one WARN ([WithLogger]) at its first failed request or
// connection, naming the broker and the error, and one INFO when the broker
// answers again, with the outage's duration; the retries between them log
// at DEBUG.
//
// The checkpoint holds a stream's positions under its name: [DefaultName]
// ("kafka", then "kafka-2", …) unless the stream is given one with
// Name. A checkpoint written when the default was "kafkaDirect-1" resumes
// under the new default. The operator kind stays [Kind].
//
// # Group mode
//
// With [AsMember] a stream is one member of a job running on several
// processes: the members of its group ([WithGroup]) share the tasks (task p
// is partition p of every input topic), each runs its own batches over the
// tasks it owns, and each batch commits as one Kafka transaction with the
// batch's offsets, which live in the group instead of a checkpoint. When a
// member dies its tasks move to the others. [WithMemberOptions] tunes the
// membership's timeouts.
//
// State kept per task moves with its task through a changelog topic
// ([ChangelogTopic]). Records that change task, those of a stream keyed
// otherwise than the input, go through a repartition topic
// ([RepartitionTopic]) with one partition per task: a batch writes them in
// its transaction, and a later batch of whichever member owns their task
// reads them, read committed, committing where it stopped with its input
// offsets, so that each is read once.
//
// # Sinks
//
// Writing a stream to Kafka is package kafkasink's: at least once with
// kafkasink.WriteTo, exactly once, in one transaction per batch, with
// kafkasink.WriteTxn.
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
