package kafkasource_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/kafkasource"
)

// pidCall is one Compute call with Spark's millisecond arguments.
type pidCall struct{ atMs, elements, procMs, schedMs int64 }

// pidResult is what one Compute call returned.
type pidResult struct {
	rate float64
	ok   bool
}

func none() pidResult          { return pidResult{} }
func some(r float64) pidResult { return pidResult{rate: r, ok: true} }
func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
func atMs(n int64) time.Time   { return time.UnixMilli(n) }
func run(e *kafkasource.PIDRateEstimator, c pidCall) pidResult {
	rate, ok := e.Compute(atMs(c.atMs), c.elements, ms(c.procMs), ms(c.schedMs))
	return pidResult{rate, ok}
}

// series builds n calls, one every 20 ms, from per-index generators.
func series(n int, elements, procMs, schedMs func(i int) int64) []pidCall {
	calls := make([]pidCall, n)
	for i := range calls {
		calls[i] = pidCall{atMs: int64(i) * 20, elements: elements(i), procMs: procMs(i), schedMs: schedMs(i)}
	}
	return calls
}

func constant(v int64) func(int) int64 { return func(int) int64 { return v } }

// expect returns a check that wants exactly the given results.
func expect(want ...pidResult) func(*testing.T, []pidCall, []pidResult) {
	return func(t *testing.T, _ []pidCall, got []pidResult) {
		t.Helper()
		require.Equal(t, want, got)
	}
}

// defaultTestEstimator is the estimator of Spark's createDefaultEstimator.
func defaultTestEstimator() *kafkasource.PIDRateEstimator {
	return kafkasource.NewPIDRateEstimator(20*time.Millisecond, 1, 0, 0, 10)
}

func TestPIDRateEstimator(t *testing.T) {
	tests := []struct {
		name  string
		est   func() *kafkasource.PIDRateEstimator
		calls []pidCall
		check func(t *testing.T, calls []pidCall, got []pidResult)
	}{
		// Ported from Spark's PIDRateEstimatorSuite.
		{
			name:  "first estimate is None",
			est:   defaultTestEstimator,
			calls: []pidCall{{0, 10, 10, 0}},
			check: expect(none()),
		},
		{
			name:  "second estimate is not None",
			est:   defaultTestEstimator,
			calls: []pidCall{{0, 10, 10, 0}, {10, 10, 10, 0}},
			check: expect(none(), some(1000)), // 1000 elements / s
		},
		{
			name:  "no estimate when no time difference between successive calls",
			est:   defaultTestEstimator,
			calls: []pidCall{{0, 10, 10, 0}, {10, 10, 10, 0}, {10, 10, 10, 0}},
			check: expect(none(), some(1000), none()),
		},
		{
			name:  "no estimate when no records in previous batch",
			est:   defaultTestEstimator,
			calls: []pidCall{{0, 10, 10, 0}, {10, 0, 10, 0}, {20, -10, 10, 0}},
			check: expect(none(), none(), none()),
		},
		{
			name:  "no estimate when there is no processing delay",
			est:   defaultTestEstimator,
			calls: []pidCall{{0, 10, 10, 0}, {10, 10, 0, 0}, {20, 10, -10, 0}},
			check: expect(none(), none(), none()),
		},
		{
			// One record per 20 ms batch, 20 ms of processing and a
			// growing backlog push the estimate down; it never goes
			// below the minimum rate.
			name:  "estimate is never less than min rate",
			est:   func() *kafkasource.PIDRateEstimator { return kafkasource.NewPIDRateEstimator(ms(20), 1, 1, 0, 5) },
			calls: series(50, constant(1), constant(20), constant(100)),
			check: func(t *testing.T, calls []pidCall, got []pidResult) {
				want := []pidResult{none()}
				for range calls[1:] {
					want = append(want, some(5))
				}
				require.Equal(t, want, got)
			},
		},
		{
			name:  "with no accumulated or positive error, |I| > 0, follow the processing speed",
			est:   func() *kafkasource.PIDRateEstimator { return kafkasource.NewPIDRateEstimator(ms(20), 1, 1, 0, 10) },
			calls: series(50, func(i int) int64 { return int64(i+1) * 20 }, constant(20), constant(0)),
			check: func(t *testing.T, calls []pidCall, got []pidResult) {
				want := []pidResult{none()}
				for i := range calls[1:] {
					want = append(want, some(float64(i+2)*1000))
				}
				require.Equal(t, want, got)
			},
		},
		{
			name:  "with no accumulated but some positive error, |I| > 0, follow the processing speed",
			est:   func() *kafkasource.PIDRateEstimator { return kafkasource.NewPIDRateEstimator(ms(20), 1, 1, 0, 10) },
			calls: series(50, func(i int) int64 { return int64(50-i) * 20 }, constant(20), constant(0)),
			check: func(t *testing.T, calls []pidCall, got []pidResult) {
				want := []pidResult{none()}
				for i := range calls[1:] {
					want = append(want, some(float64(49-i)*1000))
				}
				require.Equal(t, want, got)
			},
		},

		// Edge cases of the same computation.
		{
			name:  "a rejected call does not use up the first run",
			est:   defaultTestEstimator,
			calls: []pidCall{{0, 0, 10, 0}, {10, 10, 10, 0}, {20, 10, 10, 0}},
			check: expect(none(), none(), some(1000)),
		},
		{
			name:  "no estimate for a time before the previous update",
			est:   defaultTestEstimator,
			calls: []pidCall{{20, 10, 10, 0}, {40, 10, 10, 0}, {30, 10, 10, 0}, {60, 10, 10, 0}},
			check: expect(none(), some(1000), none(), some(1000)),
		},
		{
			// 20 records in 10 ms is 2000/s against a previous 1000/s:
			// error −1000; 5 ms of backlog at 2000/s over a 20 ms batch is
			// 500/s of historical error; dError −1000 over 0.01 s.
			name: "all three terms",
			est: func() *kafkasource.PIDRateEstimator {
				return kafkasource.NewPIDRateEstimator(ms(20), 1, 0.2, 0.001, 10)
			},
			calls: []pidCall{{0, 10, 10, 0}, {10, 20, 10, 5}},
			check: expect(none(), some(1000-1*-1000-0.2*500-0.001*(-1000/0.01))),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.est()
			got := make([]pidResult, len(tt.calls))
			for i, c := range tt.calls {
				got[i] = run(e, c)
			}
			tt.check(t, tt.calls, got)
		})
	}
}

// Spark's case draws its inputs at random; here each seed is one draw.
func TestPIDRateEstimatorStaysBelowProcessingSpeed(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprintf("with some accumulated and some positive error, |I| > 0, stay below the processing speed/seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			const procMs = 20
			calls := series(50, func(int) int64 { return rng.Int64N(1000) }, constant(procMs), func(int) int64 { return rng.Int64N(19) })
			e := kafkasource.NewPIDRateEstimator(ms(20), 1, 0.01, 0, 10)
			for i, c := range calls {
				got := run(e, c)
				if i == 0 {
					require.Equal(t, none(), got)
					continue
				}
				speed := float64(c.elements) / procMs * 1000
				if c.elements == 0 {
					// Spark's check would fail here too: no records, no estimate.
					require.False(t, got.ok, "call %d", i)
					continue
				}
				require.True(t, got.ok, "call %d", i)
				if got.rate > 0 && c.schedMs > 0 {
					require.Less(t, got.rate, speed, "call %d: %+v", i, c)
				}
			}
		})
	}
}

func TestNewPIDRateEstimatorChecksRanges(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name                                      string
		batch                                     time.Duration
		proportional, integral, derivative, minRt float64
	}{
		{"estimator checks ranges/batchIntervalMillis = 0", 0, 1, 2, 3, 10},
		{"estimator checks ranges/proportional = -1", ms(100), -1, 2, 3, 10},
		{"estimator checks ranges/integral = -1", ms(100), 0, -1, 3, 10},
		{"estimator checks ranges/derivative = -1", ms(100), 0, 0, -1, 10},
		{"estimator checks ranges/minRate = 0", ms(100), 0, 0, 0, 0},
		{"estimator checks ranges/minRate = -10", ms(100), 0, 0, 0, -10},
		{"negative batch", -ms(100), 1, 0.2, 0, 100},
		{"NaN proportional", ms(100), nan, 0.2, 0, 100},
		{"NaN integral", ms(100), 1, nan, 0, 100},
		{"NaN derivative", ms(100), 1, 0.2, nan, 100},
		{"NaN minRate", ms(100), 1, 0.2, 0, nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				kafkasource.NewPIDRateEstimator(tt.batch, tt.proportional, tt.integral, tt.derivative, tt.minRt)
			}()
			err, isErr := recovered.(error)
			require.True(t, isErr, "want a panic with an error, got %v", recovered)
			require.ErrorIs(t, err, kafkasource.ErrInvalidPIDParameter)
		})
	}
	require.NotPanics(t, func() { kafkasource.NewPIDRateEstimator(ms(100), 0, 0, 0, 0.001) })
}

func TestNewDefaultPIDRateEstimator(t *testing.T) {
	t.Run("the right estimator is created", func(t *testing.T) {
		want := kafkasource.NewPIDRateEstimator(time.Second, 1.0, 0.2, 0.0, 100)
		got := kafkasource.NewDefaultPIDRateEstimator(time.Second)
		require.Equal(t, want, got)
	})
	t.Run("defaults drive the estimate", func(t *testing.T) {
		// 1000 records in 500 ms is 2000/s; the next batch, 1500 in 500 ms
		// with 250 ms of backlog: 2000 − (−1000) − 0.2·(250·3000/1000).
		e := kafkasource.NewDefaultPIDRateEstimator(time.Second)
		_, ok := e.Compute(atMs(1000), 1000, ms(500), 0)
		require.False(t, ok)
		rate, ok := e.Compute(atMs(2000), 1500, ms(500), ms(250))
		require.True(t, ok)
		require.InDelta(t, 2000+1000-0.2*750, rate, 1e-9)
	})
	t.Run("panics on a zero batch", func(t *testing.T) {
		require.Panics(t, func() { kafkasource.NewDefaultPIDRateEstimator(0) })
	})
}

func TestPIDRateEstimatorSubMillisecond(t *testing.T) {
	e := defaultTestEstimator()
	start := time.Unix(0, 0)
	_, ok := e.Compute(start, 10, 500*time.Microsecond, 0)
	require.False(t, ok)
	// Whole-millisecond truncation would see no processing delay and give no
	// estimate; nanosecond precision measures 10 records / 0.5 ms.
	rate, ok := e.Compute(start.Add(700*time.Microsecond), 10, 500*time.Microsecond, 0)
	require.True(t, ok)
	require.InDelta(t, 20_000, rate, 1e-6)
}

func TestPIDRateEstimatorConcurrentUse(t *testing.T) {
	e := kafkasource.NewDefaultPIDRateEstimator(ms(100))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		estimate int
	)
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				at := atMs(int64(i*4+g) * 100)
				if _, ok := e.Compute(at, 1000, ms(50), 0); ok {
					mu.Lock()
					estimate++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	// Each accepted call moved the clock forward; at least the calls of the
	// goroutine that ran last were accepted, and the first accepted call
	// gave no estimate.
	require.Positive(t, estimate)
	require.Less(t, estimate, 400)
}

func BenchmarkPIDRateEstimatorCompute(b *testing.B) {
	e := kafkasource.NewDefaultPIDRateEstimator(time.Second)
	at := time.Unix(0, 0)
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Second)
		if _, ok := e.Compute(at, 10_000, 800*time.Millisecond, 50*time.Millisecond); !ok && at.Unix() > 1 {
			b.Fatal("no estimate")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "estimates/s")
}

func ExamplePIDRateEstimator() {
	e := kafkasource.NewDefaultPIDRateEstimator(time.Second)
	start := time.Unix(1_700_000_000, 0)

	// The first completed batch only measures: 5000 records in 500 ms.
	_, ok := e.Compute(start, 5000, 500*time.Millisecond, 0)
	fmt.Println(ok)

	// The next batch took its whole interval and waited 200 ms: slow down.
	rate, ok := e.Compute(start.Add(time.Second), 5000, time.Second, 200*time.Millisecond)
	fmt.Printf("%v %.0f records/s\n", ok, rate)
	// Output:
	// false
	// true 4800 records/s
}
