package state

import (
	"io"
	"io/fs"
	"os"
)

// FS is the small filesystem that durable files are written through. [OSFS]
// is the real one; [FaultFS] wraps any FS to inject errors in tests.
// Implementations must be safe for concurrent use.
type FS interface {
	// MkdirAll creates dir and any missing parents, like os.MkdirAll.
	MkdirAll(dir string, perm fs.FileMode) error
	// CreateTemp creates a new file in dir whose name is pattern with its
	// last "*" replaced by a random string, like os.CreateTemp.
	CreateTemp(dir, pattern string) (File, error)
	// Open opens a file for reading.
	Open(path string) (fs.File, error)
	// ReadFile returns a file's contents.
	ReadFile(path string) ([]byte, error)
	// Rename atomically replaces newpath with oldpath.
	Rename(oldpath, newpath string) error
	// Remove removes a file or an empty directory.
	Remove(path string) error
	// ReadDir lists a directory sorted by name.
	ReadDir(dir string) ([]fs.DirEntry, error)
	// Stat describes a file.
	Stat(path string) (fs.FileInfo, error)
	// SyncDir makes the directory's entries (creates, renames, removes)
	// durable.
	SyncDir(dir string) error
}

// File is a file open for writing, as [FS.CreateTemp] returns it.
type File interface {
	io.Writer
	io.WriterAt
	// Name returns the path the file was created at.
	Name() string
	// Sync makes the file's contents durable (fsync).
	Sync() error
	Close() error
}

// OSFS is the operating system's filesystem, with real fsync: Sync and
// SyncDir call fsync(2). The zero value is ready to use.
type OSFS struct{}

var _ FS = OSFS{}

// MkdirAll implements [FS] with os.MkdirAll.
func (OSFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }

// CreateTemp implements [FS] with os.CreateTemp; the file has mode 0600.
func (OSFS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }

// Open implements [FS] with os.Open.
func (OSFS) Open(path string) (fs.File, error) { return os.Open(path) }

// ReadFile implements [FS] with os.ReadFile.
func (OSFS) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// Rename implements [FS] with os.Rename.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove implements [FS] with os.Remove.
func (OSFS) Remove(path string) error { return os.Remove(path) }

// ReadDir implements [FS] with os.ReadDir.
func (OSFS) ReadDir(dir string) ([]fs.DirEntry, error) { return os.ReadDir(dir) }

// Stat implements [FS] with os.Stat.
func (OSFS) Stat(path string) (fs.FileInfo, error) { return os.Stat(path) }

// SyncDir implements [FS]: it opens dir and fsyncs it.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
