package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/httpaddr"
	"github.com/sluicehq/sluice/kafkasource"
)

const name = "sluice-broker"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the broker could not start or could not save its data
	exitUsage   = 2 // a bad flag or argument
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, stop, os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a bad flag or argument, told in one sentence.
type usageError struct{ sentence string }

func (e *usageError) Error() string { return e.sentence }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// config is what the flags ask for.
type config struct {
	listen  string
	topics  topicsFlag
	dataDir string
	http    string
	// minSession is the shortest session timeout a consumer group member
	// may ask for.
	minSession time.Duration
}

// defaultMinSession is --group-min-session-timeout's default, Kafka's
// group.min.session.timeout.ms default.
const defaultMinSession = 6 * time.Second

// topicsFlag collects repeated --topic name:partitions flags in order.
type topicsFlag struct {
	list []topicSpec
	err  error // the last Set error, kept whole: package flag rewords it
}

type topicSpec struct {
	name       string
	partitions int32
}

func (t topicSpec) String() string { return fmt.Sprintf("%s:%d", t.name, t.partitions) }

func (f *topicsFlag) String() string {
	if f == nil {
		return ""
	}
	parts := make([]string, len(f.list))
	for i, t := range f.list {
		parts[i] = t.String()
	}
	return strings.Join(parts, " ")
}

func (f *topicsFlag) Set(v string) error {
	f.err = f.set(v)
	return f.err
}

func (f *topicsFlag) set(v string) error {
	topic, count, ok := strings.Cut(v, ":")
	switch {
	case !ok:
		return usagef("--topic %q needs a partition count; write it as --topic %s:8.", v, v)
	case topic == "":
		return usagef("--topic %q has no topic name; write it as --topic words%s.", v, v)
	}
	n, err := strconv.ParseInt(count, 10, 32)
	if err != nil || n < 1 {
		return usagef("--topic %q needs a whole number of partitions of at least 1 after the colon, as in --topic %s:8.", v, topic)
	}
	for _, t := range f.list {
		if t.name == topic && t.partitions != int32(n) {
			return usagef("--topic %s is given twice, with %d and %d partitions; keep one of them.", topic, t.partitions, n)
		}
	}
	f.list = append(f.list, topicSpec{topic, int32(n)})
	return nil
}

// parseFlags reads args into a config. Errors are *usageError, or
// flag.ErrHelp for -h.
func parseFlags(args []string, usageOut io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:9092", "`host:port` to listen on; port 0 picks a free port")
	fs.Var(&cfg.topics, "topic", "topic to create, as `name:partitions` (repeatable); an existing topic must have that count")
	fs.StringVar(&cfg.dataDir, "data-dir", "", "`dir` keeping the broker's topics and records across restarts (default: memory only)")
	fs.DurationVar(&cfg.minSession, "group-min-session-timeout", defaultMinSession, "shortest session `timeout` a consumer group member may ask for (Kafka's group.min.session.timeout.ms); lower it to let members of a test job be declared dead within a second")
	fs.StringVar(&cfg.http, "http", httpaddr.Default, "serve a status page of topics, offsets and group lag, /metrics for Prometheus and /debug/pprof/ on `host:port`; when the port is taken, the next free one; empty: none")
	// Package flag calls Usage on every error; print it only for -h.
	fs.Usage = func() {}
	usage := func() {
		fmt.Fprintf(usageOut, "Usage: %s [--listen host:port] [--topic name:partitions]... [--data-dir dir] [--group-min-session-timeout d] [--http host:port]\n\n", name)
		fmt.Fprintf(usageOut, "Runs an in-process Kafka broker until SIGINT or SIGTERM.\n\n")
		fs.SetOutput(usageOut)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return cfg, err
		}
		if cfg.topics.err != nil {
			return cfg, cfg.topics.err
		}
		return cfg, flagError(err)
	}
	if fs.NArg() > 0 {
		return cfg, usagef("unexpected argument %q; every setting is a flag, see %s -h.", fs.Arg(0), name)
	}
	if err := checkListen(cfg.listen); err != nil {
		return cfg, err
	}
	if cfg.minSession <= 0 || cfg.minSession%time.Millisecond != 0 {
		return cfg, usagef("--group-min-session-timeout %v is not a positive whole number of milliseconds; pass a duration such as --group-min-session-timeout 500ms.", cfg.minSession)
	}
	if err := httpaddr.Check(cfg.http); err != nil {
		return cfg, usagef("%s", err)
	}
	if cfg.dataDir != "" {
		if fi, err := os.Stat(cfg.dataDir); err == nil && !fi.IsDir() {
			return cfg, usagef("--data-dir %s is a file, not a directory; name a directory, new or used before by %s.", cfg.dataDir, name)
		}
	}
	return cfg, nil
}

// flagError rewords package flag's parse errors as one plain sentence.
func flagError(err error) error {
	msg := err.Error()
	if flagName, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return usagef("unknown flag --%s; run %s -h for the flags it takes.", strings.TrimLeft(flagName, "-"), name)
	}
	if flagName, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return usagef("flag --%s needs a value; run %s -h for its form.", strings.TrimLeft(flagName, "-"), name)
	}
	return usagef("%s; run %s -h for the flags it takes.", msg, name)
}

func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--listen %q is not host:port; write it as --listen 127.0.0.1:9092.", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return usagef("--listen %q has no valid port; use a number from 0 to 65535, as in --listen %s:9092.", addr, host)
	}
	return nil
}

// run runs the broker until ctx is done and returns the exit status. stop is
// called once ctx is done, so that a second signal ends the process at once.
func run(ctx context.Context, stop func(), args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := []kafkasource.EmbeddedOption{kafkasource.EmbeddedListen(cfg.listen), kafkasource.EmbeddedLogger(logger)}
	for _, t := range cfg.topics.list {
		opts = append(opts, kafkasource.EmbeddedTopic(t.name, t.partitions))
	}
	if cfg.dataDir != "" {
		opts = append(opts, kafkasource.EmbeddedDataDir(cfg.dataDir))
	}
	broker, err := kafkasource.StartEmbedded(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitFailure
	}

	// Set at every start, so that a data dir does not keep another run's.
	if err := setMinSession(broker.Addrs(), cfg.minSession); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		_ = broker.Close()
		return exitFailure
	}

	topics := "none"
	if len(cfg.topics.list) > 0 {
		topics = cfg.topics.String()
	}
	data := "memory only"
	if cfg.dataDir != "" {
		data = cfg.dataDir
	}
	page := ""
	if cfg.http != "" {
		url, stopHTTP, err := serveStatus(cfg.http, broker.Addrs(), data)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			_ = broker.Close()
			return exitFailure
		}
		defer stopHTTP()
		page = "; status page: " + url
	}
	fmt.Fprintf(stdout, "%s listening on %s; topics: %s; data dir: %s%s\n", name, strings.Join(broker.Addrs(), ","), topics, data, page)

	<-ctx.Done()
	stop()
	if err := broker.Close(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitFailure
	}
	return exitOK
}

// setMinSession sets the broker's group.min.session.timeout.ms over the
// Kafka protocol, as kafka-configs --alter does on a real cluster.
func setMinSession(addrs []string, d time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms := strconv.FormatInt(d.Milliseconds(), 10)
	resps, err := kadm.NewClient(cl).AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "group.min.session.timeout.ms", Value: &ms}})
	if err == nil {
		for _, r := range resps {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		return fmt.Errorf("cannot set --group-min-session-timeout %v on the broker: %v", d, err)
	}
	return nil
}
