package window

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSnapshotFuncContinuesTheChain models a checkpoint that writes a delta
// after every batch and, every so often, a snapshot taken with SnapshotFunc
// but written only some batches later. A restore from that snapshot plus the
// deltas written after it must equal the live state, and writing the
// snapshot late must not see the changes made since it was taken.
func TestSnapshotFuncContinuesTheChain(t *testing.T) {
	for _, keep := range []func(string, int) bool{nil, nonZero} {
		t.Run(fmt.Sprintf("filter=%v", keep != nil), func(t *testing.T) {
			spec := Spec{Window: sec(5), Slide: sec(1), Parent: sec(1)}
			run := &incRun{spec: spec, rng: rand.New(rand.NewPCG(21, 22))}
			w := NewIncremental(sum, sub, keep)
			var p Panes[string, int]
			var b Buffer[string]

			type chain struct {
				snapInc, snapPanes, snapBuf []byte
				incDeltas, paneDeltas       [][]byte
				bufDeltas                   [][]byte
			}
			var ch chain
			var pending []func() // snapshot writes not run yet
			for i := 1; i <= 60; i++ {
				run.batch(t, w)
				now := zero.Add(time.Duration(i) * spec.Parent)
				p.Add(now, map[string]int{fmt.Sprint(i % 7): i})
				b.Add(now, [][]string{{fmt.Sprint(i)}})
				if spec.Emits(zero, now) {
					p.Window(spec, zero, now, sum)
					b.Window(spec, zero, now)
				}
				var ib, pb, bb bytes.Buffer
				require.NoError(t, w.WriteDelta(&ib, kc, vc))
				require.NoError(t, p.WriteDelta(&pb, kc, vc))
				require.NoError(t, b.WriteDelta(&bb, kc))
				ch.incDeltas = append(ch.incDeltas, ib.Bytes())
				ch.paneDeltas = append(ch.paneDeltas, pb.Bytes())
				ch.bufDeltas = append(ch.bufDeltas, bb.Bytes())
				// The snapshots taken three batches ago are written now.
				if len(pending) > 0 && i%10 == 3 {
					for _, f := range pending {
						f()
					}
					pending = nil
				}
				if i%10 == 0 {
					fi, fp, fb := w.SnapshotFunc(kc, vc), p.SnapshotFunc(kc, vc), b.SnapshotFunc(kc)
					wantInc, wantPanes, wantBuf := dumpInc(w), dumpSeries(&p.s, normMap), dumpSeries(&b.s, normParts)
					pending = append(pending, func() {
						ch.snapInc, ch.snapPanes, ch.snapBuf = write(t, fi), write(t, fp), write(t, fb)
						// The snapshot holds the state when it was taken, not now.
						ri := NewIncremental(sum, sub, keep)
						var rp Panes[string, int]
						var rb Buffer[string]
						require.NoError(t, ri.ReadSnapshot(bytes.NewReader(ch.snapInc), kc, vc))
						require.NoError(t, rp.ReadSnapshot(bytes.NewReader(ch.snapPanes), kc, vc))
						require.NoError(t, rb.ReadSnapshot(bytes.NewReader(ch.snapBuf), kc))
						require.Equal(t, wantInc, dumpInc(ri))
						require.Equal(t, wantPanes, dumpSeries(&rp.s, normMap))
						require.Equal(t, wantBuf, dumpSeries(&rb.s, normParts))
						ch.incDeltas, ch.paneDeltas, ch.bufDeltas = ch.incDeltas[len(ch.incDeltas)-3:], ch.paneDeltas[len(ch.paneDeltas)-3:], ch.bufDeltas[len(ch.bufDeltas)-3:]
					})
				}
				if ch.snapInc == nil {
					continue
				}
				ri := NewIncremental(sum, sub, keep)
				var rp Panes[string, int]
				var rb Buffer[string]
				require.NoError(t, ri.ReadSnapshot(bytes.NewReader(ch.snapInc), kc, vc))
				require.NoError(t, rp.ReadSnapshot(bytes.NewReader(ch.snapPanes), kc, vc))
				require.NoError(t, rb.ReadSnapshot(bytes.NewReader(ch.snapBuf), kc))
				for j := range ch.incDeltas {
					require.NoError(t, ri.ApplyDelta(bytes.NewReader(ch.incDeltas[j]), kc, vc), "batch %d, delta %d", i, j)
					require.NoError(t, rp.ApplyDelta(bytes.NewReader(ch.paneDeltas[j]), kc, vc))
					require.NoError(t, rb.ApplyDelta(bytes.NewReader(ch.bufDeltas[j]), kc))
				}
				require.Equal(t, dumpInc(w), dumpInc(ri), "after batch %d", i)
				require.Equal(t, dumpSeries(&p.s, normMap), dumpSeries(&rp.s, normMap), "panes after batch %d", i)
				require.Equal(t, dumpSeries(&b.s, normParts), dumpSeries(&rb.s, normParts), "buffer after batch %d", i)
			}
			require.NotNil(t, ch.snapInc, "a snapshot was restored from")
		})
	}
}

func write(t *testing.T, f func(io.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, f(&buf))
	return buf.Bytes()
}
