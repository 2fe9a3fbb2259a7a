package state

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzReadFile feeds arbitrary file contents to ReadFile. It must never
// panic, must report every rejection as corruption, and may accept only
// exactly what WriteFile would have written for the body it returns.
func FuzzReadFile(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed")
	for _, body := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("abc"), 100)} {
		require.NoError(f, WriteFile(OSFS{}, seed, KindDelta, body))
		raw, err := os.ReadFile(seed)
		require.NoError(f, err)
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
	}
	f.Add([]byte("SLCK"))
	// Each fuzzing process runs inputs one at a time, so the two files in
	// its own temporary directory can be reused.
	path, again := filepath.Join(dir, "f"), filepath.Join(dir, "g")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o600))
		body, err := ReadFile(OSFS{}, path, KindDelta)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			require.Nil(t, body)
			return
		}
		require.NoError(t, WriteFile(OSFS{}, again, KindDelta, body))
		want, err := os.ReadFile(again)
		require.NoError(t, err)
		require.Equal(t, want, data, "an accepted file is exactly what WriteFile writes")
	})
}

// FuzzReadSnapshot feeds arbitrary bytes to ReadSnapshot. It must never
// panic; on error the store is unchanged and the error is corruption; on
// success the store round-trips through its own snapshot.
func FuzzReadSnapshot(f *testing.F) {
	f.Add(snapshotBytes(f))
	f.Add(deltaBytes(f))
	f.Add(appendStoreHeader(nil, sectionSnapshot, 0))
	f.Add(appendStoreHeader(nil, sectionSnapshot, 1<<40))
	byEncoding := NewStore(JSON[fuzzKey](), Bool())
	for i := range 3 {
		require.NoError(f, byEncoding.Set(fuzzKey{A: i, B: "b"}, i%2 == 0))
	}
	var seed bytes.Buffer
	require.NoError(f, byEncoding.WriteSnapshot(&seed))
	f.Add(seed.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewStore(String(), Int64())
		require.NoError(t, s.Set("before", 1))
		if err := s.ReadSnapshot(bytes.NewReader(data)); err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			requireMatches(t, map[string]int64{"before": 1}, s)
		} else {
			requireSnapshotRoundTrip(t, s)
		}

		// The same bytes for a store ordered by encoded keys.
		e := NewStore(JSON[fuzzKey](), Bool())
		if err := e.ReadSnapshot(bytes.NewReader(data)); err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			require.Equal(t, 0, e.Len())
			return
		}
		var buf bytes.Buffer
		require.NoError(t, e.WriteSnapshot(&buf))
		r := NewStore(JSON[fuzzKey](), Bool())
		require.NoError(t, r.ReadSnapshot(&buf))
		wantK, wantV := contents(e)
		gotK, gotV := contents(r)
		require.Equal(t, wantK, gotK)
		require.Equal(t, wantV, gotV)
	})
}

// FuzzApplyDelta feeds arbitrary bytes to ApplyDelta over a small store,
// with the same checks as FuzzReadSnapshot.
func FuzzApplyDelta(f *testing.F) {
	f.Add(deltaBytes(f))
	f.Add(snapshotBytes(f))
	f.Add(appendStoreHeader(nil, sectionDelta, 0))
	f.Add(append(appendStoreHeader(nil, sectionDelta, 2), opTombstone, 5, 'a', 'p', 'p', 'l', 'e', opTombstone, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewStore(String(), Int64())
		base := map[string]int64{"apple": 1, "banana": 2}
		for k, v := range base {
			require.NoError(t, s.Set(k, v))
		}
		s.ResetChanges()
		if err := s.ApplyDelta(bytes.NewReader(data)); err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			requireMatches(t, base, s)
			return
		}
		require.Equal(t, 0, s.Changed())
		requireSnapshotRoundTrip(t, s)
	})
}

// fuzzKey is a key type that stores order by its JSON encoding.
type fuzzKey struct {
	A int
	B string
}

func requireSnapshotRoundTrip(t *testing.T, s *Store[string, int64]) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, s.WriteSnapshot(&buf))
	r := NewStore(String(), Int64())
	require.NoError(t, r.ReadSnapshot(&buf))
	wantK, wantV := contents(s)
	gotK, gotV := contents(r)
	require.Equal(t, wantK, gotK)
	require.Equal(t, wantV, gotV)
}

// FuzzCodecsDecode feeds arbitrary bytes to every ready codec's Decode: no
// panics, errors are ErrDecode, and what the fixed-width codecs accept
// re-encodes to the same bytes.
func FuzzCodecsDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 1})
	f.Add(mustEncode(f, Gob[point](), point{X: 1, Tags: map[string]int{"a": 1}}))
	f.Add([]byte(`{"X":1,"Tags":{"a":2}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		canonical := func(name string, reencode func() ([]byte, error), err error) {
			if err != nil {
				require.ErrorIs(t, err, ErrDecode, name)
				return
			}
			b, err := reencode()
			require.NoError(t, err, name)
			require.Equal(t, data, b, name)
		}
		i8, err := Int8().Decode(data)
		canonical("int8", func() ([]byte, error) { return Int8().Encode(i8) }, err)
		i16, err := Int16().Decode(data)
		canonical("int16", func() ([]byte, error) { return Int16().Encode(i16) }, err)
		i32, err := Int32().Decode(data)
		canonical("int32", func() ([]byte, error) { return Int32().Encode(i32) }, err)
		i64, err := Int64().Decode(data)
		canonical("int64", func() ([]byte, error) { return Int64().Encode(i64) }, err)
		i, err := Int().Decode(data)
		canonical("int", func() ([]byte, error) { return Int().Encode(i) }, err)
		u8, err := Uint8().Decode(data)
		canonical("uint8", func() ([]byte, error) { return Uint8().Encode(u8) }, err)
		u16, err := Uint16().Decode(data)
		canonical("uint16", func() ([]byte, error) { return Uint16().Encode(u16) }, err)
		u32, err := Uint32().Decode(data)
		canonical("uint32", func() ([]byte, error) { return Uint32().Encode(u32) }, err)
		u64, err := Uint64().Decode(data)
		canonical("uint64", func() ([]byte, error) { return Uint64().Encode(u64) }, err)
		u, err := Uint().Decode(data)
		canonical("uint", func() ([]byte, error) { return Uint().Encode(u) }, err)
		f32, err := Float32().Decode(data)
		canonical("float32", func() ([]byte, error) { return Float32().Encode(f32) }, err)
		f64, err := Float64().Decode(data)
		canonical("float64", func() ([]byte, error) { return Float64().Encode(f64) }, err)
		b, err := Bool().Decode(data)
		canonical("bool", func() ([]byte, error) { return Bool().Encode(b) }, err)
		s, err := String().Decode(data)
		canonical("string", func() ([]byte, error) { return String().Encode(s) }, err)
		bs, err := Bytes().Decode(data)
		canonical("bytes", func() ([]byte, error) { return Bytes().Encode(bs) }, err)

		if _, err := JSON[point]().Decode(data); err != nil {
			require.ErrorIs(t, err, ErrDecode)
		}
		if _, err := Gob[point]().Decode(data); err != nil {
			require.ErrorIs(t, err, ErrDecode)
		}
		if _, err := Gob[map[string][]int]().Decode(data); err != nil {
			require.ErrorIs(t, err, ErrDecode)
		}
	})
}
