//go:build unix

package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// LockFileName is the file in a directory that [LockDir] locks.
const LockFileName = "LOCK"

// LockDir takes an exclusive lock on dir, creating dir if needed, so that only
// one job uses it at a time. The lock is an flock(2) on dir/LOCK, which also
// records the holder's process id; the operating system drops it when the
// process exits, however it exits. LockDir does not wait: if another holder,
// in another process or in this one, has the lock, it returns an error that
// matches [ErrLocked] and names the holder's pid. release unlocks; it is safe
// to call more than once.
func LockDir(dir string) (release func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state: lock %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state: lock %s: %w", dir, err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is in use by another job (pid %s holds %s); "+
				"stop that job or give this one another directory", ErrLocked, dir, lockHolder(path), path)
		}
		return nil, fmt.Errorf("state: lock %s: %w", dir, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		_ = f.Close() // closing drops the lock
		return nil, fmt.Errorf("state: lock %s: record pid in %s: %w", dir, path, err)
	}
	var once sync.Once
	var releaseErr error
	return func() error {
		once.Do(func() {
			err := flock(f, syscall.LOCK_UN)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				releaseErr = fmt.Errorf("state: unlock %s: %w", dir, err)
			}
		})
		return releaseErr
	}, nil
}

func flock(f *os.File, how int) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := conn.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// lockHolder returns the pid recorded in a lock file, or "unknown".
func lockHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	if pid := strings.TrimSpace(string(b)); pid != "" {
		return pid
	}
	return "unknown"
}
