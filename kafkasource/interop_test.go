package kafkasource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/dstream"
)

// kcatRun runs kcat with args and stdin, returning its standard output;
// a failure reports kcat's standard error.
func kcatRun(t *testing.T, ctx context.Context, kcat, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, kcat, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("kcat %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
	}
	require.NoError(t, err, "kcat %s", strings.Join(args, " "))
	return string(out)
}

// TestDirectStreamKcatInterop has kcat (librdkafka) produce to the embedded
// broker, reads the records with a Sluice job and checks, with kcat and
// kadm, what the job committed.
func TestDirectStreamKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed, so the kcat interop test cannot run; install it (Debian: apt-get install kcat)")
	}
	const topic, partitions, n, group = "kcat-interop", 4, 10_000, "sluice-interop"
	b := startBroker(t, map[string]int32{topic: partitions})
	broker := b.e.Addrs()[0]
	ctx := bounded(t)

	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "key-%d:value-%d\n", i, i)
	}
	kcatRun(t, ctx, kcat, in.String(), "-P", "-b", broker, "-t", topic, "-K:")

	c := newEngine(t)
	// Capped so that the job takes several batches.
	s := b.stream(t, c, []string{topic}, WithGroup(group), WithRateLimits(RateLimits{MaxRatePerPartition: 1000}))
	seen := make(map[string]int, n)
	dstream.ForEachBatch(s, func(_ context.Context, bt dstream.Batch[Record]) error {
		for r := range bt.All() {
			require.Equal(t, strings.Replace(string(r.Key), "key", "value", 1), string(r.Value))
			seen[string(r.Key)]++
		}
		return nil
	})
	for len(seen) < n {
		require.NoError(t, c.RunBatches(ctx, 1))
	}
	require.NoError(t, c.RunBatches(ctx, 1)) // nothing more arrives
	require.Len(t, seen, n)
	for i := range n {
		require.Equal(t, 1, seen["key-"+strconv.Itoa(i)], "record key-%d read once", i)
	}

	t.Run("kcat -L sees the topic", func(t *testing.T) {
		var md struct {
			Topics []struct {
				Topic      string `json:"topic"`
				Partitions []struct {
					Partition int32 `json:"partition"`
				} `json:"partitions"`
			} `json:"topics"`
		}
		require.NoError(t, json.Unmarshal([]byte(kcatRun(t, ctx, kcat, "", "-L", "-J", "-b", broker, "-t", topic)), &md))
		require.Len(t, md.Topics, 1)
		require.Equal(t, topic, md.Topics[0].Topic)
		require.Len(t, md.Topics[0].Partitions, partitions)
	})

	t.Run("kcat -Q offsets sum to the records produced, and the group committed them all", func(t *testing.T) {
		args := []string{"-Q", "-b", broker}
		for p := range partitions {
			args = append(args, "-t", fmt.Sprintf("%s:%d:-1", topic, p)) // -1: the end of the log
		}
		out := kcatRun(t, ctx, kcat, "", args...)
		line := regexp.MustCompile(regexp.QuoteMeta(topic) + ` \[(\d+)\] offset (\d+)`)
		matches := line.FindAllStringSubmatch(out, -1)
		require.Len(t, matches, partitions, "kcat -Q printed %q", out)
		committed, err := b.adm.FetchOffsets(ctx, group)
		require.NoError(t, err)
		var total int64
		for _, m := range matches {
			p, _ := strconv.Atoi(m[1])
			end, _ := strconv.ParseInt(m[2], 10, 64)
			total += end
			o, ok := committed.Lookup(topic, int32(p))
			require.True(t, ok, "partition %d committed", p)
			require.Equal(t, end, o.At, "partition %d: the group's offset is the log end kcat sees", p)
		}
		require.Equal(t, int64(n), total)
	})
}
