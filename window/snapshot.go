package window

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/sluicehq/sluice/state"
)

var (
	// ErrCorrupt is wrapped by the errors that ReadSnapshot and ApplyDelta
	// return for input that is not a well-formed snapshot or delta of the
	// expected kind: truncated, damaged, of another kind or format version,
	// or holding bytes the codecs reject.
	ErrCorrupt = errors.New("window: malformed snapshot or delta")

	// ErrDeltaGap is wrapped by the error ApplyDelta returns for a
	// well-formed delta that does not follow the state it is applied to: a
	// delta was skipped, applied twice, or belongs to another snapshot.
	ErrDeltaGap = errors.New("window: delta does not follow the state it is applied to")
)

// WriteSnapshot writes every pane to w, encoding keys with kc and values
// with vc, and starts a new chain of deltas (see [Panes.WriteDelta]).
func (p *Panes[K, V]) WriteSnapshot(w io.Writer, kc state.Codec[K], vc state.Codec[V]) error {
	gen := p.gen + 1
	if err := writePanesSnapshot(w, gen, p.s.items, kc, vc); err != nil {
		return err
	}
	p.gen = gen
	p.s.track()
	return nil
}

// ReadSnapshot replaces the panes with those of a snapshot written by
// [Panes.WriteSnapshot]. Malformed input returns an error wrapping
// [ErrCorrupt] and leaves the panes unchanged.
func (p *Panes[K, V]) ReadSnapshot(r io.Reader, kc state.Codec[K], vc state.Codec[V]) error {
	body, err := readFrame(r, kindPanesSnapshot)
	if err != nil {
		return err
	}
	d := &decoder{what: kindName(kindPanesSnapshot), b: body}
	gen := d.uvarint()
	items := readPanes(d, kc, vc)
	if err := d.end(); err != nil {
		return err
	}
	p.s.reset()
	p.s.items = items
	p.s.track()
	p.gen = gen
	return nil
}

// WriteDelta writes to w the panes added since the previous WriteDelta or
// WriteSnapshot that are still held, and the newest Drop horizon since then.
// Its cost grows with the panes added, not with the panes held. The first
// WriteDelta of panes that were never written nor restored writes them all.
func (p *Panes[K, V]) WriteDelta(w io.Writer, kc state.Codec[K], vc state.Codec[V]) error {
	e := newEncoder(kindPanesDelta)
	full := !p.s.tracking
	writeDeltaHead(e, p.gen, full, &p.s)
	items := p.s.items
	if !full {
		items = p.s.changed()
	}
	if err := writePanes(e, items, kc, vc); err != nil {
		return err
	}
	if err := e.finish(w); err != nil {
		return err
	}
	p.gen++
	p.s.track()
	return nil
}

// ApplyDelta applies a delta written by [Panes.WriteDelta]: it drops the
// panes the writer dropped and adds the panes it added. Deltas must be
// applied in the order they were written, starting from the snapshot they
// follow; otherwise the error wraps [ErrDeltaGap]. Malformed input returns
// an error wrapping [ErrCorrupt]. On error the panes are unchanged.
func (p *Panes[K, V]) ApplyDelta(r io.Reader, kc state.Codec[K], vc state.Codec[V]) error {
	body, err := readFrame(r, kindPanesDelta)
	if err != nil {
		return err
	}
	d := &decoder{what: kindName(kindPanesDelta), b: body}
	h := readDeltaHead(d)
	items := readPanes(d, kc, vc)
	if err := d.end(); err != nil {
		return err
	}
	if err := h.checkFollows(d.what, p.gen); err != nil {
		return err
	}
	applySeries(&p.s, h, items)
	p.gen = h.to
	return nil
}

// WriteSnapshot writes the incremental window — the panes, the current
// aggregate and the time of the last step — to w, encoding keys with kc and
// values with vc, and starts a new chain of deltas (see
// [Incremental.WriteDelta]). The functions given to [NewIncremental] are not
// written: the program supplies them again when it restores.
func (w *Incremental[K, V]) WriteSnapshot(wr io.Writer, kc state.Codec[K], vc state.Codec[V]) error {
	gen := w.gen + 1
	if err := w.writeSnapshot(wr, gen, kc, vc); err != nil {
		return err
	}
	w.gen = gen
	w.track()
	return nil
}

// ReadSnapshot replaces the state of the incremental window with a snapshot
// written by [Incremental.WriteSnapshot], keeping its functions. The next
// Step must come one slide after the restored step time. Malformed input
// returns an error wrapping [ErrCorrupt] and leaves the window unchanged.
func (w *Incremental[K, V]) ReadSnapshot(r io.Reader, kc state.Codec[K], vc state.Codec[V]) error {
	body, err := readFrame(r, kindIncrementalSnapshot)
	if err != nil {
		return err
	}
	d := &decoder{what: kindName(kindIncrementalSnapshot), b: body}
	gen := d.uvarint()
	at, stepped := readStep(d)
	items := readPanes(d, kc, vc)
	cur := decodeEntries(d, kc, vc)
	if err := d.end(); err != nil {
		return err
	}
	w.panes.s.reset()
	w.panes.s.items = items
	w.cur = cur
	if w.cur == nil {
		w.cur = make(map[K]V)
	}
	w.at, w.stepped = at, stepped
	w.gen = gen
	w.track()
	return nil
}

// WriteDelta writes to w what changed since the previous WriteDelta or
// WriteSnapshot: the panes added and the drop horizon, the keys whose window
// value changed with their new values, the keys removed, and the time of the
// last step. Its cost grows with the keys of the new panes and of the
// changed keys, not with the window length nor the keys held. The first
// WriteDelta of a window that was never written nor restored writes it all.
func (w *Incremental[K, V]) WriteDelta(wr io.Writer, kc state.Codec[K], vc state.Codec[V]) error {
	e := newEncoder(kindIncrementalDelta)
	full := !w.tracking
	writeDeltaHead(e, w.gen, full, &w.panes.s)
	w.writeStep(e)
	if full {
		if err := writePanes(e, w.panes.s.items, kc, vc); err != nil {
			return err
		}
		if err := entries(e, w.cur, kc, vc); err != nil {
			return err
		}
		e.uvarint(0) // no key removed
	} else {
		if err := writePanes(e, w.panes.s.changed(), kc, vc); err != nil {
			return err
		}
		set := func(yield func(K, V) bool) {
			for k := range w.dirty {
				if v, ok := w.cur[k]; ok && !yield(k, v) {
					return
				}
			}
		}
		removed := func(yield func(K) bool) {
			for k := range w.dirty {
				if _, ok := w.cur[k]; !ok && !yield(k) {
					return
				}
			}
		}
		if err := entriesOf(e, len(w.dirty), set, kc, vc); err != nil {
			return err
		}
		if err := keysOf(e, 0, removed, kc); err != nil {
			return err
		}
	}
	if err := e.finish(wr); err != nil {
		return err
	}
	w.gen++
	w.track()
	return nil
}

// ApplyDelta applies a delta written by [Incremental.WriteDelta]. Deltas
// must be applied in the order they were written, starting from the snapshot
// they follow; otherwise the error wraps [ErrDeltaGap]. Malformed input
// returns an error wrapping [ErrCorrupt]. On error the window is unchanged.
func (w *Incremental[K, V]) ApplyDelta(r io.Reader, kc state.Codec[K], vc state.Codec[V]) error {
	body, err := readFrame(r, kindIncrementalDelta)
	if err != nil {
		return err
	}
	d := &decoder{what: kindName(kindIncrementalDelta), b: body}
	h := readDeltaHead(d)
	at, stepped := readStep(d)
	items := readPanes(d, kc, vc)
	set := decodeEntries(d, kc, vc)
	del := decodeKeys(d, kc)
	if d.err == nil {
		for k := range del {
			if _, ok := set[k]; ok {
				d.fail("key %v is both set and removed", k)
				break
			}
		}
		if h.full && len(del) > 0 {
			d.fail("a full delta removes no keys")
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	if err := h.checkFollows(d.what, w.gen); err != nil {
		return err
	}
	applySeries(&w.panes.s, h, items)
	if h.full {
		w.cur = make(map[K]V, len(set))
	}
	maps.Copy(w.cur, set)
	for k := range del {
		delete(w.cur, k)
	}
	w.at, w.stepped = at, stepped
	w.gen = h.to
	w.track()
	return nil
}

// track starts a new delta for the window and its panes.
func (w *Incremental[K, V]) track() {
	w.tracking = true
	clear(w.dirty)
	w.panes.s.track()
}

func (w *Incremental[K, V]) writeStep(e *encoder) {
	e.bool(w.stepped)
	if w.stepped {
		e.time(w.at)
	}
}

func readStep(d *decoder) (time.Time, bool) {
	if !d.bool() {
		return time.Time{}, false
	}
	return d.time(), true
}

// WriteSnapshot writes every batch to w, encoding records with c, and starts
// a new chain of deltas (see [Buffer.WriteDelta]).
func (b *Buffer[T]) WriteSnapshot(w io.Writer, c state.Codec[T]) error {
	gen := b.gen + 1
	if err := writeBufferSnapshot(w, gen, b.s.items, c); err != nil {
		return err
	}
	b.gen = gen
	b.s.track()
	return nil
}

// ReadSnapshot replaces the batches with those of a snapshot written by
// [Buffer.WriteSnapshot]. Partitions without records decode as nil.
// Malformed input returns an error wrapping [ErrCorrupt] and leaves the
// buffer unchanged.
func (b *Buffer[T]) ReadSnapshot(r io.Reader, c state.Codec[T]) error {
	body, err := readFrame(r, kindBufferSnapshot)
	if err != nil {
		return err
	}
	d := &decoder{what: kindName(kindBufferSnapshot), b: body}
	gen := d.uvarint()
	items := readBatches(d, c)
	if err := d.end(); err != nil {
		return err
	}
	b.s.reset()
	b.s.items = items
	b.s.track()
	b.gen = gen
	return nil
}

// WriteDelta writes to w the batches added since the previous WriteDelta or
// WriteSnapshot and still held, and the newest Drop horizon since then. The
// first WriteDelta of a buffer that was never written nor restored writes
// every batch.
func (b *Buffer[T]) WriteDelta(w io.Writer, c state.Codec[T]) error {
	e := newEncoder(kindBufferDelta)
	full := !b.s.tracking
	writeDeltaHead(e, b.gen, full, &b.s)
	items := b.s.items
	if !full {
		items = b.s.changed()
	}
	if err := writeBatches(e, items, c); err != nil {
		return err
	}
	if err := e.finish(w); err != nil {
		return err
	}
	b.gen++
	b.s.track()
	return nil
}

// ApplyDelta applies a delta written by [Buffer.WriteDelta], with the same
// ordering rules and errors as [Panes.ApplyDelta].
func (b *Buffer[T]) ApplyDelta(r io.Reader, c state.Codec[T]) error {
	body, err := readFrame(r, kindBufferDelta)
	if err != nil {
		return err
	}
	d := &decoder{what: kindName(kindBufferDelta), b: body}
	h := readDeltaHead(d)
	items := readBatches(d, c)
	if err := d.end(); err != nil {
		return err
	}
	if err := h.checkFollows(d.what, b.gen); err != nil {
		return err
	}
	applySeries(&b.s, h, items)
	b.gen = h.to
	return nil
}

// applySeries applies a decoded delta to s and starts a new delta.
func applySeries[E any](s *series[E], h deltaHead, items []entry[E]) {
	if h.full {
		s.reset()
		s.items = items
	} else {
		if h.hasDrop {
			s.drop(h.drop)
		}
		for _, e := range items {
			s.add(e.t, e.v, false)
		}
	}
	s.track()
}

// writePanesSnapshot writes a panes snapshot of items at generation gen.
func writePanesSnapshot[K comparable, V any](w io.Writer, gen uint64, items []entry[map[K]V], kc state.Codec[K], vc state.Codec[V]) error {
	e := newEncoder(kindPanesSnapshot)
	e.uvarint(gen)
	if err := writePanes(e, items, kc, vc); err != nil {
		return err
	}
	return e.finish(w)
}

// writeSnapshot writes a snapshot of the window at generation gen.
func (w *Incremental[K, V]) writeSnapshot(wr io.Writer, gen uint64, kc state.Codec[K], vc state.Codec[V]) error {
	e := newEncoder(kindIncrementalSnapshot)
	e.uvarint(gen)
	w.writeStep(e)
	if err := writePanes(e, w.panes.s.items, kc, vc); err != nil {
		return err
	}
	if err := entries(e, w.cur, kc, vc); err != nil {
		return err
	}
	return e.finish(wr)
}

// writeBufferSnapshot writes a buffer snapshot of items at generation gen.
func writeBufferSnapshot[T any](w io.Writer, gen uint64, items []entry[[][]T], c state.Codec[T]) error {
	e := newEncoder(kindBufferSnapshot)
	e.uvarint(gen)
	if err := writeBatches(e, items, c); err != nil {
		return err
	}
	return e.finish(w)
}

func writePanes[K comparable, V any](e *encoder, items []entry[map[K]V], kc state.Codec[K], vc state.Codec[V]) error {
	e.uvarint(uint64(len(items)))
	for _, it := range items {
		e.time(it.t)
		if err := entries(e, it.v, kc, vc); err != nil {
			return fmt.Errorf("%w (pane at %s)", err, stamp(it.t))
		}
	}
	return nil
}

func readPanes[K comparable, V any](d *decoder, kc state.Codec[K], vc state.Codec[V]) []entry[map[K]V] {
	return decodeSeries(d, "pane", func() map[K]V { return decodeEntries(d, kc, vc) })
}

func writeBatches[T any](e *encoder, items []entry[[][]T], c state.Codec[T]) error {
	e.uvarint(uint64(len(items)))
	for _, it := range items {
		e.time(it.t)
		e.uvarint(uint64(len(it.v)))
		for _, part := range it.v {
			e.uvarint(uint64(len(part)))
			for _, rec := range part {
				rb, err := c.Encode(rec)
				if err != nil {
					return fmt.Errorf("window: encode record of the batch at %s: %w", stamp(it.t), err)
				}
				e.bytes(rb)
			}
		}
	}
	return nil
}

func readBatches[T any](d *decoder, c state.Codec[T]) []entry[[][]T] {
	return decodeSeries(d, "batch", func() [][]T {
		nparts := d.count("partition", 1)
		if d.err != nil {
			return nil
		}
		parts := make([][]T, 0, nparts)
		for range nparts {
			nrecs := d.count("record", 1)
			if d.err != nil {
				return nil
			}
			var part []T
			if nrecs > 0 {
				part = make([]T, 0, nrecs)
			}
			for range nrecs {
				rb := d.bytes()
				if d.err != nil {
					return nil
				}
				rec, err := c.Decode(rb)
				if err != nil {
					d.failWrap("decode record", err)
					return nil
				}
				part = append(part, rec)
			}
			parts = append(parts, part)
		}
		return parts
	})
}
