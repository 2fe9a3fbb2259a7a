package dstream

import (
	"context"
	"fmt"
	"iter"
	"runtime/debug"

	"github.com/sluicehq/sluice/engine"
)

// partitionwise derives a stream computed partition by partition from s,
// fused with s's own chain: each yields the elements of partition i of the
// new stream, of node id, from s's data in.
func partitionwise[T, U any](s *Stream[T], kind string, each func(tk *engine.Task, id int, in *data[T], i int, yield func(U) bool) bool) *Stream[U] {
	out := derive[U](kind, &node{}, s)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[U], error) {
		in, err := s.get(ctx, j)
		if err != nil || in == nil {
			return nil, err
		}
		id := out.node.Meta().ID()
		return &data[U]{n: in.n, tasks: in.tasks, ntasks: in.ntasks, each: func(tk *engine.Task, i int, yield func(U) bool) bool {
			return each(tk, id, in, i, yield)
		}}, nil
	}
	return out
}

// narrow is partitionwise with each element of s's partition i passing
// through step.
func narrow[T, U any](s *Stream[T], kind string, step func(tk *engine.Task, id int, x T, yield func(U) bool) bool) *Stream[U] {
	return partitionwise(s, kind, func(tk *engine.Task, id int, in *data[T], i int, yield func(U) bool) bool {
		return in.iter(tk, i, func(x T) bool { return step(tk, id, x, yield) })
	})
}

// Map returns a stream of f applied to every element of s, keeping the
// partitions and their order.
func Map[T, U any](s *Stream[T], f func(T) U) *Stream[U] {
	mustFn(f == nil, "Map")
	return narrow(s, "map", func(tk *engine.Task, id int, x T, yield func(U) bool) bool {
		tk.Node = id
		return yield(f(x))
	})
}

// FlatMap returns a stream of the elements of f(x) for every element x of s,
// in order.
func FlatMap[T, U any](s *Stream[T], f func(T) []U) *Stream[U] {
	mustFn(f == nil, "FlatMap")
	return narrow(s, "flatMap", func(tk *engine.Task, id int, x T, yield func(U) bool) bool {
		tk.Node = id
		for _, u := range f(x) {
			if !yield(u) {
				return false
			}
		}
		return true
	})
}

// Filter returns a stream of the elements of s for which keep is true, in
// order.
func Filter[T any](s *Stream[T], keep func(T) bool) *Stream[T] {
	mustFn(keep == nil, "Filter")
	return keepsKeying(narrow(s, "filter", func(tk *engine.Task, id int, x T, yield func(T) bool) bool {
		tk.Node = id
		if keep(x) {
			return yield(x)
		}
		return true
	}), s)
}

// MapValues returns a keyed stream with f applied to every value; keys and
// partitions are kept.
func MapValues[K comparable, V, W any](s *Stream[KV[K, V]], f func(V) W) *Stream[KV[K, W]] {
	mustFn(f == nil, "MapValues")
	return keepsKeying(narrow(s, "mapValues", func(tk *engine.Task, id int, x KV[K, V], yield func(KV[K, W]) bool) bool {
		tk.Node = id
		return yield(KV[K, W]{x.Key, f(x.Value)})
	}), s)
}

// FlatMapValues returns a keyed stream with one pair (k, w) for every w in
// f(v) of every pair (k, v) of s, in order.
func FlatMapValues[K comparable, V, W any](s *Stream[KV[K, V]], f func(V) []W) *Stream[KV[K, W]] {
	mustFn(f == nil, "FlatMapValues")
	return keepsKeying(narrow(s, "flatMapValues", func(tk *engine.Task, id int, x KV[K, V], yield func(KV[K, W]) bool) bool {
		tk.Node = id
		for _, w := range f(x.Value) {
			if !yield(KV[K, W]{x.Key, w}) {
				return false
			}
		}
		return true
	}), s)
}

// MapPartitions returns a stream whose partition i is f applied to the
// elements of partition i of s. f sees each partition once per batch, in a
// task of its own, so it may keep per-partition resources (a buffer, a
// connection) for the length of the partition.
func MapPartitions[T, U any](s *Stream[T], f func(in iter.Seq[T]) iter.Seq[U]) *Stream[U] {
	mustFn(f == nil, "MapPartitions")
	return partitionwise(s, "mapPartitions", func(tk *engine.Task, id int, in *data[T], i int, yield func(U) bool) bool {
		seq := func(y func(T) bool) { in.iter(tk, i, y) }
		tk.Node = id
		for u := range f(seq) {
			if !yield(u) {
				return false
			}
			tk.Node = id
		}
		return true
	})
}

// Union returns a stream of the elements of all streams: the partitions of
// the first, then those of the second, and so on. All streams must have the
// same slide; a mismatch is an error when the job starts. The union is
// keyed like the job's input (see [CoPartitioned]) when every stream is.
func Union[T any](s ...*Stream[T]) *Stream[T] {
	if len(s) == 0 {
		panic("dstream: Union needs at least one stream")
	}
	refs := make([]streamRef, len(s))
	for i, x := range s {
		refs[i] = x
	}
	vn := &validatingNode{}
	out := derive[T]("union", vn, refs...)
	for _, x := range s {
		out.keyedAs = append(out.keyedAs, x)
	}
	vn.validate = func() error { return sameSlide(out.opName(), refs) }
	out.compute = func(ctx context.Context, j *engine.Job) (*data[T], error) {
		ins := make([]*data[T], 0, len(s))
		offsets := make([]int, 0, len(s))
		total := 0
		var tasks []int
		ntasks, withTasks := 0, true
		for _, x := range s {
			d, err := x.get(ctx, j)
			if err != nil {
				return nil, err
			}
			if d == nil {
				continue
			}
			ins = append(ins, d)
			offsets = append(offsets, total)
			total += d.n
			tasks = append(tasks, d.tasks...)
			if d.tasks == nil || (ntasks > 0 && d.ntasks != ntasks) {
				withTasks = false
			}
			ntasks = d.ntasks
		}
		if len(ins) == 0 {
			return nil, nil
		}
		switch {
		case !withTasks:
			tasks, ntasks = nil, 0
		case tasks == nil:
			tasks = []int{}
		}
		return &data[T]{n: total, tasks: tasks, ntasks: ntasks, each: func(tk *engine.Task, i int, yield func(T) bool) bool {
			k := len(offsets) - 1
			for offsets[k] > i {
				k--
			}
			return ins[k].iter(tk, i-offsets[k], yield)
		}}, nil
	}
	return out
}

func sameSlide(op string, refs []streamRef) error {
	first := refs[0].graphNode().Meta()
	for _, r := range refs[1:] {
		m := r.graphNode().Meta()
		if m.Slide != first.Slide {
			return fmt.Errorf("dstream: %s reads %s (slide %v) and %s (slide %v); its streams must have the same slide, so window them alike",
				op, first.Name(), first.Slide, m.Name(), m.Slide)
		}
	}
	return nil
}

// Repartition returns a stream with the elements of s spread over n
// partitions as contiguous slices of nearly equal length, keeping their
// order. Use it to spread a skewed or single-partition stream over more
// tasks. n must be at least 1.
func Repartition[T any](s *Stream[T], n int) *Stream[T] {
	if n < 1 {
		panic(fmt.Sprintf("dstream: Repartition to %d partitions; pass 1 or more", n))
	}
	out := derive[T]("repartition", &node{}, s)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[T], error) {
		in, err := s.get(ctx, j)
		if err != nil || in == nil {
			return nil, err
		}
		if err := in.materialize(ctx, j, out.opName()); err != nil {
			return nil, err
		}
		var all []T
		for _, p := range in.parts {
			all = append(all, p...)
		}
		return materialized(split(all, n)), nil
	}
	return out
}

// Transform returns a stream of f applied to each whole batch of s, like
// Spark's transform: f may reorder, regroup or join with outside data. f runs
// once per batch on the goroutine that drives the batch; an error or a panic
// in f fails the batch with a [*engine.BatchError] naming the transform. In
// group mode a result with as many partitions as the batch keeps their
// tasks, partition i taken to hold what came from partition i; another
// count loses them, and keyed operators downstream fail the batch.
func Transform[T, U any](s *Stream[T], f func(ctx context.Context, b Batch[T]) (Batch[U], error)) *Stream[U] {
	mustFn(f == nil, "Transform")
	out := derive[U]("transform", &node{}, s)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[U], error) {
		b, ok, err := s.batch(ctx, j)
		if err != nil || !ok {
			return nil, err
		}
		r, err := callDriver(j, out.opName(), func() (Batch[U], error) { return f(ctx, b) })
		if err != nil {
			return nil, err
		}
		d := materialized(orEmpty(r.Parts))
		if in, _ := s.get(ctx, j); in != nil && in.tasks != nil && d.n == in.n {
			// Partition i of the result is taken to come from partition i.
			d.tasks, d.ntasks = in.tasks, in.ntasks
		}
		return d, nil
	}
	return out
}

// TransformWith returns a stream of f applied to the batches of a and b at
// the same time, like Spark's transformWith. The streams must have the same
// slide. f runs as [Transform]'s does, and fails the batch the same way.
func TransformWith[T, U, V any](a *Stream[T], b *Stream[U], f func(ctx context.Context, x Batch[T], y Batch[U]) (Batch[V], error)) *Stream[V] {
	mustFn(f == nil, "TransformWith")
	vn := &validatingNode{}
	out := derive[V]("transformWith", vn, a, b)
	vn.validate = func() error { return sameSlide(out.opName(), []streamRef{a, b}) }
	out.compute = func(ctx context.Context, j *engine.Job) (*data[V], error) {
		x, okx, err := a.batch(ctx, j)
		if err != nil {
			return nil, err
		}
		y, oky, err := b.batch(ctx, j)
		if err != nil {
			return nil, err
		}
		if !okx && !oky {
			return nil, nil
		}
		x.Time, y.Time = j.Time, j.Time
		r, err := callDriver(j, out.opName(), func() (Batch[V], error) { return f(ctx, x, y) })
		if err != nil {
			return nil, err
		}
		return materialized(orEmpty(r.Parts)), nil
	}
	return out
}

// callDriver calls f, which runs the function of operator op on the
// goroutine that drives batch j, and reports its error or panic as a
// [*engine.BatchError] naming op, as a task's failure names its operator.
func callDriver[U any](j *engine.Job, op string, f func() (Batch[U], error)) (b Batch[U], err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &engine.BatchError{Time: j.Time, Op: op, Err: fmt.Errorf("panic: %v\n%s", r, debug.Stack())}
		}
	}()
	b, err = f()
	if err != nil {
		return b, &engine.BatchError{Time: j.Time, Op: op, Err: err}
	}
	return b, nil
}

func orEmpty[T any](parts [][]T) [][]T {
	if parts == nil {
		return [][]T{}
	}
	return parts
}
