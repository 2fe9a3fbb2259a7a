package main

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
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

	exampletest.RunMember(t, bin, "sluice-ipcount", args...)

	got := map[string][]int64{}
	for _, r := range exampletest.ReadJSONLines[ipCount](t, exampletest.Newest(t, prefix+"-a", "")) {
		got[r.IP] = append(got[r.IP], r.Count)
	}
	exampletest.RequireCounts(t, "the newest --save file", truth, got)
	exampletest.RequireSinkHoldsSaved(t, addr, "ipc", prefix+"-a", "")
	repartition := exampletest.RepartitionTopic("sluice-ipcount", "requests")
	st := exampletest.CheckRepartition(t, exampletest.Repartition{
		Addr: addr, Topic: repartition, Partitions: 2, Consumers: []string{"ip-counts"},
		Decode: decodeCount, Want: truth,
	})
	t.Logf("%s: %d records read committed for %d addresses", repartition, st.Committed, len(truth))

	exampletest.RequireMemberResumes(t, bin, args...)
}

// decodeCount decodes the window's payload in a record of the repartition
// topic of the requests: a count, as a zig-zag varint.
func decodeCount(_ string, payload []byte) (int64, error) { return exampletest.ZigZag(payload) }
