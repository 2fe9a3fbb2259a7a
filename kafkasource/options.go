package kafkasource

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrOption reports an [Option] with a bad value. [NewDirectStream]
// returns it wrapped, with the option named.
var ErrOption = errors.New("kafkasource: invalid option")

// Defaults of [NewDirectStream]'s options.
const (
	// DefaultBroker is the seed broker used when no [WithBrokers] option
	// is given, the same as kgo's default.
	DefaultBroker = "127.0.0.1:9092"
	// DefaultRetryTimeout bounds how long one batch retries a failing
	// broker; see [WithRetryTimeout].
	DefaultRetryTimeout = 30 * time.Second
	// DefaultFetchMaxBytes is the most bytes one fetch request asks a
	// broker for; see [WithFetchMaxBytes].
	DefaultFetchMaxBytes = 8 << 20
)

// ResetPolicy says where a partition without a position starts: one the
// checkpoint, [WithStartOffsets] and the group's committed offsets all leave
// unset.
type ResetPolicy int

const (
	// Latest starts at the end of the partition: only records produced
	// after the stream starts are read. It is the default, as Kafka's
	// auto.offset.reset and Spark's direct stream default to latest:
	// reading a topic's whole history must be asked for.
	Latest ResetPolicy = iota
	// Earliest starts at the oldest record the partition still holds.
	Earliest
)

// String returns "latest" or "earliest".
func (p ResetPolicy) String() string {
	switch p {
	case Latest:
		return "latest"
	case Earliest:
		return "earliest"
	}
	return fmt.Sprintf("ResetPolicy(%d)", int(p))
}

// Option configures [NewDirectStream]. Options are applied in order and
// validated once; a bad value makes NewDirectStream return an error wrapping
// [ErrOption].
type Option func(*config) error

type config struct {
	brokers       []string
	group         string
	ignoreGroup   bool // WithGroupOffsets(false)
	regex         bool
	partitions    []TopicPartition
	start         map[TopicPartition]int64
	reset         ResetPolicy
	limits        RateLimits
	backpressure  bool
	initialRate   float64
	pid           [4]float64 // proportional, integral, derivative, min rate
	retryTimeout  time.Duration
	fatalDataLoss bool
	fetchMaxBytes int32
	clientOpts    []kgo.Opt
	logger        *slog.Logger
	groupMode     bool                   // AsMember
	memberName    string                 // AsMember: this process's name within the job
	groupOpts     []kgo.Opt              // WithMemberOptions: overrides of the membership's options
	memberOpts    bool                   // WithMemberOptions was given
	groupRevoking func([]TopicPartition) // tests: see member.revoking
	stateDir      string                 // withStateDir

	regexps []*regexp.Regexp // compiled topics, with WithTopicRegex
}

func defaultConfig() config {
	return config{
		brokers:       []string{DefaultBroker},
		reset:         Latest,
		pid:           [4]float64{DefaultPIDProportional, DefaultPIDIntegral, DefaultPIDDerivative, DefaultPIDMinRate},
		retryTimeout:  DefaultRetryTimeout,
		fetchMaxBytes: DefaultFetchMaxBytes,
		logger:        slog.New(slog.DiscardHandler),
	}
}

func optErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrOption}, args...)...)
}

// WithBrokers sets the seed brokers, host:port each, overriding the default
// [DefaultBroker]. The client discovers the rest of the cluster from them.
func WithBrokers(seeds ...string) Option {
	return func(c *config) error {
		if len(seeds) == 0 {
			return optErr("WithBrokers got no address; pass host:port seeds")
		}
		for _, s := range seeds {
			if s == "" {
				return optErr("WithBrokers got an empty address; pass host:port seeds")
			}
		}
		c.brokers = append([]string(nil), seeds...)
		return nil
	}
}

// WithGroup names the consumer group the stream commits its offsets to after
// every batch, so that lag tools (kcat, Burrow, kadm) see its progress, and
// whose committed offsets are starting offsets (after the checkpoint's and
// [WithStartOffsets]'). The stream never joins the group: it commits as a
// simple consumer, so the group must have no active members. By default there
// is no group and nothing is committed to Kafka.
func WithGroup(id string) Option {
	return func(c *config) error {
		if id == "" {
			return optErr("WithGroup got an empty group id; name the group or drop the option")
		}
		c.group = id
		return nil
	}
}

// WithGroupOffsets sets whether partitions without a checkpoint position or
// start offset ([WithStartOffsets]) start at the committed offsets of the
// [WithGroup] group, overriding the default true. With false they start as
// [WithResetPolicy] says, whatever the group holds; the stream still
// commits its offsets to the group after every batch.
func WithGroupOffsets(use bool) Option {
	return func(c *config) error {
		c.ignoreGroup = !use
		return nil
	}
}

// WithTopicRegex makes the topics given to [NewDirectStream] regular
// expressions (Go syntax, matched against whole topic names) instead of
// names, like kgo.ConsumeRegex. Every batch subscribes to all matching topics
// that exist then; a topic that appears later is read from its start. The
// default is exact names.
func WithTopicRegex() Option {
	return func(c *config) error {
		c.regex = true
		return nil
	}
}

// WithPartitions reads exactly the given partitions (Spark's Assign strategy)
// in addition to the topics given to [NewDirectStream], which may then be
// empty. Partitions of these topics added later are not picked up, unlike
// those of subscribed topics.
func WithPartitions(tps ...TopicPartition) Option {
	return func(c *config) error {
		for _, tp := range tps {
			if tp.Topic == "" || tp.Partition < 0 {
				return optErr("WithPartitions got %v; name a topic and a partition >= 0", tp)
			}
		}
		c.partitions = append(c.partitions, tps...)
		return nil
	}
}

// WithStartOffsets sets where partitions start when the checkpoint holds no
// position for them; they take precedence over the group's committed offsets
// and the reset policy. Offsets must be >= 0. Offsets of partitions the
// stream does not read are ignored.
func WithStartOffsets(offsets map[TopicPartition]int64) Option {
	return func(c *config) error {
		if c.start == nil {
			c.start = make(map[TopicPartition]int64, len(offsets))
		}
		for tp, off := range offsets {
			if off < 0 {
				return optErr("WithStartOffsets has offset %d for %s[%d]; pass an offset >= 0", off, tp.Topic, tp.Partition)
			}
			c.start[tp] = off
		}
		return nil
	}
}

// WithResetPolicy sets where a partition starts when nothing else says
// (no checkpoint position, start offset or group offset), overriding the
// default [Latest]. Partitions added to a topic while the stream runs always
// start at their earliest offset.
func WithResetPolicy(p ResetPolicy) Option {
	return func(c *config) error {
		if p != Latest && p != Earliest {
			return optErr("WithResetPolicy got %v; pass Latest or Earliest", p)
		}
		c.reset = p
		return nil
	}
}

// WithRateLimits bounds the records each partition contributes to a batch,
// as Spark's spark.streaming.kafka.maxRatePerPartition and
// minRatePerPartition do; see [MaxMessagesPerPartition]. The default, the
// zero RateLimits, is no maximum.
func WithRateLimits(l RateLimits) Option {
	return func(c *config) error {
		if l.MaxRatePerPartition < 0 {
			return optErr("MaxRatePerPartition is %d; pass 0 (unlimited) or more", l.MaxRatePerPartition)
		}
		for tp, r := range l.MaxRateOverrides {
			if r < 0 {
				return optErr("MaxRateOverrides has rate %d for %s[%d]; pass 0 or more", r, tp.Topic, tp.Partition)
			}
		}
		c.limits = l
		return nil
	}
}

// WithBackpressure turns backpressure on or off (default off), as Spark's
// spark.streaming.backpressure.enabled: a PID controller ([WithPID]) fed
// with every completed batch's processing time sets the rate of the next
// batches, so that batches finish within the batch interval.
func WithBackpressure(on bool) Option {
	return func(c *config) error {
		c.backpressure = on
		return nil
	}
}

// WithInitialRate bounds the batches that run, with backpressure on, before
// the controller has its first estimate, in records/s for the whole stream
// (Spark's spark.streaming.backpressure.initialRate). The default, 0, leaves
// them unbounded except by [WithRateLimits].
func WithInitialRate(recordsPerSecond float64) Option {
	return func(c *config) error {
		if !(recordsPerSecond >= 0) || math.IsInf(recordsPerSecond, 0) {
			return optErr("WithInitialRate got %v; pass a finite rate >= 0", recordsPerSecond)
		}
		c.initialRate = recordsPerSecond
		return nil
	}
}

// WithPID sets the backpressure controller's gains and minimum rate,
// overriding Spark's defaults 1.0, 0.2, 0.0 and 100 records/s (see
// [NewPIDRateEstimator]). Gains must be >= 0 and minRate > 0.
func WithPID(proportional, integral, derivative, minRate float64) Option {
	return func(c *config) error {
		for _, g := range []float64{proportional, integral, derivative} {
			if !(g >= 0) || math.IsInf(g, 0) {
				return optErr("WithPID gain %v is not a finite number >= 0", g)
			}
		}
		if !(minRate > 0) || math.IsInf(minRate, 0) {
			return optErr("WithPID minimum rate %v is not a finite number > 0", minRate)
		}
		c.pid = [4]float64{proportional, integral, derivative, minRate}
		return nil
	}
}

// WithRetryTimeout bounds how long a batch retries a failing broker
// (connection errors, leader changes, timeouts) before the batch fails,
// overriding the default [DefaultRetryTimeout]. Retries back off
// exponentially from 20 ms to 1 s. A broker that recovers within the timeout
// costs the batch time, never a record.
func WithRetryTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return optErr("WithRetryTimeout got %v; pass a positive duration", d)
		}
		c.retryTimeout = d
		return nil
	}
}

// WithFatalOnDataLoss makes a batch fail when records the stream should read
// are gone (deleted by retention or DeleteRecords), instead of the default:
// skipping to the oldest record left with a warning and counting the loss in
// [Stats].LostRecords.
func WithFatalOnDataLoss(fatal bool) Option {
	return func(c *config) error {
		c.fatalDataLoss = fatal
		return nil
	}
}

// WithFetchMaxBytes bounds the bytes one fetch request asks for, overriding
// the default [DefaultFetchMaxBytes]. Each request is sized to what is left
// of its offset range (from the record sizes seen so far) up to this bound;
// a broker still returns a whole record batch larger than it.
func WithFetchMaxBytes(n int32) Option {
	return func(c *config) error {
		if n < 1<<10 {
			return optErr("WithFetchMaxBytes got %d; pass at least 1024", n)
		}
		c.fetchMaxBytes = n
		return nil
	}
}

// WithClientOpts passes options to the kgo client the stream uses for
// metadata, offsets, fetches and group commits (TLS, SASL, client id,
// timeouts). Seed brokers are better given with [WithBrokers]. Consumer
// options (ConsumeTopics, ConsumePartitions, ConsumeRegex, ConsumerGroup)
// are an error: the stream issues its own fetches and never polls.
func WithClientOpts(opts ...kgo.Opt) Option {
	return func(c *config) error {
		c.clientOpts = append(c.clientOpts, opts...)
		return nil
	}
}

// WithLogger sets where the stream logs (warnings about lost records, retried
// broker errors, failed group commits), overriding the default that discards
// everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return optErr("WithLogger got a nil logger; pass a *slog.Logger")
		}
		c.logger = l
		return nil
	}
}

// validate checks what no single option can.
func (c *config) validate(topics []string) error {
	if len(topics) == 0 && len(c.partitions) == 0 {
		return optErr("no topics and no WithPartitions; name at least one topic")
	}
	for _, t := range topics {
		if t == "" {
			return optErr("a topic name is empty; name every topic")
		}
		if c.regex {
			re, err := regexp.Compile("^(?:" + t + ")$")
			if err != nil {
				return optErr("topic pattern %q does not compile: %v", t, err)
			}
			c.regexps = append(c.regexps, re)
		}
	}
	if c.initialRate > 0 && !c.backpressure {
		return optErr("WithInitialRate needs backpressure; add WithBackpressure(true) or drop the initial rate")
	}
	return nil
}
