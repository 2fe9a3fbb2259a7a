package exampleutil

import (
	"fmt"
	"sync/atomic"

	"github.com/sluicehq/sluice/kafkasource"
)

// Counter counts records of one kind in the current batch (malformed ones,
// or ones a filter skipped) and keeps the first one's reason. Tasks of a
// batch add to it in parallel; the batch line takes and resets it when the
// batch completes. Batches run one at a time, so counts never mix.
type Counter struct {
	label string
	n     atomic.Int64
	total atomic.Int64 // since the job started, for metrics
	first atomic.Pointer[string]
}

// NewCounter returns a counter shown in the batch line as "<n> <label>".
func NewCounter(label string) *Counter { return &Counter{label: label} }

// Add counts r, skipped for reason (may be empty). It is safe for concurrent
// use.
func (c *Counter) Add(r kafkasource.Record, reason string) {
	c.total.Add(1)
	if c.n.Add(1) == 1 && reason != "" {
		s := fmt.Sprintf("%s[%d]@%d: %s", r.Topic, r.Partition, r.Offset, reason)
		c.first.Store(&s)
	}
}

// Take returns the count since the last Take and the first record's reason,
// and resets both.
func (c *Counter) Take() (n int64, first string) {
	n = c.n.Swap(0)
	if p := c.first.Swap(nil); p != nil {
		first = *p
	}
	return n, first
}

// Label returns the counter's label.
func (c *Counter) Label() string { return c.label }

// Total returns the count since the job started; Take does not reset it.
// It is safe for concurrent use.
func (c *Counter) Total() int64 { return c.total.Load() }
