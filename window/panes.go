package window

import (
	"iter"
	"time"
)

// Panes holds per-batch partial aggregates by key: one pane, a map[K]V, per
// parent batch time, typically the batch reduced by key. A window's aggregate
// is the combination of the panes inside it ([Panes.Combine]); an
// incremental window ([Incremental]) also reads the panes that leave it.
//
// Panes are immutable once added: Add takes ownership of the map, and the
// maps that Range yields must not be modified. Only the panes that a future
// window can use should be kept: [Panes.Window] drops the others itself, and
// callers that use Combine directly call [Panes.Drop].
//
// The zero value is an empty Panes ready to use. A Panes is not safe for
// concurrent use.
type Panes[K comparable, V any] struct {
	s   series[map[K]V]
	gen uint64 // checkpoint generation, see [Panes.WriteDelta]
}

// Add stores pane as the pane of the parent batch at t, replacing any pane
// already stored at t. Adding in increasing time order is O(1) amortized;
// an out-of-order time is inserted in place. A nil or empty pane is stored
// as well: it marks a batch without data.
func (p *Panes[K, V]) Add(t time.Time, pane map[K]V) {
	p.s.add(t, pane, len(pane) == 0)
}

// Changed reports whether [Panes.WriteDelta] would write anything that a
// restore needs: always before the panes were first written or read, and
// afterwards when a pane with data was added, or a pane replaced, since the
// last delta or snapshot. Adding empty panes and dropping panes are no
// changes: panes restored without them give the same windows, since an
// empty pane adds nothing and a dropped pane is in no later window. A
// caller that checkpoints after every batch may skip WriteDelta while
// Changed is false; the next delta carries what was added meanwhile and
// the newest drop horizon.
func (p *Panes[K, V]) Changed() bool { return p.s.changedSince() }

// Len returns the number of panes held.
func (p *Panes[K, V]) Len() int { return len(p.s.items) }

// Range yields the panes with a time in (from, to], in increasing time
// order. The panes are looked up when the iteration starts; Add and Drop
// must not be called during it.
func (p *Panes[K, V]) Range(from, to time.Time) iter.Seq2[time.Time, map[K]V] {
	return p.s.all(from, to)
}

// Drop removes the panes at times before the given one.
func (p *Panes[K, V]) Drop(before time.Time) {
	p.s.drop(before)
}

// Combine returns a new map holding, for every key present in a pane with a
// time in (from, to], the reduction of its values in increasing time order:
// reduce(reduce(v1, v2), v3)…; a key present in one pane keeps that value
// and reduce is not called for it. Panes at other times are not read, and
// the panes are not modified: reduce must not modify its arguments.
func (p *Panes[K, V]) Combine(from, to time.Time, reduce func(V, V) V) map[K]V {
	panes := p.s.span(from, to)
	n := 0
	for _, e := range panes {
		n = max(n, len(e.v))
	}
	out := make(map[K]V, n)
	for _, e := range panes {
		fold(out, e.v, reduce)
	}
	return out
}

// Window returns the aggregate of the window at t, as Spark's
// reduceByKeyAndWindow without an inverse function computes it: the
// [Panes.Combine] of the panes in (t − Window, t] that are after zero, so a
// key absent from every pane of the window is absent from the result. It
// then drops the panes that no later window uses (those before
// s.First(t + Slide)), so callers that emit every window through Window keep
// at most Window/Parent panes plus the batches added since t. The spec is
// assumed valid (see [Spec.Validate]).
func (p *Panes[K, V]) Window(s Spec, zero, t time.Time, reduce func(V, V) V) map[K]V {
	from, to := s.Covers(t)
	if from.Before(zero) {
		from = zero
	}
	out := p.Combine(from, to, reduce)
	p.Drop(s.First(t.Add(s.Slide)))
	return out
}

// fold reduces every value of pane into acc, keyed: acc[k] = reduce(acc[k], v)
// where acc already has k, acc[k] = v otherwise.
func fold[K comparable, V any](acc, pane map[K]V, reduce func(V, V) V) {
	for k, v := range pane {
		if a, ok := acc[k]; ok {
			acc[k] = reduce(a, v)
		} else {
			acc[k] = v
		}
	}
}
