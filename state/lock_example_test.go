//go:build unix

package state_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/sluicehq/sluice/state"
)

func ExampleLockDir() {
	dir, err := os.MkdirTemp("", "checkpoint")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	release, err := state.LockDir(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = state.LockDir(dir) // a second job on the same directory
	fmt.Println(errors.Is(err, state.ErrLocked))
	fmt.Println(release())
	// Output:
	// true
	// <nil>
}
