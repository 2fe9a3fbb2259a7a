package kafkasource

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults of [NewDefaultPIDRateEstimator], the same as Spark's
// spark.streaming.backpressure.pid.* settings.
const (
	DefaultPIDProportional = 1.0
	DefaultPIDIntegral     = 0.2
	DefaultPIDDerivative   = 0.0
	DefaultPIDMinRate      = 100.0
)

// ErrInvalidPIDParameter is the error [NewPIDRateEstimator] panics with,
// wrapped, when an argument is out of range.
var ErrInvalidPIDParameter = errors.New("kafkasource: invalid PID rate estimator parameter")

// PIDRateEstimator estimates the rate, in records per second, at which a
// stream should ingest records, from what the batches that just completed
// took. It is a proportional-integral-derivative controller whose error is
// the difference between the rate it estimated last and the measured
// processing rate (records / processing delay); the scheduling delay stands
// for the accumulated error. It mirrors Spark's PIDRateEstimator.
//
// A PIDRateEstimator is safe for concurrent use; calls are serialized.
type PIDRateEstimator struct {
	batchMillis  float64
	proportional float64
	integral     float64
	derivative   float64
	minRate      float64

	mu          sync.Mutex
	firstRun    bool
	latestTime  time.Time
	latestRate  float64
	latestError float64
}

// NewDefaultPIDRateEstimator returns a [PIDRateEstimator] for batches of the
// given duration with Spark's defaults: proportional 1.0, integral 0.2,
// derivative 0.0 and minimum rate 100 records/s. It panics, as
// [NewPIDRateEstimator] does, when batch is not positive.
func NewDefaultPIDRateEstimator(batch time.Duration) *PIDRateEstimator {
	return NewPIDRateEstimator(batch, DefaultPIDProportional, DefaultPIDIntegral, DefaultPIDDerivative, DefaultPIDMinRate)
}

// NewPIDRateEstimator returns a [PIDRateEstimator] for batches of the given
// duration. proportional weighs the current error (it usually provides the
// bulk of the correction), integral the accumulated error, derivative the
// error's rate of change; minRate is the lowest rate it ever estimates, so
// the stream always receives some records to measure.
//
// Out-of-range arguments are programmer errors, as Spark's require treats
// them: it panics with an error wrapping [ErrInvalidPIDParameter] unless batch
// > 0, proportional, integral and derivative >= 0, and minRate > 0 (NaN fails
// every check).
func NewPIDRateEstimator(batch time.Duration, proportional, integral, derivative, minRate float64) *PIDRateEstimator {
	switch {
	case batch <= 0:
		panic(fmt.Errorf("%w: batch interval %v must be positive", ErrInvalidPIDParameter, batch))
	case !(proportional >= 0):
		panic(fmt.Errorf("%w: proportional term %v must be >= 0", ErrInvalidPIDParameter, proportional))
	case !(integral >= 0):
		panic(fmt.Errorf("%w: integral term %v must be >= 0", ErrInvalidPIDParameter, integral))
	case !(derivative >= 0):
		panic(fmt.Errorf("%w: derivative term %v must be >= 0", ErrInvalidPIDParameter, derivative))
	case !(minRate > 0):
		panic(fmt.Errorf("%w: minimum rate %v must be > 0", ErrInvalidPIDParameter, minRate))
	}
	return &PIDRateEstimator{
		batchMillis:  millis(batch),
		proportional: proportional,
		integral:     integral,
		derivative:   derivative,
		minRate:      minRate,
		firstRun:     true,
		latestRate:   -1,
		latestError:  -1,
	}
}

// Compute updates the estimator with the batch that completed at now, which
// held elements records, took processingDelay to process and waited
// schedulingDelay before it started, and returns the new rate in records/s.
//
// ok is false, and the estimator unchanged, unless now is later than the
// previous update, elements > 0 and processingDelay > 0. The first update
// that passes these checks only records the processing rate and also returns
// ok false; every later one returns a rate of at least the minimum rate.
// Durations count with nanosecond precision; for whole milliseconds the
// arithmetic is exactly Spark's, which counts in milliseconds.
func (e *PIDRateEstimator) Compute(now time.Time, elements int64, processingDelay, schedulingDelay time.Duration) (rate float64, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !(e.firstRun || now.After(e.latestTime)) || elements <= 0 || processingDelay <= 0 {
		return 0, false
	}

	// In records/s; these are Spark's terms, in Spark's order of operations.
	processingRate := float64(elements) / millis(processingDelay) * 1000
	errorRate := e.latestRate - processingRate
	historicalError := millis(schedulingDelay) * processingRate / e.batchMillis

	if e.firstRun {
		e.firstRun = false
		e.latestTime = now
		e.latestRate = processingRate
		e.latestError = 0
		return 0, false
	}

	// In seconds, close to the batch interval.
	sinceUpdate := millis(now.Sub(e.latestTime)) / 1000
	dError := (errorRate - e.latestError) / sinceUpdate
	// The conversions round each product, so no platform fuses them into
	// the subtractions and the result stays Spark's to the last bit.
	newRate := math.Max(e.latestRate-
		float64(e.proportional*errorRate)-
		float64(e.integral*historicalError)-
		float64(e.derivative*dError), e.minRate)
	e.latestTime = now
	e.latestRate = newRate
	e.latestError = errorRate
	return newRate, true
}

// millis returns d in milliseconds, exact for whole milliseconds.
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
