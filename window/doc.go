// Package window provides the window arithmetic and the buffers behind
// Sluice's windowed operators: which parent batches a window covers, per-batch
// partial aggregates ("panes"), incremental aggregation with an inverse
// function, and snapshot/restore of all of them for checkpoints.
//
// It knows nothing of streams or the engine: package dstream drives these
// types from its Window, ReduceByKeyAndWindow and related operators.
// Semantics follow Spark Streaming's WindowedDStream and
// ReducedWindowedDStream.
//
// # Time
//
// A stream's batches come at zero + k·Parent, k ≥ 1. A windowed stream with
// window length Window and slide Slide (both positive multiples of Parent,
// see [Spec.Validate]) emits at the times t where t − zero is a multiple of
// Slide; the window at t covers the parent batches at times in
// (t − Window, t] ([Spec.Covers], [Spec.Batches]). Batches at or before zero
// do not exist, so the first windows are partial. [Spec.Expired] says which
// batches leave and enter between two emissions, which is what an
// incremental window reads.
//
// # Buffers
//
// [Buffer] keeps the raw records of recent batches for the plain Window
// operator. [Panes] keeps one map of per-key partial aggregates per batch and
// combines them over a window ([Panes.Window]: Spark's reduceByKeyAndWindow
// without an inverse function, which drops keys absent from the window).
// [Incremental] keeps the panes and the current window aggregate and moves it
// from one emission to the next by reducing the entering panes and
// inverse-reducing the leaving ones ([Incremental.Step]: Spark's
// reduceByKeyAndWindow with an inverse function, which keeps keys at their
// reduced "zero" unless a filter removes them). A step costs time in
// proportion to the keys of the panes that enter and leave, not to the
// window length.
//
// Each keeps only the batches that a later window can still use and drops
// the others as it emits; none is safe for concurrent use.
//
// # Snapshots and deltas
//
// Every buffer writes its whole state with WriteSnapshot and reads it back
// with ReadSnapshot, encoding keys, values and records with a
// [state.Codec]. For checkpoints taken every batch, WriteDelta writes only
// what changed since the previous WriteDelta or WriteSnapshot — the panes or
// batches added, the drop horizon and, for [Incremental], the keys whose
// window value changed — so its cost grows with the new data, not with the
// window length; ApplyDelta replays deltas, in order, on top of the snapshot
// they follow. Changed says whether a delta would hold anything a restore
// needs, so that a batch that added only empty batches or panes writes none.
//
// Each snapshot and delta carries a generation number. WriteSnapshot starts a
// new generation and a new chain of deltas; WriteDelta moves from one
// generation to the next; ApplyDelta refuses, with [ErrDeltaGap], a delta
// that does not start at the receiver's generation. The first WriteDelta of
// a buffer that was never written nor restored holds its whole state and
// applies to any receiver. A failed write changes nothing, so the next
// WriteDelta covers the same changes. Reads decode the whole input before
// changing the receiver: malformed input returns an error wrapping
// [ErrCorrupt] and leaves the receiver as it was. Output is deterministic:
// keys are written sorted by their encoding. To write a full snapshot off the
// critical path without starting a new chain, take a SnapshotFunc right after
// a WriteDelta (see [Panes.SnapshotFunc]).
//
// The frames carry no checksum: the file layer that stores them (package
// state) adds checksums and replaces files atomically.
package window
