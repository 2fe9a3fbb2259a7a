//go:build unix

package state

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLockDirTwiceInOneProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt") // created by LockDir
	release, err := LockDir(dir)
	require.NoError(t, err)

	_, err = LockDir(dir)
	require.ErrorIs(t, err, ErrLocked)
	require.ErrorContains(t, err, dir+" is in use by another job (pid "+strconv.Itoa(os.Getpid())+" holds")
	require.ErrorContains(t, err, "stop that job or give this one another directory")

	require.NoError(t, release())
	require.NoError(t, release(), "release is idempotent")

	again, err := LockDir(dir)
	require.NoError(t, err, "the lock is free after release")
	require.NoError(t, again())
}

// TestLockDirHelperProcess is not a test: run as a child process by
// TestLockDirAcrossProcesses, it takes the lock, says so, and holds it until
// its stdin closes.
func TestLockDirHelperProcess(t *testing.T) {
	dir := os.Getenv("SLUICE_LOCK_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestLockDirAcrossProcesses")
	}
	release, err := LockDir(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = release()
	os.Exit(0)
}

func TestLockDirAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockDirHelperProcess$")
	cmd.Env = append(os.Environ(), "SLUICE_LOCK_HELPER_DIR="+dir)
	_, err := cmd.StdinPipe() // held open: the helper keeps the lock until it dies
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	_, err = LockDir(dir)
	require.ErrorIs(t, err, ErrLocked)
	require.ErrorContains(t, err, fmt.Sprintf("(pid %d holds", cmd.Process.Pid))

	// The lock goes with the process, however it ends.
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	release, err := LockDir(dir)
	require.NoError(t, err, "a dead holder's lock is released by the OS")
	require.NoError(t, release())
}
