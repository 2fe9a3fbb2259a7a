package state

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"math"
)

// Compile-time checks: the basic codecs offer the Appender fast path.
var (
	_ Appender[string]  = stringCodec{}
	_ Appender[[]byte]  = bytesCodec{}
	_ Appender[int64]   = signedCodec[int64]{}
	_ Appender[uint64]  = unsignedCodec[uint64]{}
	_ Appender[float64] = float64Codec{}
	_ Appender[float32] = float32Codec{}
	_ Appender[bool]    = boolCodec{}
)

// String returns the codec for strings: the encoding is the string's bytes.
func String() Codec[string] { return stringCodec{} }

// Bytes returns the codec for byte slices: the encoding is the slice itself.
// Encode and Decode copy, so callers may reuse their buffers. Decode returns
// a non-nil slice, so nil and empty slices both decode as empty.
func Bytes() Codec[[]byte] { return bytesCodec{} }

// Int returns the codec for int. It encodes to 8 bytes on every platform.
// Like all integer codecs, it is fixed-width big-endian with the sign bit
// flipped, so encodings compare (bytes.Compare) in numeric order.
func Int() Codec[int] { return signedCodec[int]{size: 8, name: "int"} }

// Int8 returns the codec for int8: one order-preserving byte.
func Int8() Codec[int8] { return signedCodec[int8]{size: 1, name: "int8"} }

// Int16 returns the codec for int16: two order-preserving bytes.
func Int16() Codec[int16] { return signedCodec[int16]{size: 2, name: "int16"} }

// Int32 returns the codec for int32: four order-preserving bytes.
func Int32() Codec[int32] { return signedCodec[int32]{size: 4, name: "int32"} }

// Int64 returns the codec for int64: eight order-preserving bytes.
func Int64() Codec[int64] { return signedCodec[int64]{size: 8, name: "int64"} }

// Uint returns the codec for uint. It encodes to 8 big-endian bytes on every
// platform, so encodings compare in numeric order.
func Uint() Codec[uint] { return unsignedCodec[uint]{size: 8, name: "uint"} }

// Uint8 returns the codec for uint8: one byte.
func Uint8() Codec[uint8] { return unsignedCodec[uint8]{size: 1, name: "uint8"} }

// Uint16 returns the codec for uint16: two big-endian bytes.
func Uint16() Codec[uint16] { return unsignedCodec[uint16]{size: 2, name: "uint16"} }

// Uint32 returns the codec for uint32: four big-endian bytes.
func Uint32() Codec[uint32] { return unsignedCodec[uint32]{size: 4, name: "uint32"} }

// Uint64 returns the codec for uint64: eight big-endian bytes.
func Uint64() Codec[uint64] { return unsignedCodec[uint64]{size: 8, name: "uint64"} }

// Float32 returns the codec for float32: four bytes holding the IEEE 754 bits
// transformed so that encodings compare in numeric order (negative before
// positive). Every bit pattern, NaNs included, round-trips exactly.
func Float32() Codec[float32] { return float32Codec{} }

// Float64 returns the codec for float64: eight bytes holding the IEEE 754
// bits transformed so that encodings compare in numeric order. Every bit
// pattern, NaNs included, round-trips exactly.
func Float64() Codec[float64] { return float64Codec{} }

// Bool returns the codec for bool: one byte, 0 or 1. Decode rejects any
// other byte.
func Bool() Codec[bool] { return boolCodec{} }

// JSON returns a codec that encodes T with encoding/json. Map keys are
// sorted, so encodings of equal values are equal. Only exported fields are
// kept. Decode rejects trailing data.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

// Gob returns a codec that encodes each value of T as a self-contained
// encoding/gob stream (type description included), so any value decodes on
// its own. It never calls gob.Register: T must not hold interface values.
// Gob writes maps in random order, so do not use it for keys whose type
// contains a map.
func Gob[T any]() Codec[T] { return gobCodec[T]{} }

// CodecFor returns the ready-made codec for T: the fast codec when T is
// string, []byte, bool, an integer or a float type, and [Gob] otherwise.
// The choice is made once, here, by a type switch on T's zero value; the
// returned codec does no reflection of its own. Named types (type ID string)
// are not basic types and get Gob; pass [String] and friends explicitly if
// you want the fast codec for them.
func CodecFor[T any]() Codec[T] {
	var zero T
	var c any
	switch any(zero).(type) {
	case string:
		c = String()
	case []byte:
		c = Bytes()
	case bool:
		c = Bool()
	case int:
		c = Int()
	case int8:
		c = Int8()
	case int16:
		c = Int16()
	case int32:
		c = Int32()
	case int64:
		c = Int64()
	case uint:
		c = Uint()
	case uint8:
		c = Uint8()
	case uint16:
		c = Uint16()
	case uint32:
		c = Uint32()
	case uint64:
		c = Uint64()
	case float32:
		c = Float32()
	case float64:
		c = Float64()
	default:
		return Gob[T]()
	}
	return c.(Codec[T])
}

type stringCodec struct{}

func (stringCodec) Encode(v string) ([]byte, error)                   { return []byte(v), nil }
func (stringCodec) AppendEncode(dst []byte, v string) ([]byte, error) { return append(dst, v...), nil }
func (stringCodec) Decode(b []byte) (string, error)                   { return string(b), nil }

type bytesCodec struct{}

func (bytesCodec) Encode(v []byte) ([]byte, error)                   { return bytes.Clone(v), nil }
func (bytesCodec) AppendEncode(dst []byte, v []byte) ([]byte, error) { return append(dst, v...), nil }
func (bytesCodec) Decode(b []byte) ([]byte, error)                   { return append([]byte{}, b...), nil }

type signed interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64
}

type unsigned interface {
	~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// signedCodec encodes a signed integer in size big-endian bytes with the
// sign bit flipped, so byte order equals numeric order.
type signedCodec[T signed] struct {
	size int
	name string
}

func (c signedCodec[T]) Encode(v T) ([]byte, error) {
	return c.AppendEncode(make([]byte, 0, c.size), v)
}

func (c signedCodec[T]) AppendEncode(dst []byte, v T) ([]byte, error) {
	u := uint64(int64(v)) ^ 1<<(c.size*8-1)
	return appendBigEndian(dst, u, c.size), nil
}

func (c signedCodec[T]) Decode(b []byte) (T, error) {
	if len(b) != c.size {
		return 0, fixedSizeError(c.name, c.size, len(b))
	}
	// Converting to T keeps the low size*8 bits, two's complement, which
	// restores the sign after the flip is undone.
	return T(readBigEndian(b) ^ 1<<(c.size*8-1)), nil
}

type unsignedCodec[T unsigned] struct {
	size int
	name string
}

func (c unsignedCodec[T]) Encode(v T) ([]byte, error) {
	return c.AppendEncode(make([]byte, 0, c.size), v)
}

func (c unsignedCodec[T]) AppendEncode(dst []byte, v T) ([]byte, error) {
	return appendBigEndian(dst, uint64(v), c.size), nil
}

func (c unsignedCodec[T]) Decode(b []byte) (T, error) {
	if len(b) != c.size {
		return 0, fixedSizeError(c.name, c.size, len(b))
	}
	return T(readBigEndian(b)), nil
}

func appendBigEndian(dst []byte, u uint64, size int) []byte {
	switch size {
	case 1:
		return append(dst, byte(u))
	case 2:
		return binary.BigEndian.AppendUint16(dst, uint16(u))
	case 4:
		return binary.BigEndian.AppendUint32(dst, uint32(u))
	default:
		return binary.BigEndian.AppendUint64(dst, u)
	}
}

// readBigEndian reads 1, 2, 4 or 8 big-endian bytes; the caller checks len(b).
func readBigEndian(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	default:
		return binary.BigEndian.Uint64(b)
	}
}

func fixedSizeError(name string, want, got int) error {
	return fmt.Errorf("%w: %s needs exactly %d bytes, got %d", ErrDecode, name, want, got)
}

// Floats: a set sign bit means negative; flipping all bits of negatives and
// only the sign bit of positives makes unsigned byte order match numeric order.

type float64Codec struct{}

func (c float64Codec) Encode(v float64) ([]byte, error) {
	return c.AppendEncode(make([]byte, 0, 8), v)
}

func (float64Codec) AppendEncode(dst []byte, v float64) ([]byte, error) {
	u := math.Float64bits(v)
	if u>>63 == 1 {
		u = ^u
	} else {
		u |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(dst, u), nil
}

func (float64Codec) Decode(b []byte) (float64, error) {
	if len(b) != 8 {
		return 0, fixedSizeError("float64", 8, len(b))
	}
	u := binary.BigEndian.Uint64(b)
	if u>>63 == 1 {
		u &^= 1 << 63
	} else {
		u = ^u
	}
	return math.Float64frombits(u), nil
}

type float32Codec struct{}

func (c float32Codec) Encode(v float32) ([]byte, error) {
	return c.AppendEncode(make([]byte, 0, 4), v)
}

func (float32Codec) AppendEncode(dst []byte, v float32) ([]byte, error) {
	u := math.Float32bits(v)
	if u>>31 == 1 {
		u = ^u
	} else {
		u |= 1 << 31
	}
	return binary.BigEndian.AppendUint32(dst, u), nil
}

func (float32Codec) Decode(b []byte) (float32, error) {
	if len(b) != 4 {
		return 0, fixedSizeError("float32", 4, len(b))
	}
	u := binary.BigEndian.Uint32(b)
	if u>>31 == 1 {
		u &^= 1 << 31
	} else {
		u = ^u
	}
	return math.Float32frombits(u), nil
}

type boolCodec struct{}

func (c boolCodec) Encode(v bool) ([]byte, error) {
	return c.AppendEncode(make([]byte, 0, 1), v)
}

func (boolCodec) AppendEncode(dst []byte, v bool) ([]byte, error) {
	if v {
		return append(dst, 1), nil
	}
	return append(dst, 0), nil
}

func (boolCodec) Decode(b []byte) (bool, error) {
	if len(b) != 1 {
		return false, fixedSizeError("bool", 1, len(b))
	}
	switch b[0] {
	case 0:
		return false, nil
	case 1:
		return true, nil
	default:
		return false, fmt.Errorf("%w: bool byte must be 0 or 1, got %d", ErrDecode, b[0])
	}
}

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("state: JSON codec cannot encode %T: %w", v, err)
	}
	return b, nil
}

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: JSON into %T: %w", ErrDecode, v, err)
	}
	return v, nil
}

type gobCodec[T any] struct{}

func (gobCodec[T]) Encode(v T) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return nil, fmt.Errorf("state: gob codec cannot encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

func (gobCodec[T]) Decode(b []byte) (T, error) {
	var v T
	r := bytes.NewReader(b)
	if err := gob.NewDecoder(r).Decode(&v); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: gob into %T: %w", ErrDecode, v, err)
	}
	if r.Len() != 0 {
		var zero T
		return zero, fmt.Errorf("%w: gob into %T: %d trailing bytes", ErrDecode, v, r.Len())
	}
	return v, nil
}
