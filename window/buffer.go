package window

import (
	"iter"
	"time"
)

// Buffer holds the raw records of recent parent batches, each batch as its
// partitions ([][]T), for the plain Window operator: the window at t is the
// union of the batches inside it, their partitions in increasing time order
// (Spark's WindowedDStream unions the parent's RDDs the same way).
//
// Batches are immutable once added: Add takes ownership of the partitions,
// and the slices that Range, Parts and Window return must not be modified.
//
// The zero value is an empty Buffer ready to use. A Buffer is not safe for
// concurrent use.
type Buffer[T any] struct {
	s   series[[][]T]
	gen uint64 // checkpoint generation, see [Buffer.WriteDelta]
}

// Add stores parts as the partitions of the parent batch at t, replacing any
// batch already stored at t. Adding in increasing time order is O(1)
// amortized; an out-of-order time is inserted in place.
func (b *Buffer[T]) Add(t time.Time, parts [][]T) {
	empty := true
	for _, p := range parts {
		empty = empty && len(p) == 0
	}
	b.s.add(t, parts, empty)
}

// Changed reports whether [Buffer.WriteDelta] would write anything that a
// restore needs, as [Panes.Changed] does: a batch without records is no
// change (a buffer restored without it yields the same records, in fewer
// partitions), nor is a drop.
func (b *Buffer[T]) Changed() bool { return b.s.changedSince() }

// Len returns the number of batches held.
func (b *Buffer[T]) Len() int { return len(b.s.items) }

// Range yields the batches with a time in (from, to], in increasing time
// order. The batches are looked up when the iteration starts; Add and Drop
// must not be called during it.
func (b *Buffer[T]) Range(from, to time.Time) iter.Seq2[time.Time, [][]T] {
	return b.s.all(from, to)
}

// Drop removes the batches at times before the given one.
func (b *Buffer[T]) Drop(before time.Time) {
	b.s.drop(before)
}

// Parts returns the partitions of the batches with a time in (from, to]:
// those of the oldest batch first, each batch's partitions in their order,
// empty partitions included. The partitions themselves are shared with the
// buffer, not copied.
func (b *Buffer[T]) Parts(from, to time.Time) [][]T {
	batches := b.s.span(from, to)
	n := 0
	for _, e := range batches {
		n += len(e.v)
	}
	out := make([][]T, 0, n)
	for _, e := range batches {
		out = append(out, e.v...)
	}
	return out
}

// Window returns the partitions of the window at t, [Buffer.Parts] of the
// batches in (t − Window, t] after zero, then drops the batches that no later
// window uses (those before s.First(t + Slide)). The spec is assumed valid
// (see [Spec.Validate]).
func (b *Buffer[T]) Window(s Spec, zero, t time.Time) [][]T {
	from, to := s.Covers(t)
	if from.Before(zero) {
		from = zero
	}
	out := b.Parts(from, to)
	b.Drop(s.First(t.Add(s.Slide)))
	return out
}
