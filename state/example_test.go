package state_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sluicehq/sluice/state"
)

func ExampleStore() {
	counts := state.NewStore(state.String(), state.Int64())
	for _, word := range []string{"to", "be", "or", "not", "to", "be"} {
		n, _ := counts.Get(word)
		if err := counts.Set(word, n+1); err != nil {
			fmt.Println(err)
			return
		}
	}
	for word, n := range counts.All() {
		fmt.Println(word, n)
	}
	// Output:
	// be 2
	// not 1
	// or 1
	// to 2
}

// A checkpoint writes only what changed since the previous one; a restore
// reads the last snapshot and applies the deltas after it.
func ExampleStore_WriteDelta() {
	live := state.NewStore(state.String(), state.Int64())
	_ = live.Set("alice", 3)
	_ = live.Set("bob", 5)

	var snapshot bytes.Buffer
	if err := live.WriteSnapshot(&snapshot); err != nil {
		fmt.Println(err)
		return
	}
	live.ResetChanges()

	_ = live.Set("alice", 4)
	live.Delete("bob")
	fmt.Println("changed keys:", live.Changed())
	var delta bytes.Buffer
	if err := live.WriteDelta(&delta); err != nil {
		fmt.Println(err)
		return
	}
	live.ResetChanges()

	restored := state.NewStore(state.String(), state.Int64())
	if err := restored.ReadSnapshot(&snapshot); err != nil {
		fmt.Println(err)
		return
	}
	if err := restored.ApplyDelta(&delta); err != nil {
		fmt.Println(err)
		return
	}
	for k, v := range restored.All() {
		fmt.Println(k, v)
	}
	// Output:
	// changed keys: 2
	// alice 4
}

// A snapshot of a clone can be written while the origin keeps changing.
func ExampleStore_Clone() {
	s := state.NewStore(state.Int(), state.String())
	_ = s.Set(1, "one")
	frozen := s.Clone()
	_ = s.Set(1, "uno")
	_ = s.Set(2, "dos")

	v, _ := frozen.Get(1)
	fmt.Println(frozen.Len(), v)
	v, _ = s.Get(1)
	fmt.Println(s.Len(), v)
	// Output:
	// 1 one
	// 2 uno
}

func ExampleCodecFor() {
	type visit struct {
		Page  string
		Count int
	}
	ints := state.CodecFor[int64]() // the fast fixed-width codec
	b, _ := ints.Encode(-2)
	fmt.Printf("%x\n", b)

	visits := state.CodecFor[visit]() // gob, for anything that is not a basic type
	b, _ = visits.Encode(visit{Page: "/home", Count: 3})
	v, _ := visits.Decode(b)
	fmt.Printf("%+v\n", v)

	_, err := ints.Decode([]byte{1, 2})
	fmt.Println(err)
	// Output:
	// 7ffffffffffffffe
	// {Page:/home Count:3}
	// state: cannot decode value: int64 needs exactly 8 bytes, got 2
}

func ExampleAppendEncode() {
	buf := make([]byte, 0, 64)
	buf, _ = state.AppendEncode(state.String(), buf, "key")
	buf, _ = state.AppendEncode(state.Uint16(), buf, 513)
	fmt.Printf("%q\n", buf)
	// Output:
	// "key\x02\x01"
}

func ExampleWriteFile() {
	dir, err := os.MkdirTemp("", "checkpoint")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "commit-1")

	if err := state.WriteFile(state.OSFS{}, path, state.KindCommit, []byte("batch 1")); err != nil {
		fmt.Println(err)
		return
	}
	body, err := state.ReadFile(state.OSFS{}, path, state.KindCommit)
	fmt.Printf("%s %v\n", body, err)

	// Damage one byte: the checksum catches it.
	raw, _ := os.ReadFile(path)
	raw[18] ^= 1
	_ = os.WriteFile(path, raw, 0o600)
	_, err = state.ReadFile(state.OSFS{}, path, state.KindCommit)
	fmt.Println(errors.Is(err, state.ErrCorrupt))
	// Output:
	// batch 1 <nil>
	// true
}

func ExampleFaultFS() {
	dir, err := os.MkdirTemp("", "checkpoint")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	fsys := state.NewFaultFS(state.OSFS{})
	fsys.Arm(state.Fault{Op: state.OpSync, Err: syscall.ENOSPC})
	err = state.WriteFile(fsys, filepath.Join(dir, "commit-1"), state.KindCommit, []byte("batch 1"))
	fmt.Println(errors.Is(err, syscall.ENOSPC))

	entries, _ := os.ReadDir(dir)
	fmt.Println("files left:", len(entries))
	// Output:
	// true
	// files left: 0
}
