package state

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/google/btree"
)

// Store encoding
//
// A snapshot or a delta is a header followed by records:
//
//	header:   "SLST" | version (1 byte, 1) | section (1 byte) | uvarint record count
//	snapshot: section 1; records: uvarint key length | key | uvarint value length | value
//	          in strictly ascending key order
//	delta:    section 2; records: op (1 byte) | uvarint key length | key
//	          | (op 1, upsert) uvarint value length | value
//	          (op 2, tombstone) nothing more
//
// Keys and values are their codecs' encodings. Integrity against bit rot is
// the file layer's job (WriteFile's CRC32C); the readers still check every
// length, op and encoding and report malformed input as ErrCorrupt.

const (
	storeMagic   = "SLST"
	storeVersion = 1

	sectionSnapshot = 1
	sectionDelta    = 2

	opUpsert    = 1
	opTombstone = 2

	// storeHeaderLen is the fixed part of the header, before the count.
	storeHeaderLen = len(storeMagic) + 2

	// arenaChunk is the size of the blocks that readers carve entry
	// buffers from, so that loading n keys does not make n allocations.
	arenaChunk = 64 << 10
)

func sectionName(s byte) string {
	switch s {
	case sectionSnapshot:
		return "snapshot"
	case sectionDelta:
		return "delta"
	default:
		return fmt.Sprintf("section %d", s)
	}
}

func appendStoreHeader(dst []byte, section byte, count int) []byte {
	dst = append(dst, storeMagic...)
	dst = append(dst, storeVersion, section)
	return binary.AppendUvarint(dst, uint64(count))
}

// WriteSnapshot writes every entry of the store to w in ascending key order.
// Its cost is O(n) in the number of entries. It does not reset the pending
// changes. It only reads the store, so it may run on a [Store.Clone] while
// the origin keeps changing.
func (s *Store[K, V]) WriteSnapshot(w io.Writer) error {
	bw := bufio.NewWriterSize(w, arenaChunk)
	rec := appendStoreHeader(make([]byte, 0, 64), sectionSnapshot, s.tree.Len())
	var kbuf []byte
	var err error
	s.tree.Ascend(func(e entry[K]) bool {
		rec, kbuf, err = s.appendKey(rec, kbuf, e)
		if err != nil {
			return false
		}
		v := e.value()
		rec = binary.AppendUvarint(rec, uint64(len(v)))
		if _, err = bw.Write(rec); err != nil {
			return false
		}
		_, err = bw.Write(v)
		rec = rec[:0]
		return err == nil
	})
	if err == nil && len(rec) > 0 { // an empty store: only the header
		_, err = bw.Write(rec)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("state: write snapshot: %w", err)
	}
	return nil
}

// appendKey appends e's key, length first, to rec. Ordered stores encode the
// key now, using kbuf as scratch; byte-ordered stores have it in the entry.
func (s *Store[K, V]) appendKey(rec, kbuf []byte, e entry[K]) ([]byte, []byte, error) {
	kb := e.encodedKey()
	if !s.byBytes {
		var err error
		kbuf, err = AppendEncode(s.keys, kbuf[:0], e.key)
		if err != nil {
			return rec, kbuf, fmt.Errorf("encode key %v: %w", e.key, err)
		}
		kb = kbuf
	}
	rec = binary.AppendUvarint(rec, uint64(len(kb)))
	return append(rec, kb...), kbuf, nil
}

// deltaRecord is one pending change, ready to sort and write.
type deltaRecord[K comparable] struct {
	e       entry[K]
	deleted bool
}

// WriteDelta writes the keys changed since the last [Store.ResetChanges]:
// an upsert with the current value for each key set, a tombstone for each key
// deleted, in ascending key order. Its cost is O(c log c) in the number c of
// changed keys and does not depend on the size of the store. It does not reset
// the pending changes: call ResetChanges once the delta is durable.
func (s *Store[K, V]) WriteDelta(w io.Writer) error {
	recs := make([]deltaRecord[K], 0, len(s.changes))
	for k, c := range s.changes {
		recs = append(recs, deltaRecord[K]{e: entry[K]{key: k, enc: c.enc, klen: c.klen}, deleted: c.deleted})
	}
	slices.SortFunc(recs, func(a, b deltaRecord[K]) int { return s.compare(a.e, b.e) })

	bw := bufio.NewWriterSize(w, arenaChunk)
	buf := appendStoreHeader(make([]byte, 0, 64), sectionDelta, len(recs))
	var kbuf []byte
	var err error
	for _, r := range recs {
		if r.deleted {
			buf = append(buf, opTombstone)
		} else {
			buf = append(buf, opUpsert)
		}
		if buf, kbuf, err = s.appendKey(buf, kbuf, r.e); err != nil {
			return fmt.Errorf("state: write delta: %w", err)
		}
		if !r.deleted {
			v := r.e.value()
			buf = binary.AppendUvarint(buf, uint64(len(v)))
			buf = append(buf, v...)
		}
		if _, err = bw.Write(buf); err != nil {
			return fmt.Errorf("state: write delta: %w", err)
		}
		buf = buf[:0]
	}
	if len(buf) > 0 {
		if _, err = bw.Write(buf); err != nil {
			return fmt.Errorf("state: write delta: %w", err)
		}
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("state: write delta: %w", err)
	}
	return nil
}

// ReadSnapshot replaces the store's contents with the snapshot read from r
// and clears the pending changes. Every length, key order and encoding is
// checked; on any error, which matches [ErrCorrupt] when the input is
// malformed, the store is left as it was. If r is an io.ByteReader (as
// bytes.Reader and bufio.Reader are) ReadSnapshot reads exactly the
// snapshot and no further; otherwise it may read ahead.
func (s *Store[K, V]) ReadSnapshot(r io.Reader) error {
	install, err := s.DecodeSnapshot(r)
	if err != nil {
		return err
	}
	install()
	return nil
}

// DecodeSnapshot is the first half of [Store.ReadSnapshot]: it reads and
// checks a snapshot from r, leaving s untouched, and returns install, which
// replaces the contents of s with it. install may run on another goroutine,
// so that several stores build their trees in parallel, but nothing may use
// s until it returns.
func (s *Store[K, V]) DecodeSnapshot(r io.Reader) (install func(), err error) {
	d := newRecordReader(r, sectionSnapshot)
	count, err := d.header()
	if err != nil {
		return nil, err
	}
	entries := make([]entry[K], 0, min(count, 1<<20))
	var ar arena
	for i := uint64(0); i < count; i++ {
		d.index = i
		e, err := s.readRecord(d, &ar, true)
		if err != nil {
			return nil, err
		}
		if i > 0 && !s.less(entries[len(entries)-1], e) {
			return nil, d.corrupt("key %v is not after the previous key %v", e.key, entries[len(entries)-1].key)
		}
		entries = append(entries, e)
	}
	return func() {
		t := btree.NewG(btreeDegree, s.less)
		for _, e := range entries {
			t.ReplaceOrInsert(e)
		}
		s.tree = t
		s.changes = make(map[K]change)
		s.changesShared = false
	}, nil
}

// ApplyDelta applies a delta read from r: upserts set keys, tombstones remove
// them (a tombstone for an absent key is no-op). Applying is not a change:
// keys it touches are not marked changed, though a key that already had a
// pending change keeps it, with its new value. The whole delta is checked
// before it takes effect; on any error, which matches [ErrCorrupt] when the
// input is malformed, the store is left as it was. Reading stops at the end
// of the delta as described for [Store.ReadSnapshot].
func (s *Store[K, V]) ApplyDelta(r io.Reader) error {
	d := newRecordReader(r, sectionDelta)
	count, err := d.header()
	if err != nil {
		return err
	}
	t := s.tree.Clone() // discarded on error
	var ar arena
	var touched []deltaRecord[K] // only collected when changes are pending
	for i := uint64(0); i < count; i++ {
		d.index = i
		op, err := d.r.ReadByte()
		if err != nil {
			return d.fail("op", err)
		}
		var e entry[K]
		switch op {
		case opUpsert:
			if e, err = s.readRecord(d, &ar, true); err != nil {
				return err
			}
			t.ReplaceOrInsert(e)
		case opTombstone:
			if e, err = s.readRecord(d, &ar, false); err != nil {
				return err
			}
			t.Delete(e)
		default:
			return d.corrupt("unknown op %d (want %d for upsert or %d for tombstone)", op, opUpsert, opTombstone)
		}
		if len(s.changes) > 0 {
			touched = append(touched, deltaRecord[K]{e: e, deleted: op == opTombstone})
		}
	}
	s.tree = t
	for _, r := range touched {
		if _, pending := s.changes[r.e.key]; pending {
			s.noteChange(r.e.key, change{enc: r.e.enc, klen: r.e.klen, deleted: r.deleted})
		}
	}
	return nil
}

// readRecord reads one key, and the value when withValue, checks both decode,
// and returns the entry with its encoding in arena memory.
func (s *Store[K, V]) readRecord(d *recordReader, ar *arena, withValue bool) (entry[K], error) {
	kb, err := d.bytes(&d.kbuf, "key", "key length")
	if err != nil {
		return entry[K]{}, err
	}
	k, err := s.keys.Decode(kb)
	if err != nil {
		return entry[K]{}, d.corrupt("key does not decode: %w", err)
	}
	if s.byBytes {
		// The tree orders by encoding, so only the canonical encoding
		// may enter it; another spelling of an equal key would be a
		// second entry for it.
		canon, err := AppendEncode(s.keys, d.cbuf[:0], k)
		d.cbuf = canon
		if err != nil || !bytes.Equal(canon, kb) {
			return entry[K]{}, d.corrupt("key %v is not in the key codec's canonical encoding", k)
		}
	}
	e := entry[K]{key: k, gen: s.gen}
	if s.byBytes {
		e.klen = uint32(len(kb))
	}
	var vb []byte
	if withValue {
		if vb, err = d.bytes(&d.vbuf, "value", "value length"); err != nil {
			return entry[K]{}, err
		}
		if _, err := s.values.Decode(vb); err != nil {
			return entry[K]{}, d.corrupt("value of key %v does not decode: %w", k, err)
		}
	}
	if n := int(e.klen) + len(vb); n > 0 {
		e.enc = ar.alloc(n)
		copy(e.enc, kb[:e.klen])
		copy(e.enc[e.klen:], vb)
	}
	return e, nil
}

// recordReader reads the store encoding and names the position of any
// problem in its errors.
type recordReader struct {
	r       byteReader
	section byte
	index   uint64 // record being read
	inBody  bool
	kbuf    []byte
	vbuf    []byte
	cbuf    []byte
}

type byteReader interface {
	io.Reader
	io.ByteReader
}

func newRecordReader(r io.Reader, section byte) *recordReader {
	br, ok := r.(byteReader)
	if !ok {
		br = bufio.NewReaderSize(r, arenaChunk)
	}
	return &recordReader{r: br, section: section}
}

func (d *recordReader) where() string {
	if !d.inBody {
		return sectionName(d.section) + " header"
	}
	return fmt.Sprintf("%s record %d", sectionName(d.section), d.index)
}

func (d *recordReader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, d.where(), fmt.Errorf(format, args...))
}

// fail reports a read error: running out of input is corruption (the data
// was cut short); any other error is the reader's and is wrapped as is.
func (d *recordReader) fail(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return d.corrupt("input ends inside the %s", what)
	}
	return fmt.Errorf("state: read %s: %s: %w", d.where(), what, err)
}

func (d *recordReader) header() (uint64, error) {
	var h [storeHeaderLen]byte
	if _, err := io.ReadFull(d.r, h[:]); err != nil {
		return 0, d.fail("header", err)
	}
	if string(h[:len(storeMagic)]) != storeMagic {
		return 0, d.corrupt("bad magic %q, want %q: this is not a store %s", h[:len(storeMagic)], storeMagic, sectionName(d.section))
	}
	if v := h[len(storeMagic)]; v != storeVersion {
		return 0, d.corrupt("unsupported version %d (this build reads version %d)", v, storeVersion)
	}
	if sec := h[len(storeMagic)+1]; sec != d.section {
		hint := ""
		switch sec {
		case sectionSnapshot:
			hint = "; read it with ReadSnapshot"
		case sectionDelta:
			hint = "; apply it with ApplyDelta"
		}
		return 0, d.corrupt("found a %s where a %s was expected%s", sectionName(sec), sectionName(d.section), hint)
	}
	count, err := d.uvarint("record count")
	if err != nil {
		return 0, err
	}
	d.inBody = true
	return count, nil
}

// uvarint reads an unsigned varint, reporting overflow as corruption.
func (d *recordReader) uvarint(what string) (uint64, error) {
	var x uint64
	for i := range binary.MaxVarintLen64 {
		b, err := d.r.ReadByte()
		if err != nil {
			return 0, d.fail(what, err)
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				break
			}
			return x | uint64(b)<<(7*i), nil
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	return 0, d.corrupt("%s overflows 64 bits", what)
}

// bytes reads a length-prefixed byte string into *buf (reused across calls);
// what and whatLength name the string and its length in errors.
// Long strings are read in steps, so a damaged length fails at the end of
// the input instead of allocating what it claims.
func (d *recordReader) bytes(buf *[]byte, what, whatLength string) ([]byte, error) {
	n, err := d.uvarint(whatLength)
	if err != nil {
		return nil, err
	}
	if n > maxEncodedLen {
		return nil, d.corrupt("%s length %d exceeds the limit of %d", what, n, maxEncodedLen)
	}
	b := (*buf)[:0]
	for rest := int(n); rest > 0; {
		step := min(rest, 1<<20)
		b = slices.Grow(b, step)
		m, err := io.ReadFull(d.r, b[len(b):len(b)+step])
		b = b[:len(b)+m]
		if err != nil {
			*buf = b
			return nil, d.fail(what, err)
		}
		rest -= step
	}
	*buf = b
	return b, nil
}

// arena hands out byte slices carved from shared blocks. Each slice is
// capped at its own length, so appending to one never touches another.
type arena struct{ block []byte }

func (a *arena) alloc(n int) []byte {
	if n > arenaChunk/8 {
		return make([]byte, n)
	}
	if len(a.block)+n > cap(a.block) {
		a.block = make([]byte, 0, arenaChunk)
	}
	off := len(a.block)
	a.block = a.block[:off+n]
	return a.block[off : off+n : off+n]
}
