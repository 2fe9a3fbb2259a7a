package kafkasource

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/state"
)

// WithStateDir keeps, in group mode ([AsMember]), a local copy of the
// committed changelog records of every task the member owns under dir:
// after each batch commits, its changelog records are appended to the
// task's file (fsynced) with the changelog offset they reach. A task
// restored with a local copy reads the copy, then only the changelog's
// tail from where the copy ends, so that a restarted member is back
// quickly. The copy only caches: a missing, corrupt or foreign file is
// ignored (with a warning) and the task restored from its changelog alone.
// One process at a time uses dir; its files are not a checkpoint.
func WithStateDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return optErr("WithStateDir got an empty directory; name one")
		}
		c.stateDir = dir
		return nil
	}
}

// localMagic begins every file of a local copy; the version follows.
const (
	localMagic   = "sluice changelog copy\n"
	localVersion = 1
)

// localCompactMin is the size below which a local copy is never
// rewritten; above it, a copy grown to twice its size at the last rewrite
// is rewritten with the latest value of each key. A variable for tests.
var localCompactMin int64 = 1 << 20

var localCRC = crc32.MakeTable(crc32.Castagnoli)

// stateDir is the directory of local copies, one file per changelog
// partition: <dir>/<topic>/<partition>.
type stateDir struct {
	dir     string
	logger  *slog.Logger
	release func() error

	mu    sync.Mutex
	files map[TopicPartition]*localFile // copies that hold the committed state, by changelog partition
}

// localFile is the file of one copy known to hold the changelog's
// committed records up to covered.
type localFile struct {
	size      int64 // bytes now
	rewritten int64 // bytes after the last rewrite
}

// localRecord is a record of a local copy; a nil value deletes the key.
type localRecord struct{ key, value []byte }

// localCopy is what a valid file holds: the records in order, and the
// changelog offset the copy reaches (the next offset to read).
type localCopy struct {
	covered int64
	records []localRecord
}

func openStateDir(dir string, logger *slog.Logger) (*stateDir, error) {
	release, err := state.LockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("kafkasource: the state directory %s: %w", dir, err)
	}
	return &stateDir{dir: dir, logger: logger, release: release, files: make(map[TopicPartition]*localFile)}, nil
}

func (d *stateDir) close() {
	if d != nil {
		_ = d.release()
	}
}

func (d *stateDir) path(tp TopicPartition) string {
	return filepath.Join(d.dir, tp.Topic, strconv.Itoa(int(tp.Partition)))
}

// open reads the copy of tp, the changelog partition whose log starts at
// start and ends at end (last stable offset). It returns nil, with a
// warning unless there is no file, when the copy is unusable; until the
// task's restore rewrites it, nothing is appended to it.
func (d *stateDir) open(tp TopicPartition, start, end int64) *localCopy {
	d.mu.Lock()
	delete(d.files, tp)
	d.mu.Unlock()
	b, err := os.ReadFile(d.path(tp))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		var c *localCopy
		if c, err = decodeLocal(b, tp); err == nil {
			switch {
			case c.covered > end:
				err = fmt.Errorf("it reaches offset %d, past the changelog's end %d (was the topic recreated?)", c.covered, end)
			case c.covered < start:
				err = fmt.Errorf("it reaches offset %d, before the changelog's start %d", c.covered, start)
			default:
				return c
			}
		}
	}
	d.logger.Warn("kafkasource: ignoring the local copy of a task's state; restoring it from the changelog alone", "path", d.path(tp), "error", err.Error())
	return nil
}

// copyWriter writes what a restore reads from the changelog to the copy
// of its partition: after the copy's own frames, or, without a usable
// copy, into a new file that replaces the old one once complete.
type copyWriter struct {
	d         *stateDir
	tp        TopicPartition
	f         *os.File
	tmp       string // the new file, or "" when appending
	size      int64
	rewritten int64 // the size the copy had when last written whole
	covered   int64
	err       error
}

// restoring returns the writer of tp's copy for a restore that starts
// from c (nil: none usable).
func (d *stateDir) restoring(tp TopicPartition, c *localCopy) *copyWriter {
	w := &copyWriter{d: d, tp: tp}
	path := d.path(tp)
	if c != nil {
		w.covered = c.covered
		if w.f, w.err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); w.err == nil {
			var fi os.FileInfo
			if fi, w.err = w.f.Stat(); w.err == nil {
				w.size, w.rewritten = fi.Size(), fi.Size()
			}
		}
		return w
	}
	if w.err = os.MkdirAll(filepath.Dir(path), 0o755); w.err != nil {
		return w
	}
	w.tmp = path + ".tmp"
	if w.f, w.err = os.Create(w.tmp); w.err == nil {
		w.write(appendFrame(nil, localHeader(tp)))
	}
	return w
}

func (w *copyWriter) write(b []byte) {
	if w.err != nil {
		return
	}
	_, w.err = w.f.Write(b)
	w.size += int64(len(b))
}

// frame writes recs, which reach changelog offset covered.
func (w *copyWriter) frame(covered int64, recs []Record) {
	if len(recs) == 0 {
		return
	}
	w.write(appendFrame(nil, encodeFrameOf(covered, len(recs), func(i int) ([]byte, []byte) { return recs[i].Key, recs[i].Value })))
	w.covered = covered
}

// finish makes the copy reach end, fsyncs it and keeps it for the batches'
// appends; failed is the restore's error, which leaves no copy behind.
func (w *copyWriter) finish(end int64, failed error) {
	if failed == nil && w.covered < end {
		w.write(appendFrame(nil, encodeFrameOf(end, 0, nil)))
	}
	if w.err == nil {
		w.err = w.f.Sync()
	}
	if w.f != nil {
		w.err = errors.Join(w.err, w.f.Close())
	}
	path := w.d.path(w.tp)
	if w.err == nil && failed == nil && w.tmp != "" {
		if w.err = os.Rename(w.tmp, path); w.err == nil {
			w.err = syncDir(filepath.Dir(path))
		}
	}
	switch {
	case w.err != nil:
		if w.tmp != "" {
			_ = os.Remove(w.tmp)
		}
		w.d.drop(w.tp, w.err)
	case failed != nil:
		if w.tmp != "" {
			_ = os.Remove(w.tmp)
		}
	default:
		if w.tmp != "" {
			w.rewritten = w.size // a new copy grows from here before it is compacted
		}
		w.d.mu.Lock()
		w.d.files[w.tp] = &localFile{size: w.size, rewritten: w.rewritten}
		w.d.mu.Unlock()
	}
}

// rewrite replaces the copy of tp with latest (key → value; nil values are
// deleted keys) reaching offset covered, through a new file renamed over
// the old one.
func (d *stateDir) rewrite(tp TopicPartition, latest map[string][]byte, covered int64) error {
	d.mu.Lock()
	delete(d.files, tp)
	d.mu.Unlock()
	keys := make([]string, 0, len(latest))
	for k, v := range latest {
		if v != nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	recs := make([]localRecord, len(keys))
	for i, k := range keys {
		recs[i] = localRecord{key: []byte(k), value: latest[k]}
	}
	b := appendFrame(nil, localHeader(tp))
	b = appendFrame(b, encodeLocalFrame(covered, recs))
	path := d.path(tp)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := writeSynced(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return err
	}
	d.mu.Lock()
	d.files[tp] = &localFile{size: int64(len(b)), rewritten: int64(len(b))}
	d.mu.Unlock()
	return nil
}

// append adds the records a committed batch wrote to tp (offsets set by
// the producer) to its copy, and fsyncs it. A copy that cannot be appended
// to is removed, so that it is never read with a gap.
func (d *stateDir) append(tp TopicPartition, recs []*kgo.Record) {
	d.mu.Lock()
	f := d.files[tp]
	d.mu.Unlock()
	if f == nil || len(recs) == 0 {
		return
	}
	covered := int64(-1)
	out := make([]localRecord, len(recs))
	for i, r := range recs {
		if r.Offset < 0 {
			covered = -1
			break
		}
		covered = max(covered, r.Offset+1)
		out[i] = localRecord{key: r.Key, value: r.Value}
	}
	err := errors.New("the producer did not say at which offsets the records were written")
	if covered >= 0 {
		err = appendSynced(d.path(tp), appendFrame(nil, encodeLocalFrame(covered, out)), &f.size)
	}
	if err != nil {
		d.drop(tp, err)
		return
	}
	if f.size > localCompactMin && f.size > 2*f.rewritten {
		d.compact(tp)
	}
}

// compact rewrites the copy of tp with the latest value of each key.
func (d *stateDir) compact(tp TopicPartition) {
	b, err := os.ReadFile(d.path(tp))
	var c *localCopy
	if err == nil {
		c, err = decodeLocal(b, tp)
	}
	if err == nil {
		latest := make(map[string][]byte, len(c.records))
		for _, r := range c.records {
			latest[string(r.key)] = r.value
		}
		err = d.rewrite(tp, latest, c.covered)
	}
	if err != nil {
		d.drop(tp, err)
	}
}

// drop removes the copy of tp after err.
func (d *stateDir) drop(tp TopicPartition, err error) {
	d.mu.Lock()
	delete(d.files, tp)
	d.mu.Unlock()
	rmErr := os.Remove(d.path(tp))
	if rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	d.logger.Warn("kafkasource: dropping the local copy of a task's state; its next restore reads the whole changelog", "path", d.path(tp), "error", err.Error())
}

func localHeader(tp TopicPartition) []byte {
	b := append([]byte(localMagic), localVersion)
	b = appendString(b, tp.Topic)
	return binary.AppendUvarint(b, uint64(tp.Partition))
}

// encodeLocalFrame encodes records reaching changelog offset covered:
// covered, the count, then each key and value (the value's length plus
// one, 0 for a nil value).
func encodeLocalFrame(covered int64, recs []localRecord) []byte {
	return encodeFrameOf(covered, len(recs), func(i int) ([]byte, []byte) { return recs[i].key, recs[i].value })
}

func encodeFrameOf(covered int64, n int, rec func(i int) (key, value []byte)) []byte {
	b := binary.AppendUvarint(nil, uint64(covered))
	b = binary.AppendUvarint(b, uint64(n))
	for i := range n {
		key, value := rec(i)
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
		if value == nil {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(value))+1)
		b = append(b, value...)
	}
	return b
}

// appendFrame appends payload's length, payload and its CRC-32C.
func appendFrame(b, payload []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(payload)))
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(payload, localCRC))
}

// decodeLocal checks and decodes a copy's file: the header of tp, then
// frames whose offsets never go back.
func decodeLocal(b []byte, tp TopicPartition) (*localCopy, error) {
	frames, err := localFrames(b)
	if err != nil {
		return nil, err
	}
	if len(frames) == 0 || !bytes.Equal(frames[0], localHeader(tp)) {
		return nil, fmt.Errorf("it is not a copy of %s[%d] in version %d", tp.Topic, tp.Partition, localVersion)
	}
	c := &localCopy{}
	for i, f := range frames[1:] {
		rd := varintReader{f}
		covered, ok1 := rd.uvarint()
		cnt, ok2 := rd.count()
		if !ok1 || !ok2 || int64(covered) < c.covered {
			return nil, fmt.Errorf("frame %d is malformed", i+1)
		}
		c.covered = int64(covered)
		for range cnt {
			key, ok := rd.bytes()
			vl, ok2 := rd.uvarint()
			if !ok || !ok2 || vl > uint64(len(rd.b))+1 {
				return nil, fmt.Errorf("frame %d is malformed", i+1)
			}
			var value []byte
			if vl > 0 {
				value = rd.b[: vl-1 : vl-1]
				rd.b = rd.b[vl-1:]
			}
			c.records = append(c.records, localRecord{key: key, value: value})
		}
		if len(rd.b) != 0 {
			return nil, fmt.Errorf("frame %d has trailing bytes", i+1)
		}
	}
	return c, nil
}

// localFrames splits b into the payloads of its frames, checking each
// one's CRC.
func localFrames(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) || uint64(len(b)-k)-l < 4 {
			return nil, fmt.Errorf("frame %d is cut short", len(out))
		}
		payload := b[k : k+int(l)]
		sum := binary.BigEndian.Uint32(b[k+int(l):])
		if crc32.Checksum(payload, localCRC) != sum {
			return nil, fmt.Errorf("frame %d fails its checksum", len(out))
		}
		out = append(out, payload)
		b = b[k+int(l)+4:]
	}
	return out, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func appendSynced(path string, b []byte, size *int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		*size += int64(len(b))
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// bytes reads one length-prefixed byte string, possibly empty; ok is false
// when it is longer than what is left.
func (r *varintReader) bytes() (b []byte, ok bool) {
	l, ok := r.uvarint()
	if !ok || l > uint64(len(r.b)) {
		return nil, false
	}
	b = r.b[:l:l]
	r.b = r.b[l:]
	return b, true
}
