package state

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// changes collects what EachChange gives, a deleted key as "-".
func changes[K comparable, V any](t *testing.T, s *Store[K, V]) [][2]string {
	t.Helper()
	var out [][2]string
	require.NoError(t, s.EachChange(func(k, v []byte) error {
		if v == nil {
			out = append(out, [2]string{string(k), "-"})
		} else {
			out = append(out, [2]string{string(k), string(v)})
		}
		return nil
	}))
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// replay loads records into s, as a compacted log would give them.
func replay(recs ...[2]string) func(apply func(k, v []byte) error) error {
	return func(apply func(k, v []byte) error) error {
		for _, r := range recs {
			var v []byte
			if r[1] != "-" {
				v = []byte(r[1])
			}
			if err := apply([]byte(r[0]), v); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestStoreEachChange(t *testing.T) {
	s := NewStore(String(), String())
	require.Empty(t, changes(t, s))
	require.NoError(t, s.Set("b", "2"))
	require.NoError(t, s.Set("a", "1"))
	require.NoError(t, s.Set("c", ""))
	require.Equal(t, [][2]string{{"a", "1"}, {"b", "2"}, {"c", ""}}, changes(t, s), "an empty value as a value")
	require.Equal(t, 3, s.Changed(), "EachChange keeps the changes")
	s.ResetChanges()
	require.True(t, s.Delete("b"))
	require.NoError(t, s.Set("a", "one"))
	require.Equal(t, [][2]string{{"a", "one"}, {"b", "-"}}, changes(t, s))

	stop := errors.New("stop")
	n := 0
	err := s.EachChange(func(k, v []byte) error { n++; return stop })
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n)

	// Keys ordered by their encoding carry it in the store.
	type key struct{ A int }
	g := NewStore(Gob[key](), Int())
	for i := range 5 {
		require.NoError(t, g.Set(key{i}, i))
	}
	replica := NewStore(Gob[key](), Int())
	var recs [][2]string
	require.NoError(t, g.EachChange(func(k, v []byte) error {
		recs = append(recs, [2]string{string(k), string(v)})
		return nil
	}))
	require.NoError(t, replica.Load(replay(recs...)))
	wantK, wantV := contents(g)
	gotK, gotV := contents(replica)
	require.Equal(t, wantK, gotK)
	require.Equal(t, wantV, gotV)
}

func TestStoreLoad(t *testing.T) {
	enc := func(n int) string { b, err := Int().Encode(n); require.NoError(t, err); return string(b) }
	cases := []struct {
		name string
		recs [][2]string
		want map[string]int
		err  string
	}{
		{"empty", nil, map[string]int{}, ""},
		{"later records replace earlier ones", [][2]string{{"b", enc(1)}, {"a", enc(2)}, {"b", enc(3)}}, map[string]int{"a": 2, "b": 3}, ""},
		{"a nil value deletes", [][2]string{{"a", enc(1)}, {"b", enc(2)}, {"a", "-"}, {"c", "-"}}, map[string]int{"b": 2}, ""},
		{"a key set again after its deletion", [][2]string{{"a", enc(1)}, {"a", "-"}, {"a", enc(4)}}, map[string]int{"a": 4}, ""},
		{"a value that does not decode", [][2]string{{"a", enc(1)}, {"b", "xyz"}}, nil, `record 2: value of key b does not decode`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore(String(), Int())
			require.NoError(t, s.Set("old", 9))
			err := s.Load(replay(tc.recs...))
			if tc.err != "" {
				require.ErrorIs(t, err, ErrCorrupt)
				require.ErrorContains(t, err, tc.err)
				requireMatches(t, map[string]int{"old": 9}, s)
				return
			}
			require.NoError(t, err)
			requireMatches(t, tc.want, s)
			require.Zero(t, s.Changed(), "what was loaded is no change")
		})
	}
	t.Run("load's own error", func(t *testing.T) {
		s := NewStore(String(), Int())
		boom := errors.New("boom")
		err := s.Load(func(apply func(k, v []byte) error) error {
			if err := apply([]byte("a"), []byte(enc(1))); err != nil {
				return err
			}
			return boom
		})
		require.ErrorIs(t, err, boom)
		require.Zero(t, s.Len())
	})
	t.Run("a key in another encoding than its codec's", func(t *testing.T) {
		type key struct{ A int }
		s := NewStore(Gob[key](), Int())
		err := s.Load(replay([2]string{"not gob", enc(1)}))
		require.ErrorIs(t, err, ErrCorrupt)
		require.ErrorContains(t, err, "record 1: key does not decode")
	})
	t.Run("many keys load in order", func(t *testing.T) {
		s := NewStore(Int(), Int())
		want := map[int]int{}
		err := s.Load(func(apply func(k, v []byte) error) error {
			for i := range 1000 {
				k := (i * 7919) % 1000
				kb, _ := Int().Encode(k)
				vb, _ := Int().Encode(i)
				want[k] = i
				if err := apply(kb, vb); err != nil {
					return fmt.Errorf("key %d: %w", k, err)
				}
			}
			return nil
		})
		require.NoError(t, err)
		requireMatches(t, want, s)
	})
}

// FuzzStoreLoad feeds records cut from arbitrary bytes to Load. It must
// never panic, must report every rejection as corruption and leave the
// store as it was, and must hold, on success, what the records say.
func FuzzStoreLoad(f *testing.F) {
	enc := func(n int) []byte { b, _ := Int().Encode(n); return b }
	f.Add([]byte{1, 'a', 8}, enc(1))
	f.Add([]byte{0}, []byte("x"))
	f.Add([]byte{2, 'a', 'b', 0}, append(enc(3), enc(4)...))
	f.Fuzz(func(t *testing.T, keys, values []byte) {
		// keys: length-prefixed (1 byte) keys; values: 8-byte values, a
		// short tail meaning a deletion.
		s := NewStore(String(), Int())
		require.NoError(t, s.Set("old", 1))
		model := map[string]int{}
		err := s.Load(func(apply func(k, v []byte) error) error {
			ks, vs := keys, values
			for len(ks) > 0 {
				n := min(int(ks[0]), len(ks)-1)
				k := ks[1 : 1+n]
				ks = ks[1+n:]
				var v []byte
				if len(vs) >= 8 {
					v, vs = vs[:8], vs[8:]
				} else if len(vs) > 0 {
					v, vs = vs, nil // not an encoding of Int
				}
				if err := apply(k, v); err != nil {
					return err
				}
				if v == nil {
					delete(model, string(k))
				} else {
					x, _ := Int().Decode(v)
					model[string(k)] = x
				}
			}
			return nil
		})
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			requireMatches(t, map[string]int{"old": 1}, s)
			return
		}
		requireMatches(t, model, s)
	})
}
