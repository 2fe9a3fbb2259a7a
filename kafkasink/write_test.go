package kafkasink

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/engine"
)

// TestWriteTxnDeadLetters writes a stream whose encode rejects negative
// numbers: they land on the dead-letter topic, the job goes on, and the
// rest reach the output topic, read_committed.
func TestWriteTxnDeadLetters(t *testing.T) {
	seeds := cluster(t)
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)), engine.WithJobName("dl"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := dstream.Queue(c, [][]int{{1, -2, 3}, {4, -5}})
	encode := func(n int) (*kgo.Record, error) {
		if n < 0 {
			return nil, errors.New("negative")
		}
		return &kgo.Record{Topic: "out", Key: []byte("k"), Value: []byte(strconv.Itoa(n))}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sink, err := WriteTxn(ctx, in, Config{Brokers: seeds, Sink: "s", DeadLetterTopic: "dead"}, encode)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RunBatches(ctx, 2); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, seeds, "out", true)
	slices.Sort(got)
	if want := []string{"1", "3", "4"}; !slices.Equal(got, want) {
		t.Fatalf("out = %v; want %v", got, want)
	}
	dead := readAll(t, seeds, "dead", true)
	slices.Sort(dead)
	if want := []string{"-2", "-5"}; !slices.Equal(dead, want) {
		t.Fatalf("dead = %v; want %v", dead, want)
	}
	if st := sink.Stats(); st.Records != 3 || st.DeadLetters != 2 || st.Failures != 0 {
		t.Fatalf("Stats = %+v; want 3 records, 2 dead letters, no failures", st)
	}
	if m := sink.Metrics(); m[0].Name != "sink_records_total" || m[0].Value != 3 || m[0].Labels["sink"] != "s" {
		t.Fatalf("Metrics()[0] = %+v", m[0])
	}
}

func TestWriteTxnWantsJobName(t *testing.T) {
	c, err := engine.NewContext(time.Second, engine.WithManualClock(time.Unix(1000, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := dstream.Queue(c, [][]int{{1}})
	_, err = WriteTxn(context.Background(), in, Config{Brokers: []string{"127.0.0.1:1"}, Sink: "s"},
		func(int) (*kgo.Record, error) { return nil, nil })
	if err == nil || !strings.Contains(err.Error(), "engine.WithJobName") {
		t.Fatalf("WriteTxn without a job name = %v; want a sentence naming engine.WithJobName", err)
	}
}
