package exampletest

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStderrExceptLateBatches drops the engine's late-batch warning, as a
// job stopped by the machine for longer than its batch interval prints it,
// and keeps every other line, warnings included.
func TestStderrExceptLateBatches(t *testing.T) {
	late := `time=2026-12-04T20:13:19.411Z level=WARN msg="batches run late: this batch started more than one batch interval after its time; the job is behind (batches take longer than the interval, or the machine is overloaded)" time_ms=1796415198800 scheduling_delay=611ms batch_interval=200ms`
	other := `time=2026-12-04T20:13:19.500Z level=WARN msg="cannot encode a result row; skipped it" key=pageX`
	quoted := `time=2026-12-04T20:13:19.600Z level=ERROR msg="batch failed" error="batches run late: "`
	cases := []struct {
		name, stderr string
		want         []string
	}{
		{"empty", "", nil},
		{"only the late-batch warning", late + "\n", nil},
		{"other lines kept, in order", other + "\n" + late + "\n" + quoted + "\n", []string{other, quoted}},
		{"no final newline", late + "\n" + other, []string{other}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &Proc{Stderr: bytes.NewBufferString(c.stderr)}
			require.Equal(t, c.want, p.StderrExceptLateBatches())
		})
	}
}

// TestParseRaw reads kcat's "%p %o %K %S\n%k%s" output: null keys and
// values, and bytes kcat's text format cannot carry (newlines, tabs).
func TestParseRaw(t *testing.T) {
	out := []byte("0 0 -1 5\nnokey" + "1 7 2 3\nk1v\n\t" + "1 8 0 -1\n")
	recs, err := parseRaw(out)
	require.NoError(t, err)
	require.Equal(t, []RawRecord{
		{Partition: 0, Offset: 0, Value: []byte("nokey")},
		{Partition: 1, Offset: 7, Key: []byte("k1"), Value: []byte("v\n\t")},
		{Partition: 1, Offset: 8, Key: []byte{}},
	}, recs)
	for _, bad := range []string{"0 0 2 1\nk", "0 0 -1\nv", "0 x -1 1\nv", "0 0 -1 1"} {
		_, err := parseRaw([]byte(bad))
		require.Error(t, err, "%q", bad)
	}
}

// TestRepartitionValue splits values built by hand to the format: version
// 1, then per consumer by ascending name its FNV-32a hash, big-endian, the
// payload's uvarint length and the payload.
func TestRepartitionValue(t *testing.T) {
	section := func(name string, payload ...byte) []byte {
		h := ConsumerHash(name)
		return append([]byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h), byte(len(payload))}, payload...)
	}
	require.Equal(t, uint32(0x811c9dc5), ConsumerHash(""), "FNV-32a's offset basis")
	require.Equal(t, uint32(0xe40c292c), ConsumerHash("a"))
	consumers := []string{"window-counts", "totals"}
	v := append(append([]byte{1}, section("totals", 0x06)...), section("window-counts", 0x06)...)
	got, err := RepartitionValue(v, consumers)
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"totals": {0x06}, "window-counts": {0x06}}, got)
	n, err := ZigZag(got["totals"])
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	n, err = ZigZag([]byte{0x03})
	require.NoError(t, err)
	require.Equal(t, int64(-2), n)

	got, err = RepartitionValue(append([]byte{1}, section("window-counts", 0xac, 0x02)...), consumers)
	require.NoError(t, err)
	n, err = ZigZag(got["window-counts"])
	require.NoError(t, err)
	require.Equal(t, int64(150), n)

	for name, bad := range map[string][]byte{
		"empty":           {},
		"version 2":       append([]byte{2}, section("totals", 0x06)...),
		"no section":      {1},
		"unknown":         append([]byte{1}, section("other", 0x06)...),
		"out of order":    append(append([]byte{1}, section("window-counts", 0x06)...), section("totals", 0x06)...),
		"twice":           append(append([]byte{1}, section("totals", 0x06)...), section("totals", 0x06)...),
		"cut short":       append([]byte{1}, section("totals", 0x06, 0x07)[:6]...),
		"hash cut short":  {1, 0xe4, 0x0c},
		"length too long": append([]byte{1}, append(section("totals")[:4], 0x09, 0x06)...),
	} {
		_, err := RepartitionValue(bad, consumers)
		require.Error(t, err, name)
	}
	vs, err := ZigZagList([]byte{3, 1, 0x02, 2, 0xac, 0x02, 1, 0x01})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 150, -1}, vs)
	vs, err = ZigZagList([]byte{0})
	require.NoError(t, err)
	require.Empty(t, vs)
	for name, bad := range map[string][]byte{
		"empty": {}, "count too high": {2, 1, 0x02}, "value cut short": {1, 2, 0xac},
		"two varints in a value": {1, 2, 0x02, 0x02}, "bytes after": {1, 1, 0x02, 0x00},
	} {
		_, err := ZigZagList(bad)
		require.Error(t, err, name)
	}
	_, err = ZigZag([]byte{0x06, 0x00})
	require.Error(t, err, "two varints")
	_, err = ZigZag([]byte{0x80})
	require.Error(t, err, "a varint cut short")
}
