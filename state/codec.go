package state

// Codec turns values of type T into bytes and back. State is bytes at rest
// and typed at the edge: stores, window buffers and checkpoints hold encoded
// values and use a Codec to convert them.
//
// Encode must be deterministic for equal values, and Decode(Encode(v)) must
// equal v. A Codec must be safe for concurrent use.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}
