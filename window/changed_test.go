package window

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// idlePanes returns panes for batches 1…n (index k−1 for batch k) that come
// in stretches of data and stretches of empty panes, each a few batches
// long, as the input of a job that is idle now and then.
func idlePanes(rng *rand.Rand, n int) []map[string]int {
	out := make([]map[string]int, n)
	busy := true
	for k := range out {
		if rng.IntN(5) == 0 {
			busy = !busy
		}
		if busy {
			out[k] = randomPane(rng, 4, 12, 1, 9)
		}
	}
	return out
}

// TestChangedSkipsOnlyWhatRestoresAlike writes a delta after a batch only
// when Changed says so, as the windowed operators do, and checks that what
// the skipped deltas leave out does not matter: at every few batches, state
// restored from the deltas written so far and an exact copy of the live
// state go on over the same later batches, with or without a gap of
// missed batch times first, and emit the same windows.
func TestChangedSkipsOnlyWhatRestoresAlike(t *testing.T) {
	const batches, after = 90, 14
	for _, spec := range randomSpecs {
		for _, gap := range []int{0, 7} {
			name := fmt.Sprintf("w=%v,s=%v,p=%v,gap=%d", spec.Window, spec.Slide, spec.Parent, gap)
			rng := rand.New(rand.NewPCG(21, 22))
			panes := idlePanes(rng, batches+after+gap)
			timeOf := func(k int) time.Time { return zero.Add(time.Duration(k) * spec.Parent) }
			// later lists the batches the two copies go on with after
			// batch k: a gap of missed batch times, then after batches.
			later := func(k int) []int {
				var ks []int
				for i := k + 1 + gap; i <= k+gap+after; i++ {
					ks = append(ks, i)
				}
				return ks
			}

			for _, keep := range []func(string, int) bool{nil, nonZero} {
				t.Run("Incremental/"+name+fmt.Sprintf(",filter=%v", keep != nil), func(t *testing.T) {
					w := NewIncremental(sum, sub, keep)
					var chain [][]byte
					skipped := 0
					for k := 1; k <= batches; k++ {
						w.Add(timeOf(k), maps.Clone(panes[k-1]))
						if spec.Emits(zero, timeOf(k)) {
							require.NoError(t, w.Step(spec, zero, timeOf(k)))
						}
						if !w.Changed() {
							skipped++
						} else {
							var buf bytes.Buffer
							require.NoError(t, w.WriteDelta(&buf, kc, vc))
							chain = append(chain, buf.Bytes())
						}
						if k%5 != 0 {
							continue
						}
						restored := NewIncremental(sum, sub, keep)
						for _, d := range chain {
							require.NoError(t, restored.ApplyDelta(bytes.NewReader(d), kc, vc))
						}
						live := NewIncremental(sum, sub, keep)
						var buf bytes.Buffer
						require.NoError(t, w.SnapshotFunc(kc, vc)(&buf))
						require.NoError(t, live.ReadSnapshot(&buf, kc, vc))
						for _, i := range later(k) {
							now := timeOf(i)
							live.Add(now, maps.Clone(panes[i-1]))
							restored.Add(now, maps.Clone(panes[i-1]))
							if !spec.Emits(zero, now) {
								continue
							}
							require.NoError(t, live.Step(spec, zero, now))
							require.NoError(t, restored.Step(spec, zero, now), "restored after batch %d, step at batch %d", k, i)
							require.Equal(t, maps.Collect(live.All()), maps.Collect(restored.All()), "restored after batch %d, window at batch %d", k, i)
						}
					}
					require.Positive(t, skipped, "some batches changed nothing")
				})
			}

			t.Run("Panes/"+name, func(t *testing.T) {
				var p Panes[string, int]
				var chain [][]byte
				skipped := 0
				for k := 1; k <= batches; k++ {
					p.Add(timeOf(k), maps.Clone(panes[k-1]))
					if spec.Emits(zero, timeOf(k)) {
						p.Window(spec, zero, timeOf(k), sum)
					}
					if !p.Changed() {
						skipped++
					} else {
						var buf bytes.Buffer
						require.NoError(t, p.WriteDelta(&buf, kc, vc))
						chain = append(chain, buf.Bytes())
					}
					if k%5 != 0 {
						continue
					}
					var restored, live Panes[string, int]
					for _, d := range chain {
						require.NoError(t, restored.ApplyDelta(bytes.NewReader(d), kc, vc))
					}
					var buf bytes.Buffer
					require.NoError(t, p.SnapshotFunc(kc, vc)(&buf))
					require.NoError(t, live.ReadSnapshot(&buf, kc, vc))
					for _, i := range later(k) {
						now := timeOf(i)
						live.Add(now, maps.Clone(panes[i-1]))
						restored.Add(now, maps.Clone(panes[i-1]))
						if spec.Emits(zero, now) {
							require.Equal(t, live.Window(spec, zero, now, sum), restored.Window(spec, zero, now, sum),
								"restored after batch %d, window at batch %d", k, i)
						}
					}
				}
				require.Positive(t, skipped, "some batches changed nothing")
			})

			t.Run("Buffer/"+name, func(t *testing.T) {
				parts := func(k int) [][]string {
					out := [][]string{nil, {}}
					for key := range panes[k-1] {
						out[0] = append(out[0], key)
					}
					slices.Sort(out[0])
					return out
				}
				records := func(parts [][]string) []string { return slices.Concat(parts...) }
				var b Buffer[string]
				var chain [][]byte
				skipped := 0
				for k := 1; k <= batches; k++ {
					b.Add(timeOf(k), parts(k))
					if spec.Emits(zero, timeOf(k)) {
						b.Window(spec, zero, timeOf(k))
					}
					if !b.Changed() {
						skipped++
					} else {
						var buf bytes.Buffer
						require.NoError(t, b.WriteDelta(&buf, kc))
						chain = append(chain, buf.Bytes())
					}
					if k%5 != 0 {
						continue
					}
					var restored, live Buffer[string]
					for _, d := range chain {
						require.NoError(t, restored.ApplyDelta(bytes.NewReader(d), kc))
					}
					var buf bytes.Buffer
					require.NoError(t, b.SnapshotFunc(kc)(&buf))
					require.NoError(t, live.ReadSnapshot(&buf, kc))
					for _, i := range later(k) {
						now := timeOf(i)
						live.Add(now, parts(i))
						restored.Add(now, parts(i))
						if spec.Emits(zero, now) {
							require.Equal(t, records(live.Window(spec, zero, now)), records(restored.Window(spec, zero, now)),
								"restored after batch %d, window at batch %d", k, i)
						}
					}
				}
				require.Positive(t, skipped, "some batches changed nothing")
			})
		}
	}
}

// TestChanged checks what counts as a change.
func TestChanged(t *testing.T) {
	spec := Spec{Window: sec(2), Slide: sec(1), Parent: sec(1)}
	t.Run("Panes", func(t *testing.T) {
		var p Panes[string, int]
		require.True(t, p.Changed(), "panes never written hold something to write")
		require.NoError(t, p.WriteDelta(&bytes.Buffer{}, kc, vc))
		require.False(t, p.Changed())
		p.Add(at(1), nil)
		p.Add(at(2), map[string]int{})
		p.Drop(at(2))
		require.False(t, p.Changed(), "empty panes and drops")
		p.Add(at(3), map[string]int{"a": 1})
		require.True(t, p.Changed(), "a pane with data")
		require.NoError(t, p.WriteDelta(&bytes.Buffer{}, kc, vc))
		require.False(t, p.Changed())
		p.Add(at(3), nil)
		require.True(t, p.Changed(), "a pane replaced, even by an empty one")
	})
	t.Run("Buffer", func(t *testing.T) {
		var b Buffer[string]
		require.True(t, b.Changed())
		require.NoError(t, b.WriteDelta(&bytes.Buffer{}, kc))
		b.Add(at(1), [][]string{nil, {}})
		b.Add(at(2), nil)
		b.Window(spec, zero, at(2))
		require.False(t, b.Changed(), "batches without records and drops")
		b.Add(at(3), [][]string{nil, {"x"}})
		require.True(t, b.Changed(), "a batch with a record")
	})
	t.Run("Incremental", func(t *testing.T) {
		w := NewIncremental[string, int](sum, sub, nil)
		require.True(t, w.Changed())
		w.Add(at(1), map[string]int{"a": 1})
		require.NoError(t, w.Step(spec, zero, at(1)))
		require.NoError(t, w.WriteDelta(&bytes.Buffer{}, kc, vc))
		require.False(t, w.Changed())
		w.Add(at(2), nil)
		require.NoError(t, w.Step(spec, zero, at(2)))
		require.False(t, w.Changed(), "a step that changes no key")
		w.Add(at(3), nil)
		require.NoError(t, w.Step(spec, zero, at(3)))
		require.True(t, w.Changed(), "a step that takes a value out")
		require.NoError(t, w.WriteDelta(&bytes.Buffer{}, kc, vc))
		w.Add(at(4), map[string]int{"b": 1})
		require.True(t, w.Changed(), "a pane with data, before its step")
	})
}
