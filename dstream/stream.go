package dstream

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// KV is a key-value pair, the element type of keyed streams.
type KV[K comparable, V any] struct {
	Key   K
	Value V
}

// Pair returns KV{k, v}.
func Pair[K comparable, V any](k K, v V) KV[K, V] { return KV[K, V]{Key: k, Value: v} }

// String formats the pair as Spark prints a tuple: (key,value).
func (kv KV[K, V]) String() string { return fmt.Sprintf("(%v,%v)", kv.Key, kv.Value) }

// Batch is the data of one stream at one batch time, split into partitions.
// Each partition was produced by one task.
type Batch[T any] struct {
	Time  time.Time
	Parts [][]T
}

// All yields every element, partition by partition, in order.
func (b Batch[T]) All() iter.Seq[T] {
	return func(yield func(T) bool) {
		for _, p := range b.Parts {
			for _, x := range p {
				if !yield(x) {
					return
				}
			}
		}
	}
}

// Len returns the number of elements in all partitions.
func (b Batch[T]) Len() int {
	n := 0
	for _, p := range b.Parts {
		n += len(p)
	}
	return n
}

// Stream is a typed stream of data: a sequence of batches, one per slide
// interval of the stream. Build streams with the functions of this package;
// a Stream only records a node of the job's graph, and the engine computes
// it at every batch.
type Stream[T any] struct {
	c       *engine.Context
	node    engine.Node
	uses    int // how many nodes and outputs read this stream
	compute func(ctx context.Context, j *engine.Job) (*data[T], error)
	// coPart and keyedAs say whether the stream is keyed like the job's
	// input (see [CoPartitioned]): asserted, or derived by a key-preserving
	// operator from streams that all are.
	coPart  bool
	keyedAs []keyedRef
	// exch is the stream's exchange in group mode (*exchange[K, V]), made
	// by the first keyed operator that reads it (see exchange.go);
	// exchanged is the exchange the operator making the stream reads.
	exch      any
	exchanged exchangeUse
}

// Name sets the operator's stable name, overriding the default
// "<kind>-<n>" for the n-th operator of its kind. Checkpoints refer to
// stateful operators by name, so naming them keeps a checkpoint valid when
// the graph around them changes. It returns s.
func (s *Stream[T]) Name(name string) *Stream[T] {
	s.node.Meta().SetName(name)
	return s
}

// Context returns the engine context the stream belongs to.
func (s *Stream[T]) Context() *engine.Context { return s.c }

// Node returns the stream's node in the engine's graph.
func (s *Stream[T]) Node() engine.Node { return s.node }

// Slide returns the interval at which the stream produces batches.
func (s *Stream[T]) Slide() time.Duration { return s.node.Meta().Slide }

func (s *Stream[T]) opName() string { return s.node.Meta().Name() }

// get returns the stream's data for batch j, or nil when the stream produces
// nothing at j's time (windowed streams emit only every slide). The value is
// computed once per batch; a stream read by several operators is
// materialized so that its functions run once per record.
func (s *Stream[T]) get(ctx context.Context, j *engine.Job) (*data[T], error) {
	if !s.node.Meta().ValidTime(j.Time) {
		return nil, nil
	}
	v, err := j.Memo(s.node, func() (any, error) {
		d, err := s.compute(ctx, j)
		if err != nil || d == nil {
			return d, err
		}
		if s.uses > 1 && d.parts == nil {
			if err := d.materialize(ctx, j, s.opName()); err != nil {
				return nil, err
			}
		}
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*data[T]), nil
}

// batch materializes the stream's data for batch j.
func (s *Stream[T]) batch(ctx context.Context, j *engine.Job) (Batch[T], bool, error) {
	d, err := s.get(ctx, j)
	if err != nil || d == nil {
		return Batch[T]{}, false, err
	}
	if err := d.materialize(ctx, j, s.opName()); err != nil {
		return Batch[T]{}, false, err
	}
	return Batch[T]{Time: j.Time, Parts: d.parts}, true, nil
}

// data is one stream's data in one batch: n partitions, either materialized
// in parts or produced lazily by each, which fuses chains of narrow
// operators into one pass per partition.
type data[T any] struct {
	n     int
	parts [][]T
	each  func(tk *engine.Task, i int, yield func(T) bool) bool
	// tasks, in group mode, holds the task of each partition, of ntasks
	// tasks in all (see tasks.go); nil in single-process mode.
	tasks  []int
	ntasks int
}

func materialized[T any](parts [][]T) *data[T] { return &data[T]{n: len(parts), parts: parts} }

// iter pushes partition i's elements to yield until it returns false.
func (d *data[T]) iter(tk *engine.Task, i int, yield func(T) bool) bool {
	if d.parts != nil {
		for _, x := range d.parts[i] {
			if !yield(x) {
				return false
			}
		}
		return true
	}
	return d.each(tk, i, yield)
}

// materialize computes every partition in parallel tasks, once.
func (d *data[T]) materialize(ctx context.Context, j *engine.Job, op string) error {
	if d.parts != nil {
		return nil
	}
	parts := make([][]T, d.n)
	err := j.Run(ctx, op, d.n, func(ctx context.Context, tk *engine.Task) error {
		var out []T
		d.each(tk, tk.Index, func(x T) bool { out = append(out, x); return true })
		parts[tk.Index] = out
		return nil
	})
	if err != nil {
		return err
	}
	d.parts, d.each = parts, nil
	return nil
}

// node is a graph node with no behaviour of its own beyond its metadata.
type node struct{ meta engine.Meta }

func (n *node) Meta() *engine.Meta { return &n.meta }

// validatingNode checks its configuration when the job starts.
type validatingNode struct {
	node
	validate func() error
}

func (n *validatingNode) Validate() error { return n.validate() }

var (
	_ engine.Node      = (*node)(nil)
	_ engine.Validator = (*validatingNode)(nil)
)

// derive registers a node of the given kind reading parents and returns a
// stream over it; the caller sets compute.
func derive[U any](kind string, n engine.Node, parents ...streamRef) *Stream[U] {
	m := n.Meta()
	m.Kind = kind
	var c *engine.Context
	for _, p := range parents {
		m.Parents = append(m.Parents, p.graphNode())
		p.addUse()
		c = p.Context()
	}
	c.Register(n)
	return &Stream[U]{c: c, node: n}
}

// streamRef is what derive needs of a parent stream, whatever its type.
type streamRef interface {
	graphNode() engine.Node
	addUse()
	Context() *engine.Context
}

func (s *Stream[T]) graphNode() engine.Node { return s.node }
func (s *Stream[T]) addUse()                { s.uses++ }

// mustFn panics when a function argument is nil: a programmer error caught
// while the graph is built.
func mustFn(isNil bool, op string) {
	if isNil {
		panic("dstream: " + op + " got a nil function")
	}
}
