package engine

import "io"

// Stateful is implemented by nodes whose data outlives a batch — keyed
// state, window buffers, source positions — and must be saved by a
// checkpoint. With [WithCheckpoint], after the outputs of every checkpointed
// batch the engine calls SaveState on each stateful node, and at start it
// calls RestoreState with what the newest valid commit holds.
type Stateful interface {
	Node
	SaveState(w StateWriter) error
	RestoreState(r StateReader) error
}

// StateWriter receives one node's state at a checkpoint. A node writes
// either a full snapshot or a delta of what changed since its previous
// SaveState, and at most one of them per call.
type StateWriter interface {
	// Full reports whether a full snapshot is wanted: at the first
	// checkpoint, after a restore, and every so many deltas. A node may
	// always write a snapshot instead of a delta.
	Full() bool
	// Snapshot writes the whole state as one byte slice.
	Snapshot(body []byte) error
	// WriteSnapshot writes the whole state through write. The engine may
	// call write after SaveState returns, on another goroutine, so write
	// must read an immutable view of the state (a copy-on-write clone).
	WriteSnapshot(write func(w io.Writer) error) error
	// WriteDelta writes the changes since the previous SaveState; write is
	// called before WriteDelta returns.
	WriteDelta(write func(w io.Writer) error) error
}

// StateReader gives a node the state a checkpoint holds for it: the last
// snapshot, then the deltas written after it, oldest first.
type StateReader interface {
	// Snapshot returns the snapshot's bytes, or nil when the node has none.
	Snapshot() ([]byte, error)
	// ReadSnapshot calls read with the snapshot, when there is one.
	ReadSnapshot(read func(r io.Reader) error) error
	// Deltas calls apply once per delta, oldest first.
	Deltas(apply func(r io.Reader) error) error
}
