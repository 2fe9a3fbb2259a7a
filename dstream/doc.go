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
// # Windows
//
// [Window], [ReduceByKeyAndWindow], [ReduceByKeyAndWindowInv],
// [GroupByKeyAndWindow], [CountByWindow], [CountByValueAndWindow] and
// [ReduceByWindow] follow Spark: a window at time t covers the parent's
// batches in (t−w, t], and a windowed stream emits only where t − zero is a
// multiple of its slide; the first windows are partial. Window and slide must
// be multiples of the parent's slide, or the job fails to start with an
// error naming the operator. Keyed windows keep one pane of partial
// aggregates per batch, so a window combines panes instead of re-reading
// records; with an inverse function ([ReduceByKeyAndWindowInv]) a window is
// computed from the previous one, at a cost that follows the keys entering
// and leaving, not the window's length.
//
// # State
//
// [UpdateStateByKey] keeps a state per key and calls its function for every
// key in state at every batch; [MapWithState] calls its function only for
// keys with data, with idle timeouts, an initial state and a stream of
// state snapshots, as Spark's StateSpec. State lives in ordered stores
// partitioned by key hash and is updated by parallel tasks.
//
// # Checkpoints
//
// With engine.WithCheckpoint, every stateful operator (windows, state, the
// Queue position) saves the keys it changed after each batch, and nothing
// when a batch changed none (an idle window or state costs no disk write);
// a restarted job restores them and continues. Operators are matched to their
// saved state by name: the default is "<kind>-<n>" for the n-th operator of
// that kind, so adding stateless operators keeps names; [Stream.Name] sets
// one explicitly. Functions are never saved: the program rebuilds its
// graph, the checkpoint restores its data.
//
// # Group mode
//
// When the source splits the job into tasks (a Kafka source reading as a
// member of its group), each process owns some tasks and keyed operators
// keep one partition per task, a task's keys never leaving it: state and
// window panes are held per task and move with it (engine.TaskStateful).
// A stream keyed like the job's input ([CoPartitioned]) has a key's
// records in one task already. Any other stream a keyed operator reads
// (words counted out of lines) goes through an exchange of the source — a
// repartition topic for a Kafka source —, one per stream however many
// operators read it: each batch writes the stream's records, combined per
// key, to the task owning the key by its stable hash, inside the batch's
// transaction, and the operator reads them at the next batch of that
// task's owner, one batch behind its input. Keys must be strings,
// integers, float64 or bool. A keyed operator's output is keyed by its
// exchange, so that keyed operators after it need none; a join needs its
// streams keyed alike. Count and Reduce count and reduce the records of
// the process's own tasks.
//
// # Output operations
//
// [ForEachBatch], [Print] and [SaveAsTextFiles] run once per batch, in the
// order they were registered. A job needs at least one. After a crash, the
// batch that was running runs again over the same input, so outputs should
// be idempotent: SaveAsTextFiles replaces its file atomically.
package dstream
