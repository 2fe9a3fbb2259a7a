package main

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
	"github.com/sluicehq/sluice/internal/topictest"
)

// TestMember runs ipcount as member a of its group (--member) against a
// stand-alone sluice-broker, with a window longer than the run: the
// requests go through the repartition topic
// sluice-ipcount-requests-repartition (the default group, sluice-ipcount,
// and the stream's name), and the window it saves last counts every
// request of the input once. --sink kafka: holds, read committed, every row
// the --save files hold, and a second run under its name resumes at the
// group's offsets and reads nothing.
func TestMember(t *testing.T) {
	seed := exampletest.Seed(t)
	rnd := rand.New(rand.NewPCG(seed, seed^0x6970))
	gen := newGenerator()
	truth := map[string]int64{}
	var values [][]byte
	for range 600 {
		_, v := gen.Next(rnd)
		values = append(values, v)
		if ip, ok, err := ClientIP(v); err == nil && ok {
			truth[ip]++
		}
	}
	addr := exampletest.StartBroker(t, "access-log", 2)
	exampletest.Produce(t, addr, "access-log", nil, values)
	bin := exampletest.Build(t, "./examples/ipcount")
	prefix := filepath.Join(t.TempDir(), "out", "ipc")
	args := []string{"--brokers", addr, "--member", "a", "--save", prefix, "--sink", "kafka:ipc",
		"--batch", "100ms", "--window", "10m", "--slide", "100ms", "--max-rate-per-partition", "1000",
		"--stop-when-idle", "3", "--http", ""}

	p := exampletest.Start(t, bin, args...)
	out := p.Wait(t, 60*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Contains(t, out[0], `as member "a" of group "sluice-ipcount"`)
	require.Contains(t, out[len(out)-1], "run it again with --member a to rejoin")

	got := map[string][]int64{}
	for _, r := range exampletest.ReadJSONLines[ipCount](t, exampletest.Newest(t, prefix+"-a", "")) {
		got[r.IP] = append(got[r.IP], r.Count)
	}
	exampletest.RequireCounts(t, "the newest --save file", truth, got)
	var saved int
	for _, rows := range exampletest.SavedRows(t, prefix+"-a", "") {
		saved += len(rows)
	}
	require.Len(t, topictest.ReadToEnd(t, []string{addr}, "ipc", true), saved,
		"read committed, --sink kafka:ipc holds one record per row of the --save files")
	repartition := exampletest.RepartitionTopic("sluice-ipcount", "requests")
	st := exampletest.CheckRepartition(t, exampletest.Repartition{
		Addr: addr, Topic: repartition, Partitions: 2, Consumers: []string{"ip-counts"},
		Decode: decodeCount, Want: truth,
	})
	t.Logf("%s: %d records read committed for %d addresses", repartition, st.Committed, len(truth))

	p = exampletest.Start(t, bin, args...)
	out = p.Wait(t, 60*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Regexp(t, `stopped \(the topic stayed drained for 3 batches\) after \d+ batches and 0 records`, out[len(out)-1],
		"run again, member a resumes at the group's offsets:\n%s", strings.Join(out, "\n"))
}

// decodeCount decodes the window's payload in a record of the repartition
// topic of the requests: a count, as a zig-zag varint.
func decodeCount(_ string, payload []byte) (int64, error) { return exampletest.ZigZag(payload) }
