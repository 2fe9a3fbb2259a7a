package engine

import (
	"context"
	"slices"
	"strconv"
	"time"
)

// Node is one operator of a job's graph. The engine drives nodes without
// knowing the types of the records they carry; package dstream is the typed
// face over them. Every node embeds or returns a [Meta] that the engine owns
// once the node is registered with [Context.Register].
type Node interface {
	Meta() *Meta
}

// Meta is the graph metadata of a [Node].
type Meta struct {
	// Kind is the operator kind, such as "map" or "reduceByKeyAndWindow".
	Kind string
	// Parents are the nodes this node reads, in order.
	Parents []Node
	// Slide is the interval at which the node produces data. Zero means the
	// slide of its first parent, or the batch interval for a source.
	Slide time.Duration
	// DefaultName, when set, replaces "<kind>-<n>" as the default name:
	// the first node of its kind is named DefaultName, the n-th
	// "DefaultName-<n>". The kind-based name the node had before is then one
	// of its former names (see FormerNames).
	DefaultName string
	// FormerNames are names the node may have been checkpointed under. When a
	// checkpoint holds none of the node's state under its name but holds it
	// under a former name, the node restores that state (and replays the
	// input recorded under it) as if it had been checkpointed under its
	// current name.
	FormerNames []string
	// Params describes the settings the node's checkpointed state holds
	// only under, such as a window's length and slide ("window 30s, slide
	// 10s"). Every commit records them beside the node's files, and a
	// checkpoint whose newest commit holds the node's state under other
	// Params is refused when the context starts. Empty: none. Commits written
	// before Params existed hold none and restore under any.
	Params string

	id      int
	ordinal int // position among the registered nodes of the same kind
	name    string
	ctx     *Context
}

// ID returns the node's position in the graph, counted from 1 in the order the
// nodes were registered. It is 0 before registration.
func (m *Meta) ID() int { return m.id }

// Name returns the node's stable name: the one set with [Meta.SetName], or
// "<kind>-<n>" by default, for the n-th node of that kind in registration
// order (so "updateStateByKey-1" is the job's first UpdateStateByKey), or
// the name [Meta.DefaultName] gives. Checkpoints refer to stateful nodes by
// this name; adding or removing operators of other kinds does not change it.
func (m *Meta) Name() string {
	if m.name != "" {
		return m.name
	}
	if m.DefaultName != "" {
		if m.ordinal <= 1 {
			return m.DefaultName
		}
		return m.DefaultName + "-" + strconv.Itoa(m.ordinal)
	}
	return m.kindName()
}

func (m *Meta) kindName() string { return m.Kind + "-" + strconv.Itoa(m.ordinal) }

// Former returns the names a checkpoint may hold the node under instead of
// its name: [Meta.FormerNames] and, for a node named by its DefaultName,
// the kind-based default name "<kind>-<n>" it had before.
func (m *Meta) Former() []string {
	names := slices.Clone(m.FormerNames)
	if m.name == "" && m.DefaultName != "" {
		names = append(names, m.kindName())
	}
	return slices.DeleteFunc(names, func(n string) bool { return n == "" || n == m.Name() })
}

// SetName overrides the node's default name. It must be called before the
// context starts; names must be unique within a job.
func (m *Meta) SetName(name string) { m.name = name }

// Named reports whether the name was set explicitly.
func (m *Meta) Named() bool { return m.name != "" }

// Context returns the context the node is registered with.
func (m *Meta) Context() *Context { return m.ctx }

// ValidTime reports whether the node produces data at batch time t: whether
// t − zero is a multiple of the node's slide, as Spark's DStream.isTimeValid.
func (m *Meta) ValidTime(t time.Time) bool {
	d := t.Sub(m.ctx.zero)
	return d > 0 && d%m.Slide == 0
}

// Validator is implemented by nodes that check their configuration when the
// context starts, such as windows whose durations must be multiples of their
// parent's slide. An error stops the job before the first batch.
type Validator interface {
	Node
	Validate() error
}

// Ticker is implemented by nodes that must see every batch of their parents
// even when no output asks for their result at that time, such as windows
// and keyed state. Before the outputs of a batch run, the engine calls Tick on
// every ticking node reachable from an output, in registration order.
type Ticker interface {
	Node
	Tick(ctx context.Context, j *Job) error
}

// Source is a node that brings data into the job. At every batch, before any
// node computes, the engine calls Plan on every source in registration order;
// the plan fixes exactly which input the batch covers, so that a batch re-run
// after a crash reads the same input.
type Source interface {
	Node
	// Plan decides the input of batch j, records the number of input records
	// with [Job.AddRecords], and returns an encoding of the plan that
	// [Source.Replan] accepts.
	Plan(ctx context.Context, j *Job) ([]byte, error)
	// Replan adopts a plan recorded earlier for batch j instead of planning
	// anew. The engine calls it when it re-runs a batch after a restart.
	Replan(ctx context.Context, j *Job, plan []byte) error
	// Commit tells the source that batch j completed (and, with a checkpoint,
	// was committed), so it may advance its position and publish progress.
	Commit(ctx context.Context, j *Job) error
}

// Publisher is implemented by sources that make their progress known outside
// the job, as a Kafka source commits its offsets to a consumer group. The
// engine calls Publish for batch j after [Source.Commit]: at once without a
// checkpoint; with one, once the batch's commit is durable (with
// [CheckpointEvery], a batch that is not committed on its own is published
// once the commits before it are). That is in the background, while later
// batches run, one batch at a time and in batch order. Publish must
// therefore not touch what Plan, Replan, Commit or the tasks change without
// synchronizing with them, and should not take long: the next commit waits
// for it. It returns nothing: the checkpoint, not what a source publishes,
// is the truth, so a failure to publish fails no batch and is the source's
// to log and count. ctx is done when the context closes.
type Publisher interface {
	Source
	Publish(ctx context.Context, j *Job)
}

// Closer is implemented by nodes that hold resources (clients, files) to
// release when the context closes.
type Closer interface {
	Node
	Close() error
}
