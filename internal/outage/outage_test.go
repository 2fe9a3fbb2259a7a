package outage

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/internal/logtest"
)

// levels returns the level and message of each record.
func levels(h *logtest.Records) []string {
	var out []string
	for _, r := range h.Snapshot() {
		out = append(out, r.Level.String()+" "+r.Message)
	}
	return out
}

// TestOutageEndsWhenNoRequestRetries has two requests fail and retry: the
// first failure logs the WARN, and the INFO waits for the second request
// to end too, then names the last broker and counts the retries.
func TestOutageEndsWhenNoRequestRetries(t *testing.T) {
	h := logtest.NewRecords()
	o := New(slog.New(h), "kafkasource", "the stream")
	down := errors.New("broker down")
	o.Failed("fetch", "broker 1", down, true, time.Millisecond)
	o.Failed("list offsets", "broker 2", down, true, time.Millisecond)
	o.Failed("fetch", "broker 1", down, false, time.Millisecond)
	o.Ended("fetch", "broker 1", true, true)
	o.Ended("metadata", "broker 1", false, true) // a request that never failed
	require.Equal(t, []string{"WARN kafkasource: broker request failed; the stream retries until the broker answers (the retries log at DEBUG)"}, levels(h),
		"no INFO while list offsets still retries")
	o.Ended("list offsets", "broker 2", true, true)
	recs := h.Snapshot()
	require.Len(t, recs, 2)
	require.Equal(t, "INFO kafkasource: broker recovered", levels(h)[1])
	a := logtest.Attrs(recs[1])
	require.Equal(t, "broker 2", a["at"].String())
	require.Equal(t, int64(3), a["retried_requests"].Int64())

	o.Ended("fetch", "broker 1", false, true)
	require.Len(t, h.Snapshot(), 2, "the outage is over: a request that succeeds logs nothing")
}

// TestHookOutageEndsWithSucceeded feeds kgo's hooks a failed connection
// and failed requests, as a producer's client reports them: one WARN, no
// INFO until the caller's work succeeds, and nothing for the errors of a
// client that closes.
func TestHookOutageEndsWithSucceeded(t *testing.T) {
	h := logtest.NewRecords()
	o := New(slog.New(h), "kafkasink", "the producer")
	hooks := o.Hooks()
	meta := kgo.BrokerMetadata{NodeID: 0, Host: "127.0.0.1", Port: 9092}
	o.Succeeded("write batch")
	hooks.(kgo.HookBrokerConnect).OnBrokerConnect(meta, 0, nil, errors.New("connection refused"))
	hooks.(kgo.HookBrokerE2E).OnBrokerE2E(meta, kmsg.Produce.Int16(), kgo.BrokerE2E{ReadErr: errors.New("EOF")})
	hooks.(kgo.HookBrokerE2E).OnBrokerE2E(meta, kmsg.Metadata.Int16(), kgo.BrokerE2E{})
	require.Len(t, h.Snapshot(), 1, "one WARN; a request that succeeds does not end a producer's outage")
	require.Equal(t, "WARN kafkasink: connecting to a broker failed; the producer retries until the broker answers (the retries log at DEBUG)", levels(h)[0])
	require.Equal(t, "broker 0 (127.0.0.1:9092)", logtest.Attrs(h.Snapshot()[0])["at"].String())

	o.Succeeded("write batch")
	require.Equal(t, "INFO kafkasink: broker recovered", levels(h)[1])
	a := logtest.Attrs(h.Snapshot()[1])
	require.Equal(t, "write batch", a["op"].String())
	require.Equal(t, "broker 0 (127.0.0.1:9092)", a["at"].String())

	o.Close()
	hooks.(kgo.HookBrokerE2E).OnBrokerE2E(meta, kmsg.Produce.Int16(), kgo.BrokerE2E{ReadErr: net.ErrClosed})
	hooks.(kgo.HookBrokerConnect).OnBrokerConnect(meta, 0, nil, errors.New("connection refused"))
	require.Len(t, h.Snapshot(), 2, "a closing client's errors are no outage")

	var none *Log
	none.Succeeded("write batch") // a sink without a logger
	none.Close()
}

func TestBrokerLabel(t *testing.T) {
	require.Equal(t, "seed broker ([::1]:9092)", BrokerLabel(kgo.BrokerMetadata{NodeID: -2147483648, Host: "::1", Port: 9092}))
	require.Equal(t, "broker 3 (h:1)", BrokerLabel(kgo.BrokerMetadata{NodeID: 3, Host: "h", Port: 1}))
}
