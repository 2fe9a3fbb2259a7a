package window

import (
	"io"
	"maps"
	"slices"

	"github.com/sluicehq/sluice/state"
)

// Snapshots taken off the critical path
//
// A checkpoint that writes a delta at every batch and, from time to time, a
// full snapshot on another goroutine needs a snapshot that the deltas
// written afterwards follow. WriteSnapshot cannot serve: it starts a new
// chain of deltas, and it reads the live state. The SnapshotFunc methods
// take an immutable copy of the state now, at its current generation, and
// return the function that writes it later; the frame is an ordinary
// snapshot, read back with ReadSnapshot.

// SnapshotFunc returns a function that writes a snapshot of the panes as
// they are now, readable with [Panes.ReadSnapshot]. Unlike
// [Panes.WriteSnapshot] it does not start a new chain of deltas: the
// snapshot carries the current generation, so the deltas that p writes
// after the call apply on top of it. Call it right after a
// [Panes.WriteDelta] so that the snapshot holds what that delta holds, or
// instead of one while [Panes.Changed] is false (the deltas that follow
// still carry what was added since the last one).
//
// SnapshotFunc copies the list of panes, O(panes held); the panes
// themselves are immutable and shared. The returned function reads only the
// copy, so it may run on another goroutine while p keeps changing.
func (p *Panes[K, V]) SnapshotFunc(kc state.Codec[K], vc state.Codec[V]) func(io.Writer) error {
	gen, items := p.gen, slices.Clone(p.s.items)
	return func(w io.Writer) error { return writePanesSnapshot(w, gen, items, kc, vc) }
}

// SnapshotFunc is [Panes.SnapshotFunc] for an incremental window: the
// returned function writes a snapshot readable with
// [Incremental.ReadSnapshot] at the current generation. It copies the list
// of panes and the current aggregate, O(panes + keys in the window).
func (w *Incremental[K, V]) SnapshotFunc(kc state.Codec[K], vc state.Codec[V]) func(io.Writer) error {
	frozen := &Incremental[K, V]{
		panes:   Panes[K, V]{s: series[map[K]V]{items: slices.Clone(w.panes.s.items)}},
		cur:     maps.Clone(w.cur),
		at:      w.at,
		stepped: w.stepped,
	}
	gen := w.gen
	return func(wr io.Writer) error { return frozen.writeSnapshot(wr, gen, kc, vc) }
}

// SnapshotFunc is [Panes.SnapshotFunc] for a buffer: the returned function
// writes a snapshot readable with [Buffer.ReadSnapshot] at the current
// generation. It copies the list of batches, O(batches held); the batches'
// partitions are immutable and shared.
func (b *Buffer[T]) SnapshotFunc(c state.Codec[T]) func(io.Writer) error {
	gen, items := b.gen, slices.Clone(b.s.items)
	return func(w io.Writer) error { return writeBufferSnapshot(w, gen, items, c) }
}
