package state

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteAtomicReplacesWholeFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.txt")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	require.NoError(t, WriteAtomic(OSFS{}, p, write("first\n")))
	require.NoError(t, WriteAtomic(OSFS{}, p, write("second\n")))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "second\n", string(b))

	boom := errors.New("boom")
	err = WriteAtomic(OSFS{}, p, func(w io.Writer) error { _, _ = io.WriteString(w, "partial"); return boom })
	require.ErrorIs(t, err, boom)
	b, err = os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "second\n", string(b), "a failed write leaves the old content")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temp file is left behind")
}
