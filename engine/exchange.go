package engine

import "context"

// In group mode a keyed operator whose stream is not keyed like the job's
// input (see dstream.CoPartitioned) cannot keep a key's state in the task
// its records come from: the records of one key come from every task. Its
// stream goes through an exchange instead: each batch writes its combined
// records to the task that owns their key (by the key's stable hash), and
// a later batch of whichever member owns that task reads them. The engine
// stays free of how an exchange is kept; a Kafka source keeps it in a
// repartition topic with one partition per task, written in the member's
// batch transaction and read read-committed.

// Exchanging is implemented by nodes that read exchanged records in group
// mode. The [Exchanger] asks every node downstream of it when the context
// starts, before any batch.
type Exchanging interface {
	Node
	// Exchanges returns the names of the exchanges the node reads, nil
	// when it reads none. Nodes reading one stream name the same exchange,
	// and share it.
	Exchanges() []string
}

// Exchanger is implemented by a [TaskSource] that moves records between
// tasks. Both methods are safe for concurrent use by the tasks of a batch.
type Exchanger interface {
	TaskSource
	// ExchangeWrite writes a record to task's partition of exchange as part
	// of batch j: it commits or aborts with the batch's outputs and offsets.
	// The exchange keeps key and value until the batch ends; the caller
	// does not touch them again.
	ExchangeWrite(j *Job, exchange string, task int, key, value []byte) error
	// ExchangeRead calls each, in the order they were written, with the
	// records of task's partition of exchange that batch j reads: those
	// committed since the batch before it read the partition, on whichever
	// member it ran. A task the member does not own in batch j has none.
	// key and value are valid only during the call.
	ExchangeRead(ctx context.Context, j *Job, exchange string, task int, each func(key, value []byte) error) error
}
