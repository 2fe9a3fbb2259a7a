package state

import (
	"bytes"
	"fmt"
	"slices"
)

// UpdateAll calls f once for every key in the store and once for every key
// of keys that is not in it, merged in ascending key order, and stores what f
// returns: f(i, k, v, exists) gets the key's index in keys (or -1 for a
// stored key that keys does not hold), its stored value and whether it is
// stored; it returns the key's new value and whether to keep it. Returning
// false deletes a stored key and leaves an absent key absent.
//
// It is the whole-store pass that operators like UpdateStateByKey make every
// batch, and it is tight: it walks the tree once and does no lookup per key;
// a value whose encoding does not change is neither rewritten nor marked
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
	app, _ := s.values.(Appender[V])
	type pendingSet struct {
		k K
		v V
	}
	var (
		sets []pendingSet
		dels []K
		next int
		zero V
	)
	visitNew := func(i int32) {
		if v, keep := f(int(i), keys[i], zero, false); keep {
			sets = append(sets, pendingSet{keys[i], v})
		}
	}
	vbuf := s.vbuf[:0]
	s.tree.Ascend(func(e entry[K]) bool {
		for next < len(order) && s.less(probes[order[next]], e) {
			visitNew(order[next])
			next++
		}
		i := -1
		if next < len(order) && !s.less(e, probes[order[next]]) {
			i = int(order[next])
			next++
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
	for ; next < len(order); next++ {
		visitNew(order[next])
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
	slices.SortFunc(order, func(a, b int32) int {
		switch {
		case s.less(probes[a], probes[b]):
			return -1
		case s.less(probes[b], probes[a]):
			return 1
		}
		return 0
	})
	for j := 1; j < len(order); j++ {
		if !s.less(probes[order[j-1]], probes[order[j]]) {
			return nil, nil, fmt.Errorf("state: UpdateAll got key %v twice; pass each key once", keys[order[j]])
		}
	}
	return probes, order, nil
}
