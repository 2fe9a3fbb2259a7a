// Package state holds the keyed state of stateful stream operators and writes
// it to disk durably: typed codecs, an ordered copy-on-write key-value store
// with snapshot and delta encodings, and the atomic, checksummed file
// primitives that checkpoints are built from.
//
// # Codecs
//
// State is bytes at rest and typed at the edge. A [Codec] converts values of
// one type to bytes and back. [String], [Bytes], [Bool] and the integer and
// float codecs are fast, reflection-free and implement the [Appender] fast
// path; integer and float encodings sort (bytes.Compare) in numeric order.
// [JSON] and [Gob] handle structs. [CodecFor] picks the fast codec for a
// basic type and Gob for anything else.
//
// # Stores
//
// A [Store] is an ordered map (a B-tree) from keys to encoded values. It
// remembers which keys changed since the last [Store.ResetChanges], so a
// checkpoint writes a delta whose cost follows the number of changed keys,
// not the size of the state ([Store.WriteDelta]); a full snapshot
// ([Store.WriteSnapshot]) can be written from an O(1) copy-on-write
// [Store.Clone] while processing goes on. [Store.ReadSnapshot] and
// [Store.ApplyDelta] restore a store and reject malformed input with errors
// matching [ErrCorrupt].
//
// # Durable files
//
// [WriteFile] writes a file so that a crash at any instant leaves either the
// old file or the complete new one under its name: temporary file, header,
// body, CRC32C, fsync, rename, directory fsync. [ReadFile] verifies all of it
// and reports damage as a [*CorruptError]. Files go through the [FS]
// interface: [OSFS] is the real filesystem and [FaultFS] injects errors such
// as a full disk for tests. [LockDir] keeps two jobs from sharing a
// checkpoint directory, and [RemoveTemps] clears what interrupted writes
// left behind.
package state
