package window

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPanesTakeChanges(t *testing.T) {
	var p Panes[string, int]
	p.TrackChanges()
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	take := func() (map[time.Time]map[string]int, time.Time, bool) {
		got := map[time.Time]map[string]int{}
		h, ok, err := p.TakeChanges(func(t time.Time, m map[string]int) error { got[t] = m; return nil })
		require.NoError(t, err)
		return got, h, ok
	}
	p.Add(at(1), map[string]int{"a": 1})
	p.Add(at(2), nil)
	p.Add(at(3), map[string]int{"b": 2})
	got, _, dropped := take()
	require.Equal(t, map[time.Time]map[string]int{at(1): {"a": 1}, at(3): {"b": 2}}, got, "panes with data")
	require.False(t, dropped)
	got, _, dropped = take()
	require.Empty(t, got, "nothing since the last TakeChanges")
	require.False(t, dropped)
	p.Add(at(4), map[string]int{"c": 3})
	p.Drop(at(2))
	p.Drop(at(3))
	got, h, dropped := take()
	require.Equal(t, map[time.Time]map[string]int{at(4): {"c": 3}}, got)
	require.True(t, dropped)
	require.Equal(t, at(3), h, "the newest horizon")
	p.Add(at(5), map[string]int{"d": 4})
	p.Drop(at(6))
	got, h, dropped = take()
	require.Empty(t, got, "a pane added and dropped meanwhile")
	require.Equal(t, at(6), h)
	require.True(t, dropped)
}

// TestIncrementalRebuiltFromChanges rebuilds an incremental window, every
// few steps, from nothing but what TakeChanges gave since the start (a
// compacted log of it), and checks it goes on exactly as the original.
func TestIncrementalRebuiltFromChanges(t *testing.T) {
	sum := func(a, b int) int { return a + b }
	sub := func(a, b int) int { return a - b }
	for _, s := range randomSpecs {
		rng := rand.New(rand.NewPCG(uint64(s.Window), uint64(s.Slide)))
		zero := time.Unix(0, 0)
		ref := NewIncremental[string, int](sum, sub, nil) // never rebuilt
		orig := NewIncremental[string, int](sum, sub, nil)
		orig.TrackChanges()
		panes := map[time.Time]map[string]int{}
		cur := map[string]int{}
		take := func() {
			h, dropped, err := orig.TakeChanges(func(t time.Time, m map[string]int) error {
				panes[t] = m
				return nil
			}, func(k string, v int, ok bool) error {
				if ok {
					cur[k] = v
				} else {
					delete(cur, k)
				}
				return nil
			})
			require.NoError(t, err)
			if dropped {
				maps.DeleteFunc(panes, func(t time.Time, _ map[string]int) bool { return t.Before(h) })
			}
		}
		for i := 1; i <= 60; i++ {
			now := zero.Add(time.Duration(i) * s.Parent)
			pane := randomPane(rng, 4, 8, 1, 9)
			orig.Add(now, pane)
			ref.Add(now, maps.Clone(pane))
			if s.Emits(zero, now) {
				require.NoError(t, orig.Step(s, zero, now))
				require.NoError(t, ref.Step(s, zero, now))
				require.Equal(t, maps.Collect(ref.All()), maps.Collect(orig.All()), "spec %+v, window at batch %d", s, i)
			}
			take()
			if i%7 != 0 {
				continue
			}
			rebuilt := NewIncremental[string, int](sum, sub, nil)
			for _, t := range sortedTimes(panes) {
				rebuilt.Add(t, panes[t])
			}
			if at, ok := orig.Time(); ok {
				rebuilt.Load(at, maps.Clone(cur))
			}
			require.Equal(t, maps.Collect(orig.All()), maps.Collect(rebuilt.All()), "spec %+v, after batch %d", s, i)
			orig = rebuilt
			orig.TrackChanges()
		}
	}
}

func sortedTimes(m map[time.Time]map[string]int) []time.Time {
	return slices.SortedFunc(maps.Keys(m), time.Time.Compare)
}
