package exampleutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/topictest"
)

// withSink is goodBad with a SQL sink by default, which --member drops.
var withSink = func() Spec {
	s := goodBad
	s.SinkByDefault = true
	return s
}()

func TestParseFlagsMember(t *testing.T) {
	cfg, err := ParseFlags(withSink, []string{"--brokers", "a:9092", "--member", "a", "--save", "out/r", "--session-timeout", "10s", "--rebalance-timeout", "5s"}, nil)
	require.NoError(t, err)
	require.Equal(t, "a", cfg.Member)
	require.Equal(t, 10*time.Second, cfg.SessionTimeout)
	require.Equal(t, 5*time.Second, cfg.RebalanceTimeout)
	require.Empty(t, cfg.Checkpoint, "offsets live in the group: no checkpoint")
	require.Equal(t, filepath.Join("sluice-data", "goodbad", "member-a"), cfg.StateDir, "each member has a local state dir of its own")
	require.Empty(t, cfg.Sink, "the default SQL sink is dropped: it cannot join the member's transaction")
	require.Equal(t, "out/r-a", cfg.Save, "each member saves files of its own")
	require.Len(t, cfg.memberOptions(), 3)

	cfg, err = ParseFlags(withSink, []string{"--brokers", "a:9092", "--member", "b.1", "--sink", "kafka:results"}, nil)
	require.NoError(t, err)
	require.Equal(t, "kafka:results", cfg.Sink)
	require.Equal(t, DefaultSessionTimeout, cfg.SessionTimeout)
	require.Equal(t, DefaultRebalanceTimeout, cfg.RebalanceTimeout)

	cfg, err = ParseFlags(withSink, []string{"--brokers", "a:9092", "--member", "a", "--checkpoint", "state/a"}, nil)
	require.NoError(t, err)
	require.Empty(t, cfg.Checkpoint)
	require.Equal(t, "state/a", cfg.StateDir, "--checkpoint names the member's local state dir")

	cfg, err = ParseFlags(withSink, nil, nil)
	require.NoError(t, err)
	require.Empty(t, cfg.Member)
	require.Nil(t, cfg.memberOptions(), "single-process mode by default")
}

func TestParseFlagsMemberErrors(t *testing.T) {
	shared := []string{"--brokers", "a:9092", "--member", "a"}
	cases := []struct {
		name string
		spec Spec
		args []string
		want string
	}{
		{"embedded broker", withSink, []string{"--member", "a"},
			"--member needs a broker that every member shares, and the embedded broker lives in one process; start one with go run ./cmd/sluice-broker and pass its address with --brokers."},
		{"empty name", withSink, []string{"--brokers", "a:9092", "--member", ""}, "--member is empty; name this process, such as --member a, or drop the flag."},
		{"name with a slash", withSink, []string{"--brokers", "a:9092", "--member", "a/b"},
			`--member "a/b" holds characters other than letters, digits, '.', '_' and '-'; name this process such as --member a.`},
		{"session timeout alone", withSink, []string{"--brokers", "a:9092", "--session-timeout", "10s"},
			"--session-timeout applies to group mode; add --member NAME or drop the flag."},
		{"rebalance timeout alone", withSink, []string{"--brokers", "a:9092", "--rebalance-timeout", "10s"},
			"--rebalance-timeout applies to group mode; add --member NAME or drop the flag."},
		{"zero rebalance timeout", withSink, append(shared, "--rebalance-timeout", "0s"),
			"--rebalance-timeout 0s is not a positive whole number of milliseconds; pass a duration such as --rebalance-timeout 30s."},
		{"zero session timeout", withSink, append(shared, "--session-timeout", "0s"),
			"--session-timeout 0s is not a positive whole number of milliseconds; pass a duration such as --session-timeout 10s."},
		{"sub-millisecond session timeout", withSink, append(shared, "--session-timeout", "1500us"),
			"--session-timeout 1.5ms is not a positive whole number of milliseconds; pass a duration such as --session-timeout 10s."},
		{"session timeout not a duration", withSink, append(shared, "--session-timeout", "long"),
			`--session-timeout "long" is not a valid value; pass a duration such as 2s, 500ms or 1m.`},
		{"start offsets", withSink, append(shared, "--start-offsets", "earliest"),
			"--start-offsets does not apply with --member, where a task starts at the group's committed offsets, else at the partition's start; drop it (or set the group's offsets with kafka-consumer-groups)."},
		{"rollback", withSink, append(shared, "--rollback-on-corrupt"),
			"--rollback-on-corrupt concerns checkpoints, and with --member offsets live in the group and there is no checkpoint; drop the flag."},
		{"sqlite sink", withSink, append(shared, "--sink", "sqlite:r.db"),
			"--sink sqlite:r.db cannot join the member's Kafka transaction, which commits each batch's results with its offsets in group mode; with --member pass --sink kafka:TOPIC or no --sink."},
		{"postgres sink", withSink, append(shared, "--sink", "postgres://localhost/db"),
			"--sink postgres://localhost/db cannot join the member's Kafka transaction, which commits each batch's results with its offsets in group mode; with --member pass --sink kafka:TOPIC or no --sink."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFlags(c.spec, c.args, new(bytes.Buffer))
			var ue *UsageError
			require.True(t, errors.As(err, &ue), "%v", err)
			require.Equal(t, c.want, err.Error())
		})
	}
}

// TestRunMembers runs two members of one group at once against one broker,
// each writing its results into its own transaction with --sink kafka:,
// then one of them again: read committed, the sink holds one row per good
// input record, the saved files as many, the group's offsets are at the
// partitions' ends, and the member run again reads nothing.
func TestRunMembers(t *testing.T) {
	const records = 300
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, withSink.Topic))
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	addr := kc.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(withSink.Topic))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	good := 0
	for i := range records {
		v := "good"
		if i%5 == 0 {
			v = "bad"
		} else {
			good++
		}
		require.NoError(t, cl.ProduceSync(t.Context(), &kgo.Record{Key: strconv.AppendInt(nil, int64(i), 10), Value: []byte(v)}).FirstErr())
	}

	dir := t.TempDir()
	prefix := filepath.Join(dir, "out", "r")
	member := func(name string) (code int, stdout, stderr string, c *counting) {
		c = &counting{}
		var out, errOut bytes.Buffer
		code = Run(t.Context(), withSink, []string{"--brokers", addr, "--member", name, "--checkpoint", filepath.Join(dir, "state-"+name), "--http", "", "--batch", "100ms",
			"--stop-when-idle", "10", "--log-level", "error", "--save", prefix, "--sink", "kafka:results"}, &out, &errOut, c.build)
		return code, out.String(), errOut.String(), c
	}
	var wg sync.WaitGroup
	read := make([]int64, 2)
	for i, name := range []string{"a", "b"} {
		wg.Go(func() {
			code, out, stderr, c := member(name)
			require.Equal(t, ExitOK, code, "member %s: %s", name, stderr)
			require.Contains(t, out, fmt.Sprintf("as member %q of group %q", name, "sluice-goodbad"))
			require.Contains(t, out, "offsets in the group")
			require.Contains(t, out, "run it again with --member "+name+" to rejoin")
			read[i] = c.good.Load() + c.bad.Load()
		})
	}
	wg.Wait()
	t.Logf("member a read %d records, member b %d", read[0], read[1])
	require.Equal(t, int64(records), read[0]+read[1], "the two members read every record once between them")

	rows := topictest.ReadToEnd(t, []string{addr}, "results", true)
	require.Len(t, rows, good, "read committed, the sink holds one row per good record")
	saved := 0
	for _, name := range []string{"a", "b"} {
		files, err := filepath.Glob(prefix + "-" + name + "-*.jsonl")
		require.NoError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			saved += bytes.Count(b, []byte("\n"))
		}
	}
	require.Equal(t, good, saved, "the members' --save files hold one row per good record")

	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	committed, err := adm.FetchOffsets(ctx, "sluice-goodbad")
	require.NoError(t, err)
	ends, err := adm.ListEndOffsets(ctx, withSink.Topic)
	require.NoError(t, err)
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(o.Topic, o.Partition)
		require.True(t, ok, "the group committed partition %d", o.Partition)
		require.Equal(t, o.Offset, c.At, "the group's offset of partition %d is its end", o.Partition)
	})

	code, _, stderr, c := member("a")
	require.Equal(t, ExitOK, code, stderr)
	require.Zero(t, c.good.Load()+c.bad.Load(), "member a run again resumes at the group's offsets")
}
