package window

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// zero is the zero time of the streams in these tests: not the Unix epoch,
// and not aligned to any window, so that no result holds by accident.
var zero = time.Date(2024, 3, 1, 12, 0, 7, 0, time.UTC)

// at returns zero + n seconds.
func at(n float64) time.Time { return zero.Add(time.Duration(n * float64(time.Second))) }

// ats returns zero + n seconds for every n.
func ats(ns ...float64) []time.Time {
	out := make([]time.Time, len(ns))
	for i, n := range ns {
		out[i] = at(n)
	}
	return out
}

func sec(n int) time.Duration { return time.Duration(n) * time.Second }

func TestSpecValidate(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want []string // substrings of the error; nil when valid
	}{
		{name: "valid sliding", spec: Spec{Window: sec(30), Slide: sec(10), Parent: sec(10)}},
		{name: "valid tumbling", spec: Spec{Window: sec(20), Slide: sec(20), Parent: sec(10)}},
		{name: "valid slide larger than window", spec: Spec{Window: sec(2), Slide: sec(3), Parent: sec(1)}},
		{name: "valid window not a multiple of slide", spec: Spec{Window: sec(3), Slide: sec(2), Parent: sec(1)}},
		{name: "zero window", spec: Spec{Window: 0, Slide: sec(10), Parent: sec(10)},
			want: []string{"window length 0s must be positive", "10s"}},
		{name: "negative slide", spec: Spec{Window: sec(10), Slide: -sec(10), Parent: sec(10)},
			want: []string{"slide -10s must be positive", "10s"}},
		{name: "window not a multiple of parent", spec: Spec{Window: sec(25), Slide: sec(10), Parent: sec(10)},
			want: []string{"window length 25s is not a multiple of the parent's slide 10s", "use 20s or 30s"}},
		{name: "slide below parent", spec: Spec{Window: sec(20), Slide: sec(5), Parent: sec(10)},
			want: []string{"slide 5s is not a multiple of the parent's slide 10s", "use 10s"}},
		{name: "both wrong", spec: Spec{Window: sec(15), Slide: sec(7), Parent: sec(2)},
			want: []string{"window length 15s", "use 14s or 16s", "slide 7s", "use 6s or 8s"}},
		{name: "parent not positive", spec: Spec{Window: sec(10), Slide: sec(10), Parent: 0},
			want: []string{"parent stream's slide 0s must be positive"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.spec.Validate()
			if c.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestSpecEmits(t *testing.T) {
	s := Spec{Window: sec(4), Slide: sec(2), Parent: sec(1)}
	cases := []struct {
		name string
		spec Spec
		t    time.Time
		want bool
	}{
		{"zero itself", s, at(0), false},
		{"first slide", s, at(2), true},
		{"between slides", s, at(3), false},
		{"later slide", s, at(10), true},
		{"before zero", s, at(-2), false},
		{"off the parent grid", s, at(2.5), false},
		{"slide not positive", Spec{Window: sec(2), Slide: 0, Parent: sec(1)}, at(2), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, c.spec.Emits(zero, c.t))
		})
	}
}

func TestSpecBatches(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		t    float64
		want []time.Time
	}{
		{"partial first window", Spec{Window: sec(3), Slide: sec(1), Parent: sec(1)}, 1, ats(1)},
		{"partial second window", Spec{Window: sec(3), Slide: sec(1), Parent: sec(1)}, 2, ats(1, 2)},
		{"first full window", Spec{Window: sec(3), Slide: sec(1), Parent: sec(1)}, 3, ats(1, 2, 3)},
		{"full window later", Spec{Window: sec(3), Slide: sec(1), Parent: sec(1)}, 5, ats(3, 4, 5)},
		{"slide = window, first", Spec{Window: sec(2), Slide: sec(2), Parent: sec(1)}, 2, ats(1, 2)},
		{"slide = window, second", Spec{Window: sec(2), Slide: sec(2), Parent: sec(1)}, 4, ats(3, 4)},
		{"slide < window, partial", Spec{Window: sec(4), Slide: sec(2), Parent: sec(1)}, 2, ats(1, 2)},
		{"slide < window, full", Spec{Window: sec(4), Slide: sec(2), Parent: sec(1)}, 6, ats(3, 4, 5, 6)},
		{"window not a multiple of slide, partial", Spec{Window: sec(3), Slide: sec(2), Parent: sec(1)}, 2, ats(1, 2)},
		{"window not a multiple of slide, full", Spec{Window: sec(3), Slide: sec(2), Parent: sec(1)}, 4, ats(2, 3, 4)},
		{"parent slide 2s", Spec{Window: sec(6), Slide: sec(4), Parent: sec(2)}, 4, ats(2, 4)},
		{"parent slide 2s, full", Spec{Window: sec(6), Slide: sec(4), Parent: sec(2)}, 8, ats(4, 6, 8)},
		{"slide > window", Spec{Window: sec(2), Slide: sec(3), Parent: sec(1)}, 6, ats(5, 6)},
		{"time off the parent grid", Spec{Window: sec(2), Slide: sec(1), Parent: sec(1)}, 2.5, ats(1, 2)},
		{"window entirely before zero", Spec{Window: sec(2), Slide: sec(1), Parent: sec(1)}, -1, nil},
		{"at zero", Spec{Window: sec(2), Slide: sec(1), Parent: sec(1)}, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, c.spec.Batches(zero, at(c.t)))
			from, to := c.spec.Covers(at(c.t))
			require.Equal(t, at(c.t).Add(-c.spec.Window), from)
			require.Equal(t, at(c.t), to)
			if len(c.want) == int(c.spec.Window/c.spec.Parent) && at(c.t).Sub(zero)%c.spec.Parent == 0 {
				require.Equal(t, c.want[0], c.spec.First(at(c.t)), "First is the oldest batch of a full window")
			}
		})
	}
}

func TestSpecExpired(t *testing.T) {
	cases := []struct {
		name                                   string
		spec                                   Spec
		t                                      float64
		leaveFrom, leaveTo, enterFrom, enterTo float64
	}{
		// Spark's ReducedWindowedDStream: old = (t−w−s, t−w], new = (t−s, t].
		{"slide < window", Spec{Window: sec(3), Slide: sec(1), Parent: sec(1)}, 10, 6, 7, 9, 10},
		{"window not a multiple of slide", Spec{Window: sec(3), Slide: sec(2), Parent: sec(1)}, 10, 5, 7, 8, 10},
		{"slide = window", Spec{Window: sec(2), Slide: sec(2), Parent: sec(1)}, 10, 6, 8, 8, 10},
		// Slide > window: the previous window leaves, this window enters.
		{"slide > window", Spec{Window: sec(2), Slide: sec(3), Parent: sec(1)}, 9, 4, 6, 7, 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leaving, entering := c.spec.Expired(at(c.t))
			require.Equal(t, Interval{From: at(c.leaveFrom), To: at(c.leaveTo)}, leaving)
			require.Equal(t, Interval{From: at(c.enterFrom), To: at(c.enterTo)}, entering)
		})
	}
}

// TestSpecExpiredIsWindowDifference checks, for random specs, that the
// batches Expired reports as leaving are exactly those of the previous window
// missing from this one, and the entering ones those of this window missing
// from the previous one.
func TestSpecExpiredIsWindowDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		p := sec(1 + rng.IntN(3))
		s := Spec{Window: p * time.Duration(1+rng.IntN(8)), Slide: p * time.Duration(1+rng.IntN(8)), Parent: p}
		require.NoError(t, s.Validate())
		for k := 1; k <= 12; k++ {
			now := zero.Add(time.Duration(k) * s.Slide)
			cur := s.Batches(zero, now)
			prev := s.Batches(zero, now.Add(-s.Slide))
			leaving, entering := s.Expired(now)
			require.Equal(t, minus(prev, cur), s.BatchesIn(zero, leaving), "spec %+v at %v: leaving", s, now)
			require.Equal(t, minus(cur, prev), s.BatchesIn(zero, entering), "spec %+v at %v: entering", s, now)
			require.True(t, s.Emits(zero, now))
		}
	}
}

// minus returns the times of a not in b, or nil.
func minus(a, b []time.Time) []time.Time {
	var out []time.Time
	for _, x := range a {
		if !slices.ContainsFunc(b, x.Equal) {
			out = append(out, x)
		}
	}
	return out
}

func TestInterval(t *testing.T) {
	iv := Interval{From: at(1), To: at(3)}
	cases := []struct {
		name string
		t    float64
		want bool
	}{
		{"from is excluded", 1, false},
		{"inside", 2, true},
		{"to is included", 3, true},
		{"after", 4, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, iv.Contains(at(c.t)))
		})
	}
	require.False(t, iv.Empty())
	require.True(t, Interval{From: at(3), To: at(3)}.Empty())
	require.True(t, Interval{From: at(4), To: at(3)}.Empty())
}
