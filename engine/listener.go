package engine

import "time"

// BatchInfo describes one batch: when it was due, how much input it had, and
// how long it waited and ran. It mirrors Spark's BatchInfo.
type BatchInfo struct {
	// Time is the batch time.
	Time time.Time
	// Records is the number of input records the sources planned for the batch.
	Records int64
	// SchedulingDelay is how long the batch waited after its time before it
	// started, because earlier batches were still running.
	SchedulingDelay time.Duration
	// ProcessingDelay is how long the batch ran, from planning to commit.
	ProcessingDelay time.Duration
	// TotalDelay is SchedulingDelay + ProcessingDelay.
	TotalDelay time.Duration
	// PlanningDelay, ReadingDelay, ComputingDelay and OutputDelay break
	// ProcessingDelay down by what the batch was doing; with CheckpointDelay
	// they add up to it, short of the listener calls and bookkeeping between
	// them. PlanningDelay is the sources fixing the batch's input (for Kafka,
	// asking the brokers for the latest offsets). ReadingDelay is the wall
	// time source tasks spent fetching and decoding their input; a stage that
	// reads and computes in the same tasks counts the share of its wall time
	// its tasks spent reading (see [Task.AddReadTime]). ComputingDelay is the
	// rest of the time spent computing streams and stateful operators.
	// OutputDelay is the output operations' own work (user functions, sinks
	// writing and committing), not the computing of the streams they output.
	PlanningDelay, ReadingDelay, ComputingDelay, OutputDelay time.Duration
	// CheckpointDelay is the part of ProcessingDelay spent recording the
	// batch's planned input and committing its checkpoint; zero without
	// checkpoints. The planned input is written while the batch reads and
	// computes, and the manifest while the next batch runs: only the wait
	// for the planned input after computing, saving the state, and the wait
	// for the previous batch's manifest count here.
	CheckpointDelay time.Duration
	// OutputOps is the number of output operations of the job, and
	// OutputOpsSucceeded how many of them succeeded in this batch.
	OutputOps, OutputOpsSucceeded int
	// Err is the error that failed the batch, or nil.
	Err error
	// Sources holds what each source reported about the batch, keyed by the
	// source's name (the Kafka source reports its offset ranges).
	Sources map[string]any
}

// Listener receives batch events. Calls are made from the goroutine that runs
// batches, one at a time, in batch order; a listener must not block for long.
type Listener interface {
	BatchStarted(info BatchInfo)
	BatchCompleted(info BatchInfo)
}

// ListenerFuncs adapts functions to a [Listener]; nil functions are skipped.
type ListenerFuncs struct {
	Started   func(BatchInfo)
	Completed func(BatchInfo)
}

// BatchStarted calls f.Started when it is set.
func (f ListenerFuncs) BatchStarted(info BatchInfo) {
	if f.Started != nil {
		f.Started(info)
	}
}

// BatchCompleted calls f.Completed when it is set.
func (f ListenerFuncs) BatchCompleted(info BatchInfo) {
	if f.Completed != nil {
		f.Completed(info)
	}
}
