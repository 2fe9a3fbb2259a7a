package window

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error [Spec.Validate] returns.
var ErrInvalid = errors.New("window: invalid window spec")

// Spec describes a sliding window over a parent stream whose batches come
// every Parent. The window at time t covers the parent batches at times in
// (t − Window, t]; windows are emitted at the times t where t − zero is a
// positive multiple of Slide. Window and Slide must be positive multiples of
// Parent (see [Spec.Validate]); Window need not be a multiple of Slide, and
// Slide may exceed Window (then some parent batches are in no window).
//
// A Spec is a plain value: its methods are pure and safe for concurrent use.
type Spec struct {
	// Window is the window length: how far back a window reaches.
	Window time.Duration
	// Slide is the interval between two emitted windows.
	Slide time.Duration
	// Parent is the slide of the parent stream: the interval between two of
	// its batches (the batch interval for a source).
	Parent time.Duration
}

// Interval is the half-open time interval (From, To]: it contains the times
// after From and not after To, the way a window at t contains the batch at t
// but not the one at t − Window.
type Interval struct {
	From, To time.Time
}

// Contains reports whether From < t ≤ To.
func (i Interval) Contains(t time.Time) bool {
	return t.After(i.From) && !t.After(i.To)
}

// Empty reports whether the interval contains no time at all (To ≤ From).
func (i Interval) Empty() bool {
	return !i.To.After(i.From)
}

// Validate reports whether the spec describes a window Sluice can compute:
// Parent, Window and Slide positive, Window and Slide multiples of Parent
// (Spark's WindowedDStream and ReducedWindowedDStream require the same). The
// error wraps [ErrInvalid], names the durations and says how to fix them; it
// does not name the operator, which the caller adds.
func (s Spec) Validate() error {
	if s.Parent <= 0 {
		return fmt.Errorf("%w: the parent stream's slide %v must be positive", ErrInvalid, s.Parent)
	}
	var problems []string
	check := func(what string, d time.Duration) {
		switch {
		case d <= 0:
			problems = append(problems, fmt.Sprintf(
				"%s %v must be positive; use a multiple of the parent's slide %v, such as %v",
				what, d, s.Parent, s.Parent))
		case d%s.Parent != 0:
			lo := d - d%s.Parent
			hi := lo + s.Parent
			fix := fmt.Sprintf("use %v or %v", lo, hi)
			if lo == 0 {
				fix = fmt.Sprintf("use %v", hi)
			}
			problems = append(problems, fmt.Sprintf(
				"%s %v is not a multiple of the parent's slide %v; %s",
				what, d, s.Parent, fix))
		}
	}
	check("window length", s.Window)
	check("slide", s.Slide)
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
}

// Emits reports whether a window is emitted at t: whether t is after zero and
// t − zero is a multiple of Slide (Spark's DStream.isTimeValid). It is false
// for every t when Slide is not positive.
func (s Spec) Emits(zero, t time.Time) bool {
	if s.Slide <= 0 {
		return false
	}
	d := t.Sub(zero)
	return d > 0 && d%s.Slide == 0
}

// Covers returns the interval (from, to] of parent batch times that the
// window at t covers: from = t − Window, to = t. Batches at or before the
// stream's zero time do not exist, so the first windows are partial; see
// [Spec.Batches].
func (s Spec) Covers(t time.Time) (from, to time.Time) {
	return t.Add(-s.Window), t
}

// First returns the earliest parent batch time inside the window at t,
// t − Window + Parent. Parent batches before it are in no window at or after
// t, so a buffer that has emitted the window at t − Slide can drop the batches
// before First(t); see [Panes.Window] and [Incremental.Step].
func (s Spec) First(t time.Time) time.Time {
	return t.Add(s.Parent - s.Window)
}

// Batches returns, in increasing order, the parent batch times inside the
// window at t that are after zero: the times zero + k·Parent (k ≥ 1) in
// (t − Window, t]. The first windows are partial: they hold fewer than
// Window/Parent batches. It returns nil when Parent is not positive.
func (s Spec) Batches(zero, t time.Time) []time.Time {
	from, to := s.Covers(t)
	return s.BatchesIn(zero, Interval{From: from, To: to})
}

// BatchesIn returns, in increasing order, the parent batch times
// zero + k·Parent (k ≥ 1) inside iv. It returns nil when Parent is not
// positive or no batch time falls inside iv.
func (s Spec) BatchesIn(zero time.Time, iv Interval) []time.Time {
	if s.Parent <= 0 || iv.Empty() {
		return nil
	}
	lo := floorDiv(iv.From.Sub(zero), s.Parent) + 1
	hi := floorDiv(iv.To.Sub(zero), s.Parent)
	lo = max(lo, 1)
	if hi < lo {
		return nil
	}
	out := make([]time.Time, 0, hi-lo+1)
	for k := lo; k <= hi; k++ {
		out = append(out, zero.Add(time.Duration(k)*s.Parent))
	}
	return out
}

// Expired returns the parent batch times that an incremental window must
// take out of, and add to, the window emitted at t − Slide to obtain the
// window at t: leaving is what was in the previous window and is not in this
// one, entering what is in this one and was not in the previous one.
//
// When Slide ≤ Window these are exactly the "old" and "new" slices of Spark's
// ReducedWindowedDStream.compute: leaving = (t − Window − Slide, t − Window]
// and entering = (t − Slide, t]. When Slide > Window, Spark's two slices
// overlap on (t − Slide, t − Window], batches that are in neither window;
// Expired leaves them out, so leaving = (t − Slide − Window, t − Slide] (the
// whole previous window) and entering = (t − Window, t] (the whole window).
// Neither interval is clipped at the stream's zero time.
func (s Spec) Expired(t time.Time) (leaving, entering Interval) {
	prev := t.Add(-s.Slide)
	leaving = Interval{From: prev.Add(-s.Window), To: t.Add(-s.Window)}
	entering = Interval{From: prev, To: t}
	if s.Slide > s.Window {
		leaving.To = prev
		entering.From = t.Add(-s.Window)
	}
	return leaving, entering
}

// floorDiv returns ⌊a / b⌋ for b > 0.
func floorDiv(a, b time.Duration) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return int64(q)
}
