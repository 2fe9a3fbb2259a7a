package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/state"
)

// FormatVersion is the version of the checkpoint layout this build writes
// and reads.
const FormatVersion = 1

// Errors of checkpoints.
var (
	// ErrCheckpointMismatch is matched by the error returned when a
	// checkpoint's stateful operators, batch interval or format do not match
	// the job.
	ErrCheckpointMismatch = errors.New("engine: checkpoint does not match the job")
)

// CheckpointOption configures checkpoints; see [WithCheckpointOptions].
type CheckpointOption func(*checkpointConfig)

type checkpointConfig struct {
	fs            state.FS
	keep          int
	snapshotEvery int
	every         int
	rollback      bool
}

// CheckpointFS sets the filesystem checkpoint files are written through,
// overriding the default real filesystem ([state.OSFS]). Tests inject faults
// with [state.FaultFS].
func CheckpointFS(fsys state.FS) CheckpointOption {
	return func(c *checkpointConfig) { c.fs = fsys }
}

// KeepCommits sets how many commits (and the files they need) are kept,
// overriding the default of 10. Older ones are deleted after each commit.
func KeepCommits(n int) CheckpointOption { return func(c *checkpointConfig) { c.keep = n } }

// SnapshotEvery sets after how many deltas of an operator a full snapshot is
// written, overriding the default of 10. A snapshot is also written when the
// deltas since the last one outweigh half of it.
func SnapshotEvery(n int) CheckpointOption {
	return func(c *checkpointConfig) { c.snapshotEvery = n }
}

// CheckpointEvery commits a checkpoint every n batches instead of every
// batch (the default, n = 1). Each batch's planned input is still recorded,
// so after a crash up to n−1 batches are replayed over exactly their
// original input.
func CheckpointEvery(n int) CheckpointOption { return func(c *checkpointConfig) { c.every = n } }

// RollbackOnCorrupt makes a job whose newest commit fails verification
// restore the newest commit that verifies instead of failing, which is the
// default. Batches after the commit it restores are replayed from their
// recorded input; their outputs are written again. A batch that planned no
// input was not recorded: one that lies between replayed batches is not run
// again, and a warning names it.
func RollbackOnCorrupt() CheckpointOption { return func(c *checkpointConfig) { c.rollback = true } }

// CorruptCommitError is returned when a job starts on a checkpoint whose
// newest commit fails verification and [RollbackOnCorrupt] is not set. Err
// says what failed; it wraps [state.ErrCorrupt] or [fs.ErrNotExist]. A
// program that names the option differently (a command-line flag, say)
// finds this error with errors.As and words its own advice.
type CorruptCommitError struct {
	Dir     string // the checkpoint directory
	BatchMS int64  // the newest commit's batch time, in epoch milliseconds
	Err     error
}

// Problem says what is wrong, without the advice.
func (e *CorruptCommitError) Problem() string {
	return fmt.Sprintf("newest checkpoint commit %d in %s does not verify: %v", e.BatchMS, e.Dir, e.Err)
}

func (e *CorruptCommitError) Error() string {
	return "engine: " + e.Problem() + "; to restore the newest valid commit instead, pass RollbackOnCorrupt to WithCheckpointOptions"
}

func (e *CorruptCommitError) Unwrap() error { return e.Err }

// Checkpoint layout under the directory.
const (
	formatFile = "FORMAT"
	offsetsDir = "offsets"
	stateDir   = "state"
	commitsDir = "commits"
)

// format is the FORMAT file: written when a job first uses a directory.
type format struct {
	Version    int      `json:"version"`
	ZeroMS     int64    `json:"zero_ms"`
	IntervalMS int64    `json:"interval_ms"`
	Operators  []string `json:"operators"`
}

// Manifest is the body of a commits/<batch ms> file: the batch it commits and
// every state file needed to restore the job as it was after that batch.
type Manifest struct {
	Version    int                        `json:"version"`
	BatchMS    int64                      `json:"batch_ms"`
	ZeroMS     int64                      `json:"zero_ms"`
	IntervalMS int64                      `json:"interval_ms"`
	Operators  []OperatorFiles            `json:"operators"`
	Sources    map[string]json.RawMessage `json:"sources,omitempty"`
}

// OperatorFiles lists the files that restore one stateful operator: an
// optional snapshot followed by deltas, oldest first.
type OperatorFiles struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Params are the operator's Meta.Params when the commit was written.
	Params string    `json:"params,omitempty"`
	Files  []FileRef `json:"files"`
}

// FileRef is one state file as a manifest references it: its path relative
// to the checkpoint directory, its body's length and CRC32C.
//
// A small snapshot (a source's positions) is kept inline in the manifest
// instead of in a file of its own: Kind is "snapshot", Path is empty and
// Inline holds the body.
type FileRef struct {
	Path    string `json:"path,omitempty"`
	Kind    string `json:"kind"` // "snapshot" or "delta"
	BatchMS int64  `json:"batch_ms"`
	Len     int64  `json:"len"`
	CRC     uint32 `json:"crc"`
	Inline  []byte `json:"inline,omitempty"`
}

// inlineMax is the largest snapshot kept inside the manifest.
const inlineMax = 4 << 10

// key names the body of the reference in the map LoadCommit returns.
func (f FileRef) key(op string) string {
	if f.Path == "" {
		return "inline:" + op
	}
	return f.Path
}

// plansFile is the body of an offsets/<batch ms> file.
type plansFile struct {
	BatchMS int64                      `json:"batch_ms"`
	Plans   map[string][]byte          `json:"plans"`
	Info    map[string]json.RawMessage `json:"info,omitempty"`
}

type checkpointer struct {
	c       *Context
	dir     string
	fs      state.FS
	cfg     checkpointConfig
	release func() error
	ops     []Stateful

	chains   map[string][]FileRef // the files that restore each operator now
	lastSnap map[string][]byte    // each operator's last Snapshot body, to skip rewriting it
	retained []*Manifest          // commits on disk, oldest first
	plans    map[int64]map[string][]byte
	sinceCk  int  // batches since the last commit
	replayed bool // the last recovered plan was just taken
	unsaved  bool // a batch's input was recorded or replayed since the last manifest
	empty    []emptyPlan
	former   map[string]string // former operator name → current name (see Meta.Former)

	mu        sync.Mutex
	wg        sync.WaitGroup
	snapBusy  map[string]int64 // operator → batch ms of the snapshot being written
	snapReady map[string]FileRef

	collecting chan struct{} // closed when the last collection started is done; nil before the first

	// Commits are made durable in the background, while the next batch
	// plans, reads and computes: last is the last step queued (see queue),
	// nil before the first; covered holds the batches that planned no input
	// and that only the manifest being written covers (see writePlans).
	last    *step
	covered []emptyPlan
	writes  []stateFile // the state files the commit being saved writes
}

// stateFile is a state file a commit writes: deltas and small snapshots,
// encoded while the operators save their state, written in the background.
type stateFile struct {
	path string
	kind state.Kind
	body []byte
}

// writeFiles writes files at once, each in a goroutine of its own, and
// returns a function that waits until all are durable and returns the first
// failure.
func (k *checkpointer) writeFiles(files []stateFile) (wait func() error) {
	if len(files) == 0 {
		return func() error { return nil }
	}
	errs := make(chan error, len(files))
	for _, f := range files {
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			err := state.WriteFile(k.fs, f.path, f.kind, f.body)
			if err == nil {
				k.c.ckptStats.bytes.Add(int64(len(f.body)))
			}
			errs <- err
		}()
	}
	return func() error {
		var first error
		for range files {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
}

// step is work done in the background after a batch's commit: writing its
// manifest, publishing the sources' progress.
type step struct {
	done chan struct{}
	err  error // once done is closed: the failure of this step or of one before it
}

// queue runs f in the background once every step queued before it is done,
// unless one of them failed: steps run one at a time, in the order queued.
func (k *checkpointer) queue(f func() error) *step {
	prev := k.last
	s := &step{done: make(chan struct{})}
	k.last = s
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		defer close(s.done)
		if prev != nil {
			<-prev.done
			if s.err = prev.err; s.err != nil {
				return
			}
		}
		s.err = f()
	}()
	return s
}

// settle waits until every step queued is done, and returns the first
// failure of one.
func (k *checkpointer) settle() error {
	if k.last == nil {
		return nil
	}
	<-k.last.done
	return k.last.err
}

func openCheckpointer(c *Context, dir string, opts ...CheckpointOption) (k *checkpointer, err error) {
	cfg := checkpointConfig{fs: state.OSFS{}, keep: 10, snapshotEvery: 10, every: 1}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.keep < 1:
		return nil, fmt.Errorf("engine: KeepCommits(%d) must keep at least 1 commit", cfg.keep)
	case cfg.snapshotEvery < 1:
		return nil, fmt.Errorf("engine: SnapshotEvery(%d) must be 1 or more", cfg.snapshotEvery)
	case cfg.every < 1:
		return nil, fmt.Errorf("engine: CheckpointEvery(%d) must be 1 or more", cfg.every)
	}
	release := func() error { return nil } // the lock taken by Context.LockCheckpoint, released by Close
	if !c.ckptLocked {
		if release, err = state.LockDir(dir); err != nil {
			return nil, fmt.Errorf("engine: checkpoint dir: %w", err)
		}
	}
	k = &checkpointer{
		c: c, dir: dir, fs: cfg.fs, cfg: cfg, release: release,
		chains: make(map[string][]FileRef), lastSnap: make(map[string][]byte), plans: make(map[int64]map[string][]byte),
		snapBusy: make(map[string]int64), snapReady: make(map[string]FileRef),
	}
	defer func() {
		if err != nil {
			_ = release()
		}
	}()
	for _, n := range c.nodes {
		if s, ok := n.(Stateful); ok {
			name := n.Meta().Name()
			if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
				return nil, fmt.Errorf("engine: operator name %q cannot name a checkpoint directory; use letters, digits, '-' and '_'", name)
			}
			k.ops = append(k.ops, s)
		}
	}
	for _, d := range []string{offsetsDir, stateDir, commitsDir} {
		if err := k.fs.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("engine: create checkpoint dir %s: %w", filepath.Join(dir, d), err)
		}
	}
	k.former = formerNames(c)
	if err := k.recover(); err != nil {
		return nil, err
	}
	return k, nil
}

// formerNames maps the former names of the job's nodes (see [Meta.Former])
// to their current names. A former name that a node of the job goes by, or
// that two nodes claim, maps to nothing.
func formerNames(c *Context) map[string]string {
	current := make(map[string]bool)
	for _, n := range c.nodes {
		current[n.Meta().Name()] = true
	}
	former := make(map[string]string)
	claimed := make(map[string]int)
	for _, n := range c.nodes {
		for _, f := range n.Meta().Former() {
			if !current[f] {
				former[f] = n.Meta().Name()
				claimed[f]++
			}
		}
	}
	for f, n := range claimed {
		if n > 1 {
			delete(former, f)
		}
	}
	return former
}

// adoptFormerNames renames, in commit m and the bodies loaded with it, the
// operators and sources m holds under a former name to their current names,
// when m holds nothing under the current name. Their files stay where they
// are: the manifest references them by path.
func (k *checkpointer) adoptFormerNames(m *Manifest, bodies map[string][]byte) {
	if len(k.former) == 0 {
		return
	}
	has := make(map[string]bool)
	for _, of := range m.Operators {
		has[of.Name] = true
	}
	for i, of := range m.Operators {
		to, ok := k.former[of.Name]
		if !ok || has[to] {
			continue
		}
		for _, f := range of.Files {
			if f.Path == "" {
				if b, ok := bodies[f.key(of.Name)]; ok {
					delete(bodies, f.key(of.Name))
					bodies[f.key(to)] = b
				}
			}
		}
		m.Operators[i].Name = to
		has[to] = true
		k.c.logger.Info("checkpoint: restoring an operator checkpointed under its former name",
			slog.String("former", of.Name), slog.String("name", to), slog.Int64("batch_ms", m.BatchMS))
	}
	renameKeys(m.Sources, k.former)
}

// renameKeys moves the entries of m under a former name to the current name
// former maps it to, unless m already has an entry under that name.
func renameKeys[V any](m map[string]V, former map[string]string) {
	for from, to := range former {
		v, ok := m[from]
		if !ok {
			continue
		}
		if _, taken := m[to]; taken {
			continue
		}
		delete(m, from)
		m[to] = v
	}
}

func (k *checkpointer) names() []string {
	names := make([]string, len(k.ops))
	for i, op := range k.ops {
		names[i] = op.Meta().Name()
	}
	return names
}

// recover restores the newest valid commit, or starts a fresh checkpoint.
func (k *checkpointer) recover() error {
	c := k.c
	if err := k.removeTemps(); err != nil {
		return err
	}
	fm, err := k.readFormat()
	if err != nil {
		return err
	}
	if fm != nil {
		if err := k.matchInterval(fm.IntervalMS, formatFile); err != nil {
			return err
		}
	}
	m, bodies, setAside, err := k.newestValidCommit()
	if err != nil {
		return err
	}
	if m != nil {
		k.adoptFormerNames(m, bodies)
	}
	if fm == nil {
		if fm, err = k.rebuildFormat(m); err != nil {
			return err
		}
	}
	if m != nil {
		if err := k.matchManifest(fm, m); err != nil {
			return err
		}
	}
	if err := k.matchZero(fm.ZeroMS); err != nil {
		return err
	}
	c.mu.Lock()
	c.zero = time.UnixMilli(fm.ZeroMS)
	c.mu.Unlock()
	c.next = c.firstBatch()

	restoredMS := fm.ZeroMS
	if m != nil {
		for _, op := range k.ops {
			name := op.Meta().Name()
			// matchOperators made sure the commit holds every operator.
			files := m.Operators[slices.IndexFunc(m.Operators, func(of OperatorFiles) bool { return of.Name == name })].Files
			k.chains[name] = files
			if len(files) == 1 && files[0].Kind == "snapshot" {
				k.lastSnap[name] = bodies[files[0].key(name)]
			}
			r := &stateReader{op: name, files: files, bodies: bodies}
			if err := op.RestoreState(r); err != nil {
				return fmt.Errorf("engine: restore operator %q from checkpoint dir %s (commit %d): %w; run the job with the state types and codecs that wrote it, or start with a fresh checkpoint dir",
					name, k.dir, m.BatchMS, err)
			}
		}
		restoredMS = m.BatchMS
		c.ckptStats.committed(m, false)
		c.next = time.UnixMilli(m.BatchMS).Add(c.batch)
		c.mu.Lock()
		c.lastBatch = time.UnixMilli(m.BatchMS)
		c.mu.Unlock()
		c.logger.Info("checkpoint restored", slog.String("dir", k.dir), slog.Int64("batch_ms", m.BatchMS))
	} else if err := k.matchFormat(fm); err != nil {
		return err
	}
	if err := k.loadPlans(restoredMS); err != nil {
		return err
	}
	if len(k.plans) > 0 {
		times := slices.Sorted(maps.Keys(k.plans))
		c.next = time.UnixMilli(times[0])
		c.logger.Info("checkpoint: batches planned before the restart and not committed run again first, at their own times and over their recorded input; they start late by the downtime, which the late-batch warning does not count",
			slog.Int("batches", len(times)), slog.Int64("first_ms", times[0]), slog.Int64("last_ms", times[len(times)-1]))
		for _, t := range setAside {
			if _, ok := k.plans[t]; !ok && t < times[len(times)-1] {
				// Only recorded batches are replayed; an empty one between
				// them cannot be planned anew without taking later input.
				c.logger.Warn("checkpoint: a batch whose commit was set aside planned no input, so it was not recorded and is not run again; what it changed without input (timeouts, windows sliding) is lost",
					slog.Int64("batch_ms", t))
			}
		}
	} else if !c.manual {
		c.skipDowntime()
	}
	return nil
}

// rebuildFormat writes the FORMAT file of a checkpoint that has none: a
// fresh one for a new checkpoint, or one rebuilt from the newest verified
// commit m when the file was lost. A directory that holds recorded input but
// no commit and no FORMAT is refused: nothing says which interval wrote it.
func (k *checkpointer) rebuildFormat(m *Manifest) (*format, error) {
	c := k.c
	p := filepath.Join(k.dir, formatFile)
	if m == nil {
		planned, err := k.listMS(offsetsDir)
		if err != nil {
			return nil, err
		}
		if len(planned) > 0 {
			return nil, fmt.Errorf("%w: checkpoint dir %s holds recorded input in %s but no %s file and no commit, so nothing says which batch interval wrote it; restore %s from a backup or start with a fresh checkpoint dir",
				ErrCheckpointMismatch, k.dir, offsetsDir, formatFile, p)
		}
		fm := &format{Version: FormatVersion, ZeroMS: c.zero.UnixMilli(), IntervalMS: c.batch.Milliseconds(), Operators: k.names()}
		return fm, k.writeFormat(fm)
	}
	fm := &format{Version: FormatVersion, ZeroMS: m.ZeroMS, IntervalMS: m.IntervalMS}
	for _, of := range m.Operators {
		fm.Operators = append(fm.Operators, of.Name)
	}
	if err := k.matchInterval(fm.IntervalMS, fmt.Sprintf("commit %d", m.BatchMS)); err != nil {
		return nil, err
	}
	if err := k.writeFormat(fm); err != nil {
		return nil, err
	}
	c.logger.Warn("checkpoint: the FORMAT file was missing; rebuilt it from the newest verified commit",
		slog.String("file", p), slog.Int64("commit_ms", m.BatchMS),
		slog.Duration("interval", time.Duration(m.IntervalMS)*time.Millisecond))
	return fm, nil
}

// matchInterval refuses a checkpoint written at another batch interval; what
// names where the interval was read (the FORMAT file or a commit).
func (k *checkpointer) matchInterval(intervalMS int64, what string) error {
	if intervalMS == k.c.batch.Milliseconds() {
		return nil
	}
	return fmt.Errorf("%w: checkpoint dir %s was written with batch interval %v (its %s says so) but this job uses %v; use the same interval or a fresh checkpoint dir",
		ErrCheckpointMismatch, k.dir, time.Duration(intervalMS)*time.Millisecond, what, k.c.batch)
}

// matchManifest cross-checks the commit to restore against the FORMAT file
// and the job: its interval, its zero time, and its operators' names and
// kinds. No path loads state written under another interval.
func (k *checkpointer) matchManifest(fm *format, m *Manifest) error {
	what := fmt.Sprintf("commit %d", m.BatchMS)
	if err := k.matchInterval(m.IntervalMS, what); err != nil {
		return err
	}
	if m.ZeroMS != fm.ZeroMS {
		return fmt.Errorf("%w: checkpoint dir %s: %s counts batches from %d ms but its %s from %d ms, so one of them belongs to another job; restore %s from a backup, delete it to have it rebuilt from the newest commit, or start with a fresh checkpoint dir",
			ErrCheckpointMismatch, k.dir, what, m.ZeroMS, formatFile, fm.ZeroMS, filepath.Join(k.dir, formatFile))
	}
	return k.matchOperators(m)
}

func (k *checkpointer) removeTemps() error {
	dirs := []string{k.dir, filepath.Join(k.dir, offsetsDir), filepath.Join(k.dir, commitsDir)}
	entries, err := k.fs.ReadDir(filepath.Join(k.dir, stateDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("engine: list checkpoint state dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(k.dir, stateDir, e.Name()))
		}
	}
	for _, d := range dirs {
		if err := state.RemoveTemps(k.fs, d); err != nil {
			return err
		}
	}
	return nil
}

func (k *checkpointer) readFormat() (*format, error) {
	p := filepath.Join(k.dir, formatFile)
	body, err := state.ReadFile(k.fs, p, state.KindFormat)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	var fm format
	if err := json.Unmarshal(body, &fm); err != nil {
		return nil, fmt.Errorf("engine: checkpoint file %s does not parse: %v; start with a fresh checkpoint dir", p, err)
	}
	if fm.Version != FormatVersion {
		return nil, fmt.Errorf("%w: checkpoint dir %s has format version %d but this build reads version %d; run a build that reads it or start with a fresh checkpoint dir", ErrCheckpointMismatch, k.dir, fm.Version, FormatVersion)
	}
	return &fm, nil
}

// matchFormat checks a checkpoint that has no commit yet.
func (k *checkpointer) matchFormat(fm *format) error {
	if !slices.Equal(fm.Operators, k.names()) {
		// Nothing was committed: the operators may change freely.
		fm.Operators = k.names()
		return k.writeFormat(fm)
	}
	return nil
}

func (k *checkpointer) writeFormat(fm *format) error {
	body, _ := json.MarshalIndent(fm, "", "  ")
	if err := state.WriteFile(k.fs, filepath.Join(k.dir, formatFile), state.KindFormat, body); err != nil {
		return fmt.Errorf("engine: write checkpoint %s: %w", formatFile, err)
	}
	k.c.ckptStats.bytes.Add(int64(len(body)))
	return nil
}

// matchOperators refuses a commit whose stateful operators differ from the
// job's.
func (k *checkpointer) matchOperators(m *Manifest) error {
	have := make(map[string]string)   // name → kind
	params := make(map[string]string) // name → params
	for _, of := range m.Operators {
		have[of.Name] = of.Kind
		params[of.Name] = of.Params
	}
	want := make(map[string]bool)
	for _, name := range k.names() {
		want[name] = true
	}
	for _, of := range m.Operators {
		if !want[of.Name] {
			return fmt.Errorf("%w: checkpoint dir %s holds operator %q (%s) which this job does not define; rename the operator back (Name(%q)) or start with a fresh checkpoint dir",
				ErrCheckpointMismatch, k.dir, of.Name, of.Kind, of.Name)
		}
	}
	for _, op := range k.ops {
		name := op.Meta().Name()
		if kind, ok := have[name]; ok && kind != op.Meta().Kind {
			return fmt.Errorf("%w: checkpoint dir %s: operator %q was checkpointed as a %s but this job builds a %s under that name; give the job's operator another name, or start with a fresh checkpoint dir",
				ErrCheckpointMismatch, k.dir, name, kind, op.Meta().Kind)
		}
		if _, ok := have[name]; !ok {
			return fmt.Errorf("%w: this job defines stateful operator %q (%s) which checkpoint dir %s does not hold; name it as the checkpoint does, or start with a fresh checkpoint dir",
				ErrCheckpointMismatch, name, op.Meta().Kind, k.dir)
		}
		if had, want := params[name], op.Meta().Params; had != "" && had != want {
			return fmt.Errorf("%w: checkpoint dir %s: operator %q was checkpointed with %s but this job builds it with %s, and its state holds only under the settings it was written with; build it with those, or start with a fresh checkpoint dir",
				ErrCheckpointMismatch, k.dir, name, had, orNone(want))
		}
	}
	return nil
}

// orNone is params, or "no settings" when it is empty.
func orNone(params string) string {
	if params == "" {
		return "no settings"
	}
	return params
}

// listMS lists the batch times that name the files of the checkpoint's
// subdirectory sub (commits or offsets), oldest first.
func (k *checkpointer) listMS(sub string) ([]int64, error) {
	entries, err := k.fs.ReadDir(filepath.Join(k.dir, sub))
	if err != nil {
		return nil, fmt.Errorf("engine: list checkpoint dir %s: %w", filepath.Join(k.dir, sub), err)
	}
	var ms []int64
	for _, e := range entries {
		if v, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && !e.IsDir() {
			ms = append(ms, v)
		}
	}
	slices.Sort(ms)
	return ms, nil
}

// newestValidCommit loads the newest commit whose manifest and files all
// verify. A newest commit that fails is an error unless RollbackOnCorrupt;
// then the batch times of the newer commits it set aside are returned too.
func (k *checkpointer) newestValidCommit() (*Manifest, map[string][]byte, []int64, error) {
	times, err := k.listMS(commitsDir)
	if err != nil {
		return nil, nil, nil, err
	}
	var newestErr error
	for i := len(times) - 1; i >= 0; i-- {
		m, bodies, err := LoadCommit(k.fs, k.dir, times[i])
		if err != nil {
			if !errors.Is(err, state.ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) {
				// Not damage but a failing read: rolling back would delete a
				// commit that may be sound.
				return nil, nil, nil, fmt.Errorf("engine: cannot read checkpoint commit %d in %s: %w; fix the file system error and restart the job", times[i], k.dir, err)
			}
			if !k.cfg.rollback {
				return nil, nil, nil, &CorruptCommitError{Dir: k.dir, BatchMS: times[i], Err: err}
			}
			k.c.logger.Warn("checkpoint commit does not verify; rolling back to an older one", slog.String("error", err.Error()))
			if newestErr == nil {
				newestErr = err
			}
			continue
		}
		// Keep the commits this one and older ones need.
		for _, t := range times[:i+1] {
			if t == m.BatchMS {
				k.retained = append(k.retained, m)
			} else if om, err := readManifest(k.fs, k.dir, t); err == nil {
				k.retained = append(k.retained, om)
			}
		}
		// Newer commits that failed verification are set aside.
		for _, t := range times[i+1:] {
			_ = k.fs.Remove(filepath.Join(k.dir, commitsDir, strconv.FormatInt(t, 10)))
		}
		return m, bodies, times[i+1:], nil
	}
	if len(times) > 0 {
		return nil, nil, nil, fmt.Errorf("engine: no commit in checkpoint dir %s verifies, the newest failing with: %w; start with a fresh checkpoint dir", k.dir, newestErr)
	}
	return nil, nil, nil, nil
}

func readManifest(fsys state.FS, dir string, ms int64) (*Manifest, error) {
	p := filepath.Join(dir, commitsDir, strconv.FormatInt(ms, 10))
	body, err := state.ReadFile(fsys, p, state.KindCommit)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, &state.CorruptError{Path: p, Reason: "manifest does not parse: " + err.Error()}
	}
	if m.Version != FormatVersion || m.BatchMS != ms {
		return nil, &state.CorruptError{Path: p, Reason: fmt.Sprintf("manifest says version %d, batch %d", m.Version, m.BatchMS)}
	}
	return &m, nil
}

// LoadCommit reads the commit of batch ms in the checkpoint dir and verifies
// it: the manifest and every state file it references (header, checksum,
// length and CRC the manifest records). It returns the manifest and the
// bodies of the state files by path.
func LoadCommit(fsys state.FS, dir string, ms int64) (*Manifest, map[string][]byte, error) {
	m, err := readManifest(fsys, dir, ms)
	if err != nil {
		return nil, nil, err
	}
	bodies := make(map[string][]byte)
	for _, op := range m.Operators {
		for _, f := range op.Files {
			if f.Path == "" {
				if f.Kind != "snapshot" || int64(len(f.Inline)) != f.Len || crc32.Checksum(f.Inline, crcTable) != f.CRC {
					return nil, nil, &state.CorruptError{Path: filepath.Join(dir, commitsDir, strconv.FormatInt(ms, 10)),
						Reason: fmt.Sprintf("the inline state of operator %q does not match its length or checksum", op.Name)}
				}
				bodies[f.key(op.Name)] = f.Inline
				continue
			}
			kind := state.KindDelta
			if f.Kind == "snapshot" {
				kind = state.KindSnapshot
			}
			p := filepath.Join(dir, filepath.FromSlash(f.Path))
			if !strings.HasPrefix(f.Path, stateDir+"/") || path.Clean(f.Path) != f.Path || strings.Contains(f.Path, "..") {
				return nil, nil, &state.CorruptError{Path: filepath.Join(dir, commitsDir, strconv.FormatInt(ms, 10)),
					Reason: fmt.Sprintf("it references %q, outside the checkpoint's state directory", f.Path)}
			}
			body, err := state.ReadFile(fsys, p, kind)
			if err != nil {
				return nil, nil, err
			}
			if int64(len(body)) != f.Len || crc32.Checksum(body, crcTable) != f.CRC {
				return nil, nil, &state.CorruptError{Path: p, Reason: "its length or checksum differs from what commit " + strconv.FormatInt(ms, 10) + " records"}
			}
			bodies[f.key(op.Name)] = body
		}
	}
	return m, bodies, nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// loadPlans reads the plans of batches after the restored commit: batches
// that were planned (and maybe ran) but never committed. They are re-run over
// exactly that input.
func (k *checkpointer) loadPlans(afterMS int64) error {
	times, err := k.listMS(offsetsDir)
	if err != nil {
		return err
	}
	for _, t := range times {
		if t <= afterMS {
			continue
		}
		p := filepath.Join(k.dir, offsetsDir, strconv.FormatInt(t, 10))
		body, err := state.ReadFile(k.fs, p, state.KindOffsets)
		if err != nil {
			return fmt.Errorf("engine: the recorded input of uncommitted batch %d cannot be read, so the batch cannot be replayed exactly: %w; restore %s from a backup or start with a fresh checkpoint dir", t, err, p)
		}
		var pf plansFile
		if err := json.Unmarshal(body, &pf); err != nil {
			return fmt.Errorf("engine: checkpoint file %s does not parse: %v; restore it or start with a fresh checkpoint dir", p, err)
		}
		renameKeys(pf.Plans, k.former)
		k.plans[t] = pf.Plans
	}
	return nil
}

// recoveredPlans returns the recorded plans of batch t, if t is a batch that
// was planned before a restart and not committed.
func (k *checkpointer) recoveredPlans(t time.Time) (map[string][]byte, bool) {
	p, ok := k.plans[t.UnixMilli()]
	if ok {
		delete(k.plans, t.UnixMilli())
		k.replayed = len(k.plans) == 0
		k.unsaved = true
	}
	return p, ok
}

// isRecovered reports whether t is a batch planned before a restart and
// not committed, which runs again at its own time: late by the downtime.
func (k *checkpointer) isRecovered(t time.Time) bool {
	_, ok := k.plans[t.UnixMilli()]
	return ok
}

// replayDone reports, once, that the last recovered batch has run.
func (k *checkpointer) replayDone() bool {
	done := k.replayed
	k.replayed = false
	return done
}

// nextPlanned returns the earliest batch time recorded before a restart that
// has not run again yet.
func (k *checkpointer) nextPlanned() (time.Time, bool) {
	if len(k.plans) == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(slices.Min(slices.Collect(maps.Keys(k.plans)))), true
}

// emptyPlan is the plan of a batch that planned no input, kept until the
// next commit in case a later batch's plan is recorded before it.
type emptyPlan struct {
	t     time.Time
	plans map[string][]byte
	info  map[string]any
}

// writePlans starts recording the planned input of batch t and returns a
// function that waits until the record is durable, or returns why it is not;
// nil when there is nothing to wait for.
// The files are written in the background, while the batch reads and
// computes; the batch's outputs wait for them (see [Preparer]). A batch that
// plans no input at all is not recorded: re-planning it after a crash reads
// from the same positions, so no record is lost or read twice, and empty
// batches cost no disk write. But once a later batch's input is recorded
// before the next commit, the empty batches since the last commit, and those
// the last commit covers (its manifest may not be durable yet), are recorded
// first, each durable before the next is written: a restart replays recorded
// batches and jumps over unrecorded times, which would skip the state those
// batches changed (with CheckpointEvery they are not committed on their
// own).
func (k *checkpointer) writePlans(t time.Time, plans map[string][]byte, info map[string]any, records int64) (wait func() error) {
	if records == 0 {
		k.empty = append(k.empty, emptyPlan{t, plans, info})
		return nil
	}
	// Encoded here, so that nothing the batch goes on to change is read
	// while the files are written.
	type file struct {
		path string
		body []byte
	}
	var files []file
	// The previous batch's manifest may still be on its way to the disk:
	// until it is there, this record would make a restart replay from the
	// commit before it and jump over the empty batches that manifest
	// covers, so they are recorded first (whether it is there yet or not,
	// so that what a restart replays does not depend on timing).
	for _, e := range slices.Concat(k.covered, k.empty, []emptyPlan{{t, plans, info}}) {
		body, err := json.Marshal(plansFile{BatchMS: e.t.UnixMilli(), Plans: e.plans, Info: marshalInfos(e.info)})
		if err != nil {
			return func() error { return err }
		}
		files = append(files, file{filepath.Join(k.dir, offsetsDir, strconv.FormatInt(e.t.UnixMilli(), 10)), body})
	}
	k.empty = k.empty[:0]
	k.covered = nil
	k.unsaved = true
	done := make(chan error, 1)
	go func() {
		for _, f := range files {
			if err := state.WriteFile(k.fs, f.path, state.KindOffsets, f.body); err != nil {
				done <- err
				return
			}
			k.c.ckptStats.bytes.Add(int64(len(f.body)))
		}
		done <- nil
	}()
	var err error
	waited := false
	return func() error {
		if !waited {
			err, waited = <-done, true
		}
		return err
	}
}

// marshalInfos encodes what sources reported about a batch, for a plans file
// or a manifest; it returns nil when there is nothing, and skips a report
// that does not encode: reports are for people and tools, not for restore.
func marshalInfos(info map[string]any) map[string]json.RawMessage {
	if len(info) == 0 {
		return nil
	}
	out := make(map[string]json.RawMessage, len(info))
	for name, v := range info {
		if b, err := json.Marshal(v); err == nil {
			out[name] = b
		}
	}
	return out
}

// commit saves every stateful operator's changes and starts writing the
// manifest of batch j; the manifest's rename is the commit point. The
// manifest is written in the background, after the previous batch's is
// durable, while the next batch plans, reads and computes: commit first
// waits for the manifest before it, and returns its failure. A restart after
// a crash before the manifest is durable replays the batch over its recorded
// input. [checkpointer.settle] waits for the manifest.
func (k *checkpointer) commit(ctx context.Context, j *Job) error {
	k.sinceCk++
	if k.sinceCk < k.cfg.every {
		return nil
	}
	ms := j.Time.UnixMilli()
	k.adoptSnapshots()
	k.writes = k.writes[:0]
	var async []func()
	m := &Manifest{Version: FormatVersion, BatchMS: ms, ZeroMS: k.c.zero.UnixMilli(), IntervalMS: k.c.batch.Milliseconds()}
	wrote := false
	for _, op := range k.ops {
		name := op.Meta().Name()
		w := &stateWriter{k: k, op: name, ms: ms}
		if err := op.SaveState(w); err != nil {
			return fmt.Errorf("save state of operator %q: %w", name, err)
		}
		wrote = wrote || w.wrote
		if w.snap != nil {
			async = append(async, w.startSnapshot)
		}
		m.Operators = append(m.Operators, OperatorFiles{Name: name, Kind: op.Meta().Kind, Params: op.Meta().Params, Files: slices.Clone(k.chains[name])})
	}
	m.Sources = marshalInfos(j.sourceInfos())
	// The state files go to the disk at once, together and beside the
	// previous manifest: no commit references them yet.
	files := k.writeFiles(k.writes)
	k.writes = nil
	// One manifest on its way at a time: the previous one is durable
	// before this one is written, and a failure of it fails this batch.
	if err := k.settle(); err != nil {
		return err
	}
	k.covered = nil
	if !wrote && !k.unsaved && len(k.retained) > 0 {
		// No operator's state changed and no input was recorded: the newest
		// commit already describes this batch's state, and a restart
		// resumes from it.
		k.c.ckptStats.lastCommitMS.Store(ms)
		k.sinceCk = 0
		k.empty = k.empty[:0]
		return nil
	}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	k.sinceCk = 0
	k.covered = slices.Clone(k.empty)
	k.empty = k.empty[:0]
	k.unsaved = false
	k.retained = append(k.retained, m)
	for _, start := range async {
		start()
	}
	p := filepath.Join(k.dir, commitsDir, strconv.FormatInt(ms, 10))
	s := k.queue(func() error {
		if err := files(); err != nil {
			return &BatchError{Time: j.Time, Op: "checkpoint", Err: err}
		}
		if err := state.WriteFile(k.fs, p, state.KindCommit, body); err != nil {
			return &BatchError{Time: j.Time, Op: "checkpoint", Err: err}
		}
		k.c.ckptStats.bytes.Add(int64(len(body)))
		k.c.ckptStats.committed(m, true)
		return nil
	})
	k.collect(ms, s)
	return nil
}

// collect deletes commits beyond the newest KeepCommits, and the state and
// offsets files no kept commit needs. It decides what to delete now and
// deletes it in the background, after the previous collection finished:
// the next batch need not wait for the disk. Only files of batches up to
// nowMS are deleted, so nothing a later batch writes meanwhile is touched.
// Nothing is deleted before the manifest written by step s is durable, nor
// when writing it failed. Failures are logged, not returned: the commit
// already happened.
func (k *checkpointer) collect(nowMS int64, s *step) {
	var old []int64
	for len(k.retained) > k.cfg.keep {
		old = append(old, k.retained[0].BatchMS)
		k.retained = k.retained[1:]
	}
	keep := make(map[string]bool) // inline references add "", which no file matches
	for _, m := range k.retained {
		for _, op := range m.Operators {
			for _, f := range op.Files {
				keep[f.Path] = true
			}
		}
	}
	for _, files := range k.chains {
		for _, f := range files {
			keep[f.Path] = true
		}
	}
	k.mu.Lock()
	for _, f := range k.snapReady {
		keep[f.Path] = true
	}
	for op, ms := range k.snapBusy {
		keep[path.Join(stateDir, op, strconv.FormatInt(ms, 10)+".snapshot")] = true
	}
	k.mu.Unlock()
	dirs := k.names()
	for from, to := range k.former {
		if slices.Contains(dirs, to) {
			// The folder of state written under the former name, until
			// no kept commit references its files.
			dirs = append(dirs, from)
		}
	}
	oldest := k.retained[0].BatchMS
	prev := k.collecting
	done := make(chan struct{})
	k.collecting = done
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		<-s.done
		if s.err != nil {
			return
		}
		k.remove(old, keep, dirs, nowMS, oldest)
	}()
}

// remove deletes the commits of batches old, the files of batches up to
// nowMS in the operators' state dirs that keep does not hold, and the
// recorded input of batches before oldest.
func (k *checkpointer) remove(old []int64, keep map[string]bool, dirs []string, nowMS, oldest int64) {
	for _, ms := range old {
		if err := k.fs.Remove(filepath.Join(k.dir, commitsDir, strconv.FormatInt(ms, 10))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			k.c.logger.Warn("checkpoint: cannot remove old commit", slog.String("error", err.Error()))
		}
	}
	for _, name := range dirs {
		dir := filepath.Join(k.dir, stateDir, name)
		entries, err := k.fs.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			rel := path.Join(stateDir, name, e.Name())
			if keep[rel] || strings.HasPrefix(e.Name(), state.TempPrefix) {
				continue
			}
			if fileMS(e.Name()) > nowMS {
				continue
			}
			_ = k.fs.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if times, err := k.listMS(offsetsDir); err == nil {
		for _, t := range times {
			if t < oldest {
				_ = k.fs.Remove(filepath.Join(k.dir, offsetsDir, strconv.FormatInt(t, 10)))
			}
		}
	}
}

// fileMS parses the batch time from a state file name "<ms>.snapshot" or
// "<ms>.delta".
func fileMS(name string) int64 {
	base, _, _ := strings.Cut(name, ".")
	v, err := strconv.ParseInt(base, 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// adoptSnapshots puts snapshots finished in the background at the head of
// their operators' chains, replacing the files before them.
func (k *checkpointer) adoptSnapshots() {
	k.mu.Lock()
	ready := k.snapReady
	k.snapReady = make(map[string]FileRef)
	k.mu.Unlock()
	for name, snap := range ready {
		chain := []FileRef{snap}
		for _, f := range k.chains[name] {
			if f.BatchMS > snap.BatchMS {
				chain = append(chain, f)
			}
		}
		k.chains[name] = chain
	}
}

func (k *checkpointer) close() error {
	k.wg.Wait()
	// Snapshots finished after the last commit are referenced by no commit.
	for _, f := range k.snapReady {
		_ = k.fs.Remove(filepath.Join(k.dir, filepath.FromSlash(f.Path)))
	}
	return k.release()
}

// stateWriter implements StateWriter for one operator at one commit.
type stateWriter struct {
	k     *checkpointer
	op    string
	ms    int64
	snap  func(w io.Writer) error
	wrote bool // a file was written
}

func (w *stateWriter) opDir() (string, error) {
	dir := filepath.Join(w.k.dir, stateDir, w.op)
	if err := w.k.fs.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

func (w *stateWriter) write(kind state.Kind, suffix string, body func(io.Writer) error) (FileRef, error) {
	dir, err := w.opDir()
	if err != nil {
		return FileRef{}, err
	}
	name := strconv.FormatInt(w.ms, 10) + "." + suffix
	n, crc, err := state.WriteFileFunc(w.k.fs, filepath.Join(dir, name), kind, body)
	if err != nil {
		return FileRef{}, err
	}
	w.k.c.ckptStats.bytes.Add(n)
	return FileRef{Path: path.Join(stateDir, w.op, name), Kind: kind.String(), BatchMS: w.ms, Len: n, CRC: crc}, nil
}

// later encodes body now, for the manifest's reference, and leaves the file
// to the commit, which writes it in the background before the manifest.
func (w *stateWriter) later(kind state.Kind, suffix string, body []byte) (FileRef, error) {
	dir, err := w.opDir()
	if err != nil {
		return FileRef{}, err
	}
	name := strconv.FormatInt(w.ms, 10) + "." + suffix
	w.k.writes = append(w.k.writes, stateFile{path: filepath.Join(dir, name), kind: kind, body: body})
	return FileRef{Path: path.Join(stateDir, w.op, name), Kind: kind.String(), BatchMS: w.ms,
		Len: int64(len(body)), CRC: crc32.Checksum(body, crcTable)}, nil
}

func (w *stateWriter) Snapshot(body []byte) error {
	if last, ok := w.k.lastSnap[w.op]; ok && bytes.Equal(last, body) && len(w.k.chains[w.op]) == 1 {
		return nil // unchanged since the last commit
	}
	w.wrote = true
	body = bytes.Clone(body) // the caller may reuse its buffer; neither use below changes it
	w.k.lastSnap[w.op] = body
	if len(body) <= inlineMax {
		w.k.chains[w.op] = []FileRef{{Kind: "snapshot", BatchMS: w.ms, Len: int64(len(body)),
			CRC: crc32.Checksum(body, crcTable), Inline: body}}
		return nil
	}
	ref, err := w.later(state.KindSnapshot, "snapshot", body)
	if err != nil {
		return err
	}
	w.k.chains[w.op] = []FileRef{ref}
	return nil
}

func (w *stateWriter) WriteDelta(write func(io.Writer) error) error {
	w.wrote = true
	delete(w.k.lastSnap, w.op)
	var body bytes.Buffer
	if err := write(&body); err != nil {
		return err
	}
	ref, err := w.later(state.KindDelta, "delta", body.Bytes())
	if err != nil {
		return err
	}
	w.k.chains[w.op] = append(w.k.chains[w.op], ref)
	return nil
}

func (w *stateWriter) SnapshotDue() bool {
	k := w.k
	k.mu.Lock()
	_, busy := k.snapBusy[w.op]
	_, ready := k.snapReady[w.op]
	k.mu.Unlock()
	if busy || ready {
		return false
	}
	var snapLen, deltaLen int64
	deltas := 0
	for _, f := range k.chains[w.op] {
		if f.Kind == "snapshot" {
			snapLen = f.Len
		} else {
			deltaLen += f.Len
			deltas++
		}
	}
	return deltas >= k.cfg.snapshotEvery || (snapLen > 0 && deltaLen > snapLen/2)
}

func (w *stateWriter) WriteSnapshot(write func(io.Writer) error) { w.snap = write }

// startSnapshot writes the snapshot in the background once the commit that
// asked for it is done.
func (w *stateWriter) startSnapshot() {
	k := w.k
	k.mu.Lock()
	k.snapBusy[w.op] = w.ms
	k.mu.Unlock()
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		ref, err := w.write(state.KindSnapshot, "snapshot", w.snap)
		k.mu.Lock()
		defer k.mu.Unlock()
		delete(k.snapBusy, w.op)
		if err != nil {
			k.c.logger.Warn("checkpoint: background snapshot failed; deltas go on and it is retried later",
				slog.String("operator", w.op), slog.String("error", err.Error()))
			return
		}
		k.snapReady[w.op] = ref
	}()
}

// stateReader implements StateReader over a verified chain of files.
type stateReader struct {
	op     string
	files  []FileRef
	bodies map[string][]byte
}

func (r *stateReader) Snapshot() ([]byte, error) {
	if len(r.files) > 0 && r.files[0].Kind == "snapshot" {
		return r.bodies[r.files[0].key(r.op)], nil
	}
	return nil, nil
}

func (r *stateReader) Deltas(apply func(io.Reader) error) error {
	for _, f := range r.files {
		if f.Kind != "delta" {
			continue
		}
		if err := apply(bytes.NewReader(r.bodies[f.key(r.op)])); err != nil {
			return fmt.Errorf("delta %s: %w", f.Path, err)
		}
	}
	return nil
}
