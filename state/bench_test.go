package state

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// benchKeys returns n distinct string keys, the same on every call.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%09d", uint64(i)*2654435761%1_000_000_007)
	}
	return keys
}

// benchStore returns a store of n string keys with int64 values and no
// pending changes, and its keys.
func benchStore(b *testing.B, n int) (*Store[string, int64], []string) {
	b.Helper()
	keys := benchKeys(n)
	s := NewStore(String(), Int64())
	for i, k := range keys {
		if err := s.Set(k, int64(i)); err != nil {
			b.Fatal(err)
		}
	}
	s.ResetChanges()
	return s, keys
}

func BenchmarkStoreSet(b *testing.B) {
	b.Run("existing", func(b *testing.B) {
		base, keys := benchStore(b, 100_000)
		s := base.Clone()
		for i, k := range keys { // take ownership of every buffer first
			_ = s.Set(k, int64(i))
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.Set(keys[i%len(keys)], int64(i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sets/s")
	})
	b.Run("new", func(b *testing.B) {
		keys := benchKeys(1_000_000)
		s := NewStore(String(), Int64())
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == len(keys) {
				s = NewStore(String(), Int64())
				i = 0
			}
			if err := s.Set(keys[i], int64(i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sets/s")
	})
}

func BenchmarkStoreGet(b *testing.B) {
	s, keys := benchStore(b, 100_000)
	b.ReportAllocs()
	i := 0
	var sum int64
	for b.Loop() {
		v, ok := s.Get(keys[i%len(keys)])
		if !ok {
			b.Fatal("missing key")
		}
		sum += v
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}

// BenchmarkStoreWriteDelta writes a delta of the same 1,000 changed keys
// from stores of very different sizes: the cost must not follow store size.
func BenchmarkStoreWriteDelta(b *testing.B) {
	const changed = 1000
	for _, size := range []int{1000, 1_000_000} {
		b.Run(fmt.Sprintf("changed=%d/store=%d", changed, size), func(b *testing.B) {
			base, keys := benchStore(b, size)
			s := base.Clone()
			for i := range changed {
				_ = s.Set(keys[i*size/changed], int64(-i))
			}
			var buf bytes.Buffer
			if err := s.WriteDelta(&buf); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := s.WriteDelta(&buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*changed), "ns/key")
		})
	}
}

// BenchmarkStoreWriteDeltaRatio writes the delta of 1,000 changed keys from
// a 1,000-key and from a 1,000,000-key store in alternation and reports the
// ratio of their times, which is insensitive to load on the machine drifting
// during the run. A ratio near 1 means the cost does not follow store size.
func BenchmarkStoreWriteDeltaRatio(b *testing.B) {
	const changed = 1000
	var stores []*Store[string, int64]
	for _, size := range []int{1000, 1_000_000} {
		base, keys := benchStore(b, size)
		s := base.Clone()
		for i := range changed {
			_ = s.Set(keys[i*size/changed], int64(-i))
		}
		stores = append(stores, s)
	}
	var buf bytes.Buffer
	var spent [2]time.Duration
	b.ReportAllocs()
	for b.Loop() {
		for i, s := range stores {
			buf.Reset()
			start := time.Now()
			if err := s.WriteDelta(&buf); err != nil {
				b.Fatal(err)
			}
			spent[i] += time.Since(start)
		}
	}
	b.ReportMetric(float64(spent[0].Nanoseconds())/float64(b.N), "ns/small-delta")
	b.ReportMetric(float64(spent[1].Nanoseconds())/float64(b.N), "ns/large-delta")
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "large/small")
}

// BenchmarkStoreSnapshot writes and reads a snapshot of 1,000,000 keys.
func BenchmarkStoreSnapshot(b *testing.B) {
	const n = 1_000_000
	s, _ := benchStore(b, n)
	var snap bytes.Buffer
	if err := s.WriteSnapshot(&snap); err != nil {
		b.Fatal(err)
	}
	b.Run("write", func(b *testing.B) {
		b.SetBytes(int64(snap.Len()))
		b.ReportAllocs()
		for b.Loop() {
			if err := s.WriteSnapshot(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	b.Run("read", func(b *testing.B) {
		r := NewStore(String(), Int64())
		b.SetBytes(int64(snap.Len()))
		b.ReportAllocs()
		for b.Loop() {
			if err := r.ReadSnapshot(bytes.NewReader(snap.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
		if r.Len() != n {
			b.Fatalf("read %d keys, want %d", r.Len(), n)
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}

func BenchmarkCodecs(b *testing.B) {
	b.Run("Int64/AppendEncode+Decode", func(b *testing.B) {
		c := Int64()
		buf := make([]byte, 0, 8)
		b.ReportAllocs()
		var sum int64
		for b.Loop() {
			buf, _ = AppendEncode(c, buf[:0], sum+1)
			v, _ := c.Decode(buf)
			sum += v
		}
	})
	b.Run("String/AppendEncode", func(b *testing.B) {
		c := String()
		buf := make([]byte, 0, 64)
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = AppendEncode(c, buf[:0], "user-000012345")
		}
	})
	p := point{X: 1, Y: 2, Label: "home", Tags: map[string]int{"a": 1}}
	b.Run("JSON/Encode+Decode", func(b *testing.B) {
		c := JSON[point]()
		b.ReportAllocs()
		for b.Loop() {
			enc, _ := c.Encode(p)
			_, _ = c.Decode(enc)
		}
	})
	b.Run("Gob/Encode+Decode", func(b *testing.B) {
		c := Gob[point]()
		b.ReportAllocs()
		for b.Loop() {
			enc, _ := c.Encode(p)
			_, _ = c.Decode(enc)
		}
	})
}

// BenchmarkWriteFile measures a durable write (two fsyncs) of 1 MiB.
func BenchmarkWriteFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "snapshot")
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteFile(OSFS{}, path, KindSnapshot, body); err != nil {
			b.Fatal(err)
		}
	}
}
