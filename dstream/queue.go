package dstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/sluicehq/sluice/engine"
)

// Queue returns a source stream whose batch k (k = 1, 2, …, counted from the
// job's first start) holds batches[k-1]; batches after the last are empty.
// Each batch is split into the context's parallelism of contiguous slices, in
// order, as Spark's parallelize does, so Batch.All of an unkeyed chain yields
// the input order. With a checkpoint, the queue's position is part of it: a
// restarted job continues with the next unconsumed batch.
func Queue[T any](c *engine.Context, batches [][]T) *Stream[T] {
	q := &queueNode[T]{batches: batches, parts: c.Parallelism()}
	q.meta.Kind = "queue"
	c.Register(q)
	s := &Stream[T]{c: c, node: q}
	s.compute = func(ctx context.Context, j *engine.Job) (*data[T], error) {
		return materialized(split(q.current(), q.parts)), nil
	}
	return s
}

type queueNode[T any] struct {
	node
	batches [][]T
	parts   int
	next    int // index of the next batch to plan: the committed position
	planned int // index planned for the running batch
}

var (
	_ engine.Source   = (*queueNode[int])(nil)
	_ engine.Stateful = (*queueNode[int])(nil)
)

func (q *queueNode[T]) current() []T {
	if q.planned < len(q.batches) {
		return q.batches[q.planned]
	}
	return nil
}

// Plan takes the next batch of the queue.
func (q *queueNode[T]) Plan(ctx context.Context, j *engine.Job) ([]byte, error) {
	q.planned = q.next
	j.AddRecords(int64(len(q.current())))
	return binary.AppendUvarint(nil, uint64(q.planned)), nil
}

// Replan takes the batch a checkpoint recorded for j.
func (q *queueNode[T]) Replan(ctx context.Context, j *engine.Job, plan []byte) error {
	idx, n := binary.Uvarint(plan)
	if n <= 0 || idx > math.MaxInt {
		return errors.New("dstream: queue plan is malformed")
	}
	q.planned = int(idx)
	j.AddRecords(int64(len(q.current())))
	return nil
}

// Commit moves past the batch j consumed.
func (q *queueNode[T]) Commit(ctx context.Context, j *engine.Job) error {
	q.next = q.planned + 1
	return nil
}

// SaveState records the queue's position.
func (q *queueNode[T]) SaveState(w engine.StateWriter) error {
	return w.Snapshot(binary.AppendUvarint(nil, uint64(q.planned+1)))
}

// RestoreState sets the queue's position.
func (q *queueNode[T]) RestoreState(r engine.StateReader) error {
	b, err := r.Snapshot()
	if err != nil {
		return err
	}
	pos, n := binary.Uvarint(b)
	if n <= 0 || pos > math.MaxInt {
		return fmt.Errorf("dstream: queue position in the checkpoint is malformed")
	}
	q.next = int(pos)
	return nil
}

// split cuts xs into n contiguous slices of nearly equal length, as Spark's
// parallelize does: slice i is xs[i*len/n : (i+1)*len/n].
func split[T any](xs []T, n int) [][]T {
	parts := make([][]T, n)
	for i := range n {
		parts[i] = xs[i*len(xs)/n : (i+1)*len(xs)/n]
	}
	return parts
}
