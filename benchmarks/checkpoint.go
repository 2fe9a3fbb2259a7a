package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// checkpointChanged is how many keys each batch of the checkpoint workload
// changes, whatever the size of the state.
const checkpointChanged = 1_000

// checkpointResult is the checkpoint cost and restore time of one state
// size.
type checkpointResult struct {
	Keys    int `json:"keys"`
	Changed int `json:"changed_per_batch"`
	// CheckpointMS is the mean checkpoint part of a batch (recording its
	// input and committing its state); BatchMS the mean whole batch.
	CheckpointMS float64 `json:"checkpoint_ms"`
	BatchMS      float64 `json:"batch_ms"`
	RestoreMS    float64 `json:"restore_ms"`
}

// stateJob is a checkpointed MapWithState job whose state starts with keys
// keys and whose batches each change checkpointChanged of them.
type stateJob struct {
	keys, changed int
	dir           string
	c             *engine.Context
	ckpt, total   time.Duration // summed over the timed batches
	batches       int
}

func stateKey(i int) string { return "key-" + strconv.Itoa(1_000_000_000 + i)[1:] }

// newStateJob builds the job over dir. With initial false it starts with
// no initial state: a job that resumes from dir ignores it anyway.
func newStateJob(dir string, keys, batches int, initial bool) (*stateJob, error) {
	changed := min(keys, checkpointChanged)
	sj := &stateJob{keys: keys, changed: changed, dir: dir}
	in := make([][]dstream.KV[string, int64], batches)
	for k := range in {
		in[k] = make([]dstream.KV[string, int64], changed)
		for i := range changed {
			in[k][i] = dstream.Pair(stateKey((k*changed+i)%keys), int64(1))
		}
	}
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithCheckpoint(dir),
		engine.WithListener(engine.ListenerFuncs{Completed: func(info engine.BatchInfo) {
			sj.ckpt += info.CheckpointDelay
			sj.total += info.ProcessingDelay
			sj.batches++
		}}))
	if err != nil {
		return nil, err
	}
	spec := dstream.NewSimpleStateSpec(func(_ string, v dstream.Optional[int64], st *dstream.State[int64]) int64 {
		n, _ := st.Get()
		st.Update(n + v.Value)
		return n + v.Value
	})
	if initial {
		m := make(map[string]int64, keys)
		for i := range keys {
			m[stateKey(i)] = int64(i)
		}
		spec = spec.WithInitialState(m)
	}
	out := dstream.MapWithState(dstream.Queue(c, in), spec).Name("counts")
	dstream.ForEachBatch(out, func(context.Context, dstream.Batch[int64]) error { return nil })
	sj.c = c
	return sj, nil
}

// runBatch runs one batch of the job. The batch's manifest is made durable
// after the batch, while RunBatches returns: that wait counts in the
// checkpoint part and the whole batch, as the next batch would wait for it.
func (sj *stateJob) runBatch(ctx context.Context) error {
	start := time.Now()
	before := sj.total
	if err := sj.c.RunBatches(ctx, 1); err != nil {
		return err
	}
	if after := time.Since(start) - (sj.total - before); after > 0 {
		sj.ckpt += after
		sj.total += after
	}
	return nil
}

// checkpointCost measures, for every state size, the checkpoint part of
// batches that each change the same number of keys, then how long a new job
// takes to restore the state. The jobs of all sizes take turns batch by
// batch, so that they share the machine's load and the background snapshots
// of the large states alike.
func (h *harness) checkpointCost(ctx context.Context) (err error) {
	rounds := h.cfg.checkpointRounds
	jobs := make([]*stateJob, 0, len(h.cfg.stateSizes))
	defer func() {
		for _, sj := range jobs {
			err = errors.Join(err, sj.c.Close(), os.RemoveAll(sj.dir))
		}
	}()
	for _, keys := range h.cfg.stateSizes {
		dir, err := os.MkdirTemp(h.dir, "state-")
		if err != nil {
			return err
		}
		sj, err := newStateJob(dir, keys, rounds+1, true)
		if err != nil {
			return errors.Join(err, os.RemoveAll(dir))
		}
		jobs = append(jobs, sj)
		// The first batch commits the initial state whole.
		if err := sj.c.RunBatches(ctx, 1); err != nil {
			return err
		}
		sj.ckpt, sj.total, sj.batches = 0, 0, 0
	}
	for range rounds {
		for _, sj := range jobs {
			if err := sj.runBatch(ctx); err != nil {
				return err
			}
		}
	}
	for _, sj := range jobs {
		if err := sj.c.Close(); err != nil {
			return err
		}
		restore, err := restoreTime(ctx, sj.dir, sj.keys, rounds+1)
		if err != nil {
			return err
		}
		n := float64(sj.batches)
		h.checkpoints = append(h.checkpoints, checkpointResult{
			Keys: sj.keys, Changed: sj.changed,
			CheckpointMS: ms(sj.ckpt) / n, BatchMS: ms(sj.total) / n, RestoreMS: restore,
		})
	}
	small := h.checkpoints[0]
	for i, cr := range h.checkpoints {
		r := result{Workload: "checkpoint", Label: thousands(cr.Keys) + " keys", Unit: unitBatch, Sluice: cr.CheckpointMS, Better: "lower",
			Figure: fmt.Sprintf("checkpoint part of a batch, %s keys in state, %s changed", thousands(cr.Keys), thousands(cr.Changed))}
		if i > 0 {
			r.against(small.CheckpointMS, thousands(small.Keys)+" keys")
			if i == len(h.checkpoints)-1 {
				r.goal("≤ 2× the "+thousands(small.Keys)+"-key cost", *r.Ratio <= 2)
			}
		}
		h.add(r)
	}
	for _, cr := range h.checkpoints {
		h.add(result{Workload: "checkpoint", Label: "restore " + thousands(cr.Keys) + " keys", Unit: unitMS, Sluice: cr.RestoreMS, Better: "lower",
			Figure: fmt.Sprintf("restore %s keys from a checkpoint", thousands(cr.Keys))})
	}
	return nil
}

// restoreTime opens a new job over dir and returns the milliseconds its
// start takes: reading the newest commit and restoring the state.
func restoreTime(ctx context.Context, dir string, keys, batches int) (float64, error) {
	sj, err := newStateJob(dir, keys, batches, false)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	err = sj.c.RunBatches(ctx, 0)
	d := time.Since(start)
	return ms(d), errors.Join(err, sj.c.Close())
}
