package dstream

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/keyhash"
)

// Joined is the value of a joined pair: the left stream's value and the
// right one's.
type Joined[V, W any] struct {
	Left  V
	Right W
}

// String formats the pair as Spark prints a tuple: (left,right).
func (j Joined[V, W]) String() string { return fmt.Sprintf("(%v,%v)", j.Left, j.Right) }

// Optional is a value that may be absent, the side an outer join could not
// match.
type Optional[T any] struct {
	Value T
	Valid bool
}

// Some returns a present Optional holding v.
func Some[T any](v T) Optional[T] { return Optional[T]{Value: v, Valid: true} }

// String formats the value as Scala prints an Option: Some(v) or None.
func (o Optional[T]) String() string {
	if o.Valid {
		return fmt.Sprintf("Some(%v)", o.Value)
	}
	return "None"
}

// Grouped holds every value a key has in the left and the right stream of a
// [Cogroup], each side in input order.
type Grouped[V, W any] struct {
	Left  []V
	Right []W
}

// Cogroup returns a stream with one pair per key present in either stream in
// a batch, grouping the key's values from both. Both streams are
// hash-partitioned by key into the context's parallelism of partitions (see
// [Stream.Partitions]); they must have the same slide.
func Cogroup[K comparable, V, W any](a *Stream[KV[K, V]], b *Stream[KV[K, W]]) *Stream[KV[K, Grouped[V, W]]] {
	return cogroup(a, b, "cogroup")
}

func cogroup[K comparable, V, W any](a *Stream[KV[K, V]], b *Stream[KV[K, W]], kind string) *Stream[KV[K, Grouped[V, W]]] {
	hash := keyhash.For[K]()
	kn := &keyedValidatingNode{}
	kn.inputs = []keyedRef{a, b}
	out := keepsKeying(derive[KV[K, Grouped[V, W]]](kind, kn, a, b), a, b)
	kn.validate = func() error { return sameSlide(out.opName(), []streamRef{a, b}) }
	out.compute = func(ctx context.Context, j *engine.Job) (*data[KV[K, Grouped[V, W]]], error) {
		da, err := a.get(ctx, j)
		if err != nil {
			return nil, err
		}
		db, err := b.get(ctx, j)
		if err != nil {
			return nil, err
		}
		if da == nil && db == nil {
			return nil, nil
		}
		op := out.opName()
		n := kn.partitions(a.c)
		nt, err := cogroupTasks(op, kn.group, da, db)
		if err != nil {
			return nil, err
		}
		if nt > 0 {
			n = nt
		}
		left, err := groupSide(ctx, j, op, out.node.Meta().ID(), da, n, hash)
		if err != nil {
			return nil, err
		}
		right, err := groupSide(ctx, j, op, out.node.Meta().ID(), db, n, hash)
		if err != nil {
			return nil, err
		}
		parts := make([][]KV[K, Grouped[V, W]], n)
		err = j.Run(ctx, op, n, func(ctx context.Context, tk *engine.Task) error {
			p := tk.Index
			idx := make(map[K]int)
			var res []KV[K, Grouped[V, W]]
			if left != nil {
				for _, kv := range left[p] {
					idx[kv.Key] = len(res)
					res = append(res, KV[K, Grouped[V, W]]{kv.Key, Grouped[V, W]{Left: kv.Value}})
				}
			}
			if right != nil {
				for _, kv := range right[p] {
					if i, ok := idx[kv.Key]; ok {
						res[i].Value.Right = kv.Value
					} else {
						res = append(res, KV[K, Grouped[V, W]]{kv.Key, Grouped[V, W]{Right: kv.Value}})
					}
				}
			}
			parts[p] = res
			return nil
		})
		if err != nil {
			return nil, err
		}
		return byTask(materialized(parts), nt), nil
	}
	return out
}

// cogroupTasks checks both sides of a cogroup carry their tasks in group
// mode, the same count, and returns it (0 in single-process mode).
func cogroupTasks[V, W any](op string, g engine.TaskSource, da *data[V], db *data[W]) (int, error) {
	n := -1
	if da != nil {
		na, err := groupTasks(op, g, da)
		if err != nil {
			return 0, err
		}
		n = na
	}
	if db != nil {
		nb, err := groupTasks(op, g, db)
		if err != nil {
			return 0, err
		}
		if n >= 0 && nb != n {
			return 0, fmt.Errorf("dstream: operator %q joins streams of %d and %d tasks; group mode needs input topics of the same partition count", op, n, nb)
		}
		n = nb
	}
	return n, nil
}

func groupSide[K comparable, V any](ctx context.Context, j *engine.Job, op string, id int, d *data[KV[K, V]], n int, hash func(K) uint64) ([][]KV[K, []V], error) {
	if d == nil {
		return nil, nil
	}
	return shuffle(ctx, j, op, id, d, n, hash, groupCombiner[V]())
}

type keyedValidatingNode struct {
	keyedNode
	validate func() error
}

func (n *keyedValidatingNode) Validate() error {
	if err := n.validate(); err != nil {
		return err
	}
	return n.keyedNode.Validate()
}

var _ engine.Validator = (*keyedValidatingNode)(nil)

// Join returns the inner join of a and b in each batch: a pair (k, (v, w))
// for every value v of k in a and every value w of k in b.
func Join[K comparable, V, W any](a *Stream[KV[K, V]], b *Stream[KV[K, W]]) *Stream[KV[K, Joined[V, W]]] {
	return flatJoin(a, b, "join", func(k K, g Grouped[V, W], yield func(KV[K, Joined[V, W]]) bool) bool {
		for _, v := range g.Left {
			for _, w := range g.Right {
				if !yield(KV[K, Joined[V, W]]{k, Joined[V, W]{v, w}}) {
					return false
				}
			}
		}
		return true
	})
}

// LeftOuterJoin returns the left outer join of a and b in each batch: as
// [Join], plus (k, (v, None)) for keys of a that b lacks.
func LeftOuterJoin[K comparable, V, W any](a *Stream[KV[K, V]], b *Stream[KV[K, W]]) *Stream[KV[K, Joined[V, Optional[W]]]] {
	return flatJoin(a, b, "leftOuterJoin", func(k K, g Grouped[V, W], yield func(KV[K, Joined[V, Optional[W]]]) bool) bool {
		for _, v := range g.Left {
			if len(g.Right) == 0 {
				if !yield(KV[K, Joined[V, Optional[W]]]{k, Joined[V, Optional[W]]{v, Optional[W]{}}}) {
					return false
				}
			}
			for _, w := range g.Right {
				if !yield(KV[K, Joined[V, Optional[W]]]{k, Joined[V, Optional[W]]{v, Some(w)}}) {
					return false
				}
			}
		}
		return true
	})
}

// RightOuterJoin returns the right outer join of a and b in each batch: as
// [Join], plus (k, (None, w)) for keys of b that a lacks.
func RightOuterJoin[K comparable, V, W any](a *Stream[KV[K, V]], b *Stream[KV[K, W]]) *Stream[KV[K, Joined[Optional[V], W]]] {
	return flatJoin(a, b, "rightOuterJoin", func(k K, g Grouped[V, W], yield func(KV[K, Joined[Optional[V], W]]) bool) bool {
		for _, w := range g.Right {
			if len(g.Left) == 0 {
				if !yield(KV[K, Joined[Optional[V], W]]{k, Joined[Optional[V], W]{Optional[V]{}, w}}) {
					return false
				}
			}
			for _, v := range g.Left {
				if !yield(KV[K, Joined[Optional[V], W]]{k, Joined[Optional[V], W]{Some(v), w}}) {
					return false
				}
			}
		}
		return true
	})
}

// FullOuterJoin returns the full outer join of a and b in each batch: as
// [Join], plus (k, (v, None)) and (k, (None, w)) for keys only one side has.
func FullOuterJoin[K comparable, V, W any](a *Stream[KV[K, V]], b *Stream[KV[K, W]]) *Stream[KV[K, Joined[Optional[V], Optional[W]]]] {
	type out = KV[K, Joined[Optional[V], Optional[W]]]
	return flatJoin(a, b, "fullOuterJoin", func(k K, g Grouped[V, W], yield func(out) bool) bool {
		switch {
		case len(g.Right) == 0:
			for _, v := range g.Left {
				if !yield(out{k, Joined[Optional[V], Optional[W]]{Some(v), Optional[W]{}}}) {
					return false
				}
			}
		case len(g.Left) == 0:
			for _, w := range g.Right {
				if !yield(out{k, Joined[Optional[V], Optional[W]]{Optional[V]{}, Some(w)}}) {
					return false
				}
			}
		default:
			for _, v := range g.Left {
				for _, w := range g.Right {
					if !yield(out{k, Joined[Optional[V], Optional[W]]{Some(v), Some(w)}}) {
						return false
					}
				}
			}
		}
		return true
	})
}

// flatJoin cogroups a and b and expands each key's groups with emit. The
// cogroup node carries the join's kind, so its name and partition count are
// the join's.
func flatJoin[K comparable, V, W, U any](a *Stream[KV[K, V]], b *Stream[KV[K, W]], kind string, emit func(K, Grouped[V, W], func(U) bool) bool) *Stream[U] {
	g := cogroup(a, b, kind)
	return &Stream[U]{c: g.c, node: g.node, keyedAs: []keyedRef{a, b}, compute: func(ctx context.Context, j *engine.Job) (*data[U], error) {
		d, err := g.compute(ctx, j)
		if err != nil || d == nil {
			return nil, err
		}
		return &data[U]{n: d.n, tasks: d.tasks, ntasks: d.ntasks, each: func(tk *engine.Task, i int, yield func(U) bool) bool {
			return d.iter(tk, i, func(kv KV[K, Grouped[V, W]]) bool { return emit(kv.Key, kv.Value, yield) })
		}}, nil
	}}
}
