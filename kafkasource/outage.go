package kafkasource

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
)

// outage follows whether the stream's broker requests are failing, so that
// an outage logs one WARN when it starts and one INFO when it ends, however
// many requests are retried meanwhile (each retry logs at DEBUG).
//
// An outage starts with the first failed request the stream retries, or
// with a failed connection kgo retries by itself (kgo.HookBrokerConnect), and
// ends with the first request that succeeds once no request is still
// retrying.
type outage struct {
	logger *slog.Logger
	active atomic.Bool // an outage is on: the success path checks it alone

	mu      sync.Mutex
	failing int       // requests between their first failure and their end
	since   time.Time // when the outage started
	retries int64     // requests retried during the outage
	closed  bool      // the client is closing: its connection errors are no outage
}

// failed records that a request to who, what, failed with err and is about
// to be retried; first says it is this request's first failure.
func (o *outage) failed(what, who string, err error, first bool, backoff time.Duration) {
	o.mu.Lock()
	if first {
		o.failing++
	}
	o.retries++
	start := !o.active.Load()
	if start {
		o.active.Store(true)
		o.since = time.Now()
		o.retries = 1
	}
	o.mu.Unlock()
	if start {
		o.logger.Warn("kafkasource: broker request failed; the stream retries until the broker answers (the retries log at DEBUG)",
			"op", what, "at", who, "error", err.Error())
		return
	}
	o.logger.Debug("kafkasource: broker request failed, retrying", "op", what, "at", who, "error", err.Error(), "backoff", backoff)
}

// ended records the end of a request that failed before (retried is true)
// or not, with ok saying whether it succeeded at last.
func (o *outage) ended(what, who string, retried, ok bool) {
	if !retried && !o.active.Load() {
		return
	}
	o.mu.Lock()
	if retried {
		o.failing--
	}
	end := ok && o.failing == 0 && o.active.Load()
	var d time.Duration
	var n int64
	if end {
		o.active.Store(false)
		d, n = time.Since(o.since), o.retries
	}
	o.mu.Unlock()
	if end {
		o.logger.Info("kafkasource: broker recovered", "op", what, "at", who,
			"outage", d.Round(time.Millisecond), "retried_requests", n)
	}
}

// connectFailed starts an outage on a connection to a broker that failed,
// which kgo retries by itself within some requests.
func (o *outage) connectFailed(meta kgo.BrokerMetadata, err error) {
	o.mu.Lock()
	skip := o.closed || o.active.Load() || errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed)
	if !skip {
		o.active.Store(true)
		o.since = time.Now()
		o.retries = 0
	}
	o.mu.Unlock()
	if !skip {
		o.logger.Warn("kafkasource: connecting to a broker failed; the stream retries until the broker answers (the retries log at DEBUG)",
			"at", brokerLabel(meta), "error", err.Error())
	}
}

func (o *outage) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

// brokerLabel names a broker as kclient.brokerName does; a seed broker,
// whose id kgo makes up until metadata names it, is "seed broker".
func brokerLabel(meta kgo.BrokerMetadata) string {
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	if meta.NodeID < 0 {
		return "seed broker (" + addr + ")"
	}
	return "broker " + strconv.Itoa(int(meta.NodeID)) + " (" + addr + ")"
}

// connectHook passes kgo's connection failures to an outage.
type connectHook struct{ o *outage }

func (h connectHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.o.connectFailed(meta, err)
	}
}

var _ kgo.HookBrokerConnect = connectHook{}
