package engine

// In group mode (a [Distributed] source) a job is split into tasks: task p
// is partition p of every input topic, and each member of the job owns some
// of them. A key's records all come from one task (its input is
// co-partitioned), so keyed state and window panes are held per task and
// move with it. The engine stays free of how tasks are assigned and where
// their state is kept: a [TaskSource] says which task each of its
// partitions belongs to, the operators that hold state per task implement
// [TaskStateful], and the source (which owns the tasks) saves, restores and
// drops their state through it.

// TaskSource is implemented by a [Distributed] source that splits the job
// into tasks. Operators downstream of it hold their state per task.
type TaskSource interface {
	Distributed
	// TaskCount returns the job's number of tasks, the same on every
	// member. It is known once the context has started.
	TaskCount() int
	// PartitionTasks returns the task of each partition of the source's data
	// in batch j, in partition order (several partitions may belong to one
	// task when the job reads several topics).
	PartitionTasks(j *Job) []int
}

// TaskStateful is implemented by nodes that hold state per task in group
// mode. The [TaskSource] that owns the tasks calls it between batches, on
// the goroutine that drives them, never while a batch computes:
//
//   - after a batch's outputs, before the batch commits, SaveTask for every
//     task the member owns, so that the changes commit with the batch;
//   - before the first batch that reads a task the member gained,
//     RestoreTask, with the task's state as it was last committed;
//   - once a task has moved away, DropTask.
//
// State is exchanged as key/value records whose encoding belongs to the
// node; records of one task with the same key replace each other, and a nil
// value deletes the key, as in a compacted Kafka topic.
type TaskStateful interface {
	Node
	// SaveTask calls put with every record of task's state that changed
	// since the task's last SaveTask or RestoreTask (all of them the first
	// time after the node started with the task), in any order. The node
	// hands over key and value: it does not touch them again, and put may
	// keep them.
	SaveTask(task int, put func(key, value []byte) error) error
	// RestoreTask replaces task's state with the records load passes to
	// apply, oldest first; load returns the first error of apply or of its
	// own reading, and RestoreTask returns it. A task restored from no
	// records is empty.
	RestoreTask(task int, load func(apply func(key, value []byte) error) error) error
	// DropTask forgets task's state.
	DropTask(task int)
}

// TaskStatus is what a member knows of one task it owns, for the status
// page and the metrics.
type TaskStatus struct {
	Task int `json:"task"`
	// Restoring is true while the task's state is being restored, before
	// its first batch runs.
	Restoring bool `json:"restoring"`
	// Restored and ToRestore count the state records read so far and to
	// read in all (ToRestore is 0 when not known yet).
	Restored  int64 `json:"restored_records"`
	ToRestore int64 `json:"to_restore_records"`
}

// TaskReporter is implemented by a [TaskSource] that reports the tasks
// its member owns. Tasks is safe to call while batches run.
type TaskReporter interface {
	Tasks() []TaskStatus
}
