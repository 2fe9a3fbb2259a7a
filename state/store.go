package state

import (
	"bytes"
	"cmp"
	"fmt"
	"iter"
	"maps"
	"strings"

	"github.com/google/btree"
)

// btreeDegree is the branching factor of a Store's tree: nodes hold up to
// 2*32-1 entries, which keeps trees shallow and node copies (on insert and
// copy-on-write) small.
const btreeDegree = 32

// maxEncodedLen bounds one encoded key or value. Store refuses longer ones on
// Set and the snapshot and delta readers reject them as corrupt, so a
// damaged length can never make a reader allocate without bound.
const maxEncodedLen = 1 << 30

// Store is an ordered map from K to V that holds keys and values encoded,
// tracks which keys changed since the last checkpoint, and writes itself as a
// full snapshot or as a delta of the changed keys.
//
// Order: when K is one of Go's built-in ordered types (string, the integer
// and float types) keys are ordered by [cmp.Compare]; otherwise by the bytes
// of their encoding (bytes.Compare), and the encoded key is kept beside the
// value. The choice is made once by [NewStore].
//
// Concurrency: Get, Len, All, Changed, WriteSnapshot and WriteDelta only read
// and may run at the same time as each other; every other method needs
// exclusive access. A [Store.Clone] is independent of its origin, so one
// goroutine may write a snapshot of a clone while another updates the origin.
//
// The zero Store is not usable; create stores with [NewStore].
type Store[K comparable, V any] struct {
	keys    Codec[K]
	values  Codec[V]
	less    func(a, b entry[K]) bool
	compare func(a, b entry[K]) int
	byBytes bool // keys ordered by encoding; entry.enc starts with the key
	tree    *btree.BTreeG[entry[K]]

	// gen tells which value buffers this store may overwrite in place: an
	// entry whose gen equals the store's was allocated after the store's
	// last Clone and is referenced by no other tree. Clone bumps gen on both
	// sides, so buffers that existed at the clone are copied on write.
	gen uint64

	// changes holds every key set or deleted since ResetChanges, with its
	// current encoding, so that WriteDelta never searches the tree. After a
	// Clone the map is shared and copied by whichever side writes first.
	changes       map[K]change
	changesShared bool

	kbuf, vbuf []byte // scratch for encoding in Set and Delete
}

// entry is one key of a Store's tree.
type entry[K comparable] struct {
	key  K
	enc  []byte // encoded key (byte-ordered stores only), then the encoded value
	klen uint32 // length of the encoded key at the start of enc
	gen  uint64 // Store.gen when enc was allocated
}

func (e entry[K]) encodedKey() []byte { return e.enc[:e.klen] }
func (e entry[K]) value() []byte      { return e.enc[e.klen:] }

// change is a pending update of one key: its entry's encoding when set, or
// only its encoded key (byte-ordered stores) when deleted.
type change struct {
	enc     []byte
	klen    uint32
	deleted bool
}

// NewStore returns an empty store that encodes keys with keys and values with
// values. It panics if either codec is nil.
func NewStore[K comparable, V any](keys Codec[K], values Codec[V]) *Store[K, V] {
	if keys == nil || values == nil {
		panic("state: NewStore needs a key codec and a value codec; CodecFor[T]() gives a ready one")
	}
	o := orderFor[K]()
	return &Store[K, V]{
		keys:    keys,
		values:  values,
		less:    o.less,
		compare: o.compare,
		byBytes: o.byBytes,
		tree:    btree.NewG(btreeDegree, o.less),
		gen:     1,
		changes: make(map[K]change),
	}
}

// keyOrder is how a Store orders its entries.
type keyOrder[K comparable] struct {
	less    func(a, b entry[K]) bool
	compare func(a, b entry[K]) int
	byBytes bool // by encoded key; entry.enc starts with the key
}

// orderFor picks the entry order for K by a type switch on its zero value:
// the ordered built-in types compare keys directly, as cmp.Compare does;
// everything else compares encoded keys.
func orderFor[K comparable]() keyOrder[K] {
	var zero K
	var o any
	switch any(zero).(type) {
	case string:
		o = keyOrder[string]{
			less:    lessOrdered[string],
			compare: func(a, b entry[string]) int { return strings.Compare(a.key, b.key) },
		}
	case int:
		o = integerOrder[int]()
	case int8:
		o = integerOrder[int8]()
	case int16:
		o = integerOrder[int16]()
	case int32:
		o = integerOrder[int32]()
	case int64:
		o = integerOrder[int64]()
	case uint:
		o = integerOrder[uint]()
	case uint8:
		o = integerOrder[uint8]()
	case uint16:
		o = integerOrder[uint16]()
	case uint32:
		o = integerOrder[uint32]()
	case uint64:
		o = integerOrder[uint64]()
	case uintptr:
		o = integerOrder[uintptr]()
	case float32:
		o = floatOrder[float32]()
	case float64:
		o = floatOrder[float64]()
	default:
		return keyOrder[K]{
			less:    func(a, b entry[K]) bool { return bytes.Compare(a.encodedKey(), b.encodedKey()) < 0 },
			compare: func(a, b entry[K]) int { return bytes.Compare(a.encodedKey(), b.encodedKey()) },
			byBytes: true,
		}
	}
	// For these K, keyOrder[string] (say) and keyOrder[K] are the same type.
	return o.(keyOrder[K])
}

type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

func lessOrdered[T integer | ~string](a, b entry[T]) bool { return a.key < b.key }

func integerOrder[T integer]() keyOrder[T] {
	return keyOrder[T]{
		less:    lessOrdered[T],
		compare: func(a, b entry[T]) int { return cmp.Compare(a.key, b.key) },
	}
}

// floatOrder orders like cmp.Compare: NaNs first and equal to each other.
func floatOrder[T ~float32 | ~float64]() keyOrder[T] {
	return keyOrder[T]{
		less:    func(a, b entry[T]) bool { return cmp.Less(a.key, b.key) },
		compare: func(a, b entry[T]) int { return cmp.Compare(a.key, b.key) },
	}
}

// probe returns an entry that finds k in the tree. For byte-ordered stores it
// encodes k into buf, which the caller may reuse afterwards.
func (s *Store[K, V]) probe(k K, buf []byte) (entry[K], []byte, error) {
	if !s.byBytes {
		return entry[K]{key: k}, buf, nil
	}
	kb, err := AppendEncode(s.keys, buf[:0], k)
	if err != nil {
		return entry[K]{}, buf, fmt.Errorf("state: store cannot encode key %v: %w", k, err)
	}
	if len(kb) > maxEncodedLen {
		return entry[K]{}, kb, fmt.Errorf("state: store key %v encodes to %d bytes, more than the limit of %d", k, len(kb), maxEncodedLen)
	}
	return entry[K]{key: k, enc: kb, klen: uint32(len(kb))}, kb, nil
}

// Get returns the value stored under k and whether k is present. Get does
// not allocate for string and integer keys when the value codec's Decode
// does not.
//
// Get panics if the value codec cannot decode bytes it encoded itself, a
// broken [Codec]; values read by ReadSnapshot and ApplyDelta are checked when
// they are read.
func (s *Store[K, V]) Get(k K) (V, bool) {
	p, _, err := s.probe(k, nil)
	if err != nil {
		var zero V
		return zero, false // a key that cannot be encoded was never stored
	}
	e, ok := s.tree.Get(p)
	if !ok {
		var zero V
		return zero, false
	}
	return s.decodeValue(e), true
}

func (s *Store[K, V]) decodeValue(e entry[K]) V {
	v, err := s.values.Decode(e.value())
	if err != nil {
		panic(fmt.Sprintf("state: the value codec cannot decode what it encoded for key %v (a broken Codec): %v", e.key, err))
	}
	return v
}

// Set stores v under k and marks k changed. It returns an error, and leaves
// the store unchanged, if a codec cannot encode k or v or an encoding is
// longer than 1 GiB. Overwriting a value with one of the same encoded length
// reuses its buffer, so setting an existing key does not allocate for string
// and integer keys when the value codec implements [Appender] (as the ready
// codecs do), except for the first write of each key after a Clone.
func (s *Store[K, V]) Set(k K, v V) error {
	p, kb, err := s.probe(k, s.kbuf)
	s.kbuf = kb
	if err != nil {
		return err
	}
	vb, err := AppendEncode(s.values, s.vbuf[:0], v)
	s.vbuf = vb
	if err != nil {
		return fmt.Errorf("state: store cannot encode the value for key %v: %w", k, err)
	}
	if len(vb) > maxEncodedLen {
		return fmt.Errorf("state: the value for key %v encodes to %d bytes, more than the limit of %d", k, len(vb), maxEncodedLen)
	}

	old, found := s.tree.Get(p)
	if found && old.gen == s.gen && cap(old.enc)-int(old.klen) >= len(vb) {
		// The buffer is ours alone: overwrite the value in place.
		n := int(old.klen) + len(vb)
		resized := n != len(old.enc)
		old.enc = old.enc[:n]
		copy(old.value(), vb)
		if resized {
			s.tree.ReplaceOrInsert(old)
		}
		s.noteChange(old.key, change{enc: old.enc, klen: old.klen})
		return nil
	}

	e := p
	if found {
		e.key = old.key
	}
	buf := make([]byte, int(e.klen)+len(vb))
	copy(buf, e.encodedKey())
	copy(buf[e.klen:], vb)
	e.enc, e.gen = buf, s.gen
	s.tree.ReplaceOrInsert(e)
	s.noteChange(e.key, change{enc: e.enc, klen: e.klen})
	return nil
}

// Delete removes k and reports whether it was present. Removing a present key
// marks it changed, so the next delta carries a tombstone for it.
func (s *Store[K, V]) Delete(k K) bool {
	p, kb, err := s.probe(k, s.kbuf)
	s.kbuf = kb
	if err != nil {
		return false
	}
	old, ok := s.tree.Delete(p)
	if !ok {
		return false
	}
	c := change{deleted: true}
	if s.byBytes {
		c.enc, c.klen = old.encodedKey(), old.klen
	}
	s.noteChange(old.key, c)
	return true
}

func (s *Store[K, V]) noteChange(k K, c change) {
	if s.changesShared {
		s.changes = maps.Clone(s.changes)
		s.changesShared = false
	}
	s.changes[k] = c
}

// Len returns the number of keys in the store.
func (s *Store[K, V]) Len() int { return s.tree.Len() }

// All returns an iterator over the store's keys and values in ascending key
// order. The store must not be modified while the iteration runs; iterate a
// [Store.Clone] to modify the origin meanwhile. Like Get, it panics if the
// value codec cannot decode its own encoding.
func (s *Store[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		s.tree.Ascend(func(e entry[K]) bool {
			return yield(e.key, s.decodeValue(e))
		})
	}
}

// Clone returns a copy of the store in O(1): the two share their tree and
// copy nodes and value buffers only when one of them writes. The clone has
// the same pending changes. Clone needs exclusive access to s; afterwards s
// and the clone may be used by different goroutines.
func (s *Store[K, V]) Clone() *Store[K, V] {
	s.gen++
	s.changesShared = true
	return &Store[K, V]{
		keys:          s.keys,
		values:        s.values,
		less:          s.less,
		compare:       s.compare,
		byBytes:       s.byBytes,
		tree:          s.tree.Clone(),
		gen:           s.gen,
		changes:       s.changes,
		changesShared: true,
	}
}

// Changed returns the number of keys set or deleted since the last
// [Store.ResetChanges] (or since the store was created or read from a
// snapshot). A key set many times counts once.
func (s *Store[K, V]) Changed() int { return len(s.changes) }

// ResetChanges forgets the pending changes; call it once the delta or
// snapshot that holds them is durable. It starts a new, empty change set
// rather than clearing the old one, so neither it nor the next WriteDelta
// pays for the size of an earlier, larger set (such as an initial load).
func (s *Store[K, V]) ResetChanges() {
	s.changes = make(map[K]change)
	s.changesShared = false
}
