//go:build !unix

package state

import "fmt"

// LockFileName is the file in a directory that [LockDir] locks.
const LockFileName = "LOCK"

// LockDir is not available on this platform: it needs flock(2).
func LockDir(dir string) (release func() error, err error) {
	return nil, fmt.Errorf("state: lock %s: directory locks need flock(2), which this platform lacks", dir)
}
