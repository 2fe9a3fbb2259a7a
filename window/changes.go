package window

import "time"

// Changes of a window's state one by one, for state kept as records (a job
// in group mode keeps each task's window in a compacted changelog) rather
// than in checkpoint files. TrackChanges and TakeChanges use the change
// tracking that WriteDelta and ReadSnapshot use for checkpoints: a window
// uses one or the other.

// TrackChanges starts recording the panes added and dropped, for
// [Panes.TakeChanges], forgetting what was recorded before.
func (p *Panes[K, V]) TrackChanges() { p.s.track() }

// TakeChanges calls pane for every pane with data added since
// [Panes.TrackChanges] or the last TakeChanges and still held, oldest first
// (pane must not modify the map), returns the newest horizon [Panes.Drop]
// was called with meanwhile (ok false when it was not), and starts
// recording anew. It stops at pane's first error and returns it.
func (p *Panes[K, V]) TakeChanges(pane func(t time.Time, m map[K]V) error) (dropBefore time.Time, ok bool, err error) {
	return takeChanges(&p.s, pane)
}

func takeChanges[K comparable, V any](s *series[map[K]V], pane func(t time.Time, m map[K]V) error) (time.Time, bool, error) {
	for _, e := range s.changed() {
		if len(e.v) == 0 {
			continue
		}
		if err := pane(e.t, e.v); err != nil {
			return time.Time{}, false, err
		}
	}
	at, ok := s.horizon()
	s.track()
	return at, ok, nil
}

// TrackChanges starts recording the panes added and dropped and the keys
// whose window value changes, for [Incremental.TakeChanges], forgetting
// what was recorded before.
func (w *Incremental[K, V]) TrackChanges() { w.track() }

// TakeChanges is [Panes.TakeChanges] for the window's panes that also calls
// key for every key whose value in the current window changed since
// [Incremental.TrackChanges] or the last TakeChanges, in no set order, with
// its value and true, or false when it left the window.
func (w *Incremental[K, V]) TakeChanges(pane func(t time.Time, m map[K]V) error, key func(k K, v V, ok bool) error) (dropBefore time.Time, ok bool, err error) {
	for k := range w.dirty {
		v, ok := w.cur[k]
		if err := key(k, v, ok); err != nil {
			return time.Time{}, false, err
		}
	}
	clear(w.dirty)
	return takeChanges(&w.panes.s, pane)
}

// Load sets the current window, the window's value by key as of the step at
// at, of an Incremental being rebuilt from its parts: its panes added with
// [Incremental.Add], the panes of the window at at and those after it, then
// Load. Incremental takes ownership of cur.
func (w *Incremental[K, V]) Load(at time.Time, cur map[K]V) {
	if cur == nil {
		cur = make(map[K]V)
	}
	w.cur, w.at, w.stepped = cur, at, true
}
