package window

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// times returns the times a Seq2 yields.
func times[V any](seq func(func(time.Time, V) bool)) []time.Time {
	var out []time.Time
	for t := range seq {
		out = append(out, t)
	}
	return out
}

func TestPanesRangeAndDrop(t *testing.T) {
	cases := []struct {
		name     string
		add      []float64 // in this order
		from, to float64
		want     []time.Time
	}{
		{"in order, interval excludes from and includes to", []float64{1, 2, 3, 4, 5}, 2, 4, ats(3, 4)},
		{"empty interval", []float64{1, 2, 3}, 2, 2, nil},
		{"reversed interval", []float64{1, 2, 3}, 3, 1, nil},
		{"out of order adds are sorted", []float64{5, 1, 3, 2, 4}, 0, 10, ats(1, 2, 3, 4, 5)},
		{"interval between panes", []float64{1, 5}, 2, 4, nil},
		{"interval off the grid", []float64{1, 2, 3, 4}, 1.5, 3.5, ats(2, 3)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Panes[string, int]
			for _, n := range c.add {
				p.Add(at(n), map[string]int{"t": int(n)})
			}
			require.Equal(t, len(c.add), p.Len())
			require.Equal(t, c.want, times(p.Range(at(c.from), at(c.to))))
			for bt, pane := range p.Range(at(c.from), at(c.to)) {
				require.Equal(t, map[string]int{"t": int(bt.Sub(zero) / time.Second)}, pane)
			}
		})
	}

	t.Run("replace and drop", func(t *testing.T) {
		var p Panes[string, int]
		for n := 1; n <= 5; n++ {
			p.Add(at(float64(n)), map[string]int{"a": n})
		}
		p.Add(at(3), map[string]int{"a": 30})
		require.Equal(t, 5, p.Len())
		require.Equal(t, map[string]int{"a": 1 + 2 + 30 + 4 + 5}, p.Combine(zero, at(5), sum))

		p.Drop(at(3))
		require.Equal(t, ats(3, 4, 5), times(p.Range(zero, at(10))))
		p.Drop(at(2)) // older than what is held: no effect
		require.Equal(t, 3, p.Len())
		p.Drop(at(10))
		require.Equal(t, 0, p.Len())
		p.Add(at(11), nil)
		require.Equal(t, ats(11), times(p.Range(zero, at(20))))
	})

	t.Run("early break", func(t *testing.T) {
		var p Panes[string, int]
		for n := 1; n <= 5; n++ {
			p.Add(at(float64(n)), nil)
		}
		var seen []time.Time
		for bt := range p.Range(zero, at(5)) {
			seen = append(seen, bt)
			if len(seen) == 2 {
				break
			}
		}
		require.Equal(t, ats(1, 2), seen)
	})
}

// TestPanesCombineOrder checks that Combine reduces each key's values in
// time order, whatever the order the panes were added in, with a reduce
// function that is neither commutative nor associative.
func TestPanesCombineOrder(t *testing.T) {
	var p Panes[string, string]
	p.Add(at(3), map[string]string{"a": "3", "b": "3"})
	p.Add(at(1), map[string]string{"a": "1"})
	p.Add(at(2), map[string]string{"a": "2", "c": "2"})
	p.Add(at(4), map[string]string{"a": "4"})
	nest := func(x, y string) string { return "(" + x + "," + y + ")" }
	require.Equal(t, map[string]string{"a": "((1,2),3)", "b": "3", "c": "2"}, p.Combine(zero, at(3), nest))
	require.Equal(t, map[string]string{"a": "(3,4)", "b": "3"}, p.Combine(at(2), at(4), nest))
	require.Empty(t, p.Combine(at(4), at(9), nest))
}

func TestPanesCombineMatchesRecomputation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var p Panes[string, int]
	all := make(map[time.Time]map[string]int)
	for k := 1; k <= 60; k++ {
		pane := randomPane(rng, 5, 15, -3, 9)
		all[at(float64(k))] = pane
		p.Add(at(float64(k)), pane)
	}
	for range 200 {
		from := float64(rng.IntN(70) - 5)
		to := from + float64(rng.IntN(30))
		want := make(map[string]int)
		for bt, pane := range all {
			if (Interval{From: at(from), To: at(to)}).Contains(bt) {
				for k, v := range pane {
					want[k] += v
				}
			}
		}
		require.Equal(t, want, p.Combine(at(from), at(to), sum), "(%v, %v]", from, to)
	}
}

// TestPanesWindowDrops checks that Panes.Window keeps no pane that a later
// window cannot use, and still has every pane the next one needs.
func TestPanesWindowDrops(t *testing.T) {
	for _, spec := range randomSpecs {
		t.Run(fmt.Sprintf("w=%v,s=%v,p=%v", spec.Window, spec.Slide, spec.Parent), func(t *testing.T) {
			var p Panes[int, int]
			for k := 1; k <= 60; k++ {
				now := zero.Add(time.Duration(k) * spec.Parent)
				p.Add(now, map[int]int{k: 1})
				if !spec.Emits(zero, now) {
					continue
				}
				out := p.Window(spec, zero, now, sum)
				var want []int
				for _, bt := range spec.Batches(zero, now) {
					want = append(want, int(bt.Sub(zero)/spec.Parent))
				}
				require.ElementsMatch(t, want, slices.Collect(maps.Keys(out)))
				held := times(p.Range(zero.Add(-time.Hour), now))
				next := spec.Batches(zero, now.Add(spec.Slide))
				for _, bt := range held {
					require.False(t, bt.Before(spec.First(now.Add(spec.Slide))), "pane %v is in no later window", bt)
				}
				for _, bt := range next {
					if !bt.After(now) {
						require.Contains(t, held, bt, "the next window needs pane %v", bt)
					}
				}
			}
		})
	}
}

func TestBuffer(t *testing.T) {
	var b Buffer[string]
	b.Add(at(2), [][]string{{"c"}, nil, {"d", "e"}})
	b.Add(at(1), [][]string{{"a", "b"}})
	b.Add(at(3), [][]string{{"f"}})
	require.Equal(t, 3, b.Len())

	cases := []struct {
		name     string
		from, to float64
		want     [][]string
	}{
		{"all, oldest batch first, empty partitions kept", 0, 3, [][]string{{"a", "b"}, {"c"}, nil, {"d", "e"}, {"f"}}},
		{"from excluded", 1, 2, [][]string{{"c"}, nil, {"d", "e"}}},
		{"nothing", 3, 9, [][]string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, b.Parts(at(c.from), at(c.to)))
			require.Len(t, times(b.Range(at(c.from), at(c.to))), len(b.s.span(at(c.from), at(c.to))))
		})
	}

	t.Run("window drops batches no later window uses", func(t *testing.T) {
		spec := seconds(2, 1)
		require.Equal(t, [][]string{{"c"}, nil, {"d", "e"}, {"f"}}, b.Window(spec, zero, at(3)))
		require.Equal(t, ats(3), times(b.Range(zero, at(9))))
		b.Drop(at(4))
		require.Equal(t, 0, b.Len())
	})
}
