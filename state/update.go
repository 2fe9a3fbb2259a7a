package state

import (
	"bytes"
	"fmt"
	"slices"
	"unsafe"
)

// UpdateAll calls f once for every key in the store, in ascending key
// order, then once for every key of keys that is not in it, in ascending key
// order, and stores what f returns: f(i, k, v, exists) gets the key's index
// in keys (or -1 for a stored key that keys does not hold), its stored value
// and whether it is stored; it returns the key's new value and whether to
// keep it. Returning false deletes a stored key and leaves an absent key
// absent.
//
// It is the whole-store pass that operators like UpdateStateByKey make every
// batch, and it is tight: it finds the keys of keys with one lookup each,
// then walks the tree once without comparing or hashing the stored keys; a
// value whose encoding does not change is neither rewritten nor marked
// changed; a changed value of the same encoded length is overwritten in
// place when its buffer is the store's alone (see [Store.Set]). With a value
// codec that implements [Appender] and does not allocate to decode, visiting
// a key whose value does not change, or changes in place, allocates nothing.
// New keys, deletions and values that change length are applied after the
// walk.
//
// keys must be distinct; a key given twice is an error, and so is a key or
// value the codecs cannot encode. On error the store may hold some of the
// updates. f must not use the store.
func (s *Store[K, V]) UpdateAll(keys []K, f func(i int, k K, v V, exists bool) (V, bool)) error {
	probes, order, err := s.sortedProbes(keys)
	if err != nil {
		return err
	}
	// Split keys into stored ones, known during the walk by the address
	// of their value buffer (unique to each entry), and new ones.
	type storedKey struct {
		buf *byte
		i   int32
	}
	var (
		stored  []storedKey
		missing []int32
		compare bool // some stored key has an empty encoding: no address
	)
	for _, i := range order {
		e, ok := s.tree.Get(probes[i])
		switch {
		case !ok:
			missing = append(missing, i)
		case len(e.enc) == 0:
			compare = true
			fallthrough
		default:
			stored = append(stored, storedKey{unsafe.SliceData(e.enc), i})
		}
	}

	app, _ := s.values.(Appender[V])
	type pendingSet struct {
		k K
		v V
	}
	var (
		sets []pendingSet
		dels []K
		next int
	)
	vbuf := s.vbuf[:0]
	s.tree.Ascend(func(e entry[K]) bool {
		i := -1
		if next < len(stored) {
			hit := false
			if compare {
				hit = !s.less(e, probes[stored[next].i]) // stored keys are ≥ e
			} else {
				hit = len(e.enc) > 0 && unsafe.SliceData(e.enc) == stored[next].buf
			}
			if hit {
				i = int(stored[next].i)
				next++
			}
		}
		v, keep := f(i, e.key, s.decodeValue(e), true)
		if !keep {
			dels = append(dels, e.key)
			return true
		}
		if app != nil {
			vbuf, err = app.AppendEncode(vbuf[:0], v)
		} else {
			vbuf, err = AppendEncode(s.values, vbuf[:0], v)
		}
		if err != nil {
			err = fmt.Errorf("state: store cannot encode the value for key %v: %w", e.key, err)
			return false
		}
		old := e.value()
		switch {
		case bytes.Equal(vbuf, old):
			// Unchanged: nothing to write, nothing to checkpoint.
		case e.gen == s.gen && len(vbuf) == len(old):
			copy(old, vbuf) // the buffer is ours alone
			s.noteChange(e.key, change{enc: e.enc, klen: e.klen})
		default:
			sets = append(sets, pendingSet{e.key, v})
		}
		return true
	})
	s.vbuf = vbuf
	if err != nil {
		return err
	}
	var zero V
	for _, i := range missing {
		if v, keep := f(int(i), keys[i], zero, false); keep {
			sets = append(sets, pendingSet{keys[i], v})
		}
	}
	for _, k := range dels {
		s.Delete(k)
	}
	for _, p := range sets {
		if err := s.Set(p.k, p.v); err != nil {
			return err
		}
	}
	return nil
}

// sortedProbes returns a search entry per key and the keys' indices in the
// store's order, and rejects a key given twice.
func (s *Store[K, V]) sortedProbes(keys []K) ([]entry[K], []int32, error) {
	if len(keys) == 0 {
		return nil, nil, nil
	}
	probes := make([]entry[K], len(keys))
	var ar arena
	for i, k := range keys {
		p, kb, err := s.probe(k, s.kbuf)
		s.kbuf = kb
		if err != nil {
			return nil, nil, err
		}
		if s.byBytes {
			p.enc = ar.alloc(len(kb))
			copy(p.enc, kb)
		}
		probes[i] = p
	}
	order := make([]int32, len(keys))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return s.compare(probes[a], probes[b]) })
	for j := 1; j < len(order); j++ {
		if !s.less(probes[order[j-1]], probes[order[j]]) {
			return nil, nil, fmt.Errorf("state: UpdateAll got key %v twice; pass each key once", keys[order[j]])
		}
	}
	return probes, order, nil
}

// Update looks k up once and stores what f returns: f(v, exists) gets k's
// value and whether it is stored, and returns the new value and whether to
// keep it; returning false deletes k, or leaves it absent. It costs one
// search of the tree when the value does not change (nothing is written or
// marked changed) or changes in place (same encoded length, a buffer the
// store's alone; see [Store.Set]), and a second one to insert a new key or
// a value that changes length. f must not use the store. On error, which a
// codec that cannot encode k or the value causes, the store is unchanged.
func (s *Store[K, V]) Update(k K, f func(v V, exists bool) (V, bool)) error {
	p, kb, err := s.probe(k, s.kbuf)
	s.kbuf = kb
	if err != nil {
		return err
	}
	e, found := s.tree.Get(p)
	var v V
	if found {
		v = s.decodeValue(e)
	}
	nv, keep := f(v, found)
	switch {
	case !keep && found:
		s.Delete(k)
		return nil
	case !keep:
		return nil
	case !found:
		return s.Set(k, nv)
	}
	vb, err := AppendEncode(s.values, s.vbuf[:0], nv)
	s.vbuf = vb
	if err != nil {
		return fmt.Errorf("state: store cannot encode the value for key %v: %w", e.key, err)
	}
	old := e.value()
	switch {
	case bytes.Equal(vb, old):
		return nil
	case e.gen == s.gen && len(vb) == len(old):
		copy(old, vb)
		s.noteChange(e.key, change{enc: e.enc, klen: e.klen})
		return nil
	}
	return s.Set(k, nv)
}
