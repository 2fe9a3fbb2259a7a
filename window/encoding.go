package window

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/sluicehq/sluice/state"
)

// The encoding shared by every snapshot and delta of this package. A frame
// is a header — magic "SLWN", a kind byte, a version byte and the body
// length as 8 bytes little-endian — followed by the body. Bodies are made
// of unsigned varints, signed varints for seconds, and length-prefixed
// byte strings produced by the caller's codecs. Checksums and atomic file
// replacement are the job of the file layer that stores the frames.

const (
	magic      = "SLWN"
	version    = 1
	headerSize = len(magic) + 2 + 8
)

// Frame kinds.
const (
	kindPanesSnapshot       byte = 'P'
	kindPanesDelta          byte = 'p'
	kindIncrementalSnapshot byte = 'I'
	kindIncrementalDelta    byte = 'i'
	kindBufferSnapshot      byte = 'B'
	kindBufferDelta         byte = 'b'
)

// Delta flags.
const (
	flagFull    byte = 1 << 0 // the delta holds the whole state
	flagHasDrop byte = 1 << 1 // a drop horizon follows
	flagsKnown       = flagFull | flagHasDrop
)

func kindName(k byte) string {
	switch k {
	case kindPanesSnapshot:
		return "panes snapshot"
	case kindPanesDelta:
		return "panes delta"
	case kindIncrementalSnapshot:
		return "incremental window snapshot"
	case kindIncrementalDelta:
		return "incremental window delta"
	case kindBufferSnapshot:
		return "buffer snapshot"
	case kindBufferDelta:
		return "buffer delta"
	}
	return fmt.Sprintf("unknown kind 0x%02x", k)
}

// encoder appends to a frame whose header is filled in by finish.
type encoder struct {
	b []byte
}

func newEncoder(kind byte) *encoder {
	e := &encoder{b: make([]byte, headerSize, 256)}
	copy(e.b, magic)
	e.b[len(magic)] = kind
	e.b[len(magic)+1] = version
	return e
}

// finish fills in the body length and writes the frame with one Write.
func (e *encoder) finish(w io.Writer) error {
	binary.LittleEndian.PutUint64(e.b[len(magic)+2:], uint64(len(e.b)-headerSize))
	if _, err := w.Write(e.b); err != nil {
		return fmt.Errorf("window: write %s: %w", kindName(e.b[len(magic)]), err)
	}
	return nil
}

func (e *encoder) uvarint(x uint64) { e.b = binary.AppendUvarint(e.b, x) }
func (e *encoder) byte(x byte)      { e.b = append(e.b, x) }
func (e *encoder) bytes(p []byte) {
	e.uvarint(uint64(len(p)))
	e.b = append(e.b, p...)
}
func (e *encoder) time(t time.Time) {
	e.b = binary.AppendVarint(e.b, t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}
func (e *encoder) bool(x bool) {
	if x {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

// entries appends a map as a count and key/value pairs sorted by encoded
// key, so that equal maps encode to equal bytes.
func entries[K comparable, V any](e *encoder, m map[K]V, kc state.Codec[K], vc state.Codec[V]) error {
	return entriesOf(e, len(m), maps.All(m), kc, vc)
}

// pairSpan locates an encoded key and value in an arena.
type pairSpan struct{ k, v, end int }

// entriesOf appends the pairs all yields, about n of them, as entries does.
// Keys and values are encoded into one arena, through the codecs' Appender
// fast path when they have one.
func entriesOf[K comparable, V any](e *encoder, n int, all iter.Seq2[K, V], kc state.Codec[K], vc state.Codec[V]) error {
	arena := make([]byte, 0, 16*n)
	spans := make([]pairSpan, 0, n)
	var err error
	for k, v := range all {
		sp := pairSpan{k: len(arena)}
		if arena, err = state.AppendEncode(kc, arena, k); err != nil {
			return fmt.Errorf("window: encode key %v: %w", k, err)
		}
		sp.v = len(arena)
		if arena, err = state.AppendEncode(vc, arena, v); err != nil {
			return fmt.Errorf("window: encode value of key %v: %w", k, err)
		}
		sp.end = len(arena)
		spans = append(spans, sp)
	}
	key := func(sp pairSpan) []byte { return arena[sp.k:sp.v] }
	slices.SortFunc(spans, func(a, b pairSpan) int { return bytes.Compare(key(a), key(b)) })
	for i := 1; i < len(spans); i++ {
		if bytes.Equal(key(spans[i-1]), key(spans[i])) {
			return fmt.Errorf("window: the key codec encodes two different keys to %q; use a codec whose encoding is one-to-one", key(spans[i]))
		}
	}
	e.uvarint(uint64(len(spans)))
	for _, sp := range spans {
		e.bytes(arena[sp.k:sp.v])
		e.bytes(arena[sp.v:sp.end])
	}
	return nil
}

// keysOf appends the keys all yields, about n of them, as a count and
// encoded keys in sorted order.
func keysOf[K comparable](e *encoder, n int, all iter.Seq[K], kc state.Codec[K]) error {
	arena := make([]byte, 0, 16*n)
	var ends []int
	var err error
	for k := range all {
		if arena, err = state.AppendEncode(kc, arena, k); err != nil {
			return fmt.Errorf("window: encode key %v: %w", k, err)
		}
		ends = append(ends, len(arena))
	}
	enc := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		enc[i] = arena[start:end:end]
		start = end
	}
	slices.SortFunc(enc, bytes.Compare)
	e.uvarint(uint64(len(enc)))
	for _, kb := range enc {
		e.bytes(kb)
	}
	return nil
}

// readFrame reads one frame of the given kind from r and returns its body.
// It reads exactly the frame's bytes, never past them.
func readFrame(r io.Reader, kind byte) ([]byte, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %s: header truncated (%w)", ErrCorrupt, kindName(kind), err)
		}
		return nil, fmt.Errorf("window: read %s: %w", kindName(kind), err)
	}
	if string(h[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: %s: bad magic %q, want %q: not a window snapshot or delta", ErrCorrupt, kindName(kind), h[:len(magic)], magic)
	}
	if got := h[len(magic)]; got != kind {
		return nil, fmt.Errorf("%w: holds a %s, not a %s", ErrCorrupt, kindName(got), kindName(kind))
	}
	if v := h[len(magic)+1]; v != version {
		return nil, fmt.Errorf("%w: %s: format version %d, this build reads version %d", ErrCorrupt, kindName(kind), v, version)
	}
	n := binary.LittleEndian.Uint64(h[len(magic)+2:])
	if n > math.MaxInt64 {
		return nil, fmt.Errorf("%w: %s: body length %d out of range", ErrCorrupt, kindName(kind), n)
	}
	// Read through a limit rather than allocating n bytes up front: a damaged
	// length must not cost more memory than the input really holds.
	body, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, fmt.Errorf("window: read %s: %w", kindName(kind), err)
	}
	if uint64(len(body)) != n {
		return nil, fmt.Errorf("%w: %s: body truncated: %d of %d bytes", ErrCorrupt, kindName(kind), len(body), n)
	}
	return body, nil
}

// decoder reads a body. The first error sticks: later reads return zero
// values, so callers check err once after a group of reads.
type decoder struct {
	what string // the kind of frame, for messages
	b    []byte
	off  int
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d: %s", ErrCorrupt, d.what, d.off, fmt.Sprintf(format, args...))
	}
}

// failWrap records a codec's error, keeping it in the chain.
func (d *decoder) failWrap(what string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d: %s: %w", ErrCorrupt, d.what, d.off, what, err)
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad unsigned varint")
		return 0
	}
	d.off += n
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad signed varint")
		return 0
	}
	d.off += n
	return x
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("unexpected end of body")
		return 0
	}
	x := d.b[d.off]
	d.off++
	return x
}

func (d *decoder) bool() bool {
	switch x := d.byte(); x {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("bad boolean %d", x)
		return false
	}
}

// count reads an element count, each element taking at least min bytes, and
// rejects counts the rest of the body cannot hold.
func (d *decoder) count(what string, min int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(d.remaining()/min) {
		d.fail("%s count %d exceeds the %d bytes left", what, n, d.remaining())
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(d.remaining()) {
		d.fail("byte string of %d bytes exceeds the %d bytes left", n, d.remaining())
		return nil
	}
	p := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return p
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		d.fail("nanoseconds %d out of range", nsec)
		return time.Time{}
	}
	if sec > maxSeconds || sec < -maxSeconds {
		d.fail("seconds %d out of range", sec)
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// maxSeconds bounds the seconds of a decoded time, well inside the range
// where time.Unix and Time.Unix are exact inverses.
const maxSeconds = 1 << 50

// end fails unless the whole body was read.
func (d *decoder) end() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d bytes left over after the end", len(d.b)-d.off)
	}
	return d.err
}

// key decodes one key with kc.
func decodeKey[K comparable](d *decoder, kc state.Codec[K]) (K, bool) {
	var zero K
	kb := d.bytes()
	if d.err != nil {
		return zero, false
	}
	k, err := kc.Decode(kb)
	if err != nil {
		d.failWrap("decode key", err)
		return zero, false
	}
	return k, true
}

// decodeEntries decodes a map written by entries; an empty map decodes as nil.
func decodeEntries[K comparable, V any](d *decoder, kc state.Codec[K], vc state.Codec[V]) map[K]V {
	n := d.count("key", 2)
	if d.err != nil || n == 0 {
		return nil
	}
	m := make(map[K]V, n)
	for range n {
		k, ok := decodeKey(d, kc)
		if !ok {
			return nil
		}
		vb := d.bytes()
		if d.err != nil {
			return nil
		}
		v, err := vc.Decode(vb)
		if err != nil {
			d.failWrap(fmt.Sprintf("decode value of key %v", k), err)
			return nil
		}
		if _, dup := m[k]; dup {
			d.fail("key %v appears twice", k)
			return nil
		}
		m[k] = v
	}
	return m
}

// decodeKeys decodes a key set written by keys.
func decodeKeys[K comparable](d *decoder, kc state.Codec[K]) map[K]struct{} {
	n := d.count("key", 1)
	if d.err != nil {
		return nil
	}
	m := make(map[K]struct{}, n)
	for range n {
		k, ok := decodeKey(d, kc)
		if !ok {
			return nil
		}
		if _, dup := m[k]; dup {
			d.fail("key %v appears twice", k)
			return nil
		}
		m[k] = struct{}{}
	}
	return m
}

// decodeSeries decodes a list of timed values in strictly increasing time
// order, each value read by one.
func decodeSeries[E any](d *decoder, what string, one func() E) []entry[E] {
	n := d.count(what, 3)
	if d.err != nil {
		return nil
	}
	out := make([]entry[E], 0, n)
	for i := range n {
		t := d.time()
		if d.err != nil {
			return nil
		}
		if i > 0 && !t.After(out[i-1].t) {
			d.fail("%s times out of order: %s after %s", what, stamp(t), stamp(out[i-1].t))
			return nil
		}
		v := one()
		if d.err != nil {
			return nil
		}
		out = append(out, entry[E]{t: t, v: v})
	}
	return out
}

// deltaHead is the part every delta starts with.
type deltaHead struct {
	from, to uint64
	full     bool
	drop     time.Time
	hasDrop  bool
}

func writeDeltaHead(e *encoder, from uint64, full bool, s interface {
	horizon() (time.Time, bool)
}) {
	e.uvarint(from)
	e.uvarint(from + 1)
	var flags byte
	drop, hasDrop := s.horizon()
	if full {
		flags |= flagFull
		hasDrop = false
	}
	if hasDrop {
		flags |= flagHasDrop
	}
	e.byte(flags)
	if hasDrop {
		e.time(drop)
	}
}

func readDeltaHead(d *decoder) deltaHead {
	var h deltaHead
	h.from = d.uvarint()
	h.to = d.uvarint()
	flags := d.byte()
	if d.err != nil {
		return h
	}
	if h.from == math.MaxUint64 || h.to != h.from+1 {
		d.fail("delta goes from generation %d to %d, want consecutive generations", h.from, h.to)
		return h
	}
	if flags&^flagsKnown != 0 {
		d.fail("unknown delta flags 0x%02x", flags)
		return h
	}
	h.full = flags&flagFull != 0
	h.hasDrop = flags&flagHasDrop != 0
	if h.full && h.hasDrop {
		d.fail("a full delta carries no drop horizon")
		return h
	}
	if h.hasDrop {
		h.drop = d.time()
	}
	return h
}

// checkFollows returns an error unless a delta starting at generation from
// may be applied to a state at generation gen: full deltas apply anywhere.
func (h deltaHead) checkFollows(what string, gen uint64) error {
	if h.full || h.from == gen {
		return nil
	}
	return fmt.Errorf("%w: the %s goes from generation %d to %d but the state is at generation %d; "+
		"apply the deltas in the order they were written, starting from the snapshot they follow",
		ErrDeltaGap, what, h.from, h.to, gen)
}

// horizon returns the newest drop horizon recorded since the last delta.
func (s *series[E]) horizon() (time.Time, bool) { return s.dropped, s.hasDrop }
