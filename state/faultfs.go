package state

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
)

// Op names a filesystem operation that [FaultFS] can fail.
type Op uint8

// The operations FaultFS can fail.
const (
	OpCreate  Op = iota + 1 // FS.CreateTemp
	OpWrite                 // File.Write and File.WriteAt
	OpSync                  // File.Sync
	OpClose                 // File.Close (the file is closed all the same)
	OpRename                // FS.Rename
	OpRemove                // FS.Remove
	OpSyncDir               // FS.SyncDir
	OpMkdir                 // FS.MkdirAll
	OpRead                  // FS.Open, FS.ReadFile, FS.ReadDir, FS.Stat
)

// String returns the operation's name, e.g. "write".
func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpWrite:
		return "write"
	case OpSync:
		return "sync"
	case OpClose:
		return "close"
	case OpRename:
		return "rename"
	case OpRemove:
		return "remove"
	case OpSyncDir:
		return "syncdir"
	case OpMkdir:
		return "mkdir"
	case OpRead:
		return "read"
	default:
		return fmt.Sprintf("op(%d)", uint8(o))
	}
}

// Fault describes an error for [FaultFS] to inject.
type Fault struct {
	// Op is the operation to fail.
	Op Op
	// Match selects the paths to fail; nil matches every path. It is called
	// with the file's path for file operations, dir/pattern for CreateTemp,
	// and with both paths for Rename (the fault fires if either matches).
	Match func(path string) bool
	// Err is the error to return, wrapped in an *fs.PathError; nil means
	// syscall.EIO.
	Err error
	// After is how many matching operations succeed before the fault fires;
	// from then on every matching operation fails until Disarm.
	After int
}

// FaultFS wraps an [FS] and fails chosen operations with a chosen error, to
// test how code copes with a full disk (syscall.ENOSPC) or an I/O error
// (syscall.EIO). At most one [Fault] is armed at a time; it can be armed and
// disarmed while other goroutines use the filesystem. Disarmed, FaultFS
// passes every call through. It is safe for concurrent use.
type FaultFS struct {
	inner FS

	mu       sync.Mutex
	armed    bool
	fault    Fault
	seen     int // matching operations since Arm
	injected int // errors returned since NewFaultFS
}

var _ FS = (*FaultFS)(nil)

// NewFaultFS returns a disarmed FaultFS over inner.
func NewFaultFS(inner FS) *FaultFS { return &FaultFS{inner: inner} }

// Arm makes f fail the operations ft describes, replacing any armed fault.
func (f *FaultFS) Arm(ft Fault) {
	if ft.Err == nil {
		ft.Err = syscall.EIO
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed, f.fault, f.seen = true, ft, 0
}

// Disarm stops injecting errors.
func (f *FaultFS) Disarm() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = false
}

// Injected returns how many errors f has injected so far.
func (f *FaultFS) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

// check returns the injected error for op on path (and path2, for Rename),
// or nil to let the operation through.
func (f *FaultFS) check(op Op, path, path2 string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.armed || f.fault.Op != op {
		return nil
	}
	if m := f.fault.Match; m != nil && !m(path) && (path2 == "" || !m(path2)) {
		return nil
	}
	f.seen++
	if f.seen <= f.fault.After {
		return nil
	}
	f.injected++
	return &fs.PathError{Op: op.String(), Path: path, Err: f.fault.Err}
}

// MkdirAll implements [FS].
func (f *FaultFS) MkdirAll(dir string, perm fs.FileMode) error {
	if err := f.check(OpMkdir, dir, ""); err != nil {
		return err
	}
	return f.inner.MkdirAll(dir, perm)
}

// CreateTemp implements [FS]; the returned File injects write, sync and
// close faults.
func (f *FaultFS) CreateTemp(dir, pattern string) (File, error) {
	if err := f.check(OpCreate, filepath.Join(dir, pattern), ""); err != nil {
		return nil, err
	}
	file, err := f.inner.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// Open implements [FS].
func (f *FaultFS) Open(path string) (fs.File, error) {
	if err := f.check(OpRead, path, ""); err != nil {
		return nil, err
	}
	return f.inner.Open(path)
}

// ReadFile implements [FS].
func (f *FaultFS) ReadFile(path string) ([]byte, error) {
	if err := f.check(OpRead, path, ""); err != nil {
		return nil, err
	}
	return f.inner.ReadFile(path)
}

// Rename implements [FS].
func (f *FaultFS) Rename(oldpath, newpath string) error {
	if err := f.check(OpRename, oldpath, newpath); err != nil {
		return err
	}
	return f.inner.Rename(oldpath, newpath)
}

// Remove implements [FS].
func (f *FaultFS) Remove(path string) error {
	if err := f.check(OpRemove, path, ""); err != nil {
		return err
	}
	return f.inner.Remove(path)
}

// ReadDir implements [FS].
func (f *FaultFS) ReadDir(dir string) ([]fs.DirEntry, error) {
	if err := f.check(OpRead, dir, ""); err != nil {
		return nil, err
	}
	return f.inner.ReadDir(dir)
}

// Stat implements [FS].
func (f *FaultFS) Stat(path string) (fs.FileInfo, error) {
	if err := f.check(OpRead, path, ""); err != nil {
		return nil, err
	}
	return f.inner.Stat(path)
}

// SyncDir implements [FS].
func (f *FaultFS) SyncDir(dir string) error {
	if err := f.check(OpSyncDir, dir, ""); err != nil {
		return err
	}
	return f.inner.SyncDir(dir)
}

type faultFile struct {
	File
	fs *FaultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.check(OpWrite, f.Name(), ""); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpWrite, f.Name(), ""); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check(OpSync, f.Name(), ""); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Close() error {
	err := f.File.Close()
	if ferr := f.fs.check(OpClose, f.Name(), ""); ferr != nil {
		return ferr
	}
	return err
}
