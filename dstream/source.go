package dstream

import (
	"context"

	"github.com/sluicehq/sluice/engine"
)

// NewSource returns a stream over src, a source node built outside this
// package (package kafkasource builds one per Kafka stream). NewSource sets
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
		return materialized(orEmpty(parts)), nil
	}
	return s
}
