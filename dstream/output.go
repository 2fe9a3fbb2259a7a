package dstream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// outputNode runs an output operation once per batch.
type outputNode struct {
	node
	prepare func(ctx context.Context, j *engine.Job) error
	run     func(ctx context.Context, j *engine.Job) error
	// metrics, when set, is what the output reports for monitoring.
	metrics func() []engine.Metric
}

func (n *outputNode) RunOutput(ctx context.Context, j *engine.Job) error { return n.run(ctx, j) }

// PrepareOutput computes the batch of the stream the output writes; RunOutput
// finds it memoized in the job.
func (n *outputNode) PrepareOutput(ctx context.Context, j *engine.Job) error {
	return n.prepare(ctx, j)
}

// Metrics returns what the output reports for monitoring: nothing unless it
// was registered with [ForEachBatchWith] and OutputOptions.Metrics.
func (n *outputNode) Metrics() []engine.Metric {
	if n.metrics == nil {
		return nil
	}
	return n.metrics()
}

var (
	_ engine.Preparer        = (*outputNode)(nil)
	_ engine.MetricsReporter = (*outputNode)(nil)
)

func output[T any](s *Stream[T], kind string, run func(ctx context.Context, j *engine.Job, b Batch[T]) error) *outputNode {
	on := &outputNode{}
	derive[struct{}](kind, on, s)
	on.prepare = func(ctx context.Context, j *engine.Job) error {
		_, _, err := s.batch(ctx, j)
		return err
	}
	on.run = func(ctx context.Context, j *engine.Job) error {
		b, ok, err := s.batch(ctx, j)
		if err != nil || !ok {
			return err
		}
		return run(ctx, j, b)
	}
	return on
}

// ForEachBatch registers an output operation that calls f with every batch
// of s, on the goroutine that drives batches, after the output operations
// registered before it. An error from f fails the batch. Batches of a
// windowed stream come every slide. f must not keep b.Parts after it
// returns.
func ForEachBatch[T any](s *Stream[T], f func(ctx context.Context, b Batch[T]) error) {
	mustFn(f == nil, "ForEachBatch")
	output(s, "forEachBatch", func(ctx context.Context, _ *engine.Job, b Batch[T]) error { return f(ctx, b) })
}

// ForEachBatchJob is [ForEachBatch] with the batch's [engine.Job], through
// which f reads what sources reported about the batch (the Kafka source's
// offset ranges).
func ForEachBatchJob[T any](s *Stream[T], f func(ctx context.Context, j *engine.Job, b Batch[T]) error) {
	mustFn(f == nil, "ForEachBatchJob")
	output(s, "forEachBatch", f)
}

// OutputOptions describe an output operation registered with
// [ForEachBatchWith], such as a sink.
type OutputOptions struct {
	// Kind is the operator kind of the output, shown in the job's graph
	// and making its default name "<kind>-<n>"; by default
	// "forEachBatch".
	Kind string
	// Metrics, when not nil, returns what the output reports for
	// monitoring (its node is an [engine.MetricsReporter]), such as a
	// sink's records written. It is called from monitoring goroutines
	// while batches run, so it must be safe for concurrent use and must
	// not block on the batch in flight.
	Metrics func() []engine.Metric
}

// ForEachBatchWith is [ForEachBatchJob] for an output described by o: a
// sink names its kind and reports its metrics through it.
func ForEachBatchWith[T any](s *Stream[T], o OutputOptions, f func(ctx context.Context, j *engine.Job, b Batch[T]) error) {
	mustFn(f == nil, "ForEachBatchWith")
	kind := o.Kind
	if kind == "" {
		kind = "forEachBatch"
	}
	output(s, kind, f).metrics = o.Metrics
}

// Print registers an output operation that prints the first n elements of
// every batch of s to standard output, in Spark's format: a "Time: <ms> ms"
// header between dashed lines (followed here by the batch time in UTC,
// RFC 3339), one element a line, "..." when there are
// more, then an empty line.
func Print[T any](s *Stream[T], n int) { PrintTo(s, os.Stdout, n) }

// PrintTo is [Print] writing to w.
func PrintTo[T any](s *Stream[T], w io.Writer, n int) {
	output(s, "print", func(ctx context.Context, j *engine.Job, b Batch[T]) error {
		bw := bufio.NewWriter(w)
		fmt.Fprintln(bw, "-------------------------------------------")
		fmt.Fprintf(bw, "Time: %d ms (%s)\n", b.Time.UnixMilli(), b.Time.UTC().Format(time.RFC3339Nano))
		fmt.Fprintln(bw, "-------------------------------------------")
		i := 0
		for x := range b.All() {
			if i == n {
				fmt.Fprintln(bw, "...")
				break
			}
			fmt.Fprintln(bw, x)
			i++
		}
		fmt.Fprintln(bw)
		return bw.Flush()
	})
}

// SaveAsTextFiles registers an output operation that writes every batch of
// s to the file prefix-<batch time in ms>.suffix (prefix-<ms> when suffix is
// empty), one element a line as fmt.Sprint formats it. The file is written
// atomically (temp file, fsync, rename), so a batch re-run after a crash
// replaces its file instead of duplicating output.
func SaveAsTextFiles[T any](s *Stream[T], prefix, suffix string) {
	output(s, "saveAsTextFiles", func(ctx context.Context, j *engine.Job, b Batch[T]) error {
		path := prefix + "-" + strconv.FormatInt(b.Time.UnixMilli(), 10)
		if suffix != "" {
			path += "." + suffix
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("dstream: create the directory of %s: %w", path, err)
		}
		return state.WriteAtomic(state.OSFS{}, path, func(w io.Writer) error {
			for x := range b.All() {
				if _, err := fmt.Fprintln(w, x); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
