package dstream_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// downtimeWords is the input of batch k (k batches after the zero time):
// the same for the same k in every run.
func downtimeWords(k int64) []string {
	switch k % 3 {
	case 0:
		return []string{"a", "b"}
	case 1:
		return []string{"a"}
	}
	return []string{"c", "a"}
}

// downtimeIndex is the k of batch j: how many batches after the zero time.
func downtimeIndex(j *engine.Job) int64 {
	return int64(j.Time.Sub(j.Zero()) / time.Second)
}

// downtimeSource returns a real-clock source whose batch k holds
// downtimeWords(k).
func downtimeSource() *fixedSource {
	return &fixedSource{records: func(j *engine.Job) int { return len(downtimeWords(downtimeIndex(j))) }}
}

// downtimeModel computes what an operator emits at batch k from the batches
// that ran before and at k (ran, ascending), by the operator's definition.
type downtimeModel func(ran []int64, k int64) ([]string, bool)

// inWindow returns the words of the batches that ran in (k − w, k].
func inWindow(ran []int64, k, w int64) []string {
	var out []string
	for _, r := range ran {
		if r > k-w && r <= k {
			out = append(out, downtimeWords(r)...)
		}
	}
	return out
}

func countWords(words []string) map[string]int64 {
	m := map[string]int64{}
	for _, w := range words {
		m[w]++
	}
	return m
}

func formatCounts(m map[string]int64) []string {
	out := []string{}
	for k, v := range m {
		out = append(out, fmt.Sprint(dstream.Pair(k, v)))
	}
	slices.Sort(out)
	return out
}

// TestWindowsAndStateAcrossDowntime stops a real-clock job, lets an hour
// pass and restarts it: the job goes on at the next batch time, so every
// windowed and stateful operator sees a gap of thousands of batch times
// between two batches. Each must emit, before and after the gap, what its
// definition gives over the batches that did run: windows after the gap
// hold only batches after it, incremental windows keep their keys at 0,
// states carry over, and idle keys time out at the first batch after it.
func TestWindowsAndStateAcrossDowntime(t *testing.T) {
	const w, slide = 3, 2
	win, sl := winSeconds(w), winSeconds(slide)
	cases := []struct {
		name  string
		build func(s *dstream.Stream[string]) map[int64][]string
		model downtimeModel
	}{
		{"Window", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.Window(s, win, winSeconds(1)).Name("op"))
		}, func(ran []int64, k int64) ([]string, bool) {
			out := inWindow(ran, k, w)
			slices.Sort(out)
			return orEmptyStrings(out), true
		}},
		{"ReduceByKeyAndWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.ReduceByKeyAndWindow(ones(s), add, win, sl).Name("op"))
		}, func(ran []int64, k int64) ([]string, bool) {
			return formatCounts(countWords(inWindow(ran, k, w))), k%slide == 0
		}},
		{"ReduceByKeyAndWindowInv", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.ReduceByKeyAndWindowInv(ones(s), add, sub, win, sl, nil).Name("op"))
		}, func(ran []int64, k int64) ([]string, bool) {
			// Every key of an earlier window stays, at 0 once its values left.
			m := map[string]int64{}
			for _, r := range ran {
				if r%slide == 0 && r < k {
					for key := range countWords(inWindow(ran, r, w)) {
						m[key] = 0
					}
				}
			}
			maps.Copy(m, countWords(inWindow(ran, k, w)))
			return formatCounts(m), k%slide == 0
		}},
		{"CountByValueAndWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.CountByValueAndWindow(s, win, sl).Name("op"))
		}, func(ran []int64, k int64) ([]string, bool) {
			return formatCounts(countWords(inWindow(ran, k, w))), k%slide == 0
		}},
		{"GroupByKeyAndWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.GroupByKeyAndWindow(ones(s), win, sl).Name("op"))
		}, func(ran []int64, k int64) ([]string, bool) {
			out := []string{}
			for key, n := range countWords(inWindow(ran, k, w)) {
				out = append(out, fmt.Sprint(dstream.Pair(key, slices.Repeat([]int64{1}, int(n)))))
			}
			slices.Sort(out)
			return out, k%slide == 0
		}},
		{"CountByWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.CountByWindow(s, win, sl).Name("op"))
		}, func(ran []int64, k int64) ([]string, bool) {
			return []string{fmt.Sprint(len(inWindow(ran, k, w)))}, k%slide == 0
		}},
		{"ReduceByWindow", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.ReduceByWindow(s, func(a, b string) string {
				return string(slices.Sorted(slices.Values([]byte(a + b))))
			}, win, sl).Name("op"))
		}, func(ran []int64, k int64) ([]string, bool) {
			words := inWindow(ran, k, w)
			if len(words) == 0 {
				return []string{}, k%slide == 0
			}
			var all []byte
			for _, x := range words {
				all = append(all, x...)
			}
			slices.Sort(all)
			return []string{string(all)}, k%slide == 0
		}},
		{"UpdateStateByKey", func(s *dstream.Stream[string]) map[int64][]string {
			return collectSorted(dstream.UpdateStateByKey(ones(s), addCount).Name("op"))
		}, func(ran []int64, k int64) ([]string, bool) {
			return formatCounts(countWords(inWindow(ran, k, k))), true
		}},
		{"MapWithState with timeout", func(s *dstream.Stream[string]) map[int64][]string {
			spec := dstream.NewSimpleStateSpec(func(key string, v dstream.Optional[int64], st *dstream.State[int64]) string {
				n, _ := st.Get()
				if st.IsTimingOut() {
					return fmt.Sprintf("%s timed out at %d", key, n)
				}
				st.Update(n + v.Value)
				return fmt.Sprintf("%s=%d", key, n+v.Value)
			}).WithTimeout(win)
			return collectSorted(dstream.MapWithState(ones(s), spec).Name("op"))
		}, func(ran []int64, k int64) ([]string, bool) {
			type st struct{ n, last int64 }
			states := map[string]st{}
			var out []string
			for _, r := range ran {
				out = nil
				for _, word := range downtimeWords(r) {
					s := states[word]
					s.n++
					s.last = r
					states[word] = s
					out = append(out, fmt.Sprintf("%s=%d", word, s.n))
				}
				for word, s := range states {
					if s.last < r-w {
						out = append(out, fmt.Sprintf("%s timed out at %d", word, s.n))
						delete(states, word)
					}
				}
				if r == k {
					break
				}
			}
			slices.Sort(out)
			return out, true
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				var ran []int64
				got := map[int64][]string{}
				run := func(n int) {
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel()
					c, err := engine.NewContext(time.Second, engine.WithCheckpoint(dir), engine.WithParallelism(2))
					require.NoError(t, err)
					defer c.Close()
					out := tc.build(dstream.NewSource(c, downtimeSource(), "words",
						func(_ context.Context, j *engine.Job) ([][]string, error) {
							return [][]string{downtimeWords(downtimeIndex(j))}, nil
						}))
					runs := 0
					c.AddListener(engine.ListenerFuncs{Completed: func(b engine.BatchInfo) {
						ran = append(ran, int64(b.Time.Sub(c.Zero())/time.Second))
						if runs++; runs == n {
							cancel() // graceful: this batch finishes and commits
						}
					}})
					require.NoError(t, c.Run(ctx))
					for ms, b := range out {
						got[(ms-c.Zero().UnixMilli())/1000] = b
					}
				}
				run(7)
				time.Sleep(time.Hour)
				run(6)

				require.Len(t, ran, 13)
				require.Greater(t, ran[7]-ran[6], int64(3000), "the restart skipped the batch times of the downtime")
				emitted := 0
				for i, k := range ran {
					want, emits := tc.model(ran[:i+1], k)
					b, ok := got[k]
					require.Equal(t, emits, ok, "emission at batch %d", k)
					if ok {
						require.Equal(t, want, b, "batch %d (%d after the zero time)", i, k)
						emitted++
					}
				}
				require.Positive(t, emitted)
			})
		})
	}
}

func orEmptyStrings(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}
