package keyhash

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

type point struct{ X, Y int }

func TestForIsStableAndSpreads(t *testing.T) {
	hs := For[string]()
	require.Equal(t, hs("word"), hs("word"))
	require.NotEqual(t, hs("word"), hs("worD"))
	require.Equal(t, String("word"), hs("word"), "string keys hash the same in every process")

	hi := For[int]()
	counts := make([]int, 8)
	for i := range 8000 {
		counts[Partition(hi(i), 8)]++
	}
	for p, n := range counts {
		require.InDelta(t, 1000, n, 200, "partition %d", p)
	}

	hp := For[point]()
	require.Equal(t, hp(point{1, 2}), hp(point{1, 2}))
	require.NotEqual(t, hp(point{1, 2}), hp(point{2, 1}))

	hf := For[float64]()
	negZero := math.Copysign(0, -1) // -1*0.0 is a constant, +0
	require.True(t, math.Signbit(negZero))
	require.Equal(t, hf(0.0), hf(negZero), "+0 and -0 are equal keys")
}

func TestForDoesNotAllocate(t *testing.T) {
	hs := For[string]()
	key := "a somewhat longer key"
	allocs := testing.AllocsPerRun(100, func() { _ = hs(key) })
	require.Zero(t, allocs)
}

func TestStableNamesTheFixedFunctions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stable bool
	}{
		{"string", Stable[string]()},
		{"int", Stable[int]()},
		{"uint8", Stable[uint8]()},
		{"float64", Stable[float64]()},
		{"bool", Stable[bool]()},
	} {
		if !tc.stable {
			t.Errorf("Stable[%s]() = false, want true", tc.name)
		}
	}
	type point struct{ X, Y int }
	for _, tc := range []struct {
		name   string
		stable bool
	}{
		{"float32", Stable[float32]()},
		{"uintptr", Stable[uintptr]()},
		{"struct", Stable[point]()},
		{"array", Stable[[2]int]()},
	} {
		if tc.stable {
			t.Errorf("Stable[%s]() = true, want false: For seeds its hash per call", tc.name)
		}
	}
}
