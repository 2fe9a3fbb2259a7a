package state

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// contents returns the store's entries in iteration order.
func contents[K comparable, V any](s *Store[K, V]) ([]K, []V) {
	var ks []K
	var vs []V
	for k, v := range s.All() {
		ks = append(ks, k)
		vs = append(vs, v)
	}
	return ks, vs
}

// requireMatches checks the store holds exactly the model, in key order.
func requireMatches[K cmp.Ordered, V any](t *testing.T, model map[K]V, s *Store[K, V]) {
	t.Helper()
	require.Equal(t, len(model), s.Len())
	keys := slices.SortedFunc(maps.Keys(model), cmp.Compare[K])
	gotKeys, gotValues := contents(s)
	require.Equal(t, keys, gotKeys)
	for i, k := range keys {
		require.Equal(t, model[k], gotValues[i], "value of %v", k)
		v, ok := s.Get(k)
		require.True(t, ok)
		require.Equal(t, model[k], v)
	}
}

func TestStoreBasics(t *testing.T) {
	s := NewStore(String(), Int64())
	_, ok := s.Get("a")
	require.False(t, ok)
	require.NoError(t, s.Set("b", 2))
	require.NoError(t, s.Set("a", 1))
	require.NoError(t, s.Set("c", 3))
	require.NoError(t, s.Set("b", 20))
	require.Equal(t, 3, s.Len())
	v, ok := s.Get("b")
	require.True(t, ok)
	require.Equal(t, int64(20), v)
	require.True(t, s.Delete("a"))
	require.False(t, s.Delete("a"))
	require.False(t, s.Delete("zz"))
	requireMatches(t, map[string]int64{"b": 20, "c": 3}, s)

	// All stops when the loop breaks.
	n := 0
	for range s.All() {
		n++
		break
	}
	require.Equal(t, 1, n)
}

func TestStoreOrder(t *testing.T) {
	t.Run("int keys by value", func(t *testing.T) {
		s := NewStore(Int(), Bool())
		for _, k := range []int{5, -3, 0, math.MinInt, math.MaxInt, 7} {
			require.NoError(t, s.Set(k, true))
		}
		keys, _ := contents(s)
		require.Equal(t, []int{math.MinInt, -3, 0, 5, 7, math.MaxInt}, keys)
		require.False(t, s.byBytes)
	})
	t.Run("float keys like cmp.Compare", func(t *testing.T) {
		s := NewStore(Float64(), Int())
		for i, k := range []float64{2.5, math.NaN(), -1, math.Inf(1), math.NaN(), math.Copysign(0, -1), 0} {
			require.NoError(t, s.Set(k, i))
		}
		keys, values := contents(s)
		require.Len(t, keys, 5, "NaNs are one key and so are -0 and +0")
		require.True(t, math.IsNaN(keys[0]))
		require.Equal(t, []float64{-1, 0, 2.5, math.Inf(1)}, keys[1:])
		require.Equal(t, []int{4, 2, 6, 0, 3}, values)
	})
	t.Run("string keys lexicographic", func(t *testing.T) {
		s := NewStore(String(), Int())
		for i, k := range []string{"b", "", "ab", "a", "\xff"} {
			require.NoError(t, s.Set(k, i))
		}
		keys, _ := contents(s)
		require.Equal(t, []string{"", "a", "ab", "b", "\xff"}, keys)
	})
	t.Run("struct keys by encoding", func(t *testing.T) {
		type key struct{ A, B string }
		s := NewStore(JSON[key](), Int())
		require.True(t, s.byBytes)
		in := []key{{"b", "1"}, {"a", "2"}, {"a", "10"}, {"", ""}}
		for i, k := range in {
			require.NoError(t, s.Set(k, i))
		}
		require.NoError(t, s.Set(key{"a", "2"}, 99))
		keys, values := contents(s)
		var encs [][]byte
		for _, k := range keys {
			encs = append(encs, mustEncode(t, JSON[key](), k))
		}
		require.True(t, slices.IsSortedFunc(encs, bytes.Compare), "keys must be in encoded order")
		require.ElementsMatch(t, in, keys)
		for i, k := range keys {
			v, ok := s.Get(k)
			require.True(t, ok)
			require.Equal(t, values[i], v)
		}
		v, _ := s.Get(key{"a", "2"})
		require.Equal(t, 99, v)
		require.True(t, s.Delete(key{"", ""}))
		require.Equal(t, 3, s.Len())
	})
	t.Run("named int keys by encoding", func(t *testing.T) {
		s := NewStore(Codec[port](portCodec{}), String())
		require.True(t, s.byBytes)
		for _, p := range []port{443, -1, 80} {
			require.NoError(t, s.Set(p, fmt.Sprint(p)))
		}
		keys, _ := contents(s)
		require.Equal(t, []port{-1, 80, 443}, keys, "the int codec's encoding sorts numerically")
	})
}

// port is a named integer type: not one of the built-in ordered types, so a
// store orders it by encoding.
type port int

// portCodec encodes a port with the order-preserving Int codec.
type portCodec struct{}

func (portCodec) Encode(p port) ([]byte, error) { return Int().Encode(int(p)) }

func (portCodec) Decode(b []byte) (port, error) {
	v, err := Int().Decode(b)
	return port(v), err
}

// TestStoreMatchesModel runs random operations, with clones and snapshot,
// delta and change bookkeeping, against a plain map.
func TestStoreMatchesModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	type replica struct {
		s     *Store[string, int64]
		model map[string]int64
	}
	live := replica{NewStore(String(), Int64()), map[string]int64{}}
	var clones []replica
	for step := range 3000 {
		k := fmt.Sprintf("k%03d", r.IntN(200))
		switch op := r.IntN(20); {
		case op < 12:
			v := r.Int64N(1000) - 500
			require.NoError(t, live.s.Set(k, v))
			live.model[k] = v
		case op < 17:
			_, had := live.model[k]
			require.Equal(t, had, live.s.Delete(k))
			delete(live.model, k)
		case op < 18:
			v, ok := live.s.Get(k)
			mv, mok := live.model[k]
			require.Equal(t, mok, ok)
			require.Equal(t, mv, v)
		case op < 19:
			clones = append(clones, replica{live.s.Clone(), maps.Clone(live.model)})
		default:
			if len(clones) > 0 {
				// Writes to a clone must not show in the origin.
				c := clones[r.IntN(len(clones))]
				require.NoError(t, c.s.Set(k, int64(step)))
				c.model[k] = int64(step)
			}
		}
	}
	requireMatches(t, live.model, live.s)
	for _, c := range clones {
		requireMatches(t, c.model, c.s)
	}
}

func TestStoreCloneIsCopyOnWrite(t *testing.T) {
	s := NewStore(Int(), Int64())
	for k := range 1000 {
		require.NoError(t, s.Set(k, int64(k)))
	}
	c1 := s.Clone()
	// Same-length overwrites take the in-place path once a key is owned;
	// the clone must keep the old values.
	for range 3 {
		for k := range 1000 {
			require.NoError(t, s.Set(k, int64(-k)))
		}
	}
	c2 := c1.Clone()
	require.NoError(t, c1.Set(1, 111))
	require.NoError(t, c2.Set(2, 222))
	require.True(t, c2.Delete(3))

	for k := range 1000 {
		v, _ := s.Get(k)
		require.Equal(t, int64(-k), v)
	}
	for k, v := range c1.All() {
		want := int64(k)
		if k == 1 {
			want = 111
		}
		require.Equal(t, want, v, "c1 key %d", k)
	}
	require.Equal(t, 999, c2.Len())
	v, _ := c2.Get(1)
	require.Equal(t, int64(1), v)
	v, _ = c2.Get(2)
	require.Equal(t, int64(222), v)
}

func TestStoreCloneSnapshotWhileOriginChanges(t *testing.T) {
	s := NewStore(String(), Int64())
	want := map[string]int64{}
	for i := range 5000 {
		k := fmt.Sprintf("key-%d", i)
		require.NoError(t, s.Set(k, int64(i)))
		want[k] = int64(i)
	}
	c := s.Clone()
	snap := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		if err := c.WriteSnapshot(&buf); err != nil {
			snap <- nil
			return
		}
		snap <- buf.Bytes()
	}()
	for i := range 5000 {
		k := fmt.Sprintf("key-%d", i)
		if i%3 == 0 {
			s.Delete(k)
		} else {
			require.NoError(t, s.Set(k, -1))
		}
	}
	data := <-snap
	require.NotNil(t, data, "snapshot of the clone failed")
	restored := NewStore(String(), Int64())
	require.NoError(t, restored.ReadSnapshot(bytes.NewReader(data)))
	requireMatches(t, want, restored)
}

func TestStoreChangeTracking(t *testing.T) {
	s := NewStore(String(), Int())
	require.Equal(t, 0, s.Changed())
	require.NoError(t, s.Set("a", 1))
	require.NoError(t, s.Set("a", 2))
	require.NoError(t, s.Set("b", 1))
	require.Equal(t, 2, s.Changed(), "a key set twice counts once")
	s.ResetChanges()
	require.Equal(t, 0, s.Changed())
	require.False(t, s.Delete("missing"))
	require.Equal(t, 0, s.Changed(), "deleting an absent key changes nothing")
	require.True(t, s.Delete("a"))
	require.Equal(t, 1, s.Changed())

	c := s.Clone()
	require.Equal(t, 1, c.Changed(), "a clone has the same pending changes")
	require.NoError(t, c.Set("x", 1))
	require.Equal(t, 2, c.Changed())
	require.Equal(t, 1, s.Changed(), "changes to a clone are its own")
	s.ResetChanges()
	require.Equal(t, 0, s.Changed())
	require.Equal(t, 2, c.Changed())
}

func TestStoreSnapshotRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"empty", func(t *testing.T) { snapshotRoundTrip(t, NewStore(String(), Int64()), map[string]int64{}, "x") }},
		{"string to int64", func(t *testing.T) {
			m := map[string]int64{}
			for i := range 3000 {
				m[fmt.Sprintf("user-%d", i*7919%3000)] = int64(i) - 1500
			}
			snapshotRoundTrip(t, NewStore(String(), Int64()), m, "absent")
		}},
		{"int to string with large values", func(t *testing.T) {
			m := map[int]string{-1: "", 0: "zero", 1: string(bytes.Repeat([]byte("x"), 100_000))}
			snapshotRoundTrip(t, NewStore(Int(), String()), m, 42)
		}},
		{"float64 to bytes", func(t *testing.T) {
			m := map[float64][]byte{-2.5: {1}, 0: {}, 3: bytes.Repeat([]byte{7}, arenaChunk)}
			snapshotRoundTrip(t, NewStore(Float64(), Bytes()), m, 42)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}

	t.Run("struct keys", func(t *testing.T) {
		type key struct{ Region, User string }
		s := NewStore(JSON[key](), Gob[point]())
		for i := range 100 {
			require.NoError(t, s.Set(key{fmt.Sprint(i % 7), fmt.Sprint(i)}, point{X: i, Label: "p"}))
		}
		var buf bytes.Buffer
		require.NoError(t, s.WriteSnapshot(&buf))
		r := NewStore(JSON[key](), Gob[point]())
		require.NoError(t, r.ReadSnapshot(&buf))
		wantK, wantV := contents(s)
		gotK, gotV := contents(r)
		require.Equal(t, wantK, gotK)
		require.Equal(t, wantV, gotV)
	})
}

// snapshotRoundTrip fills s with m, snapshots it and reads the snapshot into
// a store that held only the key absent (not in m).
func snapshotRoundTrip[K cmp.Ordered, V any](t *testing.T, s *Store[K, V], m map[K]V, absent K) {
	t.Helper()
	for k, v := range m {
		require.NoError(t, s.Set(k, v))
	}
	var buf bytes.Buffer
	require.NoError(t, s.WriteSnapshot(&buf))
	first := bytes.Clone(buf.Bytes())

	r := NewStore(s.keys, s.values)
	require.NoError(t, r.Set(absent, *new(V)), "ReadSnapshot must replace old contents")
	require.NoError(t, r.ReadSnapshot(&buf))
	requireMatches(t, m, r)
	require.Equal(t, 0, r.Changed(), "a restored store has no pending changes")

	var again bytes.Buffer
	require.NoError(t, r.WriteSnapshot(&again))
	require.Equal(t, first, again.Bytes(), "snapshots are deterministic")
}

func TestStoreDeltaRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	live := NewStore(String(), Int64())
	replica := NewStore(String(), Int64())
	model := map[string]int64{}
	for round := range 20 {
		for range r.IntN(100) {
			k := fmt.Sprintf("k%d", r.IntN(150))
			if r.IntN(4) == 0 {
				live.Delete(k)
				delete(model, k)
				continue
			}
			v := r.Int64N(100)
			require.NoError(t, live.Set(k, v))
			model[k] = v
		}
		var delta bytes.Buffer
		require.NoError(t, live.WriteDelta(&delta))
		var again bytes.Buffer
		require.NoError(t, live.WriteDelta(&again))
		require.Equal(t, delta.Bytes(), again.Bytes(), "round %d: deltas are deterministic", round)
		live.ResetChanges()
		require.NoError(t, replica.ApplyDelta(&delta), "round %d", round)
		requireMatches(t, model, replica)
		require.Equal(t, 0, replica.Changed(), "applying a delta is not a change")
	}
}

func TestStoreDeltaHoldsOnlyChanges(t *testing.T) {
	s := NewStore(Int(), Int64())
	for k := range 10_000 {
		require.NoError(t, s.Set(k, 1))
	}
	s.ResetChanges()
	require.NoError(t, s.Set(5, 2))
	require.NoError(t, s.Set(20_000, 3))
	require.True(t, s.Delete(7))

	var delta bytes.Buffer
	require.NoError(t, s.WriteDelta(&delta))
	// header 7 bytes; upserts 1+1+8+1+8; tombstone 1+1+8
	require.Equal(t, 7+19+10+19, delta.Len())

	base := NewStore(Int(), Int64())
	require.NoError(t, base.Set(7, 1))
	require.NoError(t, base.Set(5, 1))
	require.NoError(t, base.ApplyDelta(&delta))
	ks, vs := contents(base)
	require.Equal(t, []int{5, 20_000}, ks)
	require.Equal(t, []int64{2, 3}, vs)
}

func TestStoreDeltaByteOrderedKeys(t *testing.T) {
	type key struct{ A int }
	live := NewStore(Gob[key](), String())
	replica := NewStore(Gob[key](), String())
	for i := range 50 {
		require.NoError(t, live.Set(key{i}, fmt.Sprint(i)))
	}
	var d bytes.Buffer
	require.NoError(t, live.WriteDelta(&d))
	live.ResetChanges()
	require.NoError(t, replica.ApplyDelta(&d))
	for i := range 50 {
		if i%2 == 0 {
			require.True(t, live.Delete(key{i}))
		} else {
			require.NoError(t, live.Set(key{i}, "odd"))
		}
	}
	d.Reset()
	require.NoError(t, live.WriteDelta(&d))
	require.NoError(t, replica.ApplyDelta(&d))
	wantK, wantV := contents(live)
	gotK, gotV := contents(replica)
	require.Equal(t, wantK, gotK)
	require.Equal(t, wantV, gotV)
	require.Len(t, gotK, 25)
}

func TestStoreApplyDeltaUpdatesPendingChanges(t *testing.T) {
	src := NewStore(String(), Int())
	require.NoError(t, src.Set("a", 10))
	require.NoError(t, src.Set("b", 20))
	var d bytes.Buffer
	require.NoError(t, src.WriteDelta(&d))

	dst := NewStore(String(), Int())
	require.NoError(t, dst.Set("a", 1)) // pending change, overwritten by the delta
	require.NoError(t, dst.ApplyDelta(&d))
	require.Equal(t, 1, dst.Changed(), "only the key that was already pending stays pending")

	var out bytes.Buffer
	require.NoError(t, dst.WriteDelta(&out))
	check := NewStore(String(), Int())
	require.NoError(t, check.ApplyDelta(&out))
	v, ok := check.Get("a")
	require.True(t, ok)
	require.Equal(t, 10, v, "the pending change carries the value the delta set")
	require.Equal(t, 1, check.Len())
}

func TestStoreSetErrorsLeaveStoreUnchanged(t *testing.T) {
	s := NewStore(String(), Gob[func()]())
	require.ErrorContains(t, s.Set("k", func() {}), `the value for key k`)
	require.Equal(t, 0, s.Len())
	require.Equal(t, 0, s.Changed())

	type key struct{ C chan int }
	bad := key{make(chan int)}
	ks := NewStore(JSON[key](), Int())
	require.ErrorContains(t, ks.Set(bad, 1), "cannot encode key")
	require.Equal(t, 0, ks.Len())
	_, ok := ks.Get(bad)
	require.False(t, ok)
	require.False(t, ks.Delete(bad))
}

func TestNewStorePanicsWithoutCodecs(t *testing.T) {
	require.PanicsWithValue(t,
		"state: NewStore needs a key codec and a value codec; CodecFor[T]() gives a ready one",
		func() { NewStore[string, int](nil, Int()) })
}

// snapshotBytes returns a valid snapshot of a small string→int64 store.
func snapshotBytes(t testing.TB) []byte {
	s := NewStore(String(), Int64())
	for i, k := range []string{"apple", "banana", "cherry"} {
		require.NoError(t, s.Set(k, int64(i+1)))
	}
	var buf bytes.Buffer
	require.NoError(t, s.WriteSnapshot(&buf))
	return buf.Bytes()
}

func deltaBytes(t testing.TB) []byte {
	s := NewStore(String(), Int64())
	require.NoError(t, s.Set("apple", 5))
	require.NoError(t, s.Set("kiwi", 6))
	require.NoError(t, s.Set("banana", 1))
	require.True(t, s.Delete("banana"))
	var buf bytes.Buffer
	require.NoError(t, s.WriteDelta(&buf))
	return buf.Bytes()
}

func TestStoreReadRejectsMalformedInput(t *testing.T) {
	snap := snapshotBytes(t)
	delta := deltaBytes(t)
	// rec builds a one-record body by hand.
	rec := func(section byte, count int, body ...[]byte) []byte {
		return append(appendStoreHeader(nil, section, count), bytes.Join(body, nil)...)
	}
	i64 := func(v int64) []byte { return append([]byte{8}, mustEncode(t, Int64(), v)...) }
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	tests := []struct {
		name    string
		delta   bool
		input   []byte
		message string
	}{
		{"empty", false, nil, "snapshot header: input ends inside the header"},
		{"bad magic", false, append([]byte("XXXX"), snap[4:]...), `bad magic "XXXX"`},
		{"future version", false, append([]byte("SLST\x02"), snap[5:]...), "unsupported version 2"},
		{"delta given to ReadSnapshot", false, delta, "found a delta where a snapshot was expected; apply it with ApplyDelta"},
		{"snapshot given to ApplyDelta", true, snap, "found a snapshot where a delta was expected; read it with ReadSnapshot"},
		{"count too large", false, rec(sectionSnapshot, 2, str("a"), i64(1)), "snapshot record 1: input ends inside the key length"},
		{"keys out of order", false, rec(sectionSnapshot, 2, str("b"), i64(1), str("a"), i64(2)), "key a is not after the previous key b"},
		{"duplicate keys", false, rec(sectionSnapshot, 2, str("a"), i64(1), str("a"), i64(2)), "key a is not after the previous key a"},
		{"value of wrong size", false, rec(sectionSnapshot, 1, str("a"), []byte{3, 1, 2, 3}), "value of key a does not decode"},
		{"huge key length", false, rec(sectionSnapshot, 1, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}), "key length 4294967295 exceeds the limit"},
		{"long key length cut short", false, rec(sectionSnapshot, 1, []byte{0x80, 0x80, 0x80, 0x02}, []byte("abc")), "input ends inside the key"},
		{"varint overflow", false, rec(sectionSnapshot, 1, bytes.Repeat([]byte{0xff}, 11)), "key length"},
		{"unknown op", true, rec(sectionDelta, 1, []byte{9}, str("a")), "unknown op 9"},
		{"delta cut in value", true, rec(sectionDelta, 1, []byte{opUpsert}, str("a"), []byte{8, 1, 2}), "input ends inside the value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore(String(), Int64())
			require.NoError(t, s.Set("keep", 1))
			var err error
			if tt.delta {
				err = s.ApplyDelta(bytes.NewReader(tt.input))
			} else {
				err = s.ReadSnapshot(bytes.NewReader(tt.input))
			}
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tt.message)
			requireMatches(t, map[string]int64{"keep": 1}, s)
		})
	}

	t.Run("non-canonical byte-ordered key", func(t *testing.T) {
		type key struct{ A int }
		s := NewStore(JSON[key](), Int64())
		input := rec(sectionSnapshot, 1, str(`{ "A":1}`), i64(1)) // JSON accepts the space
		err := s.ReadSnapshot(bytes.NewReader(input))
		require.ErrorIs(t, err, ErrCorrupt)
		require.ErrorContains(t, err, "not in the key codec's canonical encoding")
	})
}

func TestStoreReadDetectsEveryTruncation(t *testing.T) {
	for _, tt := range []struct {
		name  string
		input []byte
		read  func(s *Store[string, int64], b []byte) error
	}{
		{"snapshot", snapshotBytes(t), func(s *Store[string, int64], b []byte) error { return s.ReadSnapshot(bytes.NewReader(b)) }},
		{"delta", deltaBytes(t), func(s *Store[string, int64], b []byte) error { return s.ApplyDelta(bytes.NewReader(b)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for n := range len(tt.input) {
				s := NewStore(String(), Int64())
				require.NoError(t, s.Set("keep", 1))
				err := tt.read(s, tt.input[:n])
				require.ErrorIs(t, err, ErrCorrupt, "cut at %d of %d bytes", n, len(tt.input))
				requireMatches(t, map[string]int64{"keep": 1}, s)
			}
			s := NewStore(String(), Int64())
			require.NoError(t, tt.read(s, tt.input))
		})
	}
}

func TestStoreReadReadsExactlyItsOwnBytes(t *testing.T) {
	snap := snapshotBytes(t)
	delta := deltaBytes(t)
	r := bytes.NewReader(append(append(bytes.Clone(snap), delta...), "tail"...))
	s := NewStore(String(), Int64())
	require.NoError(t, s.ReadSnapshot(r))
	require.NoError(t, s.ApplyDelta(r))
	rest := make([]byte, 10)
	n, _ := r.Read(rest)
	require.Equal(t, "tail", string(rest[:n]))
	requireMatches(t, map[string]int64{"apple": 5, "cherry": 3, "kiwi": 6}, s)
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, fmt.Errorf("disk full")
	}
	w.after--
	return len(p), nil
}

func TestStoreWriteErrors(t *testing.T) {
	s := NewStore(String(), Bytes())
	require.NoError(t, s.Set("big", bytes.Repeat([]byte{1}, 3*arenaChunk)))
	require.ErrorContains(t, s.WriteSnapshot(&failingWriter{}), "state: write snapshot: disk full")
	require.ErrorContains(t, s.WriteDelta(&failingWriter{}), "state: write delta: disk full")
	require.ErrorContains(t, s.WriteSnapshot(&failingWriter{after: 1}), "disk full")
}

func TestStoreHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	t.Run("string keys", func(t *testing.T) {
		s := NewStore(String(), Int64())
		keys := make([]string, 100)
		for i := range keys {
			keys[i] = fmt.Sprintf("key-%d", i)
			require.NoError(t, s.Set(keys[i], 1))
		}
		s.Clone() // existing buffers become shared: first write copies
		for _, k := range keys {
			require.NoError(t, s.Set(k, 2))
		}
		i := 0
		require.Zero(t, testing.AllocsPerRun(1000, func() {
			_ = s.Set(keys[i%100], int64(i))
			i++
		}), "Set")
		require.Zero(t, testing.AllocsPerRun(1000, func() {
			_, _ = s.Get(keys[i%100])
			i++
		}), "Get")
	})
	t.Run("int keys", func(t *testing.T) {
		s := NewStore(Int(), Int64())
		for k := range 100 {
			require.NoError(t, s.Set(k, 1))
		}
		i := 0
		require.Zero(t, testing.AllocsPerRun(1000, func() {
			_ = s.Set(i%100, int64(i))
			i++
		}), "Set")
		require.Zero(t, testing.AllocsPerRun(1000, func() {
			_, _ = s.Get(i % 100)
			i++
		}), "Get")
	})
}
