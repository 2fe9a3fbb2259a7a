package dstream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/window"
)

// Keyed windows in group mode keep their panes per task (partition p is
// task p) and exchange them with the task's changelog as records:
//
//	pane:  key   kind (1 byte, 1) | pane time (Unix ms, 8 bytes big-endian)
//	             | uvarint chunk index
//	       value version (1 byte, 1) | uvarint pair count
//	             | pairs: uvarint key length | key | uvarint value length | value
//	value: key   kind (1 byte, 2) | the key
//	       value version (1 byte, 1) | the key's value in the current window
//	step:  key   kind (1 byte, 3)
//	       value version (1 byte, 1) | time of the last step (Unix ms, 8 bytes big-endian)
//
// in the operator's key and value codecs (see [WindowCodecs]). A pane is
// written once, when the batch that made it is saved, in chunks of about
// windowChunkBytes so that no record outgrows a Kafka message, and deleted
// (a tombstone per chunk) once it has left every window that reads it: each
// pane costs two writes of its size however long the window. The value and
// step records belong to the incremental form ([ReduceByKeyAndWindowInv]):
// the keys whose window value changed, a tombstone for a key that left
// the window, and when the window last stepped.
const (
	windowRecordPane  = 1
	windowRecordValue = 2
	windowRecordStep  = 3

	windowChunkBytes = 256 << 10
)

// chunkID names one chunk of a pane.
type chunkID struct {
	ms    int64
	chunk uint64
}

// windowTask is what a keyed window knows of one task's records.
type windowTask struct {
	chunks map[int64]int // pane time (Unix ms) → chunks written for it
	stepMS int64         // the step time last written
	stepOK bool
}

// allocTasks starts, in group mode, the change tracking of every
// partition and forgets the records written.
func (w *keyedWindow[K, V, C]) allocTasks() {
	if w.group == nil {
		return
	}
	w.tasks = make([]windowTask, w.n)
	for p := range w.n {
		w.held[p].TrackChanges()
		w.tasks[p] = windowTask{chunks: map[int64]int{}}
	}
}

// groupInput checks in carries as many tasks as the window holds.
func (w *keyedWindow[K, V, C]) groupInput(op string, in *data[KV[K, V]]) error {
	n, err := groupTasks(op, w.group, in)
	if err != nil || w.group == nil {
		return err
	}
	if n != w.n {
		return fmt.Errorf("dstream: operator %q holds the panes of %d tasks but its input has %d; group mode needs the partition counts of the input topics to stay as they were", op, w.n, n)
	}
	return nil
}

// resetTask gives task an empty state.
func (w *keyedWindow[K, V, C]) resetTask(task int) {
	if w.inverse == nil {
		w.panes[task] = new(window.Panes[K, C])
		w.held[task] = w.panes[task]
	} else {
		var keep func(K, C) bool
		if w.keep != nil {
			keep = func(k K, v C) bool { return w.keep(KV[K, C]{k, v}) }
		}
		w.incs[task] = window.NewIncremental(w.reduce, w.inverse, keep)
		w.held[task] = w.incs[task]
	}
	w.held[task].TrackChanges()
	w.tasks[task] = windowTask{chunks: map[int64]int{}}
}

func (w *keyedWindow[K, V, C]) task(task int) error {
	if w.n == 0 {
		w.alloc(w.configured())
	}
	if task < 0 || task >= w.n {
		return fmt.Errorf("dstream: operator %q was asked for task %d of a job of %d tasks", w.meta.Name(), task, w.n)
	}
	return nil
}

// SaveTask passes put the panes of task added since its last SaveTask or
// RestoreTask, tombstones for the panes that no window reads any more and,
// for the incremental form, the keys whose window value changed and the
// step time. put may keep key and value.
func (w *keyedWindow[K, V, C]) SaveTask(task int, put func(key, value []byte) error) error {
	if err := w.task(task); err != nil {
		return err
	}
	wt := &w.tasks[task]
	pane := func(t time.Time, m map[K]C) error {
		ms := t.UnixMilli()
		n, err := w.putPane(ms, m, put)
		wt.chunks[ms] = n
		return err
	}
	var horizon time.Time
	var dropped bool
	var err error
	if w.inverse == nil {
		horizon, dropped, err = w.panes[task].TakeChanges(pane)
	} else {
		inc := w.incs[task]
		horizon, dropped, err = inc.TakeChanges(pane, func(k K, v C, ok bool) error {
			key, err := state.AppendEncode(w.kc, []byte{windowRecordValue}, k)
			if err != nil {
				return fmt.Errorf("dstream: operator %q cannot encode key %v: %w", w.meta.Name(), k, err)
			}
			if !ok {
				return put(key, nil)
			}
			val, err := state.AppendEncode(w.vc, []byte{taskRecordVersion}, v)
			if err != nil {
				return fmt.Errorf("dstream: operator %q cannot encode the value of key %v: %w", w.meta.Name(), k, err)
			}
			return put(key, val)
		})
		if err == nil {
			if at, ok := inc.Time(); ok && (!wt.stepOK || at.UnixMilli() != wt.stepMS) {
				wt.stepMS, wt.stepOK = at.UnixMilli(), true
				err = put([]byte{windowRecordStep}, binary.BigEndian.AppendUint64([]byte{taskRecordVersion}, uint64(wt.stepMS)))
			}
		}
	}
	if err != nil {
		return err
	}
	if !dropped {
		return nil
	}
	before := horizon.UnixMilli()
	for _, ms := range slices.Sorted(maps.Keys(wt.chunks)) {
		if ms >= before {
			break
		}
		for i := range wt.chunks[ms] {
			if err := put(paneKey(ms, i), nil); err != nil {
				return err
			}
		}
		delete(wt.chunks, ms)
	}
	return nil
}

func paneKey(ms int64, chunk int) []byte {
	k := binary.BigEndian.AppendUint64([]byte{windowRecordPane}, uint64(ms))
	return binary.AppendUvarint(k, uint64(chunk))
}

// putPane writes the pane at ms in chunks and returns how many.
func (w *keyedWindow[K, V, C]) putPane(ms int64, m map[K]C, put func(key, value []byte) error) (int, error) {
	chunks := 0
	var body []byte
	count := 0
	flush := func() error {
		val := binary.AppendUvarint([]byte{taskRecordVersion}, uint64(count))
		val = append(val, body...)
		body, count = body[:0], 0
		chunks++
		return put(paneKey(ms, chunks-1), val)
	}
	var kb, vb []byte
	for k, v := range m {
		var err error
		if kb, err = state.AppendEncode(w.kc, kb[:0], k); err != nil {
			return chunks, fmt.Errorf("dstream: operator %q cannot encode key %v: %w", w.meta.Name(), k, err)
		}
		if vb, err = state.AppendEncode(w.vc, vb[:0], v); err != nil {
			return chunks, fmt.Errorf("dstream: operator %q cannot encode the value of key %v: %w", w.meta.Name(), k, err)
		}
		if count > 0 && len(body)+len(kb)+len(vb) > windowChunkBytes {
			if err := flush(); err != nil {
				return chunks, err
			}
		}
		body = binary.AppendUvarint(body, uint64(len(kb)))
		body = append(body, kb...)
		body = binary.AppendUvarint(body, uint64(len(vb)))
		body = append(body, vb...)
		count++
	}
	if count > 0 {
		return chunks, flush()
	}
	return chunks, nil
}

// RestoreTask replaces task's panes (and window values) with the records
// load passes.
func (w *keyedWindow[K, V, C]) RestoreTask(task int, load func(apply func(key, value []byte) error) error) error {
	if err := w.task(task); err != nil {
		return err
	}
	panes := map[chunkID][]byte{}
	values := map[string][]byte{}
	var step []byte
	err := load(func(key, value []byte) error {
		if len(key) == 0 {
			return fmt.Errorf("%w: a record has an empty key", state.ErrCorrupt)
		}
		if value != nil && (len(value) == 0 || value[0] != taskRecordVersion) {
			return fmt.Errorf("%w: a record has %s; this build reads version %d", state.ErrCorrupt, taskVersionSeen(value), taskRecordVersion)
		}
		switch key[0] {
		case windowRecordPane:
			if len(key) < 10 {
				return fmt.Errorf("%w: a pane record's key is %d bytes long", state.ErrCorrupt, len(key))
			}
			chunk, n := binary.Uvarint(key[9:])
			if n <= 0 || 9+n != len(key) {
				return fmt.Errorf("%w: a pane record's key has a bad chunk index", state.ErrCorrupt)
			}
			id := chunkID{int64(binary.BigEndian.Uint64(key[1:9])), chunk}
			if value == nil {
				delete(panes, id)
			} else {
				panes[id] = bytes.Clone(value[1:])
			}
		case windowRecordValue:
			if value == nil {
				delete(values, string(key[1:]))
			} else {
				values[string(key[1:])] = bytes.Clone(value[1:])
			}
		case windowRecordStep:
			step = nil
			if value != nil {
				if len(value) != 9 {
					return fmt.Errorf("%w: a step record is %d bytes long", state.ErrCorrupt, len(value))
				}
				step = bytes.Clone(value[1:])
			}
		default:
			return fmt.Errorf("%w: a record has kind %d; this build reads kinds %d to %d", state.ErrCorrupt, key[0], windowRecordPane, windowRecordStep)
		}
		return nil
	})
	if err == nil {
		err = w.install(task, panes, values, step)
	}
	if err != nil {
		w.resetTask(task)
		return fmt.Errorf("dstream: operator %q restoring task %d: %w", w.meta.Name(), task, err)
	}
	return nil
}

// install decodes a task's records into a fresh state.
func (w *keyedWindow[K, V, C]) install(task int, chunks map[chunkID][]byte, values map[string][]byte, step []byte) error {
	w.resetTask(task)
	byTime := map[int64]map[K]C{}
	counts := map[int64]int{}
	for id, body := range chunks {
		m := byTime[id.ms]
		if m == nil {
			m = map[K]C{}
			byTime[id.ms] = m
		}
		if err := w.decodePairs(body, m); err != nil {
			return fmt.Errorf("pane at %d ms, chunk %d: %w", id.ms, id.chunk, err)
		}
		counts[id.ms] = max(counts[id.ms], int(id.chunk)+1)
	}
	held := w.held[task]
	for _, ms := range slices.Sorted(maps.Keys(byTime)) {
		held.Add(time.UnixMilli(ms), byTime[ms])
	}
	if w.inverse != nil && step != nil {
		cur := make(map[K]C, len(values))
		for kb, vb := range values {
			k, err := w.kc.Decode([]byte(kb))
			if err != nil {
				return fmt.Errorf("%w: a window key does not decode: %v", state.ErrCorrupt, err)
			}
			v, err := w.vc.Decode(vb)
			if err != nil {
				return fmt.Errorf("%w: the window value of key %v does not decode: %v", state.ErrCorrupt, k, err)
			}
			cur[k] = v
		}
		at := int64(binary.BigEndian.Uint64(step))
		w.incs[task].Load(time.UnixMilli(at), cur)
		w.tasks[task].stepMS, w.tasks[task].stepOK = at, true
	}
	held.TrackChanges() // what was restored is not a change
	w.tasks[task].chunks = counts
	return nil
}

// decodePairs decodes one pane chunk into m.
func (w *keyedWindow[K, V, C]) decodePairs(b []byte, m map[K]C) error {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return fmt.Errorf("%w: a pane chunk has a bad pair count", state.ErrCorrupt)
	}
	b = b[n:]
	next := func() ([]byte, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return nil, fmt.Errorf("%w: a pane chunk is cut short", state.ErrCorrupt)
		}
		x := b[n : n+int(l)]
		b = b[n+int(l):]
		return x, nil
	}
	for range count {
		kb, err := next()
		if err != nil {
			return err
		}
		vb, err := next()
		if err != nil {
			return err
		}
		k, err := w.kc.Decode(kb)
		if err != nil {
			return fmt.Errorf("%w: a pane key does not decode: %v", state.ErrCorrupt, err)
		}
		v, err := w.vc.Decode(vb)
		if err != nil {
			return fmt.Errorf("%w: the pane value of key %v does not decode: %v", state.ErrCorrupt, k, err)
		}
		m[k] = v
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: a pane chunk has %d trailing bytes", state.ErrCorrupt, len(b))
	}
	return nil
}

// DropTask forgets task's panes.
func (w *keyedWindow[K, V, C]) DropTask(task int) {
	if w.task(task) == nil {
		w.resetTask(task)
	}
}
