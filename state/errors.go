package state

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt is matched (errors.Is) by every error that reports malformed
	// bytes read back from disk: a damaged checkpoint file, a snapshot or delta
	// that does not parse, or a stored value its codec cannot decode.
	ErrCorrupt = errors.New("state: corrupt data")

	// ErrDecode is matched by errors from the ready-made codecs when the bytes
	// they are given are not an encoding they produced.
	ErrDecode = errors.New("state: cannot decode value")

	// ErrLocked is matched by the error [LockDir] returns when another holder,
	// in this process or another, already has the directory's lock.
	ErrLocked = errors.New("state: directory is locked")
)

// CorruptError reports a checkpoint file that failed verification: its header,
// length or checksum does not match its contents. It matches [ErrCorrupt]
// through errors.Is.
type CorruptError struct {
	Path   string // the file that failed verification
	Reason string // what did not match, e.g. "checksum mismatch"
}

// Error names the file, what is wrong with it and how to recover.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("state: checkpoint file %s is corrupt: %s; "+
		"restore it from a backup or roll back to an older commit", e.Path, e.Reason)
}

// Is reports whether target is [ErrCorrupt].
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
