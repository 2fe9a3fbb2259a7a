package state

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// updateModel applies to a map what UpdateAll applies to a store, and
// returns the keys in the order f saw them: stored keys in order, then new
// keys in order.
func updateModel[K cmp.Ordered, V any](model map[K]V, keys []K, f func(i int, k K, v V, exists bool) (V, bool)) []K {
	idx := make(map[K]int, len(keys))
	for i, k := range keys {
		idx[k] = i
	}
	all := slices.Sorted(maps.Keys(model))
	var added []K
	for _, k := range keys {
		if _, ok := model[k]; !ok {
			added = append(added, k)
		}
	}
	slices.Sort(added)
	all = append(all, added...)
	for _, k := range all {
		i, ok := idx[k]
		if !ok {
			i = -1
		}
		v, exists := model[k]
		if nv, keep := f(i, k, v, exists); keep {
			model[k] = nv
		} else {
			delete(model, k)
		}
	}
	return all
}

func TestStoreUpdateAllMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := NewStore(String(), Int64())
	model := make(map[string]int64)
	var clones []*Store[string, int64]
	var cloneModels []map[string]int64
	for round := range 60 {
		// Keys with data: some stored, some new.
		var keys []string
		seen := make(map[string]bool)
		for range rng.IntN(20) {
			k := fmt.Sprintf("k%03d", rng.IntN(200))
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		// f: keys with data add their index+1; keys without data are
		// deleted when their value is divisible by 7, halved when even,
		// kept otherwise. New keys start at 1000 unless their index is odd.
		f := func(i int, k string, v int64, exists bool) (int64, bool) {
			switch {
			case !exists && i%2 == 1:
				return 0, false
			case !exists:
				return 1000, true
			case i >= 0:
				return v + int64(i) + 1, true
			case v%7 == 0:
				return 0, false
			case v%2 == 0:
				return v / 2, true
			}
			return v, true
		}
		var seenByStore []string
		err := s.UpdateAll(keys, func(i int, k string, v int64, exists bool) (int64, bool) {
			seenByStore = append(seenByStore, k)
			return f(i, k, v, exists)
		})
		require.NoError(t, err)
		seenByModel := updateModel(model, keys, f)
		require.Equal(t, seenByModel, seenByStore, "round %d: keys visited in order, each once", round)
		requireMatches(t, model, s)
		if round%10 == 0 {
			clones = append(clones, s.Clone())
			cloneModels = append(cloneModels, maps.Clone(model))
		}
	}
	for i, c := range clones {
		requireMatches(t, cloneModels[i], c)
	}
}

func TestStoreUpdateAllByteOrderedKeys(t *testing.T) {
	type key struct{ A, B int }
	s := NewStore(JSON[key](), String())
	for i := range 20 {
		require.NoError(t, s.Set(key{i, -i}, "v"))
	}
	s.ResetChanges()
	keys := []key{{5, -5}, {100, 0}, {-1, 3}}
	var visited []key
	require.NoError(t, s.UpdateAll(keys, func(i int, k key, v string, exists bool) (string, bool) {
		visited = append(visited, k)
		switch {
		case i >= 0:
			return fmt.Sprint(i), true
		case k.A%2 == 1:
			return "", false
		}
		return v, true
	}))
	require.Len(t, visited, 22, "every stored key and both new keys")
	var encs [][]byte
	for _, k := range visited {
		encs = append(encs, mustEncode(t, JSON[key](), k))
	}
	require.True(t, slices.IsSortedFunc(encs[:20], bytes.Compare), "stored keys visited in the store's (encoded) order")
	require.Equal(t, []key{{-1, 3}, {100, 0}}, visited[20:], "then new keys, in order")
	v, ok := s.Get(key{5, -5})
	require.True(t, ok)
	require.Equal(t, "0", v)
	v, ok = s.Get(key{100, 0})
	require.True(t, ok)
	require.Equal(t, "1", v)
	_, ok = s.Get(key{3, -3})
	require.False(t, ok, "odd keys without data are deleted")
	require.Equal(t, 20-9+2, s.Len(), "9 odd keys without data deleted, 2 new keys")
	require.Equal(t, 9+1+2, s.Changed(), "9 deletions, 1 update, 2 inserts")
}

// TestStoreUpdateAllEmptyEncodings covers values that encode to nothing,
// whose entries have no buffer of their own to recognise them by.
func TestStoreUpdateAllEmptyEncodings(t *testing.T) {
	s := NewStore(String(), String())
	model := map[string]string{}
	for i := range 30 {
		k := fmt.Sprintf("k%02d", i)
		v := ""
		if i%3 == 0 {
			v = "x"
		}
		require.NoError(t, s.Set(k, v))
		model[k] = v
	}
	f := func(i int, k string, v string, exists bool) (string, bool) {
		if i >= 0 {
			return v + fmt.Sprint(i), true
		}
		return v, true
	}
	keys := []string{"k03", "k04", "k29", "new", "k10"}
	var seen []string
	require.NoError(t, s.UpdateAll(keys, func(i int, k string, v string, exists bool) (string, bool) {
		seen = append(seen, k)
		return f(i, k, v, exists)
	}))
	require.Equal(t, updateModel(model, keys, f), seen)
	requireMatches(t, model, s)
}

func TestStoreUpdateAllChangesOnlyWhatChanged(t *testing.T) {
	s := NewStore(String(), Int64())
	for i := range 100 {
		require.NoError(t, s.Set(fmt.Sprintf("k%02d", i), int64(i)))
	}
	s.ResetChanges()
	require.NoError(t, s.UpdateAll(nil, func(_ int, _ string, v int64, _ bool) (int64, bool) { return v, true }))
	require.Zero(t, s.Changed(), "rewriting every value unchanged marks nothing")

	c := s.Clone()
	require.NoError(t, s.UpdateAll([]string{"k05"}, func(i int, _ string, v int64, _ bool) (int64, bool) {
		if i == 0 {
			return -1, true
		}
		return v, true
	}))
	require.Equal(t, 1, s.Changed())
	var d bytes.Buffer
	require.NoError(t, s.WriteDelta(&d))
	replica := NewStore(String(), Int64())
	require.NoError(t, replica.ApplyDelta(&d))
	requireMatches(t, map[string]int64{"k05": -1}, replica)
	v, _ := c.Get("k05")
	require.Equal(t, int64(5), v, "the clone keeps its value")
}

func TestStoreUpdateAllErrors(t *testing.T) {
	s := NewStore(String(), Int64())
	require.NoError(t, s.Set("a", 1))
	err := s.UpdateAll([]string{"b", "a", "b"}, func(int, string, int64, bool) (int64, bool) { return 0, true })
	require.ErrorContains(t, err, `UpdateAll got key b twice`)

	type key struct{ A int }
	bad := NewStore[key, int](failingCodec[key]{}, Int())
	err = bad.UpdateAll([]key{{1}}, func(int, key, int, bool) (int, bool) { return 0, true })
	require.ErrorContains(t, err, "cannot encode key")

	vs := NewStore[string, int](String(), failingCodec[int]{okDecode: true})
	err = vs.UpdateAll([]string{"x"}, func(int, string, int, bool) (int, bool) { return 0, true })
	require.ErrorContains(t, err, "cannot encode the value")
}

// failingCodec cannot encode anything.
type failingCodec[T any] struct{ okDecode bool }

func (failingCodec[T]) Encode(T) ([]byte, error) { return nil, fmt.Errorf("no encoding") }
func (c failingCodec[T]) Decode([]byte) (T, error) {
	var zero T
	if c.okDecode {
		return zero, nil
	}
	return zero, fmt.Errorf("no decoding")
}

func TestStoreUpdateAllDoesNotAllocatePerKey(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	s := NewStore(String(), Int64())
	for i := range 1000 {
		require.NoError(t, s.Set(fmt.Sprintf("k%04d", i), 0))
	}
	n := int64(0)
	// Every key changes in place each run; the walk itself allocates nothing.
	allocs := testing.AllocsPerRun(20, func() {
		n++
		_ = s.UpdateAll(nil, func(_ int, _ string, v int64, _ bool) (int64, bool) { return n, true })
	})
	require.Zero(t, allocs, "allocations per pass over 1000 keys")
}

func TestStoreUpdate(t *testing.T) {
	s := NewStore(String(), Int64())
	model := map[string]int64{}
	rng := rand.New(rand.NewPCG(3, 4))
	for step := range 2000 {
		k := fmt.Sprintf("k%02d", rng.IntN(40))
		op := rng.IntN(4)
		f := func(v int64, exists bool) (int64, bool) {
			switch op {
			case 0:
				return v, exists // unchanged
			case 1:
				return v + 1, true // in place once owned
			case 2:
				return v * 1000, true
			}
			return 0, false
		}
		want, wantOK := f(model[k], hasKey(model, k))
		require.NoError(t, s.Update(k, f), "step %d", step)
		if wantOK {
			model[k] = want
		} else {
			delete(model, k)
		}
		if step%500 == 0 {
			s.Clone() // shared buffers must be copied on write
		}
	}
	requireMatches(t, model, s)

	s.ResetChanges()
	require.NoError(t, s.Update("k00", func(v int64, exists bool) (int64, bool) { return v, exists }))
	require.Zero(t, s.Changed(), "an unchanged value is not a change")
	require.NoError(t, s.Update("absent", func(int64, bool) (int64, bool) { return 0, false }))
	require.Zero(t, s.Changed(), "leaving a key absent is not a change")

	bad := NewStore[string, int](String(), failingCodec[int]{okDecode: true})
	require.ErrorContains(t, bad.Update("x", func(int, bool) (int, bool) { return 1, true }), "cannot encode the value")
	require.Zero(t, bad.Len())
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

func TestStoreUpdateInPlaceDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	s := NewStore(String(), Int64())
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
		require.NoError(t, s.Set(keys[i], 1))
	}
	i := 0
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		_ = s.Update(keys[i%100], func(v int64, _ bool) (int64, bool) { return v + 1, true })
		i++
	}))
}
