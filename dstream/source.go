package dstream

import (
	"context"

	"github.com/sluicehq/sluice/engine"
)

// NewSource returns a stream over src, a source node built outside this
// package, whose batches are read whole before any operator runs (see
// [NewPartitionedSource] for a source read inside the tasks that consume
// it, as package kafkasource's is). NewSource sets
// src's kind and registers it with c; src keeps its own engine roles: the
// engine plans it as an [engine.Source] before every batch and, when it
// implements them, checkpoints it as an [engine.Stateful] and closes it as
// an [engine.Closer].
//
// At every batch that needs the stream, read returns the batch's data as
// materialized partitions, in partition order. read runs on the goroutine
// that drives the batch, once per batch; it usually reads the partitions in
// parallel tasks with [engine.Job.Run] under src's name, so that a failure is
// reported against the source. An error from read fails the batch. read must
// not return partitions it keeps using: the stream owns them afterwards.
//
// NewSource panics when read is nil or src was registered already.
func NewSource[T any](c *engine.Context, src engine.Source, kind string, read func(ctx context.Context, j *engine.Job) ([][]T, error)) *Stream[T] {
	mustFn(read == nil, "NewSource")
	src.Meta().Kind = kind
	c.Register(src)
	s := &Stream[T]{c: c, node: src}
	s.compute = func(ctx context.Context, j *engine.Job) (*data[T], error) {
		parts, err := read(ctx, j)
		if err != nil {
			return nil, err
		}
		d := materialized(orEmpty(parts))
		if err := sourceTasks(src, j, d); err != nil {
			return nil, err
		}
		return d, nil
	}
	return s
}

// NewPartitionedSource is [NewSource] for a source whose partitions are
// read inside the tasks that consume them: at every batch, parts says how
// many partitions the batch has, and read returns partition i's data from
// within the task that processes it, so reading one partition overlaps with
// processing another and a chain of narrow operators runs over the data as
// soon as it arrives. read runs in parallel for different partitions and
// reports a failure through its error, which fails the batch against src;
// tk.Context() is cancelled when another task fails.
//
// NewPartitionedSource panics when parts or read is nil or src was
// registered already.
func NewPartitionedSource[T any](c *engine.Context, src engine.Source, kind string, parts func(j *engine.Job) (int, error), read func(tk *engine.Task, j *engine.Job, i int) ([]T, error)) *Stream[T] {
	mustFn(parts == nil || read == nil, "NewPartitionedSource")
	src.Meta().Kind = kind
	c.Register(src)
	s := &Stream[T]{c: c, node: src}
	s.compute = func(ctx context.Context, j *engine.Job) (*data[T], error) {
		n, err := parts(j)
		if err != nil {
			return nil, err
		}
		id := src.Meta().ID()
		d := &data[T]{n: n, each: func(tk *engine.Task, i int, yield func(T) bool) bool {
			tk.Node = id
			xs, err := read(tk, j, i)
			if err != nil {
				tk.Fail(err)
				return false
			}
			for _, x := range xs {
				if !yield(x) {
					return false
				}
			}
			return true
		}}
		if err := sourceTasks(src, j, d); err != nil {
			return nil, err
		}
		return d, nil
	}
	return s
}
