// Package engine is Sluice's runtime: it cuts time into batch intervals and
// runs, at every interval, the graph of operators that package dstream
// builds, with its tasks in parallel and, when asked, durable checkpoints.
//
// # Batches
//
// A [Context] has a batch interval B. Batch times are multiples of B from the
// context's zero time: with the real clock the zero time is the start time
// rounded down to B, and a batch at time t covers input that arrived in
// (t−B, t]; with [WithManualClock] batch k has time start + k·B and runs only
// when [Context.RunBatches] asks. [WithZeroTime] fixes the zero time instead,
// so that contexts started apart, such as the members of one job in group
// mode (a [Distributed] source makes it the Unix epoch), agree on every batch
// and window boundary. Batches run one at a time in time order and
// never overlap. A batch that takes longer than B makes the next one start
// late (its scheduling delay is recorded); no batch time is skipped. The
// first batch that starts more than one interval late logs a WARN, and the
// first one after it that starts within an interval logs an INFO saying how
// long the job was behind: one line each, not one per late batch.
//
// # Tasks
//
// Inside a batch, each stage runs one task per partition, at most the
// context's parallelism at once ([WithParallelism], default GOMAXPROCS). The
// first task to fail cancels its stage, and the batch fails with a
// [*BatchError] that names the batch time and the operator.
//
// # Stopping
//
// [Context.Run] runs until its context is done. Cancelling it is a graceful
// stop: the batch in flight finishes, its outputs and commit included, and
// Run returns nil. [Context.Close] releases sources, stores and the
// checkpoint lock, and is idempotent.
//
// # Nodes
//
// The engine knows nothing of record types. It drives [Node] values, and
// recognises what a node does by the interfaces it implements: [Source],
// [Output], [Ticker], [Validator], [Stateful], [Closer], [Publisher].
//
// # Checkpoints
//
// With [WithCheckpoint] the engine records each batch's planned input before
// any of the batch's outputs runs (the file is written while the batch reads
// and computes; see [Preparer]), and after its outputs commits the state of
// every [Stateful] node with the sources' positions in one manifest, so that
// a job killed at any instant resumes exactly where it stopped. The manifest
// is made durable in the background while the next batch plans, reads and
// computes, one manifest at a time; sources that publish their progress
// ([Publisher]) do so once it is durable. [Context.RunBatches] and
// [Context.Run] return once the commits of the batches they ran are
// durable; a commit that fails in the background fails the next batch, or
// the call.
package engine
