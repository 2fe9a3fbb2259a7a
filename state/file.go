package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
)

// Durable file layout
//
//	offset 0:  magic "SLCK"
//	offset 4:  format version, uint16 big-endian (FileVersion)
//	offset 6:  kind, uint16 big-endian
//	offset 8:  body length in bytes, uint64 big-endian
//	offset 16: body
//	then:      CRC32C (Castagnoli) of everything before it, uint32 big-endian

const (
	fileMagic      = "SLCK"
	fileHeaderLen  = 16
	fileTrailerLen = 4

	// FileVersion is the format version WriteFile writes and ReadFile reads.
	FileVersion = 1

	// TempPrefix starts the name of every temporary file WriteFile creates
	// (TempPrefix + final name + "-" + random digits). [RemoveTemps] removes
	// files with this prefix.
	TempPrefix = ".sluice-tmp-"
)

// Kind says what a durable file holds. ReadFile refuses a file of another
// kind, so a file put in the wrong place is not misread.
type Kind uint16

// The kinds of file a checkpoint holds. Other packages may define more;
// [Kind.String] prints unknown kinds as "kind(N)".
const (
	KindFormat   Kind = iota + 1 // the checkpoint's format and operator names
	KindOffsets                  // the input ranges planned for a batch
	KindSnapshot                 // a full snapshot of keyed state
	KindDelta                    // the keys a batch changed
	KindCommit                   // a batch's commit manifest
)

// String returns the kind's name, e.g. "snapshot".
func (k Kind) String() string {
	switch k {
	case KindFormat:
		return "format"
	case KindOffsets:
		return "offsets"
	case KindSnapshot:
		return "snapshot"
	case KindDelta:
		return "delta"
	case KindCommit:
		return "commit"
	default:
		return fmt.Sprintf("kind(%d)", uint16(k))
	}
}

func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

func appendFileHeader(dst []byte, kind Kind, bodyLen uint64) []byte {
	dst = append(dst, fileMagic...)
	dst = binary.BigEndian.AppendUint16(dst, FileVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(kind))
	return binary.BigEndian.AppendUint64(dst, bodyLen)
}

// WriteFile durably and atomically writes body as a file of the given kind
// at path: it writes header, body and checksum to a temporary file in the
// same directory, fsyncs and closes it, renames it to path and fsyncs the
// directory. On any error before the rename it removes the temporary file
// and returns the error; path then still holds its previous contents, if
// any, and never a partial file. If only the final directory fsync fails, the
// complete file is in place but may not survive a crash, and the error says
// so. The directory must exist.
func WriteFile(fsys FS, path string, kind Kind, body []byte) error {
	tab := castagnoli()
	hdr := appendFileHeader(make([]byte, 0, fileHeaderLen), kind, uint64(len(body)))
	crc := crc32.Update(crc32.Checksum(hdr, tab), tab, body)
	return writeAtomic(fsys, path, func(f File) error {
		if _, err := f.Write(hdr); err != nil {
			return err
		}
		if _, err := f.Write(body); err != nil {
			return err
		}
		_, err := f.Write(binary.BigEndian.AppendUint32(nil, crc))
		return err
	})
}

// WriteFileFunc is [WriteFile] for bodies too large to hold in memory: body
// writes the body to w, which is buffered, and the header is completed once
// the body's length is known. Any error from body fails the write like an
// I/O error does. It returns the body's length and its CRC32C (Castagnoli),
// which it computes anyway, so that a caller recording them (as a checkpoint
// manifest does) need not checksum the body a second time.
func WriteFileFunc(fsys FS, path string, kind Kind, body func(w io.Writer) error) (n int64, crc uint32, err error) {
	tab := castagnoli()
	cw := &crcWriter{tab: tab}
	err = writeAtomic(fsys, path, func(f File) error {
		if _, err := f.Write(make([]byte, fileHeaderLen)); err != nil { // completed below
			return err
		}
		bw := bufio.NewWriterSize(f, 64<<10)
		cw.w = bw
		if err := body(cw); err != nil {
			return fmt.Errorf("body: %w", err)
		}
		hdr := appendFileHeader(make([]byte, 0, fileHeaderLen), kind, cw.n)
		crc := crc32Combine(crc32.Checksum(hdr, tab), cw.crc, cw.n)
		if _, err := bw.Write(binary.BigEndian.AppendUint32(nil, crc)); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		_, err := f.WriteAt(hdr, 0)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return int64(cw.n), cw.crc, nil
}

// crcWriter passes writes through and keeps the CRC and length of what went
// through.
type crcWriter struct {
	w   io.Writer
	tab *crc32.Table
	crc uint32
	n   uint64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, c.tab, p[:n])
	c.n += uint64(n)
	return n, err
}

// WriteAtomic creates path with what write produces, as plain bytes with no
// header or checksum, atomically: it writes a temporary file in the same
// directory through a buffer, fsyncs and closes it, renames it over path and
// fsyncs the directory. Readers see the old content or the whole new
// content, never a part, even across a crash; on any error path is left as
// it was. Output files such as SaveAsTextFiles' use it; checkpoint files use
// [WriteFile], which adds a verifiable header and checksum. The directory
// must exist.
func WriteAtomic(fsys FS, path string, write func(w io.Writer) error) error {
	return writeAtomic(fsys, path, func(f File) error {
		bw := bufio.NewWriterSize(f, 64<<10)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// writeAtomic runs fill on a new temporary file next to path and, if it
// succeeds, makes the file durable and renames it to path.
func writeAtomic(fsys FS, path string, fill func(f File) error) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	f, err := fsys.CreateTemp(dir, TempPrefix+base+"-*")
	if err != nil {
		return fmt.Errorf("state: write %s: create a temporary file in %s: %w", path, dir, err)
	}
	tmp := f.Name()
	fail := func(step string, err error) error {
		if f != nil {
			_ = f.Close() // the write already failed; its error is the one to report
		}
		if rmErr := fsys.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			return fmt.Errorf("state: write %s: %s: %w; removing the temporary file also failed "+
				"(RemoveTemps clears it later): %w", path, step, err, rmErr)
		}
		return fmt.Errorf("state: write %s: %s: %w", path, step, err)
	}
	if err := fill(f); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	closeErr := f.Close()
	f = nil
	if closeErr != nil {
		return fail("close", closeErr)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return fail("rename into place", err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("state: write %s: fsync directory %s: %w; the file is complete but may not survive a crash", path, dir, err)
	}
	return nil
}

// ReadFile reads the file at path that [WriteFile] wrote and returns its
// body after checking magic, format version, kind, length and checksum. Any
// mismatch returns a *[CorruptError] naming the file, which matches
// [ErrCorrupt]; a file that cannot be read returns the filesystem's error
// (errors.Is(err, fs.ErrNotExist) for a missing file).
func ReadFile(fsys FS, path string, want Kind) ([]byte, error) {
	data, err := fsys.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("state: read checkpoint file: %w", err)
	}
	return parseFile(path, data, want)
}

// parseFile verifies data, the contents of the file at path, and returns
// its body, which aliases data.
func parseFile(path string, data []byte, want Kind) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return &CorruptError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	if len(data) < fileHeaderLen+fileTrailerLen {
		return nil, bad("it is %d bytes long, shorter than the %d bytes of header and checksum", len(data), fileHeaderLen+fileTrailerLen)
	}
	if string(data[:4]) != fileMagic {
		return nil, bad("bad magic %q, want %q", data[:4], fileMagic)
	}
	if v := binary.BigEndian.Uint16(data[4:6]); v != FileVersion {
		return nil, bad("unsupported format version %d (this build reads version %d)", v, FileVersion)
	}
	bodyLen := uint64(len(data) - fileHeaderLen - fileTrailerLen)
	if n := binary.BigEndian.Uint64(data[8:16]); n != bodyLen {
		return nil, bad("its header gives a body of %d bytes but the file holds %d (truncated or overwritten)", n, bodyLen)
	}
	end := len(data) - fileTrailerLen
	stored := binary.BigEndian.Uint32(data[end:])
	if sum := crc32.Checksum(data[:end], castagnoli()); sum != stored {
		return nil, bad("checksum mismatch (stored %08x, computed %08x)", stored, sum)
	}
	if k := Kind(binary.BigEndian.Uint16(data[6:8])); k != want {
		return nil, bad("it holds %s data where %s data was expected", k, want)
	}
	return data[fileHeaderLen:end], nil
}

// RemoveTemps removes the temporary files (named with [TempPrefix]) that
// writes interrupted by a crash left in dir. A missing dir has nothing to
// remove. Call it only when no write into dir is in progress, e.g. after
// [LockDir].
func RemoveTemps(fsys FS, dir string) error {
	entries, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: list %s for leftover temporary files: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), TempPrefix) {
			continue
		}
		if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("state: remove leftover temporary files in %s: %w", dir, errors.Join(errs...))
	}
	return nil
}

// crc32Combine returns the CRC of a||b given crc1 = CRC(a), crc2 = CRC(b)
// and len2 = len(b), for the Castagnoli polynomial: it advances crc1 over
// len2 zero bytes with GF(2) matrix powers of the one-zero-bit operator.
func crc32Combine(crc1, crc2 uint32, len2 uint64) uint32 {
	if len2 == 0 {
		return crc1
	}
	var even, odd [32]uint32
	odd[0] = crc32.Castagnoli // operator for one zero bit
	for n, row := 1, uint32(1); n < 32; n, row = n+1, row<<1 {
		odd[n] = row
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four zero bits
	for {
		gf2Square(&even, &odd) // first pass: one zero byte
		if len2&1 != 0 {
			crc1 = gf2Times(&even, crc1)
		}
		if len2 >>= 1; len2 == 0 {
			break
		}
		gf2Square(&odd, &even)
		if len2&1 != 0 {
			crc1 = gf2Times(&odd, crc1)
		}
		if len2 >>= 1; len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := range 32 {
		square[n] = gf2Times(mat, mat[n])
	}
}
