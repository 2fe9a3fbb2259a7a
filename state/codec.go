package state

// Codec turns values of type T into bytes and back. State is bytes at rest
// and typed at the edge: stores, window buffers and checkpoints hold encoded
// values and use a Codec to convert them.
//
// Encode must be deterministic for equal values, and Decode(Encode(v)) must
// equal v. A Codec must be safe for concurrent use.
//
// Decode must not keep b or return values that share its memory: stores
// overwrite value buffers in place. Decode must return an error, never
// panic, for bytes that are not an encoding.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// Appender is an optional fast path a [Codec] may implement: AppendEncode
// appends the encoding of v to dst and returns the extended slice, so callers
// that reuse a buffer encode without allocating. The appended bytes must equal
// what Encode(v) returns. All ready-made codecs for basic types implement it.
type Appender[T any] interface {
	AppendEncode(dst []byte, v T) ([]byte, error)
}

// AppendEncode appends the encoding of v to dst using c. It uses c's
// [Appender] fast path when c has one and falls back to c.Encode plus a copy
// otherwise. On error dst is returned unchanged in length.
func AppendEncode[T any](c Codec[T], dst []byte, v T) ([]byte, error) {
	if a, ok := c.(Appender[T]); ok {
		out, err := a.AppendEncode(dst, v)
		if err != nil {
			return dst, err
		}
		return out, nil
	}
	b, err := c.Encode(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
