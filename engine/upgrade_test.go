package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

// upgradeJob is a word count whose graph can change between runs: an extra
// stateless operator, and the stateful operator's name and former names.
func upgradeJob(t *testing.T, dir string, extraMap bool, name string, formerNames ...string) (*engine.Context, *map[string]int64, error) {
	t.Helper()
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(0, 0)), engine.WithCheckpoint(dir))
	require.NoError(t, err)
	words := dstream.Queue(c, input(20))
	if extraMap {
		words = dstream.Filter(dstream.Map(words, strings.ToLower), func(w string) bool { return w != "" })
	}
	pairs := dstream.Map(words, func(w string) dstream.KV[string, int64] { return dstream.Pair(w, int64(1)) })
	totals := dstream.UpdateStateByKey(pairs, func(vs []int64, s int64, _ bool) (int64, bool) {
		for _, v := range vs {
			s += v
		}
		return s, true
	})
	if name != "" {
		totals.Name(name)
	}
	totals.Node().Meta().FormerNames = formerNames
	last := map[string]int64{}
	dstream.ForEachBatch(totals, func(_ context.Context, b dstream.Batch[dstream.KV[string, int64]]) error {
		clear(last)
		for kv := range b.All() {
			last[kv.Key] = kv.Value
		}
		return nil
	})
	if err := c.RunBatches(context.Background(), 0); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, &last, nil
}

func TestUpgradeAddStatelessOperatorRenameStateful(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	in := input(20)

	c, _, err := upgradeJob(t, dir, false, "")
	require.NoError(t, err)
	require.NoError(t, c.RunBatches(ctx, 4))
	require.NoError(t, c.Close())

	// Adding stateless operators keeps the default name of the stateful one.
	c, last, err := upgradeJob(t, dir, true, "")
	require.NoError(t, err)
	require.NoError(t, c.RunBatches(ctx, 2))
	require.Equal(t, truth(in, 6), *last, "recovered after adding a Map and a Filter")
	require.NoError(t, c.Close())

	// Renaming the stateful operator is refused, with a message.
	_, _, err = upgradeJob(t, dir, true, "totals")
	require.ErrorIs(t, err, engine.ErrCheckpointMismatch)
	require.Contains(t, err.Error(), `holds operator "updateStateByKey-1"`)
	require.Contains(t, err.Error(), `rename the operator back (Name("updateStateByKey-1"))`)

	// Renaming it back recovers.
	c, last, err = upgradeJob(t, dir, true, "updateStateByKey-1")
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.RunBatches(ctx, 1))
	require.Equal(t, truth(in, 7), *last)
}

// TestEveryCheckpointFileKindDetectsDamage truncates every file of a
// checkpoint at every byte and flips a bit at every byte: the loader of its
// kind always refuses it.
func TestEveryCheckpointFileKindDetectsDamage(t *testing.T) {
	dir := t.TempDir()
	c, _, err := upgradeJob(t, dir, false, "")
	require.NoError(t, err)
	require.NoError(t, c.RunBatches(context.Background(), 3))
	require.NoError(t, c.Close())

	const commitMS = 3000
	load := map[string]func() error{
		"FORMAT": func() error {
			_, err := state.ReadFile(state.OSFS{}, filepath.Join(dir, "FORMAT"), state.KindFormat)
			return err
		},
		"offsets": func() error {
			_, err := state.ReadFile(state.OSFS{}, filepath.Join(dir, "offsets", fmt.Sprint(commitMS)), state.KindOffsets)
			return err
		},
		"commit": func() error { _, _, err := engine.LoadCommit(state.OSFS{}, dir, commitMS); return err },
	}
	files := map[string]string{
		"FORMAT":  filepath.Join(dir, "FORMAT"),
		"offsets": filepath.Join(dir, "offsets", fmt.Sprint(commitMS)),
		"commit":  filepath.Join(dir, "commits", fmt.Sprint(commitMS)),
	}
	m, _, err := engine.LoadCommit(state.OSFS{}, dir, commitMS)
	require.NoError(t, err)
	for _, op := range m.Operators {
		for _, f := range op.Files {
			if f.Path == "" {
				require.Equal(t, "queue-1", op.Name, "only small snapshots are inline in the manifest")
				continue
			}
			files[f.Kind+" of "+op.Name] = filepath.Join(dir, filepath.FromSlash(f.Path))
			load[f.Kind+" of "+op.Name] = load["commit"]
		}
	}
	require.Contains(t, files, "delta of updateStateByKey-1")
	for kind, p := range files {
		t.Run(kind, func(t *testing.T) {
			orig, err := os.ReadFile(p)
			require.NoError(t, err)
			defer func() { require.NoError(t, os.WriteFile(p, orig, 0o644)) }()
			require.NoError(t, load[kind]())
			for cut := 0; cut < len(orig); cut++ {
				require.NoError(t, os.WriteFile(p, orig[:cut], 0o644))
				require.ErrorIs(t, load[kind](), state.ErrCorrupt, "truncated to %d bytes", cut)
			}
			for i := range orig {
				b := append([]byte(nil), orig...)
				b[i] ^= 1 << (i % 8)
				require.NoError(t, os.WriteFile(p, b, 0o644))
				require.ErrorIs(t, load[kind](), state.ErrCorrupt, "bit flipped at byte %d", i)
			}
		})
	}
}
