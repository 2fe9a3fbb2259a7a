package kafkasource

import "encoding/binary"

// The recorded plans ([encodePlan]) and the saved positions
// ([directNode.SaveState]) are written as uvarints and length-prefixed
// strings; appendString and varintReader are their two halves.

// appendString appends s to b, prefixed by its length as a uvarint.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// varintReader reads what appendString and binary.AppendUvarint wrote,
// from the front of b.
type varintReader struct{ b []byte }

// uvarint reads one uvarint; ok is false when b does not start with one.
func (r *varintReader) uvarint() (v uint64, ok bool) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, false
	}
	r.b = r.b[n:]
	return v, true
}

// str reads one length-prefixed string; ok is false when it is empty or
// longer than what is left.
func (r *varintReader) str() (s string, ok bool) {
	l, ok := r.uvarint()
	if !ok || l == 0 || l > uint64(len(r.b)) {
		return "", false
	}
	s = string(r.b[:l])
	r.b = r.b[l:]
	return s, true
}

// count reads a count of items, each at least one byte long; ok is false
// when it is larger than what is left, so that it can size an allocation.
func (r *varintReader) count() (n uint64, ok bool) {
	n, ok = r.uvarint()
	return n, ok && n <= uint64(len(r.b))
}
