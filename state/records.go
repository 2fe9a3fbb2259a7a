package state

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/google/btree"
)

// EachChange calls f with every key changed since the last
// [Store.ResetChanges], in no set order: its encoded key and its current
// encoded value, or a nil value for a key deleted. key and value are valid
// only during the call. It stops at f's first error and returns it. It
// costs O(c) in the number c of changed keys and does not reset the
// pending changes.
func (s *Store[K, V]) EachChange(f func(key, value []byte) error) error {
	var kbuf []byte
	for k, c := range s.changes {
		e := entry[K]{key: k, enc: c.enc, klen: c.klen}
		kb := e.encodedKey()
		if !s.byBytes {
			var err error
			if kbuf, err = AppendEncode(s.keys, kbuf[:0], k); err != nil {
				return fmt.Errorf("state: encode key %v: %w", k, err)
			}
			kb = kbuf
		}
		var v []byte
		if !c.deleted {
			v = e.value()
			if v == nil {
				v = []byte{}
			}
		}
		if err := f(kb, v); err != nil {
			return err
		}
	}
	return nil
}

// Load replaces the store's contents with the records load passes to apply,
// encoded keys and values in the order a compacted log holds them: a later
// record for a key replaces an earlier one, and a nil value deletes the key
// (an empty, non-nil value is a value). It builds the tree in key order at
// the end, as [Store.ReadSnapshot] does, and clears the pending changes:
// what was loaded is not a change. Every key and value is checked to
// decode; on any error, which matches [ErrCorrupt] for a record that does
// not decode and is otherwise load's own, the store is left as it was.
// apply copies what it keeps, so load may reuse its slices.
func (s *Store[K, V]) Load(load func(apply func(key, value []byte) error) error) error {
	// Records are collected as they come, tombstones included, then
	// sorted stably by key: the last record of each key is its state.
	var recs []deltaRecord[K]
	var ar arena
	var cbuf []byte
	n := 0
	err := load(func(kb, vb []byte) error {
		n++
		k, err := s.keys.Decode(kb)
		if err != nil {
			return fmt.Errorf("%w: record %d: key does not decode: %v", ErrCorrupt, n, err)
		}
		if s.byBytes {
			canon, err := AppendEncode(s.keys, cbuf[:0], k)
			cbuf = canon
			if err != nil || !bytes.Equal(canon, kb) {
				return fmt.Errorf("%w: record %d: key %v is not in the key codec's canonical encoding", ErrCorrupt, n, k)
			}
		}
		if len(kb) > maxEncodedLen || len(vb) > maxEncodedLen {
			return fmt.Errorf("%w: record %d: key %v or its value is longer than the limit of %d bytes", ErrCorrupt, n, k, maxEncodedLen)
		}
		e := entry[K]{key: k, gen: s.gen}
		if s.byBytes {
			e.klen = uint32(len(kb))
		}
		if vb != nil {
			if _, err := s.values.Decode(vb); err != nil {
				return fmt.Errorf("%w: record %d: value of key %v does not decode: %v", ErrCorrupt, n, k, err)
			}
		}
		if m := int(e.klen) + len(vb); m > 0 {
			e.enc = ar.alloc(m)
			copy(e.enc, kb[:e.klen])
			copy(e.enc[e.klen:], vb)
		}
		recs = append(recs, deltaRecord[K]{e: e, deleted: vb == nil})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortStableFunc(recs, func(a, b deltaRecord[K]) int { return s.compare(a.e, b.e) })
	// Lay the encodings out in key order, as a snapshot restore does, so
	// that walks over the whole store read memory in order.
	var sorted arena
	t := btree.NewG(btreeDegree, s.less)
	for i, r := range recs {
		if r.deleted || (i+1 < len(recs) && s.compare(r.e, recs[i+1].e) == 0) {
			continue // deleted, or replaced by a later record
		}
		e := r.e
		if len(e.enc) > 0 {
			enc := sorted.alloc(len(e.enc))
			copy(enc, e.enc)
			e.enc = enc
		}
		t.ReplaceOrInsert(e)
	}
	s.tree = t
	s.changes = make(map[K]change)
	s.changesShared = false
	return nil
}
