package window

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// randomSpecs covers slide < window, slide = window, slide > window, window
// not a multiple of slide, and a parent slide above one second.
var randomSpecs = []Spec{
	{Window: sec(1), Slide: sec(1), Parent: sec(1)},
	{Window: sec(4), Slide: sec(1), Parent: sec(1)},
	{Window: sec(4), Slide: sec(2), Parent: sec(1)},
	{Window: sec(3), Slide: sec(2), Parent: sec(1)},
	{Window: sec(2), Slide: sec(2), Parent: sec(1)},
	{Window: sec(2), Slide: sec(3), Parent: sec(1)},
	{Window: sec(10), Slide: sec(3), Parent: sec(1)},
	{Window: sec(12), Slide: sec(4), Parent: sec(2)},
	{Window: sec(4), Slide: sec(10), Parent: sec(2)},
}

// randomPane returns a pane of up to keys keys drawn from universe keys,
// with values in [lo, hi]; about one pane in six is empty (nil).
func randomPane(rng *rand.Rand, keys, universe, lo, hi int) map[string]int {
	if rng.IntN(6) == 0 {
		return nil
	}
	pane := make(map[string]int)
	for range 1 + rng.IntN(keys) {
		pane[fmt.Sprintf("k%02d", rng.IntN(universe))] += lo + rng.IntN(hi-lo+1)
	}
	return pane
}

// windowSums recomputes the window at now from every pane ever added: the
// sum of each key's values in the batches of the window.
func windowSums(spec Spec, all map[time.Time]map[string]int, now time.Time) map[string]int {
	out := make(map[string]int)
	for _, bt := range spec.Batches(zero, now) {
		for k, v := range all[bt] {
			out[k] += v
		}
	}
	return out
}

// TestIncrementalMatchesRecomputation steps incremental windows over random
// panes and compares every window with one recomputed from all panes:
//   - without a filter, a key is present once any window held it, with the
//     sum of its values in the window (0 once they left), any sign allowed;
//   - with keep = v != 0 and positive values, the window is exactly the
//     recomputed sums without the zeros, and equals what Panes.Window (Spark's
//     form without an inverse function) computes.
func TestIncrementalMatchesRecomputation(t *testing.T) {
	for i, spec := range randomSpecs {
		for _, filtered := range []bool{false, true} {
			t.Run(fmt.Sprintf("w=%v,s=%v,p=%v,filter=%v", spec.Window, spec.Slide, spec.Parent, filtered), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				lo, hi := -5, 5
				var keep func(string, int) bool
				if filtered {
					lo, hi = 1, 9
					keep = func(_ string, v int) bool { return v != 0 }
				}
				w := NewIncremental(sum, sub, keep)
				var plain Panes[string, int]
				all := make(map[time.Time]map[string]int)
				seen := make(map[string]bool) // keys any window so far held
				steps := 0
				for k := 1; steps < 150; k++ {
					now := zero.Add(time.Duration(k) * spec.Parent)
					pane := randomPane(rng, 6, 25, lo, hi)
					all[now] = pane
					w.Add(now, pane)
					plain.Add(now, pane)
					if !spec.Emits(zero, now) {
						continue
					}
					steps++
					require.NoError(t, w.Step(spec, zero, now))
					sums := windowSums(spec, all, now)
					want := make(map[string]int)
					if filtered {
						for key, v := range sums {
							if v != 0 {
								want[key] = v
							}
						}
						require.Equal(t, want, plain.Window(spec, zero, now, sum), "Panes.Window at step %d", steps)
					} else {
						for _, bt := range spec.Batches(zero, now) {
							for key := range all[bt] {
								seen[key] = true
							}
						}
						for key := range seen {
							want[key] = sums[key]
						}
					}
					require.Equal(t, want, maps.Collect(w.All()), "step %d at %v", steps, now)
					require.Equal(t, len(want), w.Len())
					require.LessOrEqual(t, w.NumPanes(), int(spec.Window/spec.Parent), "panes held after a step")
					got, ok := w.Time()
					require.True(t, ok)
					require.Equal(t, now, got)
				}
			})
		}
	}
}

// densePane returns a pane in which each of universe keys is present with
// probability 0.85, with a value in [lo, hi]; one pane in 20 is empty.
func densePane(rng *rand.Rand, universe, lo, hi int) map[string]int {
	if rng.IntN(20) == 0 {
		return nil
	}
	pane := make(map[string]int)
	for i := range universe {
		if rng.IntN(100) < 85 {
			pane[fmt.Sprintf("k%02d", i)] = lo + rng.IntN(hi-lo+1)
		}
	}
	return pane
}

// sparkModel computes one step of Spark's ReducedWindowedDStream the naive
// way: it slices the leaving and entering panes out of every pane ever
// added, merges them into the previous window key by key as
// ReducedWindowedDStream.compute does, and applies the filter to the whole
// result. It returns an error where Spark's merge throws, and counts in
// *returning the keys that come back without a previous value while values of
// theirs leave the window (Spark then keeps only the entering values).
func sparkModel(spec Spec, all map[time.Time]map[string]int, prev map[string]int, now time.Time, keep func(string, int) bool, returning *int) (map[string]int, error) {
	leaving, entering := spec.Expired(now)
	reduceIn := func(iv Interval) map[string]int {
		out := make(map[string]int)
		for _, bt := range spec.BatchesIn(zero, iv) {
			for k, v := range all[bt] {
				if a, ok := out[k]; ok {
					out[k] = sum(a, v)
				} else {
					out[k] = v
				}
			}
		}
		return out
	}
	olds, news := reduceIn(leaving), reduceIn(entering)
	next := make(map[string]int)
	keys := make(map[string]bool)
	for _, m := range []map[string]int{prev, olds, news} {
		for k := range m {
			keys[k] = true
		}
	}
	for k := range keys {
		p, hasPrev := prev[k]
		o, hasOld := olds[k]
		n, hasNew := news[k]
		switch {
		case !hasPrev && !hasNew:
			return nil, fmt.Errorf("neither previous window has value for key %s, nor new values found", k)
		case !hasPrev:
			if hasOld {
				*returning++
			}
			next[k] = n
		default:
			v := p
			if hasOld {
				v = sub(v, o)
			}
			if hasNew {
				v = sum(v, n)
			}
			next[k] = v
		}
	}
	if keep != nil {
		for k, v := range next {
			if !keep(k, v) {
				delete(next, k)
			}
		}
	}
	return next, nil
}

// TestIncrementalFollowsSparkWithAnyFilter compares Step with the naive model
// of Spark's merge under filters that drop keys whose value is not zero, so
// that Spark's corner cases happen: a key dropped while its values are still
// in the window comes back with only its entering values, and fails the step
// when only leaving values remain.
func TestIncrementalFollowsSparkWithAnyFilter(t *testing.T) {
	filters := []struct {
		name string
		keep func(string, int) bool
	}{
		{"value not a multiple of 7", func(_ string, v int) bool { return v%7 != 0 }},
		{"value at most 15", func(_ string, v int) bool { return v <= 15 }},
		{"key and value", func(k string, v int) bool { return (len(k)+v)%5 != 0 }},
	}
	failures, verified, returning := 0, 0, 0
	for i, spec := range randomSpecs {
		for _, f := range filters {
			for seed := range uint64(4) {
				t.Run(fmt.Sprintf("w=%v,s=%v,p=%v,%s,seed=%d", spec.Window, spec.Slide, spec.Parent, f.name, seed), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(i), seed))
					w := NewIncremental(sum, sub, f.keep)
					all := make(map[time.Time]map[string]int)
					prev := map[string]int{}
					for k := 1; k <= 120; k++ {
						now := zero.Add(time.Duration(k) * spec.Parent)
						pane := densePane(rng, 5, 1, 6)
						all[now] = pane
						w.Add(now, pane)
						if !spec.Emits(zero, now) {
							continue
						}
						want, wantErr := sparkModel(spec, all, prev, now, f.keep, &returning)
						err := w.Step(spec, zero, now)
						if wantErr != nil {
							require.ErrorIs(t, err, ErrFilteredKey, "Spark fails here: %v", wantErr)
							require.Equal(t, prev, maps.Collect(w.All()), "a failed step changes nothing")
							failures++
							return
						}
						require.NoError(t, err)
						require.Equal(t, want, maps.Collect(w.All()), "at %v", now)
						prev = want
						verified++
					}
				})
			}
		}
	}
	require.Positive(t, failures, "the filters must reach Spark's failing case")
	require.Positive(t, returning, "the filters must reach Spark's returning-key case")
	require.Greater(t, verified, 1000, "steps compared before the runs end")
}

func TestIncrementalStepOrder(t *testing.T) {
	spec := seconds(4, 2)
	cases := []struct {
		name  string
		spec  Spec
		steps []float64 // successful steps before the one tested
		step  float64
		want  error
		msg   string
	}{
		{"not an emission time", spec, nil, 3, ErrOutOfOrder, "not an emission time"},
		{"zero itself", spec, nil, 0, ErrOutOfOrder, "not an emission time"},
		{"step goes back", spec, []float64{2, 4}, 2, ErrOutOfOrder, "the last step was at"},
		{"step repeats", spec, []float64{2, 4}, 4, ErrOutOfOrder, "the last step was at"},
		{"invalid spec", Spec{Window: sec(3), Slide: sec(2), Parent: sec(2)}, nil, 2, ErrInvalid, "window length 3s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := NewIncremental[string, int](sum, sub, nil)
			for k := 1; k <= 10; k++ {
				w.Add(at(float64(k)), map[string]int{"a": k})
			}
			for _, s := range c.steps {
				require.NoError(t, w.Step(c.spec, zero, at(s)))
			}
			before := maps.Collect(w.All())
			beforeTime, _ := w.Time()
			err := w.Step(c.spec, zero, at(c.step))
			require.ErrorIs(t, err, c.want)
			require.Contains(t, err.Error(), c.msg)
			require.Equal(t, before, maps.Collect(w.All()))
			afterTime, _ := w.Time()
			require.Equal(t, beforeTime, afterTime)
		})
	}
}

// TestIncrementalStepSkipsTimes steps over random panes skipping emission
// times at random, as a job restarted after downtime does, and compares
// every window with one recomputed from the panes.
func TestIncrementalStepSkipsTimes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for _, spec := range []Spec{seconds(4, 2), seconds(6, 1), seconds(2, 2), seconds(3, 1)} {
		w := NewIncremental[string, int](sum, sub, func(_ string, v int) bool { return v != 0 })
		all := map[time.Time]map[string]int{}
		for k := 1; k <= 200; k++ {
			bt := at(float64(k) * spec.Parent.Seconds())
			if rng.IntN(3) > 0 { // some batch times have no pane at all
				p := randomPane(rng, 3, 8, 1, 5)
				all[bt] = p
				w.Add(bt, p)
			}
			if !spec.Emits(zero, bt) || rng.IntN(4) == 0 {
				continue // skipped emission: the job was down
			}
			require.NoError(t, w.Step(spec, zero, bt))
			want := windowSums(spec, all, bt)
			for key, v := range want {
				if v == 0 {
					delete(want, key)
				}
			}
			require.Equal(t, want, maps.Collect(w.All()), "spec %+v at %v", spec, bt)
		}
	}
}

func TestIncrementalFilteredKeyError(t *testing.T) {
	// "a" is counted 3 in batch 1; keep drops values above 2, so the window
	// at 1s no longer holds "a" although batch 1 does; at 3s batch 1 leaves
	// with a value for "a" and no window value to take it from.
	spec := seconds(2, 1)
	w := NewIncremental(sum, sub, func(_ string, v int) bool { return v <= 2 })
	w.Add(at(1), map[string]int{"a": 3, "b": 1})
	w.Add(at(2), map[string]int{"b": 1})
	w.Add(at(3), nil)
	require.NoError(t, w.Step(spec, zero, at(1)))
	require.Equal(t, map[string]int{"b": 1}, maps.Collect(w.All()))
	require.NoError(t, w.Step(spec, zero, at(2)))
	require.Equal(t, map[string]int{"b": 2}, maps.Collect(w.All()))
	err := w.Step(spec, zero, at(3))
	require.ErrorIs(t, err, ErrFilteredKey)
	require.Contains(t, err.Error(), "key a")
	require.Contains(t, err.Error(), "keep v != 0")
	require.Equal(t, map[string]int{"b": 2}, maps.Collect(w.All()), "a failed step changes nothing")
}

func TestNewIncrementalPanicsOnNilFunctions(t *testing.T) {
	require.PanicsWithValue(t, "window: NewIncremental: reduce function is nil", func() {
		NewIncremental[string, int](nil, sub, nil)
	})
	require.Panics(t, func() { NewIncremental[string, int](sum, nil, nil) })
}

// TestIncrementalStepCostIndependentOfWindow counts the calls a step makes to
// reduce, inverse and keep: without a filter they are bounded by the values
// of the leaving and entering panes, whatever the window length.
func TestIncrementalStepCostIndependentOfWindow(t *testing.T) {
	for _, panes := range []int{10, 1000} {
		t.Run(fmt.Sprintf("%d panes", panes), func(t *testing.T) {
			spec := seconds(panes, 1)
			calls := 0
			counted := func(f func(int, int) int) func(int, int) int {
				return func(a, b int) int { calls++; return f(a, b) }
			}
			w := NewIncremental[string](counted(sum), counted(sub), nil)
			const keysPerPane = 20
			pane := func(k int) map[string]int {
				m := make(map[string]int, keysPerPane)
				for i := range keysPerPane {
					m[fmt.Sprintf("k%d", (k*7+i)%200)] = 1
				}
				return m
			}
			n := panes + 50
			for k := 1; k <= n; k++ {
				w.Add(at(float64(k)), pane(k))
				calls = 0
				require.NoError(t, w.Step(spec, zero, at(float64(k))))
				// Each value of a leaving or entering pane costs at most one
				// call to fold it and two to merge it.
				require.LessOrEqual(t, calls, 3*2*keysPerPane, "step %d", k)
			}
			require.Equal(t, panes, w.NumPanes())
		})
	}
}
