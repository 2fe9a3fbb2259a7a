package state

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// writers are the two ways to write a durable file; tests run against both.
var writers = []struct {
	name  string
	write func(fsys FS, path string, kind Kind, body []byte) error
}{
	{"WriteFile", WriteFile},
	{"WriteFileFunc", func(fsys FS, path string, kind Kind, body []byte) error {
		_, _, err := WriteFileFunc(fsys, path, kind, func(w io.Writer) error {
			// Several writes of uneven size exercise the buffering.
			for len(body) > 0 {
				n := min(len(body), 1+len(body)/3)
				if _, err := w.Write(body[:n]); err != nil {
					return err
				}
				body = body[n:]
			}
			return nil
		})
		return err
	}},
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileRoundTrip(t *testing.T) {
	big := make([]byte, 1<<20+3)
	for i := range big {
		big[i] = byte(i * 7)
	}
	bodies := []struct {
		name string
		kind Kind
		body []byte
	}{
		{"empty", KindFormat, nil},
		{"small", KindCommit, []byte("batch 42")},
		{"one MiB", KindSnapshot, big},
	}
	for _, w := range writers {
		for _, b := range bodies {
			t.Run(w.name+"/"+b.name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "file")
				require.NoError(t, w.write(OSFS{}, path, b.kind, b.body))
				got, err := ReadFile(OSFS{}, path, b.kind)
				require.NoError(t, err)
				require.Equal(t, len(b.body), len(got))
				require.True(t, bytes.Equal(b.body, got))
				require.Equal(t, []string{"file"}, dirNames(t, dir), "no temporary file is left")

				raw, err := os.ReadFile(path)
				require.NoError(t, err)
				require.Equal(t, fileHeaderLen+len(b.body)+fileTrailerLen, len(raw))
				require.Equal(t, "SLCK", string(raw[:4]))
			})
		}
	}
}

func TestWriteFileFuncMatchesWriteFile(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte("state"), 50_000)
	require.NoError(t, WriteFile(OSFS{}, filepath.Join(dir, "a"), KindDelta, body))
	require.NoError(t, writers[1].write(OSFS{}, filepath.Join(dir, "b"), KindDelta, body))
	a, err := os.ReadFile(filepath.Join(dir, "a"))
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, "b"))
	require.NoError(t, err)
	require.Equal(t, a, b, "both writers produce identical files")

	n, crc, err := WriteFileFunc(OSFS{}, filepath.Join(dir, "c"), KindDelta, func(w io.Writer) error {
		_, err := w.Write(body)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, int64(len(body)), n, "WriteFileFunc returns the body's length")
	require.Equal(t, crc32.Checksum(body, castagnoli()), crc, "WriteFileFunc returns the body's CRC32C")
}

func TestWriteFileReplacesOldVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "FORMAT")
	require.NoError(t, WriteFile(OSFS{}, path, KindFormat, []byte("v1")))
	require.NoError(t, WriteFile(OSFS{}, path, KindFormat, []byte("version two")))
	got, err := ReadFile(OSFS{}, path, KindFormat)
	require.NoError(t, err)
	require.Equal(t, "version two", string(got))
}

func TestCRC32Combine(t *testing.T) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 3, 7, 16, 100, 1000, 65_537} {
		for _, split := range []int{0, n / 3, n} {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			a, b := data[:split], data[split:]
			got := crc32Combine(crc32.Checksum(a, tab), crc32.Checksum(b, tab), uint64(len(b)))
			require.Equal(t, crc32.Checksum(data, tab), got, "n=%d split=%d", n, split)
		}
	}
}

// writtenFile writes a small valid file and returns its path and bytes.
func writtenFile(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "commit-7")
	require.NoError(t, WriteFile(OSFS{}, path, KindCommit, []byte("time=7 offsets=[0,42) state=delta-7")))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	return path, raw
}

// requireCorrupt checks that ReadFile of data at path fails as corrupt.
func requireCorrupt(t *testing.T, path string, data []byte, msgAndArgs ...any) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
	body, err := ReadFile(OSFS{}, path, KindCommit)
	require.Nil(t, body, msgAndArgs...)
	require.ErrorIs(t, err, ErrCorrupt, msgAndArgs...)
	var ce *CorruptError
	require.ErrorAs(t, err, &ce, msgAndArgs...)
	require.Equal(t, path, ce.Path, msgAndArgs...)
}

func TestReadFileDetectsTruncationAtEveryByte(t *testing.T) {
	path, raw := writtenFile(t)
	for n := range len(raw) {
		requireCorrupt(t, path, raw[:n], "truncated to %d of %d bytes", n, len(raw))
	}
	requireCorrupt(t, path, append(bytes.Clone(raw), 0), "one byte appended")
}

func TestReadFileDetectsBitFlipAtEveryByte(t *testing.T) {
	path, raw := writtenFile(t)
	for i := range raw {
		for bit := range 8 {
			flipped := bytes.Clone(raw)
			flipped[i] ^= 1 << bit
			requireCorrupt(t, path, flipped, "bit %d of byte %d flipped", bit, i)
		}
	}
}

func TestReadFileErrors(t *testing.T) {
	// withHeader rewrites a header field of a valid file and fixes its CRC,
	// so only the field itself is wrong.
	withHeader := func(raw []byte, off int, field []byte) []byte {
		out := bytes.Clone(raw)
		copy(out[off:], field)
		end := len(out) - fileTrailerLen
		sum := crc32.Checksum(out[:end], castagnoli())
		out[end], out[end+1], out[end+2], out[end+3] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
		return out
	}
	_, raw := writtenFile(t)
	tests := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"empty file", nil, "it is 0 bytes long, shorter than the 20 bytes of header and checksum"},
		{"not ours", []byte("hello, this is some other file"), `bad magic "hell", want "SLCK"`},
		{"newer version", withHeader(raw, 4, []byte{0, 2}), "unsupported format version 2 (this build reads version 1)"},
		{"wrong kind", withHeader(raw, 6, []byte{0, byte(KindDelta)}), "it holds delta data where commit data was expected"},
		{"length too long", withHeader(raw, 8, []byte{0, 0, 0, 0, 0, 0, 1, 0}), fmt.Sprintf("its header gives a body of 256 bytes but the file holds %d", len(raw)-20)},
		{"checksum", append(bytes.Clone(raw[:len(raw)-1]), raw[len(raw)-1]^0xff), "checksum mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "commit-7")
			requireCorrupt(t, path, tt.data)
			_, err := ReadFile(OSFS{}, path, KindCommit)
			require.ErrorContains(t, err, tt.reason)
		})
	}

	t.Run("missing file is not corrupt", func(t *testing.T) {
		_, err := ReadFile(OSFS{}, filepath.Join(t.TempDir(), "nope"), KindCommit)
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.NotErrorIs(t, err, ErrCorrupt)
	})
}

func TestCorruptErrorMessage(t *testing.T) {
	err := error(&CorruptError{Path: "/ckpt/commits/12", Reason: "checksum mismatch"})
	require.Equal(t, "state: checkpoint file /ckpt/commits/12 is corrupt: checksum mismatch; "+
		"restore it from a backup or roll back to an older commit", err.Error())
	require.ErrorIs(t, fmt.Errorf("engine: recover: %w", err), ErrCorrupt)
}

func TestWriteFileFaultsLeaveNothingBehind(t *testing.T) {
	ops := []struct {
		op    Op
		after int // successful matching ops before the fault
	}{
		{OpCreate, 0},
		{OpWrite, 0},
		{OpWrite, 1}, // after the header went out
		{OpSync, 0},
		{OpClose, 0},
		{OpRename, 0},
	}
	errs := []error{syscall.ENOSPC, syscall.EIO}
	for _, w := range writers {
		for _, o := range ops {
			for _, injected := range errs {
				for _, existed := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s-after-%d/%v/existed=%v", w.name, o.op, o.after, injected, existed)
					t.Run(name, func(t *testing.T) {
						dir := t.TempDir()
						path := filepath.Join(dir, "offsets-3")
						if existed {
							require.NoError(t, WriteFile(OSFS{}, path, KindOffsets, []byte("old")))
						}
						fsys := NewFaultFS(OSFS{})
						fsys.Arm(Fault{Op: o.op, Err: injected, After: o.after,
							Match: func(p string) bool { return strings.Contains(p, "offsets-3") }})

						err := w.write(fsys, path, KindOffsets, bytes.Repeat([]byte("new"), 100_000))
						require.ErrorIs(t, err, injected)
						require.ErrorContains(t, err, "state: write "+path)
						require.Equal(t, 1, fsys.Injected())

						if existed {
							got, err := ReadFile(OSFS{}, path, KindOffsets)
							require.NoError(t, err)
							require.Equal(t, "old", string(got), "the previous version survives")
							require.Equal(t, []string{"offsets-3"}, dirNames(t, dir))
						} else {
							require.Empty(t, dirNames(t, dir), "neither the file nor a temporary file exists")
						}
					})
				}
			}
		}
	}
}

func TestWriteFileSyncDirFault(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "commit-1")
	fsys := NewFaultFS(OSFS{})
	fsys.Arm(Fault{Op: OpSyncDir, Err: syscall.EIO})
	err := WriteFile(fsys, path, KindCommit, []byte("body"))
	require.ErrorIs(t, err, syscall.EIO)
	require.ErrorContains(t, err, "the file is complete but may not survive a crash")
	got, err := ReadFile(OSFS{}, path, KindCommit)
	require.NoError(t, err, "what is under the final name is complete")
	require.Equal(t, "body", string(got))
	require.Equal(t, []string{"commit-1"}, dirNames(t, dir))
}

func TestWriteFileReportsFailedTempRemoval(t *testing.T) {
	dir := t.TempDir()
	fsys := NewFaultFS(OSFS{})
	fsys.Arm(Fault{Op: OpSync, Err: syscall.EIO})
	// A FaultFS holds one fault at a time, so fail the removal through a
	// second layer.
	outer := NewFaultFS(fsys)
	outer.Arm(Fault{Op: OpRemove, Err: syscall.EACCES})
	err := WriteFile(outer, filepath.Join(dir, "f"), KindCommit, []byte("x"))
	require.ErrorIs(t, err, syscall.EIO)
	require.ErrorIs(t, err, syscall.EACCES)
	require.ErrorContains(t, err, "RemoveTemps clears it later")

	names := dirNames(t, dir)
	require.Len(t, names, 1)
	require.True(t, strings.HasPrefix(names[0], TempPrefix+"f-"), names[0])
	require.NoError(t, RemoveTemps(OSFS{}, dir))
	require.Empty(t, dirNames(t, dir))
}

func TestWriteFileFuncBodyError(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("encoder failed")
	_, _, err := WriteFileFunc(OSFS{}, filepath.Join(dir, "s"), KindSnapshot, func(w io.Writer) error {
		_, _ = w.Write([]byte("partial"))
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Empty(t, dirNames(t, dir))
}

func TestFaultFSMatchAndDisarm(t *testing.T) {
	dir := t.TempDir()
	fsys := NewFaultFS(OSFS{})
	fsys.Arm(Fault{Op: OpRename, Err: syscall.ENOSPC, Match: func(p string) bool { return strings.HasSuffix(p, "/b") }})
	require.NoError(t, WriteFile(fsys, filepath.Join(dir, "a"), KindCommit, nil), "a does not match")
	require.ErrorIs(t, WriteFile(fsys, filepath.Join(dir, "b"), KindCommit, nil), syscall.ENOSPC)
	require.ErrorIs(t, WriteFile(fsys, filepath.Join(dir, "b"), KindCommit, nil), syscall.ENOSPC, "the fault persists")
	fsys.Disarm()
	require.NoError(t, WriteFile(fsys, filepath.Join(dir, "b"), KindCommit, nil))
	require.Equal(t, 2, fsys.Injected())
	require.Equal(t, []string{"a", "b"}, dirNames(t, dir))

	fsys.Arm(Fault{Op: OpRead}) // default error: EIO
	_, err := ReadFile(fsys, filepath.Join(dir, "a"), KindCommit)
	require.ErrorIs(t, err, syscall.EIO)
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "read", pe.Op)
}

// TestFaultFSConcurrentArming writes files from several goroutines while the
// fault is armed and disarmed: every write either succeeds completely or
// fails with the injected error and leaves nothing.
func TestFaultFSConcurrentArming(t *testing.T) {
	dir := t.TempDir()
	fsys := NewFaultFS(OSFS{})
	const writers, files = 4, 25
	var wg sync.WaitGroup
	results := make(chan error, writers*files)
	start := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range files {
				path := filepath.Join(dir, fmt.Sprintf("f-%d-%d", w, i))
				results <- WriteFile(fsys, path, KindDelta, []byte(path))
			}
		}()
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	ops := []Op{OpWrite, OpSync, OpRename, OpCreate}
	for i := 0; ; i++ {
		select {
		case <-done:
		default:
			if i%2 == 0 {
				fsys.Arm(Fault{Op: ops[i/2%len(ops)], Err: syscall.ENOSPC})
			} else {
				fsys.Disarm()
			}
			continue
		}
		break
	}
	close(results)
	failed := 0
	for err := range results {
		if err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			failed++
		}
	}
	require.Equal(t, fsys.Injected(), failed, "each failed write hit exactly one fault")
	names := dirNames(t, dir)
	require.Len(t, names, writers*files-failed)
	for _, n := range names {
		require.False(t, strings.HasPrefix(n, TempPrefix), "temporary file %s left behind", n)
		got, err := ReadFile(OSFS{}, filepath.Join(dir, n), KindDelta)
		require.NoError(t, err)
		require.Equal(t, filepath.Join(dir, n), string(got))
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{TempPrefix + "commit-3-123", TempPrefix + "x-9", "commit-2", "LOCK", "notes.tmp"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, TempPrefix+"dir"), 0o755))
	require.NoError(t, RemoveTemps(OSFS{}, dir))
	require.Equal(t, []string{TempPrefix + "dir", "LOCK", "commit-2", "notes.tmp"}, dirNames(t, dir))
	require.NoError(t, RemoveTemps(OSFS{}, filepath.Join(dir, "missing")))

	fsys := NewFaultFS(OSFS{})
	require.NoError(t, os.WriteFile(filepath.Join(dir, TempPrefix+"y"), nil, 0o600))
	fsys.Arm(Fault{Op: OpRemove, Err: syscall.EPERM})
	require.ErrorIs(t, RemoveTemps(fsys, dir), syscall.EPERM)
}

func TestKindString(t *testing.T) {
	tests := map[Kind]string{
		KindFormat: "format", KindOffsets: "offsets", KindSnapshot: "snapshot",
		KindDelta: "delta", KindCommit: "commit", Kind(99): "kind(99)",
	}
	for k, want := range tests {
		require.Equal(t, want, k.String())
	}
	require.Equal(t, "syncdir", OpSyncDir.String())
	require.Equal(t, "op(42)", Op(42).String())
}
