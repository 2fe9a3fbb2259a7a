package dstream

import (
	"context"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/keyhash"
	"github.com/sluicehq/sluice/state"
)

// ReduceByKey returns a stream with one pair per key of each batch of s, its
// values combined with f. f must be associative and commutative. Records
// are combined within each input partition first, then hash-partitioned by
// key into the context's parallelism of partitions (see [Stream.Partitions]).
func ReduceByKey[K comparable, V any](s *Stream[KV[K, V]], f func(V, V) V) *Stream[KV[K, V]] {
	mustFn(f == nil, "ReduceByKey")
	return combineByKey(s, "reduceByKey", combiner[V, V]{create: identity[V], merge: f, mergeC: f})
}

// GroupByKey returns a stream with one pair per key of each batch of s,
// holding all its values. Values from one input partition keep their order,
// and partitions follow each other in order.
func GroupByKey[K comparable, V any](s *Stream[KV[K, V]]) *Stream[KV[K, []V]] {
	return combineByKeyWith(s, "groupByKey", groupCombiner[V](), listValueCodec[V]())
}

// CombineByKey returns a stream with one pair per key of each batch of s,
// folding its values into a combiner C as Spark's combineByKey does: a key's
// first value in a partition becomes create(v), the next ones are folded in
// with merge, and combiners of different partitions are merged with
// mergeCombiners.
func CombineByKey[K comparable, V, C any](s *Stream[KV[K, V]], create func(V) C, merge func(C, V) C, mergeCombiners func(C, C) C) *Stream[KV[K, C]] {
	mustFn(create == nil || merge == nil || mergeCombiners == nil, "CombineByKey")
	return combineByKey(s, "combineByKey", combiner[V, C]{create: create, merge: merge, mergeC: mergeCombiners})
}

func combineByKey[K comparable, V, C any](s *Stream[KV[K, V]], kind string, cb combiner[V, C]) *Stream[KV[K, C]] {
	return combineByKeyWith(s, kind, cb, nil)
}

// combineByKeyWith is combineByKey whose combiners are repartitioned in
// group mode with codec (nil: the default).
func combineByKeyWith[K comparable, V, C any](s *Stream[KV[K, V]], kind string, cb combiner[V, C], codec state.Codec[C]) *Stream[KV[K, C]] {
	hash := keyhash.For[K]()
	kn := &keyedNode{}
	kn.inputs = []keyedRef{s}
	x := readExchange(s, kn.Meta(), &kn.groupCheck, cb, codec)
	out := keepsKeying(derive[KV[K, C]](kind, kn, s), s)
	x.attach(kn, out)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[KV[K, C]], error) {
		in, err := s.get(ctx, j)
		if err != nil || in == nil {
			return nil, err
		}
		nt, err := groupTasks(out.opName(), kn.group, in)
		if err != nil {
			return nil, err
		}
		parts, err := keyedShuffle(ctx, j, out.opName(), out.node.Meta().ID(), x, in, kn.partitions(s.c), hash, cb)
		if err != nil {
			return nil, err
		}
		return byTask(materialized(parts), nt), nil
	}
	return out
}

func identity[V any](v V) V { return v }

// CountByValue returns a stream with one pair (x, n) per distinct element x
// of each batch of s, n being how often x occurs in the batch.
func CountByValue[T comparable](s *Stream[T]) *Stream[KV[T, int64]] {
	ones := narrow(s, "countByValue.map", func(tk *engine.Task, id int, x T, yield func(KV[T, int64]) bool) bool {
		return yield(KV[T, int64]{x, 1})
	})
	return combineByKey(ones, "countByValue", combiner[int64, int64]{create: identity[int64], merge: add, mergeC: add})
}

func add(a, b int64) int64 { return a + b }

// Count returns a stream with one element per batch: the number of elements
// of s in the batch, 0 for an empty batch (as in Spark).
func Count[T any](s *Stream[T]) *Stream[int64] {
	out := derive[int64]("count", &node{}, s)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[int64], error) {
		in, err := s.get(ctx, j)
		if err != nil || in == nil {
			return nil, err
		}
		var n int64
		if in.parts != nil {
			for _, p := range in.parts {
				n += int64(len(p))
			}
		} else {
			counts := make([]int64, in.n)
			err := j.Run(ctx, out.opName(), in.n, func(ctx context.Context, tk *engine.Task) error {
				var c int64
				in.iter(tk, tk.Index, func(T) bool { c++; return true })
				counts[tk.Index] = c
				return nil
			})
			if err != nil {
				return nil, err
			}
			for _, c := range counts {
				n += c
			}
		}
		return materialized([][]int64{{n}}), nil
	}
	return out
}

// Reduce returns a stream with at most one element per batch: the elements
// of s combined with f, which must be associative and commutative. An empty
// batch gives an empty batch (as in Spark).
func Reduce[T any](s *Stream[T], f func(T, T) T) *Stream[T] {
	mustFn(f == nil, "Reduce")
	out := derive[T]("reduce", &node{}, s)
	out.compute = func(ctx context.Context, j *engine.Job) (*data[T], error) {
		in, err := s.get(ctx, j)
		if err != nil || in == nil {
			return nil, err
		}
		type partial struct {
			v  T
			ok bool
		}
		op, id := out.opName(), out.node.Meta().ID()
		partials := make([]partial, in.n)
		err = j.Run(ctx, op, in.n, func(ctx context.Context, tk *engine.Task) error {
			var p partial
			in.iter(tk, tk.Index, func(x T) bool {
				tk.Node = id
				if p.ok {
					p.v = f(p.v, x)
				} else {
					p = partial{x, true}
				}
				return true
			})
			partials[tk.Index] = p
			return nil
		})
		if err != nil {
			return nil, err
		}
		var acc partial
		for _, p := range partials {
			switch {
			case !p.ok:
			case acc.ok:
				acc.v = f(acc.v, p.v)
			default:
				acc = p
			}
		}
		if !acc.ok {
			return materialized([][]T{{}}), nil
		}
		return materialized([][]T{{acc.v}}), nil
	}
	return out
}
