package engine

import (
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/state"
)

// FuzzLoadCommit feeds arbitrary manifest bodies (behind a valid checksum,
// so the parser itself is exercised) to LoadCommit: it must never panic,
// and whatever it accepts must name only files that verify.
func FuzzLoadCommit(f *testing.F) {
	good, _ := json.Marshal(Manifest{Version: FormatVersion, BatchMS: 1000, Operators: []OperatorFiles{{Name: "a", Kind: "k"}}})
	f.Add(good)
	inline := []byte{1, 2, 3}
	withInline, _ := json.Marshal(Manifest{Version: FormatVersion, BatchMS: 1000, Operators: []OperatorFiles{{Name: "a", Kind: "k",
		Files: []FileRef{{Kind: "snapshot", BatchMS: 1000, Len: int64(len(inline)), CRC: crc32.Checksum(inline, crcTable), Inline: inline}}}}})
	f.Add(withInline)
	f.Add([]byte(`{"version":1,"batch_ms":1000,"operators":[{"name":"a","files":[{"path":"../../etc/passwd","kind":"delta"}]}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, commitsDir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := state.WriteFile(state.OSFS{}, filepath.Join(dir, commitsDir, "1000"), state.KindCommit, body); err != nil {
			t.Fatal(err)
		}
		m, bodies, err := LoadCommit(state.OSFS{}, dir, 1000)
		if err != nil {
			return
		}
		for _, op := range m.Operators {
			for _, f := range op.Files {
				if _, ok := bodies[f.key(op.Name)]; !ok {
					t.Fatalf("accepted commit names %s of operator %s without verifying it", f.key(op.Name), op.Name)
				}
			}
		}
	})
}
