package window

import (
	"iter"
	"slices"
	"time"
)

// series is a list of values keyed by distinct times, kept in increasing time
// order. It is the storage under [Panes] and [Buffer]: values arrive almost
// always at a time after the newest one and leave from the oldest end, so
// both are amortized O(1); a lookup by interval is a binary search.
//
// When tracking is on, the series remembers what changed since the last
// delta: the times added (still present) and the newest Drop horizon.
type series[E any] struct {
	items []entry[E]

	tracking bool        // changes since the last delta are being recorded
	added    []time.Time // times added since the last delta, in the order added
	dropped  time.Time   // the newest Drop horizon since the last delta
	hasDrop  bool
	// dirty says a value that holds data was added, or a value replaced,
	// since the last delta. Empty values and drops alone leave it false:
	// a state restored without them computes the same windows (see
	// [Panes.Changed]).
	dirty bool
}

type entry[E any] struct {
	t time.Time
	v E
}

// search returns the index of the first item whose time is not before t.
func (s *series[E]) search(t time.Time) (int, bool) {
	return slices.BinarySearchFunc(s.items, t, func(e entry[E], t time.Time) int {
		return e.t.Compare(t)
	})
}

// after returns the index of the first item whose time is after t.
func (s *series[E]) after(t time.Time) int {
	i, found := s.search(t)
	if found {
		i++
	}
	return i
}

// add stores v at t, replacing any value already stored at t; empty says v
// holds no data.
func (s *series[E]) add(t time.Time, v E, empty bool) {
	if s.tracking {
		s.added = append(s.added, t)
		s.dirty = s.dirty || !empty
	}
	if n := len(s.items); n == 0 || t.After(s.items[n-1].t) {
		s.items = append(s.items, entry[E]{t: t, v: v})
		return
	}
	i, found := s.search(t)
	if found {
		s.items[i].v = v
		s.dirty = s.dirty || s.tracking
		return
	}
	s.items = slices.Insert(s.items, i, entry[E]{t: t, v: v})
}

// get returns the value stored at t.
func (s *series[E]) get(t time.Time) (E, bool) {
	i, found := s.search(t)
	if !found {
		var zero E
		return zero, false
	}
	return s.items[i].v, true
}

// span returns the items with a time in (from, to], oldest first. The slice
// aliases the series: it is valid until the next add or drop.
func (s *series[E]) span(from, to time.Time) []entry[E] {
	if !to.After(from) {
		return nil
	}
	lo, hi := s.after(from), s.after(to)
	if hi <= lo {
		return nil
	}
	return s.items[lo:hi]
}

// all yields the items with a time in (from, to], oldest first.
func (s *series[E]) all(from, to time.Time) iter.Seq2[time.Time, E] {
	return func(yield func(time.Time, E) bool) {
		for _, e := range s.span(from, to) {
			if !yield(e.t, e.v) {
				return
			}
		}
	}
}

// drop removes the items with a time before the given one.
func (s *series[E]) drop(before time.Time) {
	if s.tracking && (!s.hasDrop || before.After(s.dropped)) {
		s.dropped, s.hasDrop = before, true
		// Times are added almost always in increasing order, so the ones now
		// dropped sit at the front; any left behind are skipped by changed.
		n := 0
		for n < len(s.added) && s.added[n].Before(before) {
			n++
		}
		s.added = s.added[n:]
	}
	i, _ := s.search(before)
	if i == 0 {
		return
	}
	clear(s.items[:i]) // let the dropped values be collected now
	s.items = s.items[i:]
}

// reset empties the series and stops tracking.
func (s *series[E]) reset() {
	*s = series[E]{}
}

// track starts a new delta: forget what was recorded and record from now on.
func (s *series[E]) track() {
	s.tracking = true
	s.added = s.added[:0]
	s.dirty = false
	s.hasDrop = false
	s.dropped = time.Time{}
}

// changedSince reports whether a delta written now would hold something a
// restore needs: everything when nothing was written yet, otherwise values
// with data added, or values replaced, since the last delta.
func (s *series[E]) changedSince() bool { return !s.tracking || s.dirty }

// changed returns the items added since the last delta that are still
// present, oldest first, each once.
func (s *series[E]) changed() []entry[E] {
	if len(s.added) == 0 {
		return nil
	}
	ts := slices.Clone(s.added)
	slices.SortFunc(ts, time.Time.Compare)
	ts = slices.CompactFunc(ts, time.Time.Equal)
	out := make([]entry[E], 0, len(ts))
	for _, t := range ts {
		if v, ok := s.get(t); ok {
			out = append(out, entry[E]{t: t, v: v})
		}
	}
	return out
}
