package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
)

// The scale-out test runs ipcount as several processes, members of one
// consumer group (--member), against a stand-alone sluice-broker: log
// lines are produced with kcat, the requests go through the repartition
// topic ipcount-requests-repartition (group ipcount, stream "requests"),
// and the window's rows are read from the --sink kafka: topic with kcat,
// read committed, and compared with counts taken here from the input topic
// as kcat reads it back.

// Shape of the scale-out run.
const (
	soPartitions = 6
	soInput      = "access-log"
	soGroup      = "ipcount"
	soOutput     = "requests-by-ip"
	soClients    = 90
)

// soExchange is the repartition topic of the requests.
var soExchange = exampletest.RepartitionTopic(soGroup, "requests")

// soClient returns the i-th client address: IPv4 from a documentation
// range, one in three an IPv6 address written in full, which counts under
// its canonical form.
func soClient(i int) (written, canonical string) {
	if i%3 == 2 {
		a := fmt.Sprintf("2001:0db8:0000:0000:0000:0000:0000:%04x", i)
		return a, netip.MustParseAddr(a).String()
	}
	a := "198.51.100." + strconv.Itoa(i)
	return a, a
}

// soLogLine is one line of the input: the fields ipcount does not read, and
// client_real_ip when ip is not empty.
type soLogLine struct {
	Request      string `json:"request"`
	Status       int    `json:"status"`
	ClientRealIP string `json:"client_real_ip,omitempty"`
}

// soLogs writes n access-log lines to the input with kcat, each with a key
// of its own: most with the address of a random client, one in ten
// without client_real_ip (a health check), one in fifty cut short. It
// returns how many requests each client made, by canonical address.
func soLogs(s *exampletest.ScaleOut, n int, seq *int) map[string]int64 {
	count := map[string]int64{}
	keys, values := make([][]byte, n), make([][]byte, n)
	for i := range n {
		l := soLogLine{Request: "GET /healthz HTTP/1.1", Status: 200}
		whole := s.Rng.IntN(50) != 0
		if s.Rng.IntN(10) != 0 {
			ip, canonical := soClient(s.Rng.IntN(soClients))
			l = soLogLine{Request: "GET /items/" + strconv.Itoa(s.Rng.IntN(1000)) + " HTTP/1.1", Status: 200, ClientRealIP: ip}
			if whole {
				count[canonical]++
			}
		}
		v, err := json.Marshal(l)
		require.NoError(s.T, err)
		if !whole {
			v = v[:len(v)-2]
		}
		*seq++
		keys[i], values[i] = []byte("req-"+strconv.Itoa(*seq)), v
	}
	exampletest.Produce(s.T, s.Addr, soInput, keys, values)
	return count
}

// soTruth reads the input back with kcat and counts the requests of each
// client_real_ip, by canonical address, in the lines that are JSON objects;
// they must be the requests written.
func soTruth(s *exampletest.ScaleOut, in *exampletest.Tally) map[string]int64 {
	return s.ReadBack(in, "requests", func(value string, counts map[string]int64) {
		var l soLogLine
		if json.Unmarshal([]byte(value), &l) != nil || l.ClientRealIP == "" {
			return
		}
		counts[netip.MustParseAddr(l.ClientRealIP).String()]++
	})
}

// countRow decodes a row of the output topic, {"ip":…,"count":…}.
func countRow(value string) (string, int64, error) {
	var r ipCount
	err := json.Unmarshal([]byte(value), &r)
	return r.IP, r.Count, err
}

// TestScaleOutKill9: three members, then a fourth, one of them killed with
// SIGKILL at a random moment 12 times (restarted at once, or after the
// next kill) while more lines arrive, with a window longer than the run:
// read committed, the final window equals the requests of each address in
// the input, and the repartition topic holds every address in the
// partition of its hash, its counts summing to the input's, once (read uncommitted, the records of the
// killed members' aborted transactions too, which would count twice).
func TestScaleOutKill9(t *testing.T) {
	s := exampletest.NewScaleOut(t, "./examples/ipcount", soInput, soPartitions, soGroup)
	in := exampletest.NewTally(func(n int, seq *int) map[string]int64 { return soLogs(s, n, seq) })
	in.Write(3000)
	// A 10-minute window, longer than the run, sliding every 500ms.
	g := s.Members(60, "--sink", "kafka:"+soOutput, "--window", "10m", "--slide", "500ms")
	marks := s.KillNine(g, in, 1000, soExchange, soOutput)

	want := soTruth(s, in)
	exampletest.RequireCounts(t, "the window's rows after the input was all read", want, s.FinalCounts(soOutput, marks[soOutput], countRow))
	st := exampletest.CheckRepartition(t, exampletest.Repartition{
		Addr: s.Addr, Topic: soExchange, Partitions: soPartitions, Consumers: []string{"ip-counts"},
		Decode: decodeCount, Want: want,
	})
	t.Logf("%d lines, %d requests from %d addresses; %s: %d records read committed, %d read uncommitted (%d aborted, holding %d requests)",
		in.Records, exampletest.Sum(want), len(want), soExchange, st.Committed, st.Uncommitted, st.Uncommitted-st.Committed, st.Aborted["ip-counts"])
}
