package engine

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// CheckpointStats are counters of a context's checkpoint, for monitoring.
type CheckpointStats struct {
	// LastCommit is the batch time of the newest batch the checkpoint
	// holds: that of the newest commit, written by this context or restored
	// from the checkpoint dir, or of a later batch that changed no state and
	// recorded no input, which a restart need not run again. Zero before the
	// first commit and without a checkpoint.
	LastCommit time.Time
	// Commits counts the commits this context wrote.
	Commits int64
	// BytesWritten counts the bytes of checkpoint file bodies this context
	// wrote: the format file, recorded input, state deltas and snapshots,
	// and manifests (headers and checksums not counted).
	BytesWritten int64
	// StateBytes holds, per stateful operator, the bytes of the state the
	// newest commit refers to (its snapshot and deltas, inline ones
	// included).
	StateBytes map[string]int64
}

// ckptStats is what [Context.CheckpointStats] reads while batches run.
type ckptStats struct {
	lastCommitMS atomic.Int64 // 0: none
	commits      atomic.Int64
	bytes        atomic.Int64

	mu         sync.Mutex
	stateBytes map[string]int64
}

// committed records the commit of manifest m; written is whether this
// context wrote it (not restored it).
func (s *ckptStats) committed(m *Manifest, written bool) {
	per := make(map[string]int64, len(m.Operators))
	for _, op := range m.Operators {
		var n int64
		for _, f := range op.Files {
			n += f.Len
		}
		per[op.Name] = n
	}
	s.mu.Lock()
	s.stateBytes = per
	s.mu.Unlock()
	s.lastCommitMS.Store(m.BatchMS)
	if written {
		s.commits.Add(1)
	}
}

// CheckpointStats returns the counters of the context's checkpoint; all
// zero without [WithCheckpoint]. It is safe to call while batches run.
func (c *Context) CheckpointStats() CheckpointStats {
	s := &c.ckptStats
	st := CheckpointStats{Commits: s.commits.Load(), BytesWritten: s.bytes.Load()}
	if ms := s.lastCommitMS.Load(); ms != 0 {
		st.LastCommit = time.UnixMilli(ms)
	}
	s.mu.Lock()
	st.StateBytes = maps.Clone(s.stateBytes)
	s.mu.Unlock()
	return st
}

// CheckpointDir returns the directory given to [WithCheckpoint], or "".
func (c *Context) CheckpointDir() string { return c.ckptDir }
