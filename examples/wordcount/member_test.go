package main

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
)

// TestMember runs wordcount as member a of its group (--member) against a
// stand-alone sluice-broker, with a window longer than the run: the
// words go through the repartition topic sluice-wordcount-words-repartition
// (the default group, sluice-wordcount, and the stream's name), and the
// window and the totals it saves last count every word of the input once.
// --sink kafka: holds, read committed, every row the --save files hold,
// and a second run under its name resumes at the group's offsets and
// reads nothing.
func TestMember(t *testing.T) {
	seed := exampletest.Seed(t)
	rnd := rand.New(rand.NewPCG(seed, seed^0x7763))
	gen := newGenerator()
	truth := map[string]int64{}
	var keys, values [][]byte
	for range 400 {
		k, v := gen.Next(rnd)
		keys, values = append(keys, k), append(values, v)
		for _, w := range Words(string(v)) {
			truth[w]++
		}
	}
	addr := exampletest.StartBroker(t, "words", 2)
	exampletest.Produce(t, addr, "words", keys, values)
	bin := exampletest.Build(t, "./examples/wordcount")
	prefix := filepath.Join(t.TempDir(), "out", "wc")
	args := []string{"--brokers", addr, "--member", "a", "--save", prefix, "--sink", "kafka:wc",
		"--batch", "100ms", "--window", "10m", "--slide", "100ms", "--max-rate-per-partition", "1000",
		"--stop-when-idle", "3", "--http", ""}

	exampletest.RunMember(t, bin, "sluice-wordcount", args...)

	for _, kind := range []string{"", "totals"} {
		got := map[string][]int64{}
		for _, r := range exampletest.ReadJSONLines[wordCount](t, exampletest.Newest(t, prefix+"-a", kind)) {
			got[r.Word] = append(got[r.Word], r.Count)
		}
		exampletest.RequireCounts(t, "the newest --save file of kind "+kind, truth, got)
	}
	for _, kind := range []string{"", "totals"} {
		exampletest.RequireSinkHoldsSaved(t, addr, strings.TrimSuffix("wc-"+kind, "-"), prefix+"-a", kind)
	}
	repartition := exampletest.RepartitionTopic("sluice-wordcount", "words")
	st := exampletest.CheckRepartition(t, exampletest.Repartition{
		Addr: addr, Topic: repartition, Partitions: 2, Consumers: []string{"batch-counts", "window-counts"},
		Decode: decodeCount, Want: truth,
	})
	t.Logf("%s: %d records read committed for %d words", repartition, st.Committed, len(truth))

	exampletest.RequireMemberResumes(t, bin, args...)
}

// decodeCount decodes a consumer's payload in a record of the repartition
// topic of the words, the window's and the batch counts' alike: a count, a
// zig-zag varint.
func decodeCount(_ string, payload []byte) (int64, error) { return exampletest.ZigZag(payload) }

// TestMemberRepartitionTopicOfAnotherShape checks that a repartition topic
// left with another partition count than the input's (by a run on
// another input) stops the member at start, exit status 1, with one
// sentence naming the topic and the fix.
func TestMemberRepartitionTopicOfAnotherShape(t *testing.T) {
	addr := exampletest.StartBrokerArgs(t, "--topic", "words:2", "--topic", "sluice-wordcount-words-repartition:3")
	bin := exampletest.Build(t, "./examples/wordcount")
	p := exampletest.Start(t, bin, "--brokers", addr, "--member", "a", "--checkpoint", t.TempDir(), "--batch", "100ms", "--http", "")
	p.Wait(t, 30*time.Second)
	require.Equal(t, 1, p.Cmd.ProcessState.ExitCode())
	require.Equal(t, []string{`wordcount: kafkasource: the repartition topic "sluice-wordcount-words-repartition" has 3 partitions but the job has 2 tasks (the input topics' partitions); delete the topic, and the exchanged records not read yet with it, or give the input topics 3 partitions`},
		p.StderrExceptLateBatches())
}
