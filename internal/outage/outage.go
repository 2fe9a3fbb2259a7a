// Package outage logs the outages of the brokers a Kafka client talks to:
// one WARN when requests start failing, one INFO when the brokers answer
// again, however many requests are retried meanwhile (each retry logs at
// DEBUG). The Kafka source and the Kafka sinks share it.
//
// A [Log] learns of failures two ways. A caller that retries requests
// itself (the source) reports them with [Log.Failed] and [Log.Ended]. A
// client that kgo retries by itself (the sinks' producers) reports its
// failed connections and requests through [Log.Hooks], and its caller says
// when the work those requests were for succeeded, with [Log.Succeeded].
package outage

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Log follows whether a client's broker requests are failing. It is safe
// for concurrent use.
//
// An outage starts with the first failed request, or with a failed
// connection. It ends with the first request that succeeds (Ended, or
// Succeeded) once no request reported with Failed is still retrying. A
// producer's outage ends with the write that succeeds rather than with its
// first request that does: kgo keeps a connection per kind of request, and
// each, stale after a broker restart, fails once when next used.
type Log struct {
	logger  *slog.Logger
	pkg     string      // prefix of the messages: "kafkasource"
	retrier string      // who retries: "the stream"
	active  atomic.Bool // an outage is on: the success path checks it alone

	mu      sync.Mutex
	failing int       // requests between their first failure (Failed) and their end (Ended)
	since   time.Time // when the outage started
	at      string    // the broker of the outage's last failure
	retries int64     // requests retried during the outage
	closed  bool      // the client is closing: its connection errors are no outage
}

// New returns a Log writing to logger, its messages prefixed with pkg
// ("kafkasource") and naming retrier as who retries ("the stream").
func New(logger *slog.Logger, pkg, retrier string) *Log {
	return &Log{logger: logger, pkg: pkg, retrier: retrier}
}

// Failed records that a request to who, what, failed with err and is about
// to be retried after backoff; first says it is this request's first
// failure.
func (o *Log) Failed(what, who string, err error, first bool, backoff time.Duration) {
	o.mu.Lock()
	if first {
		o.failing++
	}
	start := o.begin(who)
	o.mu.Unlock()
	o.logFailure(start, what, who, err, backoff)
}

// Ended records the end of a request that failed before (retried is true)
// or not, with ok saying whether it succeeded at last.
func (o *Log) Ended(what, who string, retried, ok bool) {
	if !retried && !o.active.Load() {
		return
	}
	o.mu.Lock()
	if retried {
		o.failing--
	}
	end := ok && o.failing == 0 && o.active.Load()
	d, n := o.finish(end)
	o.mu.Unlock()
	if end {
		o.logRecovery(what, who, d, n)
	}
}

// Succeeded records that what, the work of requests kgo retries by itself
// (reported through Hooks), succeeded: it ends an outage. A nil Log does
// nothing.
func (o *Log) Succeeded(what string) {
	if o == nil || !o.active.Load() {
		return
	}
	o.mu.Lock()
	end := o.failing == 0 && o.active.Load()
	at := o.at
	d, n := o.finish(end)
	o.mu.Unlock()
	if end {
		o.logRecovery(what, at, d, n)
	}
}

// begin counts a retry of a request to who and starts an outage if none is
// on, reporting whether it did. o.mu is held.
func (o *Log) begin(who string) bool {
	o.retries++
	o.at = who
	if o.active.Load() {
		return false
	}
	o.active.Store(true)
	o.since = time.Now()
	o.retries = 1
	return true
}

// finish ends the outage when end is true, returning its duration and
// retries. o.mu is held.
func (o *Log) finish(end bool) (time.Duration, int64) {
	if !end {
		return 0, 0
	}
	o.active.Store(false)
	return time.Since(o.since), o.retries
}

func (o *Log) logFailure(start bool, what, who string, err error, backoff time.Duration) {
	if start {
		o.logger.Warn(o.pkg+": broker request failed; "+o.retrier+" retries until the broker answers (the retries log at DEBUG)",
			"op", what, "at", who, "error", err.Error())
		return
	}
	if backoff == 0 { // kgo's own retry: its backoff is kgo's
		o.logger.Debug(o.pkg+": broker request failed, retrying", "op", what, "at", who, "error", err.Error())
		return
	}
	o.logger.Debug(o.pkg+": broker request failed, retrying", "op", what, "at", who, "error", err.Error(), "backoff", backoff)
}

func (o *Log) logRecovery(what, who string, d time.Duration, n int64) {
	o.logger.Info(o.pkg+": broker recovered", "op", what, "at", who,
		"outage", d.Round(time.Millisecond), "retried_requests", n)
}

// connectFailed starts an outage on a connection to a broker that failed,
// which kgo retries by itself within some requests.
func (o *Log) connectFailed(meta kgo.BrokerMetadata, err error) {
	o.mu.Lock()
	skip := o.closed || o.active.Load() || quiet(err)
	if !skip {
		o.active.Store(true)
		o.since = time.Now()
		o.retries = 0
		o.at = BrokerLabel(meta)
	}
	o.mu.Unlock()
	if !skip {
		o.logger.Warn(o.pkg+": connecting to a broker failed; "+o.retrier+" retries until the broker answers (the retries log at DEBUG)",
			"at", BrokerLabel(meta), "error", err.Error())
	}
}

// requestFailed records a request kgo failed to write to a broker or to
// read the answer of, and retries.
func (o *Log) requestFailed(meta kgo.BrokerMetadata, key int16, err error) {
	who := BrokerLabel(meta)
	o.mu.Lock()
	if o.closed || quiet(err) {
		o.mu.Unlock()
		return
	}
	start := o.begin(who)
	o.mu.Unlock()
	o.logFailure(start, kmsg.NameForKey(key), who, err, 0)
}

// quiet reports the errors of a client or a request being given up on,
// which are no outage.
func quiet(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) || errors.Is(err, kgo.ErrClientClosed)
}

// Close says the client is closing: its connections' errors are no outage.
// Closing a nil Log does nothing.
func (o *Log) Close() {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

// BrokerLabel names a broker as the source's messages do: "broker 1
// (host:port)"; a seed broker, whose id kgo makes up until metadata names
// it, is "seed broker (host:port)".
func BrokerLabel(meta kgo.BrokerMetadata) string {
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	if meta.NodeID < 0 {
		return "seed broker (" + addr + ")"
	}
	return "broker " + strconv.Itoa(int(meta.NodeID)) + " (" + addr + ")"
}

// ConnectHook returns a kgo hook passing the client's failed connections to
// o, for a client whose caller reports its requests with Failed and Ended.
func (o *Log) ConnectHook() kgo.Hook { return connectHook{o} }

// Hooks returns a kgo hook passing the client's failed connections and
// requests to o, for a client that kgo retries by itself, whose caller
// reports with Succeeded.
func (o *Log) Hooks() kgo.Hook { return requestHook{connectHook{o}} }

type connectHook struct{ o *Log }

func (h connectHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.o.connectFailed(meta, err)
	}
}

type requestHook struct{ connectHook }

func (h requestHook) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if err := e2e.Err(); err != nil {
		h.o.requestFailed(meta, key, err)
	}
}

var (
	_ kgo.HookBrokerConnect = connectHook{}
	_ kgo.HookBrokerConnect = requestHook{}
	_ kgo.HookBrokerE2E     = requestHook{}
)
