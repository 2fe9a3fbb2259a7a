package engine

import "io"

// Stateful is implemented by nodes whose data outlives a batch — keyed
// state, window buffers, source positions — and must be saved by a
// checkpoint. With [WithCheckpoint], after the outputs of every checkpointed
// batch the engine calls SaveState on each stateful node, in registration
// order, and at start it calls RestoreState with what the newest valid
// commit holds. Nodes are matched to their saved state by name (see
// [Meta.Name]).
type Stateful interface {
	Node
	SaveState(w StateWriter) error
	RestoreState(r StateReader) error
}

// StateWriter receives one node's state at a checkpoint. In each SaveState a
// node calls either Snapshot (small state, rewritten whole every time) or
// WriteDelta (the changes since its previous SaveState, or nothing when
// nothing changed), and in addition WriteSnapshot when SnapshotDue says so.
type StateWriter interface {
	// Snapshot writes the whole state as one byte slice; it replaces every
	// earlier file of the node.
	Snapshot(body []byte) error
	// WriteDelta writes the changes since the previous SaveState through
	// write, which is called before WriteDelta returns. The first delta of a
	// node holds everything it has.
	WriteDelta(write func(w io.Writer) error) error
	// SnapshotDue reports whether the engine wants a full snapshot as well:
	// deltas have piled up (every so many, or more than half the size of the
	// last snapshot).
	SnapshotDue() bool
	// WriteSnapshot has the whole state written through write, off the
	// batch's critical path: write runs on another goroutine after SaveState
	// returns, so it must read an immutable view of the state taken during
	// SaveState (a copy-on-write clone). Once written, the snapshot replaces
	// the deltas before it at a later commit.
	WriteSnapshot(write func(w io.Writer) error)
}

// StateReader gives a node the state a checkpoint holds for it: the last
// snapshot, then the deltas written after it, oldest first.
type StateReader interface {
	// Snapshot returns the bytes written with [StateWriter.Snapshot] or
	// [StateWriter.WriteSnapshot], or nil when the node has none.
	Snapshot() ([]byte, error)
	// Deltas calls apply once per delta written after the snapshot, oldest
	// first.
	Deltas(apply func(r io.Reader) error) error
}
