package window

import (
	"errors"
	"fmt"
	"iter"
	"time"
)

var (
	// ErrOutOfOrder is wrapped by the error [Incremental.Step] returns when
	// it is not called at the next emission time after the previous step.
	ErrOutOfOrder = errors.New("window: incremental window stepped out of order")

	// ErrFilteredKey is wrapped by the error [Incremental.Step] returns when
	// a key leaves the window although the previous window had no value for
	// it and no entering batch has one: the keep filter dropped the key while
	// batches of the window still held values for it. Spark's
	// ReducedWindowedDStream fails the batch in the same case.
	ErrFilteredKey = errors.New("window: a key dropped by the keep filter still had values in the window")
)

// Incremental computes a keyed window aggregate incrementally with an
// inverse function, as Spark's ReducedWindowedDStream (the
// reduceByKeyAndWindow form that takes an inverse function) does: the window
// at t is derived from the window at t − Slide by taking out the panes that
// left it and adding the panes that entered it, so the cost of a step grows
// with the keys of those panes, not with the window length.
//
// # Semantics
//
// At every emission time t (see [Spec.Emits]) [Incremental.Step] computes,
// for every key k of the previous window or of a leaving or entering pane,
// with old the reduction of k's values in the leaving panes and new the
// reduction of its values in the entering panes (each in time order):
//
//   - previous value v present: inverse(v, old) if k has leaving values, then
//     reduce(that, new) if k has entering values; a key with neither keeps v;
//   - previous value absent, entering values present: new;
//   - previous value absent, only leaving values: the step fails with
//     [ErrFilteredKey], as Spark does.
//
// A key therefore stays in the window, at the reduce function's "zero"
// (v − v for a sum), after its last value left; Spark's output shows the same
// (a count of 0). The optional keep filter removes keys: after every step it
// is called for every key of the window — not only the changed ones, as
// Spark applies its filterFunc to the whole result — so a step with a filter
// costs O(keys in the window). Without a filter no step reads a key that is
// not in a leaving or entering pane. See [Spec.Expired] for which panes leave
// and enter, including when Slide > Window.
//
// The reduce and inverse functions must not modify their arguments; with a
// true inverse (inverse(reduce(a, b), b) == a) the result equals the
// reduction of the window's panes for every key still held. Panes are added
// with [Incremental.Add] as the parent's batches are reduced by key; a pane
// for time t must be added before the step at t.
//
// An Incremental is not safe for concurrent use.
type Incremental[K comparable, V any] struct {
	reduce, inverse func(V, V) V
	keep            func(K, V) bool

	panes   Panes[K, V]
	cur     map[K]V
	at      time.Time // the time of the last step
	stepped bool

	gen      uint64 // checkpoint generation, see [Incremental.WriteDelta]
	tracking bool
	dirty    map[K]struct{} // keys set or deleted since the last delta

	olds, news map[K]V // per-step scratch, kept empty between steps
}

// NewIncremental returns an empty incremental window that combines values
// with reduce, takes them out with inverse and, when keep is not nil, keeps
// after each step only the keys for which keep returns true. It panics if
// reduce or inverse is nil.
func NewIncremental[K comparable, V any](reduce, inverse func(V, V) V, keep func(K, V) bool) *Incremental[K, V] {
	if reduce == nil {
		panic("window: NewIncremental: reduce function is nil")
	}
	if inverse == nil {
		panic("window: NewIncremental: inverse function is nil; use Panes.Window for windows without one")
	}
	return &Incremental[K, V]{
		reduce:  reduce,
		inverse: inverse,
		keep:    keep,
		cur:     make(map[K]V),
		dirty:   make(map[K]struct{}),
		olds:    make(map[K]V),
		news:    make(map[K]V),
	}
}

// Add stores pane, the parent batch at t reduced by key, as [Panes.Add] does.
// Incremental takes ownership of the map. t must be after the time of the
// last step: a pane added for an earlier time was never reduced into the
// window, yet would be inverse-reduced out of it when it leaves.
func (w *Incremental[K, V]) Add(t time.Time, pane map[K]V) {
	w.panes.Add(t, pane)
}

// Changed reports whether [Incremental.WriteDelta] would write anything
// that a restore needs: always before the window was first written or
// read, and afterwards when a step changed or removed a key's value, or a
// pane with data was added, since the last delta or snapshot (see
// [Panes.Changed]). A step that changes no key is no change by itself: a
// window restored at the earlier step time takes out and adds the same
// panes at its next step, since every pane with data that left the window
// meanwhile would have changed a key. A caller that checkpoints after every
// batch may skip WriteDelta while Changed is false.
func (w *Incremental[K, V]) Changed() bool {
	return !w.tracking || len(w.dirty) > 0 || w.panes.s.changedSince()
}

// NumPanes returns the number of panes held: those of the current window and
// those added after its time.
func (w *Incremental[K, V]) NumPanes() int { return w.panes.Len() }

// Len returns the number of keys in the current window.
func (w *Incremental[K, V]) Len() int { return len(w.cur) }

// Get returns the current window's value for k.
func (w *Incremental[K, V]) Get(k K) (V, bool) {
	v, ok := w.cur[k]
	return v, ok
}

// All yields the keys of the current window and their values, in no
// particular order. Step must not be called during the iteration.
func (w *Incremental[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for k, v := range w.cur {
			if !yield(k, v) {
				return
			}
		}
	}
}

// Time returns the time of the last step, and false before the first one.
func (w *Incremental[K, V]) Time() (time.Time, bool) {
	return w.at, w.stepped
}

// Step computes the window at t from the window of the previous step and the
// panes that leave and enter it (see [Incremental] for the exact rules), then
// drops the panes before s.First(t), which no later step reads.
//
// Steps come at emission times, in order, each usually Slide after the
// last. A step may skip emission times — a job restarted
// after downtime does not replay the batch times it missed — and then the
// panes leaving are all those of the last step's window that are not in the
// window at t, and the panes entering all those of the window at t that were
// not in the last one. A step at or before the last one, or when s is
// invalid, returns an error wrapping [ErrOutOfOrder] or [ErrInvalid] and
// changes nothing. It also changes nothing when it fails with
// [ErrFilteredKey].
func (w *Incremental[K, V]) Step(s Spec, zero, t time.Time) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if !s.Emits(zero, t) {
		return fmt.Errorf("%w: %s is not an emission time of a window sliding every %v from %s; step only at zero + k·slide, k ≥ 1",
			ErrOutOfOrder, stamp(t), s.Slide, stamp(zero))
	}
	var prev time.Time // the time of the window this step starts from
	switch {
	case w.stepped && !w.at.Before(t):
		return fmt.Errorf("%w: step at %s, but the last step was at %s; step at emission times in order (the next one is %s)",
			ErrOutOfOrder, stamp(t), stamp(w.at), stamp(w.at.Add(s.Slide)))
	case w.stepped:
		prev = w.at
	default:
		prev = zero // nothing before zero: the first window is built from its panes
	}

	// Leaving: in the window at prev, (prev−w, prev], but not in the one at
	// t, (t−w, t]. Entering: in the window at t but not in the one at prev.
	// With prev = t − slide this is Spark's ReducedWindowedDStream.
	tw := t.Add(-s.Window)
	leaving := Interval{From: prev.Add(-s.Window), To: earlier(prev, tw)}
	entering := Interval{From: later(prev, tw), To: t}
	leaving.From = later(leaving.From, zero)
	entering.From = later(entering.From, zero)
	olds, news := w.olds, w.news
	defer func() {
		clear(olds)
		clear(news)
	}()
	for _, e := range w.panes.s.span(leaving.From, leaving.To) {
		fold(olds, e.v, w.reduce)
	}
	for _, e := range w.panes.s.span(entering.From, entering.To) {
		fold(news, e.v, w.reduce)
	}
	for k := range olds {
		if _, ok := w.cur[k]; ok {
			continue
		}
		if _, ok := news[k]; !ok {
			return fmt.Errorf("%w: key %v has values in batches leaving the window at %s but no value in the window at %s; "+
				"the keep filter must drop only keys whose window value is the reduce function's zero (for counts or sums, keep v != 0)",
				ErrFilteredKey, k, stamp(t), stamp(prev))
		}
	}

	for k, o := range olds {
		v, ok := w.cur[k]
		if !ok {
			continue // no previous value: the entering values alone, below
		}
		v = w.inverse(v, o)
		if n, ok := news[k]; ok {
			v = w.reduce(v, n)
			delete(news, k)
		}
		w.cur[k] = v
		w.touch(k)
	}
	for k, n := range news {
		if v, ok := w.cur[k]; ok {
			w.cur[k] = w.reduce(v, n)
		} else {
			w.cur[k] = n
		}
		w.touch(k)
	}
	if w.keep != nil {
		for k, v := range w.cur {
			if !w.keep(k, v) {
				delete(w.cur, k)
				w.touch(k)
			}
		}
	}
	w.at, w.stepped = t, true
	w.panes.Drop(s.First(t))
	return nil
}

// touch records that k changed, when changes are being tracked for deltas.
func (w *Incremental[K, V]) touch(k K) {
	if w.tracking {
		w.dirty[k] = struct{}{}
	}
}

// earlier returns the earlier of a and b.
func earlier(a, b time.Time) time.Time {
	if a.After(b) {
		return b
	}
	return a
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// stamp formats t for error messages, without a monotonic clock reading.
func stamp(t time.Time) string {
	return t.Format(time.RFC3339Nano)
}
