package state

import (
	"bytes"
	"cmp"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkRoundTrip encodes each value with c, decodes it back and checks that
// the Appender path (if any) and the AppendEncode helper agree with Encode.
func checkRoundTrip[T any](t *testing.T, c Codec[T], equal func(a, b T) bool, values ...T) {
	t.Helper()
	for _, v := range values {
		b, err := c.Encode(v)
		require.NoError(t, err)
		got, err := c.Decode(b)
		require.NoError(t, err)
		require.Truef(t, equal(v, got), "round trip of %v gave %v", v, got)

		prefix := []byte("prefix")
		appended, err := AppendEncode(c, bytes.Clone(prefix), v)
		require.NoError(t, err)
		require.Equal(t, append(bytes.Clone(prefix), b...), appended, "AppendEncode differs from Encode for %v", v)
	}
}

func eq[T comparable](a, b T) bool { return a == b }

// sameBits compares floats by bit pattern, so NaNs and -0 count.
func sameBits64(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
func sameBits32(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }

type point struct {
	X, Y  int
	Label string
	Tags  map[string]int
}

func equalPoint(a, b point) bool {
	if a.X != b.X || a.Y != b.Y || a.Label != b.Label || len(a.Tags) != len(b.Tags) {
		return false
	}
	for k, v := range a.Tags {
		if b.Tags[k] != v {
			return false
		}
	}
	return true
}

func TestCodecsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"string", func(t *testing.T) { checkRoundTrip(t, String(), eq, "", "a", "héllo", "\x00\xff") }},
		{"bytes", func(t *testing.T) {
			checkRoundTrip(t, Bytes(), bytes.Equal, []byte{}, []byte("abc"), []byte{0, 255})
		}},
		{"bool", func(t *testing.T) { checkRoundTrip(t, Bool(), eq, false, true) }},
		{"int", func(t *testing.T) { checkRoundTrip(t, Int(), eq, 0, -1, 1, math.MinInt, math.MaxInt) }},
		{"int8", func(t *testing.T) { checkRoundTrip(t, Int8(), eq, 0, -1, 1, math.MinInt8, math.MaxInt8) }},
		{"int16", func(t *testing.T) { checkRoundTrip(t, Int16(), eq, 0, -1, math.MinInt16, math.MaxInt16) }},
		{"int32", func(t *testing.T) { checkRoundTrip(t, Int32(), eq, 0, -1, math.MinInt32, math.MaxInt32) }},
		{"int64", func(t *testing.T) { checkRoundTrip(t, Int64(), eq, 0, -1, math.MinInt64, math.MaxInt64) }},
		{"uint", func(t *testing.T) { checkRoundTrip(t, Uint(), eq, 0, 1, math.MaxUint) }},
		{"uint8", func(t *testing.T) { checkRoundTrip(t, Uint8(), eq, 0, 1, math.MaxUint8) }},
		{"uint16", func(t *testing.T) { checkRoundTrip(t, Uint16(), eq, 0, 1, math.MaxUint16) }},
		{"uint32", func(t *testing.T) { checkRoundTrip(t, Uint32(), eq, 0, 1, math.MaxUint32) }},
		{"uint64", func(t *testing.T) { checkRoundTrip(t, Uint64(), eq, 0, 1, math.MaxUint64) }},
		{"float32", func(t *testing.T) {
			checkRoundTrip(t, Float32(), sameBits32, 0, float32(math.Copysign(0, -1)), 1.5, -1.5,
				math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32,
				float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()))
		}},
		{"float64", func(t *testing.T) {
			checkRoundTrip(t, Float64(), sameBits64, 0, math.Copysign(0, -1), 1.5, -1.5,
				math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
				math.Inf(1), math.Inf(-1), math.NaN(), -math.NaN())
		}},
		{"JSON struct", func(t *testing.T) {
			checkRoundTrip(t, JSON[point](), equalPoint, point{}, point{X: 1, Y: -2, Label: "p", Tags: map[string]int{"a": 1, "b": 2}})
		}},
		{"gob struct", func(t *testing.T) {
			checkRoundTrip(t, Gob[point](), equalPoint, point{}, point{X: 1, Y: -2, Label: "p", Tags: map[string]int{"a": 1}})
		}},
		{"gob int", func(t *testing.T) { checkRoundTrip(t, Gob[int](), eq, 0, -7, math.MaxInt) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// checkOrder checks that encodings compare like the values for random pairs.
func checkOrder[T number](t *testing.T, c Codec[T], gen func(r *rand.Rand) T) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a, b := gen(r), gen(r)
		if a == 0 && b == 0 { // -0 and +0 are equal but encode differently
			continue
		}
		ea, err := c.Encode(a)
		require.NoError(t, err)
		eb, err := c.Encode(b)
		require.NoError(t, err)
		require.Equalf(t, cmp.Compare(a, b), bytes.Compare(ea, eb), "order of %v and %v", a, b)
	}
}

func TestCodecsPreserveOrder(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"int", func(t *testing.T) { checkOrder(t, Int(), func(r *rand.Rand) int { return int(r.Uint64()) }) }},
		{"int8", func(t *testing.T) { checkOrder(t, Int8(), func(r *rand.Rand) int8 { return int8(r.Uint32()) }) }},
		{"int16", func(t *testing.T) { checkOrder(t, Int16(), func(r *rand.Rand) int16 { return int16(r.Uint32()) }) }},
		{"int32", func(t *testing.T) { checkOrder(t, Int32(), func(r *rand.Rand) int32 { return int32(r.Uint32()) }) }},
		{"int64", func(t *testing.T) { checkOrder(t, Int64(), func(r *rand.Rand) int64 { return int64(r.Uint64()) }) }},
		{"uint8", func(t *testing.T) { checkOrder(t, Uint8(), func(r *rand.Rand) uint8 { return uint8(r.Uint32()) }) }},
		{"uint64", func(t *testing.T) { checkOrder(t, Uint64(), func(r *rand.Rand) uint64 { return r.Uint64() }) }},
		{"float32", func(t *testing.T) {
			checkOrder(t, Float32(), func(r *rand.Rand) float32 { return float32(r.NormFloat64() * 1e6) })
		}},
		{"float64", func(t *testing.T) {
			checkOrder(t, Float64(), func(r *rand.Rand) float64 {
				if r.IntN(10) == 0 {
					return []float64{math.Inf(-1), math.Inf(1), -math.MaxFloat64, math.SmallestNonzeroFloat64}[r.IntN(4)]
				}
				return r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestCodecsRejectMalformed(t *testing.T) {
	decode := func(c interface{ Decode([]byte) (any, error) }) func([]byte) error {
		return func(b []byte) error { _, err := c.Decode(b); return err }
	}
	tests := []struct {
		name   string
		decode func([]byte) error
		input  []byte
	}{
		{"int64 short", decode(anyCodec[int64]{Int64()}), []byte{1, 2, 3}},
		{"int64 long", decode(anyCodec[int64]{Int64()}), make([]byte, 9)},
		{"int empty", decode(anyCodec[int]{Int()}), nil},
		{"int8 two bytes", decode(anyCodec[int8]{Int8()}), []byte{1, 2}},
		{"uint16 one byte", decode(anyCodec[uint16]{Uint16()}), []byte{1}},
		{"uint32 empty", decode(anyCodec[uint32]{Uint32()}), nil},
		{"float32 short", decode(anyCodec[float32]{Float32()}), []byte{1}},
		{"float64 short", decode(anyCodec[float64]{Float64()}), []byte{1, 2, 3, 4}},
		{"bool empty", decode(anyCodec[bool]{Bool()}), nil},
		{"bool two", decode(anyCodec[bool]{Bool()}), []byte{2}},
		{"bool long", decode(anyCodec[bool]{Bool()}), []byte{1, 0}},
		{"JSON garbage", decode(anyCodec[point]{JSON[point]()}), []byte("{not json")},
		{"JSON trailing", decode(anyCodec[point]{JSON[point]()}), []byte(`{"X":1} x`)},
		{"gob garbage", decode(anyCodec[point]{Gob[point]()}), []byte{0xff, 0xff, 0xff, 0x01}},
		{"gob empty", decode(anyCodec[point]{Gob[point]()}), nil},
		{"gob trailing", decode(anyCodec[int]{Gob[int]()}), append(mustEncode(t, Gob[int](), 5), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, tt.decode(tt.input), ErrDecode)
		})
	}
}

// anyCodec erases a codec's type so a table can hold codecs of many types.
type anyCodec[T any] struct{ c Codec[T] }

func (a anyCodec[T]) Decode(b []byte) (any, error) { return a.c.Decode(b) }

func mustEncode[T any](t testing.TB, c Codec[T], v T) []byte {
	t.Helper()
	b, err := c.Encode(v)
	require.NoError(t, err)
	return b
}

type userID string

func TestCodecForPicksFastCodecs(t *testing.T) {
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"string", CodecFor[string](), stringCodec{}},
		{"bytes", CodecFor[[]byte](), bytesCodec{}},
		{"bool", CodecFor[bool](), boolCodec{}},
		{"int", CodecFor[int](), Int()},
		{"int8", CodecFor[int8](), Int8()},
		{"int16", CodecFor[int16](), Int16()},
		{"int32", CodecFor[int32](), Int32()},
		{"int64", CodecFor[int64](), Int64()},
		{"uint", CodecFor[uint](), Uint()},
		{"uint8", CodecFor[uint8](), Uint8()},
		{"uint16", CodecFor[uint16](), Uint16()},
		{"uint32", CodecFor[uint32](), Uint32()},
		{"uint64", CodecFor[uint64](), Uint64()},
		{"float32", CodecFor[float32](), float32Codec{}},
		{"float64", CodecFor[float64](), float64Codec{}},
		{"struct gets gob", CodecFor[point](), gobCodec[point]{}},
		{"named string gets gob", CodecFor[userID](), gobCodec[userID]{}},
		{"pointer gets gob", CodecFor[*point](), gobCodec[*point]{}},
		{"interface gets gob", CodecFor[any](), gobCodec[any]{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.got)
		})
	}
}

func TestCodecForGobRoundTrip(t *testing.T) {
	c := CodecFor[userID]()
	checkRoundTrip(t, c, eq, "", "u-1")
	p := CodecFor[*point]()
	got, err := p.Decode(mustEncode(t, p, &point{X: 3, Label: "x"}))
	require.NoError(t, err)
	require.Equal(t, point{X: 3, Label: "x"}, *got)
}

func TestCodecsEncodeErrors(t *testing.T) {
	_, err := JSON[chan int]().Encode(make(chan int))
	require.ErrorContains(t, err, "JSON codec cannot encode chan int")
	_, err = Gob[func()]().Encode(func() {})
	require.ErrorContains(t, err, "gob codec cannot encode func()")
	_, err = AppendEncode(Gob[func()](), []byte("keep"), func() {})
	require.Error(t, err)
}

func TestBytesCodecCopies(t *testing.T) {
	in := []byte("abc")
	enc, err := Bytes().Encode(in)
	require.NoError(t, err)
	in[0] = 'x'
	require.Equal(t, []byte("abc"), enc, "Encode must not alias its input")
	out, err := Bytes().Decode(enc)
	require.NoError(t, err)
	enc[0] = 'y'
	require.Equal(t, []byte("abc"), out, "Decode must not alias its input")
	empty, err := Bytes().Decode(nil)
	require.NoError(t, err)
	require.NotNil(t, empty)
	require.Empty(t, empty)
}

type number interface {
	signed | unsigned | ~float32 | ~float64
}
