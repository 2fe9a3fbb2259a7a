package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteReplacesWholeFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.txt")
	require.NoError(t, Write(p, func(w io.Writer) error { _, err := io.WriteString(w, "first\n"); return err }))
	require.NoError(t, Write(p, func(w io.Writer) error { _, err := io.WriteString(w, "second\n"); return err }))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "second\n", string(b))

	boom := errors.New("boom")
	err = Write(p, func(w io.Writer) error { _, _ = io.WriteString(w, "partial"); return boom })
	require.ErrorIs(t, err, boom)
	b, err = os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "second\n", string(b), "a failed write leaves the old content")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temp file is left behind")
}
