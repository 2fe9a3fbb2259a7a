// Package keyhash hashes comparable keys without boxing or reflection on the
// hot path, so keyed operators can partition records by key.
package keyhash

import (
	"hash/maphash"
	"math"
	"unsafe"
)

// For returns a hash function for keys of type K, chosen once. Strings,
// float64, bools and the integer types but uintptr hash with fixed
// functions, so a key lands in the same partition in every process; other
// comparable types (float32 and uintptr among them) use
// [maphash.Comparable] with a seed chosen at each call of For, so only the
// function one call returns hashes such a key the same way twice.
func For[K comparable]() func(K) uint64 {
	var zero K
	switch any(zero).(type) {
	case string:
		return func(k K) uint64 { return String(*(*string)(unsafe.Pointer(&k))) }
	case int:
		return func(k K) uint64 { return Mix(uint64(*(*int)(unsafe.Pointer(&k)))) }
	case int64:
		return func(k K) uint64 { return Mix(uint64(*(*int64)(unsafe.Pointer(&k)))) }
	case int32:
		return func(k K) uint64 { return Mix(uint64(*(*int32)(unsafe.Pointer(&k)))) }
	case int16:
		return func(k K) uint64 { return Mix(uint64(*(*int16)(unsafe.Pointer(&k)))) }
	case int8:
		return func(k K) uint64 { return Mix(uint64(*(*int8)(unsafe.Pointer(&k)))) }
	case uint:
		return func(k K) uint64 { return Mix(uint64(*(*uint)(unsafe.Pointer(&k)))) }
	case uint64:
		return func(k K) uint64 { return Mix(*(*uint64)(unsafe.Pointer(&k))) }
	case uint32:
		return func(k K) uint64 { return Mix(uint64(*(*uint32)(unsafe.Pointer(&k)))) }
	case uint16:
		return func(k K) uint64 { return Mix(uint64(*(*uint16)(unsafe.Pointer(&k)))) }
	case uint8:
		return func(k K) uint64 { return Mix(uint64(*(*uint8)(unsafe.Pointer(&k)))) }
	case float64:
		return func(k K) uint64 { return Mix(floatBits(*(*float64)(unsafe.Pointer(&k)))) }
	case bool:
		return func(k K) uint64 {
			if *(*bool)(unsafe.Pointer(&k)) {
				return Mix(1)
			}
			return Mix(0)
		}
	}
	seed := maphash.MakeSeed()
	return func(k K) uint64 { return maphash.Comparable(seed, k) }
}

// Stable reports whether [For] hashes keys of type K with a fixed function,
// the same in every process: strings, float64, bools and the integer types
// but uintptr.
func Stable[K comparable]() bool {
	var zero K
	switch any(zero).(type) {
	case string, int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8, float64, bool:
		return true
	}
	return false
}

func floatBits(f float64) uint64 {
	if f == 0 {
		return 0 // +0 and -0 are equal keys
	}
	return math.Float64bits(f)
}

// Mix is the splitmix64 finaliser: a fast, well-spread hash of an integer.
func Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// String hashes s with FNV-1a, 8 bytes at a time, finished with [Mix].
func String(s string) uint64 {
	const prime = 0x100000001b3
	h := uint64(0xcbf29ce484222325) ^ uint64(len(s))
	for len(s) >= 8 {
		v := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		h = (h ^ v) * prime
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * prime
	}
	return Mix(h)
}

// Partition maps a hash to one of n partitions.
func Partition(h uint64, n int) int {
	return int((h >> 1) % uint64(n))
}
