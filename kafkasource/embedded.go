package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Errors of the embedded broker.
var (
	// ErrEmbeddedOption reports an [EmbeddedOption] with a bad value.
	ErrEmbeddedOption = errors.New("kafkasource: invalid embedded broker option")
	// ErrEmbeddedClosed reports a call on an [Embedded] after Close.
	ErrEmbeddedClosed = errors.New("kafkasource: embedded broker is closed")
	// ErrTopicPartitions reports a topic that exists with a partition count
	// other than the one asked for.
	ErrTopicPartitions = errors.New("kafkasource: topic exists with a different partition count")
	// ErrEmbeddedPersist reports that the embedded broker could not save its
	// state to its data dir.
	ErrEmbeddedPersist = errors.New("kafkasource: embedded broker could not save its data dir")
)

// DefaultEmbeddedListen is the address [StartEmbedded] listens on unless
// [EmbeddedListen] says otherwise: loopback, a port chosen by the system.
const DefaultEmbeddedListen = "127.0.0.1:0"

// EmbeddedOption configures [StartEmbedded].
type EmbeddedOption func(*embeddedConfig)

type embeddedConfig struct {
	listen     string
	topics     []embeddedTopic
	dataDir    string
	syncWrites bool
	logger     *slog.Logger
}

type embeddedTopic struct {
	name       string
	partitions int32
}

// EmbeddedListen sets the host:port the broker listens on, overriding the
// default [DefaultEmbeddedListen]. Port 0 picks a free port; [Embedded.Addrs]
// reports the one chosen. The broker advertises the address it listens on,
// so use a loopback or otherwise reachable host, not 0.0.0.0.
func EmbeddedListen(addr string) EmbeddedOption {
	return func(c *embeddedConfig) { c.listen = addr }
}

// EmbeddedTopic creates topic name with the given number of partitions when
// the broker starts, unless it already exists with that count (from the data
// dir); a different count fails [StartEmbedded] with [ErrTopicPartitions].
// Repeat the option for more topics; none are created by default.
func EmbeddedTopic(name string, partitions int32) EmbeddedOption {
	return func(c *embeddedConfig) { c.topics = append(c.topics, embeddedTopic{name, partitions}) }
}

// EmbeddedDataDir keeps the broker's state (topics, record log, group
// offsets, producer IDs) in dir, overriding the default of memory only. The
// log is appended as records arrive and everything is saved on
// [Embedded.Close], so a broker started later on the same dir finds its
// topics and records. One broker at a time may use a dir. Without
// [EmbeddedSyncWrites], records reach the disk through the page cache: they
// survive the process being killed, not the machine crashing.
func EmbeddedDataDir(dir string) EmbeddedOption {
	return func(c *embeddedConfig) { c.dataDir = dir }
}

// EmbeddedSyncWrites makes the broker fsync every batch it appends to the log
// in its [EmbeddedDataDir], overriding the default of syncing only when a log
// segment rolls and on Close. It trades produce throughput for durability
// across machine crashes.
func EmbeddedSyncWrites() EmbeddedOption {
	return func(c *embeddedConfig) { c.syncWrites = true }
}

// EmbeddedLogger sets where the broker logs, overriding the default of
// discarding logs. The broker's own start, stop and topic messages are at
// info level, kfake's request and group traces at debug level.
func EmbeddedLogger(l *slog.Logger) EmbeddedOption {
	return func(c *embeddedConfig) { c.logger = l }
}

// Embedded is a single-broker Kafka cluster running in this process, speaking
// the Kafka wire protocol on a loopback address. Its methods are safe for
// concurrent use.
type Embedded struct {
	cluster *kfake.Cluster
	addrs   []string
	logger  *slog.Logger
	sink    *kfakeLogger

	mu       sync.RWMutex // held for reading while using cluster
	closed   bool
	closeErr error
}

// StartEmbedded starts an embedded broker and creates the topics of its
// [EmbeddedTopic] options. By default it listens on [DefaultEmbeddedListen],
// keeps its data in memory and discards its logs. The caller must Close it.
func StartEmbedded(opts ...EmbeddedOption) (*Embedded, error) {
	cfg := embeddedConfig{listen: DefaultEmbeddedListen}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return nil, fmt.Errorf("kafkasource: embedded broker cannot listen on %s: %w; pick a free port or port 0", cfg.listen, err)
	}
	sink := &kfakeLogger{logger: logger}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("sluice-embedded"),
		kfake.WithLogger(sink),
		kfake.ListenFn(listenOnce(ln)),
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
		if cfg.syncWrites {
			kopts = append(kopts, kfake.SyncWrites())
		}
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		ln.Close()
		if cfg.dataDir != "" {
			return nil, fmt.Errorf("kafkasource: embedded broker cannot start on data dir %s: %w; repair or remove the dir", cfg.dataDir, err)
		}
		return nil, fmt.Errorf("kafkasource: embedded broker cannot start: %w", err)
	}
	e := &Embedded{
		cluster: cluster,
		addrs:   []string{ln.Addr().String()},
		logger:  logger,
		sink:    sink,
	}
	for _, t := range cfg.topics {
		if err := e.CreateTopic(context.Background(), t.name, t.partitions); err != nil {
			return nil, errors.Join(err, e.Close())
		}
	}
	logger.Info("embedded Kafka broker started", "addrs", e.addrs, "data_dir", cfg.dataDir)
	return e, nil
}

// listenOnce returns a kfake ListenFn whose first call yields ln, opened on
// the address the caller chose (kfake itself always asks for 127.0.0.1), and
// whose later calls, from nodes added through Cluster, listen as asked.
func listenOnce(ln net.Listener) func(network, address string) (net.Listener, error) {
	var once sync.Once
	return func(network, address string) (net.Listener, error) {
		first := false
		once.Do(func() { first = true })
		if first {
			return ln, nil
		}
		return net.Listen(network, address)
	}
}

func (c *embeddedConfig) validate() error {
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		return fmt.Errorf("%w: listen address %q is not host:port (%v); use e.g. %s", ErrEmbeddedOption, c.listen, err, DefaultEmbeddedListen)
	}
	for _, t := range c.topics {
		if err := checkTopic(t.name, t.partitions); err != nil {
			return err
		}
	}
	if c.syncWrites && c.dataDir == "" {
		return fmt.Errorf("%w: sync writes need a data dir; add EmbeddedDataDir or drop EmbeddedSyncWrites", ErrEmbeddedOption)
	}
	return nil
}

func checkTopic(name string, partitions int32) error {
	if name == "" {
		return fmt.Errorf("%w: topic name is empty; name the topic", ErrEmbeddedOption)
	}
	if partitions < 1 {
		return fmt.Errorf("%w: topic %q has %d partitions; ask for at least 1", ErrEmbeddedOption, name, partitions)
	}
	return nil
}

// Addrs returns the broker's host:port seed addresses, for kgo.SeedBrokers
// or kcat -b. They stay the same for the broker's life.
func (e *Embedded) Addrs() []string {
	return append([]string(nil), e.addrs...)
}

// CreateTopic creates topic name with the given number of partitions. It
// returns nil if the topic already exists with that many partitions, and an
// error wrapping [ErrTopicPartitions] if it exists with another count. ctx is
// checked before the broker is asked; the creation itself is quick and not
// interruptible.
func (e *Embedded) CreateTopic(ctx context.Context, name string, partitions int32) error {
	if err := checkTopic(name, partitions); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrEmbeddedClosed
	}
	err := e.cluster.CreateTopic(name, partitions, nil)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		if have := int32(len(e.cluster.PartitionInfos(name))); have != partitions {
			return fmt.Errorf("%w: topic %q has %s, not %d; ask for %d or use a fresh data dir",
				ErrTopicPartitions, name, plural(int64(have), "partition", "partitions"), partitions, have)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("kafkasource: embedded broker cannot create topic %q: %w", name, err)
	}
	e.logger.Info("embedded Kafka broker created topic", "topic", name, "partitions", partitions)
	return nil
}

// Cluster returns the underlying kfake cluster, for tests that need its
// control hooks (ControlKey, faults). Do not call it after Close: kfake's
// methods block on a closed cluster.
func (e *Embedded) Cluster() *kfake.Cluster { return e.cluster }

// Close stops the broker: it closes the listener and client connections and,
// with a data dir, saves the broker's state there. It waits for no client.
// Later calls return the first call's result.
func (e *Embedded) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return e.closeErr
	}
	e.closed = true
	e.sink.startRecordingErrors()
	e.cluster.Close()
	if msgs := e.sink.recordedErrors(); len(msgs) > 0 {
		e.closeErr = fmt.Errorf("%w: %s", ErrEmbeddedPersist, strings.Join(msgs, "; "))
	}
	e.logger.Info("embedded Kafka broker stopped", "addrs", e.addrs)
	return e.closeErr
}

// kfakeLogger sends kfake's log lines to a *slog.Logger and, while the
// cluster closes, keeps its errors: kfake reports a failed save only by
// logging it.
type kfakeLogger struct {
	logger *slog.Logger

	mu        sync.Mutex
	recording bool
	errs      []string
}

var _ kfake.Logger = (*kfakeLogger)(nil)

func (l *kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo, kfake.LogLevelDebug:
		// kfake's info lines trace requests and group members: debug
		// detail for a Sluice user.
		sl = slog.LevelDebug
	default:
		return
	}
	recording := false
	if level == kfake.LogLevelError {
		l.mu.Lock()
		recording = l.recording
		l.mu.Unlock()
	}
	if !recording && !l.logger.Enabled(context.Background(), sl) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if recording {
		l.mu.Lock()
		l.errs = append(l.errs, msg)
		l.mu.Unlock()
	}
	l.logger.Log(context.Background(), sl, msg, "component", "kfake")
}

func (l *kfakeLogger) startRecordingErrors() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recording = true
}

func (l *kfakeLogger) recordedErrors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}
