package exampleutil

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/kafkasource"
)

// A Sink receives the result rows of every batch of an example, as the
// --sink flag names it. Write runs in the job's output operation, before
// the checkpoint commits, so a sink that commits there and recognises a
// re-run batch writes every batch exactly once.
type Sink interface {
	// Write writes rows, the results of kind ("" for the main results) of
	// the batch at t, which read the offset ranges (nil when unknown).
	// Every row is a json.RawMessage holding one JSON object, as --save
	// writes it; rows that cannot be encoded never reach a sink.
	Write(ctx context.Context, kind string, t time.Time, ranges []kafkasource.OffsetRange, rows []json.RawMessage) error
	// Metrics returns what the sink reports of the rows of kind
	// (sink_records_total, sink_batches_total, … labelled by the sink's
	// name), nothing before their first batch. It is called from the
	// status handler while batches run.
	Metrics(kind string) []engine.Metric
	// Close releases the sink when the job stops.
	Close() error
}

// ForEachBatch registers the output operation of an example that writes
// the rows of kind to the --sink (with [SaveBatch]): it is
// dstream.ForEachBatchJob whose node reports the sink's metrics of kind,
// so that they show on the job's /metrics.
func ForEachBatch[T any](j *Job, kind string, s *dstream.Stream[T], f func(ctx context.Context, jb *engine.Job, b dstream.Batch[T]) error) {
	var o dstream.OutputOptions
	if j.sink != nil {
		o.Metrics = func() []engine.Metric { return j.sink.Metrics(kind) }
	}
	dstream.ForEachBatchWith(s, o, f)
}

// SinkScheme is one kind of --sink value, SCHEME:TARGET (or SCHEME://...
// for URLs). Each scheme registers itself with [RegisterSink] from its own
// file.
type SinkScheme struct {
	// Name is the scheme, before the first colon ("kafka").
	Name string
	// Form is the value's shape for -h and error messages ("kafka:TOPIC").
	Form string
	// Check validates the whole value when the flags are parsed; its error
	// is one sentence naming the fix.
	Check func(value string) error
	// Open creates the sink when the job starts, after the broker is up:
	// addrs are the Kafka seed brokers the job reads from.
	Open func(ctx context.Context, value string, j *Job, addrs []string) (Sink, error)
}

var (
	sinkMu      sync.Mutex
	sinkSchemes = map[string]SinkScheme{}
)

// RegisterSink adds a --sink scheme. It panics on a duplicate name, a
// programming error.
func RegisterSink(s SinkScheme) {
	sinkMu.Lock()
	defer sinkMu.Unlock()
	if _, dup := sinkSchemes[s.Name]; dup || s.Name == "" || s.Open == nil {
		panic("exampleutil: RegisterSink got a duplicate, unnamed or unopenable scheme " + s.Name)
	}
	sinkSchemes[s.Name] = s
}

// sinkForms lists the registered forms for -h and error messages.
func sinkForms() string {
	sinkMu.Lock()
	defer sinkMu.Unlock()
	forms := make([]string, 0, len(sinkSchemes))
	for _, s := range sinkSchemes {
		forms = append(forms, s.Form)
	}
	slices.Sort(forms)
	return strings.Join(forms, ", ")
}

// sinkScheme returns the scheme of a --sink value, or a usage error.
func sinkScheme(value string) (SinkScheme, error) {
	name, _, ok := strings.Cut(value, ":")
	sinkMu.Lock()
	s, known := sinkSchemes[name]
	sinkMu.Unlock()
	if !ok || !known {
		return SinkScheme{}, usagef("--sink %q names no known sink; write one of %s.", value, sinkForms())
	}
	if s.Check != nil {
		if err := s.Check(value); err != nil {
			return SinkScheme{}, err
		}
	}
	return s, nil
}

func openSink(ctx context.Context, value string, j *Job, addrs []string) (Sink, error) {
	s, err := sinkScheme(value)
	if err != nil {
		return nil, err
	}
	sk, err := s.Open(ctx, value, j, addrs)
	if err != nil {
		return nil, fmt.Errorf("cannot open --sink %s: %w", value, err)
	}
	return sk, nil
}
