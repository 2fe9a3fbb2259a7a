// Package dstream is Sluice's typed streaming API: discretized streams in the
// style of Spark Streaming, built as generic functions over [Stream] values.
//
// # Streams and batches
//
// A [Stream] is a sequence of batches, one per batch interval of its
// [engine.Context] (or one per slide for windowed streams). Each batch is
// split into partitions; each partition is processed by one task, and the
// tasks of a stage run in parallel. Building a stream only records a node of
// the job's graph; the engine computes it at every batch. Chains of narrow
// operators ([Map], [Filter], [FlatMap], [MapValues], …) are fused into one
// pass over each partition.
//
// # Transformations
//
// Transformations are top-level functions, because Go methods cannot take
// type parameters: dstream.Map(s, f), dstream.ReduceByKey(s, f). Keyed
// streams carry [KV] pairs; keyed operators combine values within each input
// partition first, then hash-partition by key into the context's parallelism
// of partitions.
//
// # Ordering
//
// [Queue] splits each batch into contiguous slices in order, [Union] keeps
// the first stream's partitions before the second's, and narrow operators
// keep order within a partition, so Batch.All of an unkeyed chain yields
// elements in input order. Keyed operators produce keys in no set order.
//
// # Output operations
//
// [ForEachBatch], [Print] and [SaveAsTextFiles] run once per batch, in the
// order they were registered. A job needs at least one.
package dstream
