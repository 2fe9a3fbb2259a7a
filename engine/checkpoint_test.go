package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// counter is a stateful node for tests: word counts kept in a map, saved as
// JSON deltas of what each batch added (so a delta applied twice or lost
// shows in the counts) and background JSON snapshots.
type counter struct {
	meta   engine.Meta
	counts map[string]int64
	added  map[string]int64 // since the last SaveState
}

func newCounter(c *engine.Context, name string) *counter {
	n := &counter{counts: map[string]int64{}, added: map[string]int64{}}
	n.meta.Kind = "counter"
	if name != "" {
		n.meta.SetName(name)
	}
	c.Register(n)
	return n
}

func (n *counter) Meta() *engine.Meta { return &n.meta }

func (n *counter) add(w string) {
	n.counts[w]++
	n.added[w]++
}

func (n *counter) SaveState(w engine.StateWriter) error {
	delta := maps.Clone(n.added)
	clear(n.added)
	if err := w.WriteDelta(func(out io.Writer) error { return json.NewEncoder(out).Encode(delta) }); err != nil {
		return err
	}
	if w.SnapshotDue() {
		snap := maps.Clone(n.counts)
		w.WriteSnapshot(func(out io.Writer) error { return json.NewEncoder(out).Encode(snap) })
	}
	return nil
}

func (n *counter) RestoreState(r engine.StateReader) error {
	b, err := r.Snapshot()
	if err != nil {
		return err
	}
	if b != nil {
		if err := json.Unmarshal(b, &n.counts); err != nil {
			return err
		}
	}
	return r.Deltas(func(in io.Reader) error {
		var d map[string]int64
		if err := json.NewDecoder(in).Decode(&d); err != nil {
			return err
		}
		for w, k := range d {
			n.counts[w] += k
		}
		return nil
	})
}

var _ engine.Stateful = (*counter)(nil)

// input is the queue every checkpoint test reads: batch k holds words
// w0..w(k%5) once each, so totals are easy to compute independently.
func input(batches int) [][]string {
	in := make([][]string, batches)
	for k := range in {
		for i := 0; i <= k%5; i++ {
			in[k] = append(in[k], "w"+strconv.Itoa(i))
		}
	}
	return in
}

// truth counts the words of the first n batches of input.
func truth(in [][]string, n int) map[string]int64 {
	m := map[string]int64{}
	for _, b := range in[:min(n, len(in))] {
		for _, w := range b {
			m[w]++
		}
	}
	return m
}

type job struct {
	c       *engine.Context
	counter *counter
	seen    []int64 // batch times (ms) whose output ran
	fail    func(t time.Time) error
}

func newJob(t *testing.T, dir string, in [][]string, counterName string, opts ...engine.CheckpointOption) (*job, error) {
	t.Helper()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithParallelism(2),
		engine.WithCheckpoint(dir), engine.WithCheckpointOptions(opts...))
	require.NoError(t, err)
	j := &job{c: c}
	words := dstream.Queue(c, in)
	j.counter = newCounter(c, counterName)
	dstream.ForEachBatch(words, func(ctx context.Context, b dstream.Batch[string]) error {
		if j.fail != nil {
			if err := j.fail(b.Time); err != nil {
				return err
			}
		}
		for w := range b.All() {
			j.counter.add(w)
		}
		j.seen = append(j.seen, b.Time.UnixMilli())
		return nil
	})
	// Starting happens on the first RunBatches; run zero batches to restore.
	if err := c.RunBatches(context.Background(), 0); err != nil {
		c.Close()
		return nil, err
	}
	return j, nil
}

func TestCheckpointResumesStateAndQueuePosition(t *testing.T) {
	dir := t.TempDir()
	in := input(20)
	ctx := context.Background()

	j, err := newJob(t, dir, in, "", engine.SnapshotEvery(3))
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(ctx, 7))
	require.Equal(t, truth(in, 7), j.counter.counts)
	require.NoError(t, j.c.Close())

	j, err = newJob(t, dir, in, "", engine.SnapshotEvery(3))
	require.NoError(t, err)
	defer j.c.Close()
	require.Equal(t, truth(in, 7), j.counter.counts, "state restored from the last commit")
	require.NoError(t, j.c.RunBatches(ctx, 5))
	require.Equal(t, truth(in, 12), j.counter.counts, "batch k still gets batches[k-1] after a restart")
	require.Equal(t, []int64{1_008_000, 1_009_000, 1_010_000, 1_011_000, 1_012_000}, j.seen, "batch times continue after the last commit")
}

func TestCheckpointRerunsPlannedBatchOverSameInput(t *testing.T) {
	dir := t.TempDir()
	in := input(10)
	ctx := context.Background()
	j, err := newJob(t, dir, in, "")
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(ctx, 3))
	boom := errors.New("output failed")
	j.fail = func(time.Time) error { return boom }
	err = j.c.RunBatches(ctx, 1)
	var be *engine.BatchError
	require.ErrorAs(t, err, &be)
	require.ErrorIs(t, err, boom)
	require.Equal(t, int64(1_004_000), be.Time.UnixMilli())
	require.ErrorIs(t, j.c.RunBatches(ctx, 1), engine.ErrFailed, "a failed context runs no more batches")
	require.NoError(t, j.c.Close())

	j, err = newJob(t, dir, in, "")
	require.NoError(t, err)
	defer j.c.Close()
	require.NoError(t, j.c.RunBatches(ctx, 2))
	require.Equal(t, []int64{1_004_000, 1_005_000}, j.seen, "the failed batch runs again at its own time")
	require.Equal(t, truth(in, 5), j.counter.counts, "no batch lost, none counted twice")
}

func TestCheckpointLockRefusesSecondJob(t *testing.T) {
	dir := t.TempDir()
	j, err := newJob(t, dir, input(3), "")
	require.NoError(t, err)
	defer j.c.Close()
	_, err = newJob(t, dir, input(3), "")
	require.ErrorIs(t, err, state.ErrLocked)
	require.Contains(t, err.Error(), dir)
	require.NoError(t, j.c.Close())
	require.NoError(t, j.c.Close(), "Close is idempotent")
	j2, err := newJob(t, dir, input(3), "")
	require.NoError(t, err, "the lock is released on Close")
	require.NoError(t, j2.c.Close())
}

func TestCheckpointRefusesRenamedOperator(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	in := input(10)
	j, err := newJob(t, dir, in, "counts")
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(ctx, 2))
	require.NoError(t, j.c.Close())

	_, err = newJob(t, dir, in, "totals")
	require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
	require.Contains(t, err.Error(), `holds operator "counts"`)
	require.Contains(t, err.Error(), "rename the operator back")

	j, err = newJob(t, dir, in, "counts")
	require.NoError(t, err, "renaming it back recovers")
	defer j.c.Close()
	require.Equal(t, truth(in, 2), j.counter.counts)
}

func TestCheckpointRefusesOtherInterval(t *testing.T) {
	dir := t.TempDir()
	j, err := newJob(t, dir, input(3), "")
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(context.Background(), 1))
	require.NoError(t, j.c.Close())
	c, err := engine.NewContext(2*time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	defer c.Close()
	dstream.ForEachBatch(dstream.Queue(c, input(3)), func(context.Context, dstream.Batch[string]) error { return nil })
	err = c.RunBatches(context.Background(), 1)
	require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
	require.Contains(t, err.Error(), "batch interval 1s")
}

func TestCheckpointCorruptNewestCommit(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	in := input(10)
	j, err := newJob(t, dir, in, "")
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(ctx, 4))
	require.NoError(t, j.c.Close())

	newest := filepath.Join(dir, "commits", "1004000")
	b, err := os.ReadFile(newest)
	require.NoError(t, err)
	b[len(b)/2] ^= 0x40
	require.NoError(t, os.WriteFile(newest, b, 0o644))

	_, err = newJob(t, dir, in, "")
	require.ErrorIs(t, err, state.ErrCorrupt)
	require.Contains(t, err.Error(), newest, "the error names the file")
	require.Contains(t, err.Error(), "pass RollbackOnCorrupt to WithCheckpointOptions")
	var corrupt *engine.CorruptCommitError
	require.ErrorAs(t, err, &corrupt, "a program can find the error and word its own advice")
	require.Equal(t, int64(1004000), corrupt.BatchMS)
	require.Equal(t, dir, corrupt.Dir)
	require.NotContains(t, corrupt.Problem(), "RollbackOnCorrupt", "the problem alone carries no advice")

	j, err = newJob(t, dir, in, "", engine.RollbackOnCorrupt())
	require.NoError(t, err)
	defer j.c.Close()
	require.Equal(t, truth(in, 3), j.counter.counts, "rolled back to the newest valid commit")
	require.NoError(t, j.c.RunBatches(ctx, 2))
	require.Equal(t, []int64{1_004_000, 1_005_000}, j.seen, "the rolled-back batch runs again over its recorded input")
	require.Equal(t, truth(in, 5), j.counter.counts)
}

func TestCheckpointCorruptStateFileIsDetected(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j, err := newJob(t, dir, input(10), "")
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(ctx, 3))
	require.NoError(t, j.c.Close())
	m, _, err := engine.LoadCommit(state.OSFS{}, dir, 1_003_000)
	require.NoError(t, err)
	var ref engine.FileRef
	for _, op := range m.Operators {
		if op.Name == "counter-1" {
			ref = op.Files[len(op.Files)-1]
		}
	}
	p := filepath.Join(dir, ref.Path)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	for cut := 0; cut < len(b); cut++ {
		require.NoError(t, os.WriteFile(p, b[:cut], 0o644))
		_, _, err := engine.LoadCommit(state.OSFS{}, dir, 1_003_000)
		require.ErrorIs(t, err, state.ErrCorrupt, "truncated to %d bytes", cut)
	}
	require.NoError(t, os.WriteFile(p, b, 0o644))
	_, _, err = engine.LoadCommit(state.OSFS{}, dir, 1_003_000)
	require.NoError(t, err)
}

func TestCheckpointFaultsFailTheBatchAndCommitNothing(t *testing.T) {
	cases := []struct {
		name string
		op   state.Op
		errn error
		in   string // path part the fault matches
	}{
		{"ENOSPC on state write", state.OpWrite, syscall.ENOSPC, "state"},
		{"EIO on state fsync", state.OpSync, syscall.EIO, "state"},
		{"EIO on commit rename", state.OpRename, syscall.EIO, "commits"},
		{"ENOSPC on offsets write", state.OpWrite, syscall.ENOSPC, "offsets"},
		{"EIO on commit fsync", state.OpSync, syscall.EIO, "commits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			in := input(10)
			ffs := state.NewFaultFS(state.OSFS{})
			j, err := newJob(t, dir, in, "", engine.CheckpointFS(ffs))
			require.NoError(t, err)
			require.NoError(t, j.c.RunBatches(ctx, 2))
			ffs.Arm(state.Fault{Op: tc.op, Err: tc.errn, Match: func(p string) bool { return strings.Contains(p, string(filepath.Separator)+tc.in) }})
			err = j.c.RunBatches(ctx, 1)
			require.ErrorIs(t, err, tc.errn)
			require.Positive(t, ffs.Injected())
			require.NoError(t, j.c.Close())
			commits, err := os.ReadDir(filepath.Join(dir, "commits"))
			require.NoError(t, err)
			var names []string
			for _, e := range commits {
				names = append(names, e.Name())
			}
			require.Equal(t, []string{"1001000", "1002000"}, names, "no commit moves")

			ffs.Disarm()
			j, err = newJob(t, dir, in, "", engine.CheckpointFS(ffs))
			require.NoError(t, err)
			defer j.c.Close()
			require.Equal(t, truth(in, 2), j.counter.counts)
			require.NoError(t, j.c.RunBatches(ctx, 3))
			require.Equal(t, truth(in, 5), j.counter.counts, "the job resumes once the fault clears")
		})
	}
}

func TestCheckpointKeepsLastCommitsAndTheirFiles(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	in := input(40)
	j, err := newJob(t, dir, in, "", engine.KeepCommits(3), engine.SnapshotEvery(4))
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(ctx, 30))
	require.NoError(t, j.c.Close())

	commits, err := os.ReadDir(filepath.Join(dir, "commits"))
	require.NoError(t, err)
	require.Len(t, commits, 3)
	want := map[string]bool{}
	for _, e := range commits {
		ms, err := strconv.ParseInt(e.Name(), 10, 64)
		require.NoError(t, err)
		m, _, err := engine.LoadCommit(state.OSFS{}, dir, ms)
		require.NoError(t, err)
		for _, op := range m.Operators {
			for _, f := range op.Files {
				if f.Path != "" { // small snapshots live inside the manifest
					want[f.Path] = true
				}
			}
		}
	}
	var have []string
	require.NoError(t, filepath.WalkDir(filepath.Join(dir, "state"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			have = append(have, filepath.ToSlash(rel))
		}
		return err
	}))
	slices.Sort(have)
	wantList := slices.Sorted(maps.Keys(want))
	require.Equal(t, wantList, have, "only files the kept commits reference remain")
	require.Less(t, len(have), 12, "snapshots replace the deltas before them")

	j, err = newJob(t, dir, in, "", engine.KeepCommits(3))
	require.NoError(t, err)
	defer j.c.Close()
	require.Equal(t, truth(in, 30), j.counter.counts)
}

func TestCheckpointEveryNReplaysFromRecordedInput(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	in := input(20)
	j, err := newJob(t, dir, in, "", engine.CheckpointEvery(4))
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(ctx, 6)) // commits after batch 4 only
	require.NoError(t, j.c.Close())

	j, err = newJob(t, dir, in, "", engine.CheckpointEvery(4))
	require.NoError(t, err)
	defer j.c.Close()
	require.Equal(t, truth(in, 4), j.counter.counts)
	require.NoError(t, j.c.RunBatches(ctx, 4))
	require.Equal(t, []int64{1_005_000, 1_006_000, 1_007_000, 1_008_000}, j.seen)
	require.Equal(t, truth(in, 8), j.counter.counts)
}

// plainSource is a source whose position is not checkpointed (it does not
// implement engine.Stateful): every batch plans one record.
type plainSource struct {
	meta engine.Meta
}

func (s *plainSource) Meta() *engine.Meta { return &s.meta }

func (s *plainSource) Plan(_ context.Context, j *engine.Job) ([]byte, error) {
	j.AddRecords(1)
	return []byte{1}, nil
}

func (s *plainSource) Replan(_ context.Context, j *engine.Job, _ []byte) error {
	j.AddRecords(1)
	return nil
}

func (s *plainSource) Commit(context.Context, *engine.Job) error { return nil }

var _ engine.Source = (*plainSource)(nil)

// TestCheckpointWithoutStatefulNodesMarksBatchesCommitted runs a job whose
// only source keeps no checkpointed state and which has no stateful
// operator: every batch still records its planned input, so every batch
// must be committed too, or the recorded plans pile up and a restart
// replays every batch since the first.
func TestCheckpointWithoutStatefulNodesMarksBatchesCommitted(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	run := func(n int) []int64 {
		c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)),
			engine.WithCheckpoint(dir), engine.WithCheckpointOptions(engine.KeepCommits(2)))
		require.NoError(t, err)
		defer func() { require.NoError(t, c.Close()) }()
		src := &plainSource{meta: engine.Meta{Kind: "plain"}}
		c.Register(src)
		var times []int64
		o := &testOutput{meta: engine.Meta{Kind: "testOutput", Parents: []engine.Node{src}}, run: func(_ context.Context, j *engine.Job) error {
			times = append(times, j.Time.UnixMilli())
			return nil
		}}
		c.Register(o)
		require.NoError(t, c.RunBatches(ctx, n))
		return times
	}
	require.Len(t, run(20), 20)
	offsets, err := os.ReadDir(filepath.Join(dir, "offsets"))
	require.NoError(t, err)
	require.LessOrEqual(t, len(offsets), 2, "recorded plans of committed batches are collected with their commits")
	require.Equal(t, []int64{21_000, 22_000}, run(2), "a restart resumes after the last batch, replaying none")
}

// batchCounter is an output whose state changes at every batch, with or
// without input, as UpdateStateByKey's does (its update function runs for
// every key in every batch): it counts the batches it ran.
type batchCounter struct {
	meta  engine.Meta
	n     uint64
	times []int64
	fail  func(t time.Time) error
}

func (o *batchCounter) Meta() *engine.Meta { return &o.meta }

func (o *batchCounter) RunOutput(_ context.Context, j *engine.Job) error {
	if o.fail != nil {
		if err := o.fail(j.Time); err != nil {
			return err
		}
	}
	o.n++
	o.times = append(o.times, j.Time.UnixMilli())
	return nil
}

func (o *batchCounter) SaveState(w engine.StateWriter) error {
	return w.Snapshot(binary.AppendUvarint(nil, o.n))
}

func (o *batchCounter) RestoreState(r engine.StateReader) error {
	b, err := r.Snapshot()
	if err != nil || b == nil {
		return err
	}
	o.n, _ = binary.Uvarint(b)
	return nil
}

var (
	_ engine.Output   = (*batchCounter)(nil)
	_ engine.Stateful = (*batchCounter)(nil)
)

// TestCheckpointEveryNReplaysEmptyBatchesBetweenRecordedOnes commits every 4
// batches and crashes in batch 7, after batch 6 planned no input: the
// restart must run batch 6 again as well as 5 and 7, since the state it
// changed was never committed.
func TestCheckpointEveryNReplaysEmptyBatchesBetweenRecordedOnes(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	in := [][]int{{1}, {2}, {3}, {4}, {5}, {}, {7}, {8}, {9}}
	open := func() (*engine.Context, *batchCounter) {
		c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)),
			engine.WithCheckpoint(dir), engine.WithCheckpointOptions(engine.CheckpointEvery(4)))
		require.NoError(t, err)
		q := dstream.Queue(c, in)
		o := &batchCounter{meta: engine.Meta{Kind: "batchCounter", Parents: []engine.Node{q.Node()}}}
		c.Register(o)
		return c, o
	}
	c, o := open()
	boom := errors.New("crash")
	o.fail = func(t time.Time) error {
		if t.Equal(time.Unix(7, 0)) {
			return boom
		}
		return nil
	}
	require.ErrorIs(t, c.RunBatches(ctx, 8), boom)
	require.Equal(t, uint64(6), o.n)
	require.NoError(t, c.Close())

	c, o = open()
	defer c.Close()
	require.NoError(t, c.RunBatches(ctx, 4))
	require.Equal(t, []int64{5000, 6000, 7000, 8000}, o.times, "every batch after the commit runs again, the empty one too")
	require.Equal(t, uint64(8), o.n, "as many batches counted as ran")
}

// TestCheckpointRollbackOnlyPastCorruptCommits fails reading the newest
// commit with an I/O error rather than corrupt bytes: RollbackOnCorrupt
// must not treat the commit as corrupt and delete it, but fail, and the job
// resumes from it once the error clears.
func TestCheckpointRollbackOnlyPastCorruptCommits(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	in := input(10)
	ffs := state.NewFaultFS(state.OSFS{})
	j, err := newJob(t, dir, in, "", engine.CheckpointFS(ffs), engine.RollbackOnCorrupt())
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(ctx, 4))
	require.NoError(t, j.c.Close())

	newest := filepath.Join(dir, "commits", "1004000")
	ffs.Arm(state.Fault{Op: state.OpRead, Err: syscall.EIO, Match: func(p string) bool { return p == newest }})
	_, err = newJob(t, dir, in, "", engine.CheckpointFS(ffs), engine.RollbackOnCorrupt())
	require.ErrorIs(t, err, syscall.EIO)
	require.FileExists(t, newest, "a commit that could not be read is not deleted")

	ffs.Disarm()
	j, err = newJob(t, dir, in, "", engine.CheckpointFS(ffs), engine.RollbackOnCorrupt())
	require.NoError(t, err)
	defer j.c.Close()
	require.Equal(t, truth(in, 4), j.counter.counts, "resumed from the newest commit")
}

// TestCheckpointNoValidCommitNamesTheNewest damages every commit: with
// RollbackOnCorrupt there is nothing to roll back to, and the error names
// the newest commit's file and says what to do.
func TestCheckpointNoValidCommitNamesTheNewest(t *testing.T) {
	dir := t.TempDir()
	j, err := newJob(t, dir, input(10), "", engine.KeepCommits(2))
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(context.Background(), 3))
	require.NoError(t, j.c.Close())
	for _, ms := range []string{"1002000", "1003000"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "commits", ms), []byte("damaged"), 0o644))
	}
	_, err = newJob(t, dir, input(10), "", engine.KeepCommits(2), engine.RollbackOnCorrupt())
	require.ErrorIs(t, err, state.ErrCorrupt)
	require.ErrorContains(t, err, filepath.Join(dir, "commits", "1003000"))
	require.ErrorContains(t, err, "start with a fresh checkpoint dir")
}

// TestLastBatchWhileRestoring reads LastBatch and Zero from another
// goroutine, as a monitor would, while the context restores its checkpoint
// (run with -race).
func TestLastBatchWhileRestoring(t *testing.T) {
	dir := t.TempDir()
	in := input(10)
	j, err := newJob(t, dir, in, "")
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(context.Background(), 3))
	require.NoError(t, j.c.Close())

	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	defer c.Close()
	newCounter(c, "")
	dstream.ForEachBatch(dstream.Queue(c, in), func(context.Context, dstream.Batch[string]) error { return nil })
	stop, polled := make(chan struct{}), make(chan time.Time)
	go func() {
		var last time.Time
		for {
			select {
			case <-stop:
				polled <- last
				return
			default:
				last = c.LastBatch()
				_ = c.Zero()
			}
		}
	}()
	require.NoError(t, c.RunBatches(context.Background(), 1))
	close(stop)
	last := <-polled
	require.True(t, last.Equal(time.Unix(1003, 0)) || last.Equal(time.Unix(1004, 0)) || last.IsZero(), "LastBatch was %v", last)
	require.Equal(t, time.Unix(1004, 0), c.LastBatch())
}

// TestCheckpointCorruptRecordedInput damages the recorded input of a batch
// that failed before its commit: the restart cannot replay it exactly and
// says so, naming the file and what to do.
func TestCheckpointCorruptRecordedInput(t *testing.T) {
	dir := t.TempDir()
	j, err := newJob(t, dir, input(10), "")
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(context.Background(), 3))
	boom := errors.New("output failed")
	j.fail = func(time.Time) error { return boom }
	require.ErrorIs(t, j.c.RunBatches(context.Background(), 1), boom)
	require.NoError(t, j.c.Close())

	p := filepath.Join(dir, "offsets", "1004000")
	require.NoError(t, os.WriteFile(p, []byte("damaged"), 0o644))
	_, err = newJob(t, dir, input(10), "", engine.RollbackOnCorrupt())
	require.ErrorIs(t, err, state.ErrCorrupt)
	require.ErrorContains(t, err, "uncommitted batch 1004000 cannot be read")
	require.ErrorContains(t, err, "restore "+p+" from a backup or start with a fresh checkpoint dir")
}

// strictCounter is a counter whose checkpointed data this build can no
// longer read, as after a change of its state type.
type strictCounter struct{ *counter }

func (strictCounter) RestoreState(engine.StateReader) error {
	return errors.New("state was written with another type")
}

// TestCheckpointRestoreFailureSaysWhatHelps restores a commit that
// verifies but that its operator cannot read: rolling back cannot help (the
// commit is sound), so the error must not suggest it.
func TestCheckpointRestoreFailureSaysWhatHelps(t *testing.T) {
	dir := t.TempDir()
	j, err := newJob(t, dir, input(10), "")
	require.NoError(t, err)
	require.NoError(t, j.c.RunBatches(context.Background(), 2))
	require.NoError(t, j.c.Close())

	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)),
		engine.WithCheckpoint(dir), engine.WithCheckpointOptions(engine.RollbackOnCorrupt()))
	require.NoError(t, err)
	defer c.Close()
	dstream.ForEachBatch(dstream.Queue(c, input(10)), func(context.Context, dstream.Batch[string]) error { return nil })
	sc := strictCounter{&counter{counts: map[string]int64{}, added: map[string]int64{}}}
	sc.meta.Kind = "counter"
	c.Register(sc)
	err = c.RunBatches(context.Background(), 1)
	require.ErrorContains(t, err, `restore operator "counter-1"`)
	require.ErrorContains(t, err, "state was written with another type")
	require.NotContains(t, err.Error(), "RollbackOnCorrupt", "rolling back does not help a commit that verifies")
	require.ErrorContains(t, err, "start with a fresh checkpoint dir")
}

// diskDeath is a checkpoint filesystem whose disk dies after a given number
// of operations that change it: every later create, write, fsync, rename,
// remove and mkdir fails, so nothing after that instant reaches the disk, as
// when the process is killed there.
type diskDeath struct {
	state.OSFS
	ops   atomic.Int64
	limit int64
}

func (d *diskDeath) step() error {
	if d.ops.Add(1) > d.limit {
		return syscall.EIO
	}
	return nil
}

func (d *diskDeath) MkdirAll(dir string, perm fs.FileMode) error {
	if err := d.step(); err != nil {
		return err
	}
	return d.OSFS.MkdirAll(dir, perm)
}

func (d *diskDeath) CreateTemp(dir, pattern string) (state.File, error) {
	if err := d.step(); err != nil {
		return nil, err
	}
	f, err := d.OSFS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &dyingFile{File: f, d: d}, nil
}

func (d *diskDeath) Rename(from, to string) error {
	if err := d.step(); err != nil {
		return err
	}
	return d.OSFS.Rename(from, to)
}

func (d *diskDeath) Remove(p string) error {
	if err := d.step(); err != nil {
		return err
	}
	return d.OSFS.Remove(p)
}

func (d *diskDeath) SyncDir(dir string) error {
	if err := d.step(); err != nil {
		return err
	}
	return d.OSFS.SyncDir(dir)
}

type dyingFile struct {
	state.File
	d *diskDeath
}

func (f *dyingFile) Write(p []byte) (int, error) {
	if err := f.d.step(); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *dyingFile) Sync() error {
	if err := f.d.step(); err != nil {
		return err
	}
	return f.File.Sync()
}

// TestCheckpointSurvivesDeathAtEveryWrite stops a job's disk at every
// instant of its run in turn (between any two changes to the checkpoint,
// background snapshots and collection of old files included), restarts it
// on a sound disk with another parallelism, and runs it to the end: the
// state is always the state of an uninterrupted run.
func TestCheckpointSurvivesDeathAtEveryWrite(t *testing.T) {
	const batches = 7
	in := input(batches)
	in[3], in[4] = nil, nil // batches that plan no input
	cases := []struct {
		name string
		opts []engine.CheckpointOption
	}{
		{"snapshot every 2 deltas, keep 2 commits", []engine.CheckpointOption{engine.SnapshotEvery(2), engine.KeepCommits(2)}},
		{"commit every 3 batches, keep 1 commit", []engine.CheckpointOption{engine.SnapshotEvery(1), engine.KeepCommits(1), engine.CheckpointEvery(3)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			life := func(dir string, parallelism int, fsys state.FS) (*engine.Context, *counter, error) {
				c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithParallelism(parallelism),
					engine.WithCheckpoint(dir), engine.WithCheckpointOptions(append(tc.opts, engine.CheckpointFS(fsys))...))
				require.NoError(t, err)
				n := newCounter(c, "")
				dstream.ForEachBatch(dstream.Queue(c, in), func(_ context.Context, b dstream.Batch[string]) error {
					for w := range b.All() {
						n.add(w)
					}
					return nil
				})
				return c, n, c.RunBatches(context.Background(), 0)
			}
			end := time.Unix(1000+batches, 0)
			sound := &diskDeath{limit: math.MaxInt64}
			c, _, err := life(t.TempDir(), 2, sound)
			require.NoError(t, err)
			require.NoError(t, c.RunBatches(context.Background(), batches))
			require.NoError(t, c.Close())
			writes := sound.ops.Load()
			for limit := range writes {
				dir := t.TempDir()
				c, _, err := life(dir, 2, &diskDeath{limit: limit})
				if err == nil {
					err = c.RunBatches(context.Background(), batches)
				}
				require.NoError(t, c.Close())
				if err != nil { // a death during collection or a background snapshot fails no batch
					require.ErrorIs(t, err, syscall.EIO, "the disk died after %d of %d writes", limit, writes)
				}

				c, n, err := life(dir, 3, state.OSFS{})
				require.NoError(t, err, "restart after the disk died after %d writes", limit)
				for c.LastBatch().Before(end) {
					require.NoError(t, c.RunBatches(context.Background(), 1))
				}
				require.Equal(t, truth(in, batches), n.counts, "state after the disk died after %d writes", limit)
				require.NoError(t, c.Close())
			}
		})
	}
}

// TestCheckpointRollbackWarnsOfUnrecordedBatch rolls back past the commits
// of two batches that planned no input, to a batch whose input was recorded
// after them. The first is not recorded: it cannot be planned anew without
// taking later input, so it is not run again, and a warning names it. The
// second is recorded with the input after it, because its manifest might
// not have been durable yet when that input was recorded, and runs again.
func TestCheckpointRollbackWarnsOfUnrecordedBatch(t *testing.T) {
	dir := t.TempDir()
	in := [][]int{{1}, {2}, {3}, {4}, {}, {}, {7}, {8}}
	var log bytes.Buffer
	open := func() (*engine.Context, *batchCounter) {
		c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)),
			engine.WithLogger(slog.New(slog.NewTextHandler(&log, nil))),
			engine.WithCheckpoint(dir), engine.WithCheckpointOptions(engine.RollbackOnCorrupt()))
		require.NoError(t, err)
		q := dstream.Queue(c, in)
		o := &batchCounter{meta: engine.Meta{Kind: "batchCounter", Parents: []engine.Node{q.Node()}}}
		c.Register(o)
		return c, o
	}
	c, o := open()
	boom := errors.New("crash")
	o.fail = func(t time.Time) error {
		if t.Equal(time.Unix(7, 0)) {
			return boom
		}
		return nil
	}
	require.ErrorIs(t, c.RunBatches(context.Background(), 8), boom)
	require.NoError(t, c.Close())
	for _, ms := range []string{"5000", "6000"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "commits", ms), []byte("damaged"), 0o644))
	}
	require.NotContains(t, log.String(), "not run again")

	c, o = open()
	defer c.Close()
	require.NoError(t, c.RunBatches(context.Background(), 3))
	require.Equal(t, []int64{6000, 7000, 8000}, o.times, "batch 5 planned no input and is not run again")
	require.Contains(t, log.String(), "planned no input, so it was not recorded and is not run again")
	require.Contains(t, log.String(), "batch_ms=5000")
}

// publisher is a source of no input that records, as it publishes each
// batch, whether the batch's commit was on disk by then.
type publisher struct {
	meta engine.Meta
	dir  string

	mu        sync.Mutex
	published []int64 // batch times (ms), in the order published
	missing   []int64 // those whose commit file was not there yet
}

func (p *publisher) Meta() *engine.Meta                                { return &p.meta }
func (p *publisher) Plan(context.Context, *engine.Job) ([]byte, error) { return []byte{}, nil }
func (p *publisher) Replan(context.Context, *engine.Job, []byte) error { return nil }
func (p *publisher) Commit(context.Context, *engine.Job) error         { return nil }
func (p *publisher) SaveState(w engine.StateWriter) error              { return nil }
func (p *publisher) RestoreState(engine.StateReader) error             { return nil }
func (p *publisher) Publish(_ context.Context, j *engine.Job) {
	ms := j.Time.UnixMilli()
	_, err := os.Stat(filepath.Join(p.dir, "commits", strconv.FormatInt(ms, 10)))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.published = append(p.published, ms)
	if err != nil {
		p.missing = append(p.missing, ms)
	}
}

var _ engine.Publisher = (*publisher)(nil)

// TestCheckpointPublishesOnceTheCommitIsDurable runs batches in one call, so
// that each batch's manifest is written while the next batch runs: a source
// publishes a batch's progress only once its commit is on disk, in batch
// order, and a manifest that cannot be written fails the call, publishes
// nothing of its batch and commits no batch after it.
func TestCheckpointPublishesOnceTheCommitIsDurable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in := input(10)
	ffs := state.NewFaultFS(state.OSFS{})
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)),
		engine.WithCheckpoint(dir), engine.WithCheckpointOptions(engine.CheckpointFS(ffs)))
	require.NoError(t, err)
	defer c.Close()
	p := &publisher{meta: engine.Meta{Kind: "publisher"}, dir: dir}
	c.Register(p)
	n := newCounter(c, "")
	dstream.ForEachBatch(dstream.Queue(c, in), func(_ context.Context, b dstream.Batch[string]) error {
		for w := range b.All() {
			n.add(w)
		}
		return nil
	})
	require.NoError(t, c.RunBatches(ctx, 5))
	require.Equal(t, []int64{1_001_000, 1_002_000, 1_003_000, 1_004_000, 1_005_000}, p.published)
	require.Empty(t, p.missing, "published before the commit was on disk")

	// The manifest of batch 7 fails: batch 8 finds out and fails with it.
	ffs.Arm(state.Fault{Op: state.OpSync, Match: func(path string) bool { return strings.Contains(path, "commits") }, After: 1})
	err = c.RunBatches(ctx, 5)
	require.ErrorIs(t, err, syscall.EIO)
	var be *engine.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, time.Unix(1007, 0), be.Time, "the error names the batch whose commit failed")
	require.Equal(t, []int64{1_001_000, 1_002_000, 1_003_000, 1_004_000, 1_005_000, 1_006_000}, p.published)
	require.Empty(t, p.missing)
	require.Equal(t, time.UnixMilli(1_006_000), c.CheckpointStats().LastCommit)
	require.ErrorIs(t, c.RunBatches(ctx, 1), engine.ErrFailed)
}

// TestCheckpointFailedManifestIsReportedBesideAFailedBatch fails the
// manifest of batch 7 in the background and the output of batch 8, which
// runs before it finds out: the call returns batch 8's failure, and the log
// still names the commit that failed, so the disk's error is not lost.
func TestCheckpointFailedManifestIsReportedBesideAFailedBatch(t *testing.T) {
	ctx := context.Background()
	var log bytes.Buffer
	ffs := state.NewFaultFS(state.OSFS{})
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)),
		engine.WithLogger(slog.New(slog.NewTextHandler(&log, nil))),
		engine.WithCheckpoint(t.TempDir()), engine.WithCheckpointOptions(engine.CheckpointFS(ffs)))
	require.NoError(t, err)
	defer c.Close()
	q := dstream.Queue(c, [][]int{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}})
	boom := errors.New("output failed")
	o := &batchCounter{meta: engine.Meta{Kind: "batchCounter", Parents: []engine.Node{q.Node()}},
		fail: func(t time.Time) error {
			if t.Equal(time.Unix(8, 0)) {
				return boom
			}
			return nil
		}}
	c.Register(o)
	require.NoError(t, c.RunBatches(ctx, 6))

	ffs.Arm(state.Fault{Op: state.OpSync, Match: func(path string) bool { return strings.Contains(path, "commits") }})
	err = c.RunBatches(ctx, 2)
	require.ErrorIs(t, err, boom)
	var be *engine.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, time.Unix(8, 0), be.Time)
	require.Contains(t, log.String(), "time_ms=7000", "the failed commit of batch 7 is logged")
	require.Contains(t, log.String(), syscall.EIO.Error())
	require.Equal(t, time.Unix(6, 0), c.CheckpointStats().LastCommit)

	logged := log.String()
	require.ErrorIs(t, c.RunBatches(ctx, 1), engine.ErrFailed)
	require.Equal(t, logged, log.String(), "a later call does not log the failed commit again")
}
