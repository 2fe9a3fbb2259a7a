package engine

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/state"
)

// CheckBatchInterval refuses, before the context starts, a checkpoint
// written at another batch interval than the context's, as [Context.Start]
// would: the interval its FORMAT file gives or, when that file is missing,
// its newest commit that loads. A program calls it right after
// [Context.LockCheckpoint] so that a job given another interval is refused
// before it starts anything beside the checkpoint, such as a broker whose
// files live there or a sink. The error matches [ErrCheckpointMismatch].
//
// It reads and writes nothing else: without a checkpoint, for a new one, or
// when its files cannot be read it returns nil, and Start reports what is
// wrong. Start still checks everything, the operators included, which
// only the job's graph gives.
func (c *Context) CheckBatchInterval() error {
	if c.ckptDir == "" {
		return nil
	}
	cfg := checkpointConfig{fs: state.OSFS{}}
	for _, o := range c.ckptOpts {
		o(&cfg)
	}
	k := &checkpointer{c: c, dir: c.ckptDir, fs: cfg.fs, cfg: cfg}
	fm, err := k.readFormat()
	if err != nil {
		return mismatchOnly(err)
	}
	if fm != nil {
		return k.matchInterval(fm.IntervalMS, formatFile)
	}
	times, err := k.listMS(commitsDir)
	if err != nil {
		return nil // no commits dir: a new checkpoint
	}
	for i := len(times) - 1; i >= 0; i-- {
		m, _, err := LoadCommit(k.fs, k.dir, times[i])
		if err != nil {
			continue // Start reports a commit that does not load
		}
		return k.matchInterval(m.IntervalMS, fmt.Sprintf("commit %d", m.BatchMS))
	}
	return nil
}

// mismatchOnly keeps an error that says the checkpoint is another job's and
// drops the others, which Start reports with their context.
func mismatchOnly(err error) error {
	if errors.Is(err, ErrCheckpointMismatch) {
		return err
	}
	return nil
}
