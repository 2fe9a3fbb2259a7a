package exampleutil

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/kafkasource"
)

// Spec describes one example program: its name, what it computes and the
// defaults of its flags.
type Spec struct {
	// Name is the command name ("wordcount"); it prefixes every message and
	// names the default group and checkpoint dir.
	Name string
	// Summary says in one sentence what the example computes, for -h.
	Summary string
	// Topic is the default --topic.
	Topic string
	// Windowed adds --window and --slide, defaulting to Window and Slide.
	Windowed      bool
	Window, Slide time.Duration
	// Rate is the default --generate with the embedded broker, records/s.
	Rate float64
	// Generator builds the example's record generator; nil means the
	// example has none and --generate is refused.
	Generator func() Generator
	// SinkByDefault makes --sink default to [DefaultSink] of the example
	// instead of none.
	SinkByDefault bool
}

// DefaultSink is the --sink of an example with Spec.SinkByDefault: a
// SQLite database beside its default checkpoint,
// sqlite:DataRoot/<name>/results.db.
func DefaultSink(name string) string { return "sqlite:" + filepath.Join(DataRoot, name, "results.db") }

// Defaults shared by every example.
const (
	DefaultBatch      = 2 * time.Second
	DefaultPartitions = 2
	DefaultTop        = 10
	DefaultListen     = "127.0.0.1:0"
	// DataRoot is the directory under which examples keep their default
	// checkpoint and embedded broker log: DataRoot/<name>/checkpoint and
	// DataRoot/<name>/checkpoint-broker.
	DataRoot = "sluice-data"
)

// Config is what the flags of an example ask for.
type Config struct {
	Brokers             []string      // --brokers; empty: embedded broker
	Listen              string        // --listen
	Topic               string        // --topic
	Partitions          int           // --partitions
	Group               string        // --group
	StartOffsets        StartOffsets  // --start-offsets
	Batch               time.Duration // --batch
	Window, Slide       time.Duration // --window, --slide (windowed examples)
	Parallelism         int           // --parallelism; 0: GOMAXPROCS
	Top                 int           // --top
	Checkpoint          string        // --checkpoint; empty: none
	RollbackOnCorrupt   bool          // --rollback-on-corrupt
	MaxRatePerPartition int64         // --max-rate-per-partition
	Backpressure        bool          // --backpressure
	RetryTimeout        time.Duration // --retry-timeout
	Generate            float64       // --generate, resolved: records/s, 0 = off
	Save                string        // --save prefix; empty: nothing saved
	Sink                string        // --sink SCHEME:TARGET; empty: none
	DeadLetter          string        // --dead-letter file; empty: rows that cannot be encoded are skipped
	Duration            time.Duration // --duration; 0 = until stopped
	StopWhenIdle        int           // --stop-when-idle; 0 = never
	LogLevel            slog.Level    // --log-level
	LogFormat           string        // --log-format: "text" or "json"
	HTTP                string        // --http; empty: no status page
	Security            Security      // --tls…, --sasl-…: how every Kafka client reaches --brokers
	Member              string        // --member; empty: single-process mode
	StateDir            string        // with --member: --checkpoint, where the member keeps a local copy of its tasks' state (kafkasource.WithStateDir)
	SessionTimeout      time.Duration // --session-timeout, with --member
	RebalanceTimeout    time.Duration // --rebalance-timeout, with --member
}

// Embedded reports whether the example starts its own broker.
func (c Config) Embedded() bool { return len(c.Brokers) == 0 }

// BrokerDataDir is where the embedded broker keeps its log: beside the
// checkpoint dir, so that a restart finds both. It is empty (memory only)
// when there is no checkpoint.
func (c Config) BrokerDataDir() string {
	if c.Checkpoint == "" {
		return ""
	}
	return filepath.Clean(c.Checkpoint) + "-broker"
}

// UsageError is a bad flag or argument, told in one sentence that names the
// flag and the fix. The program exits with status 2.
type UsageError struct{ Sentence string }

func (e *UsageError) Error() string { return e.Sentence }

func usagef(format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...)}
}

// parser holds the flag set while ParseFlags runs, and the raw text of the
// flags whose values it checks and converts itself.
//
// Flags come in groups, each registered by one method and checked by
// another (kafkaFlags and checkKafka, …); a new group of flags adds such a
// pair and one line for each in ParseFlags.
type parser struct {
	spec Spec
	cfg  *Config
	fs   *flag.FlagSet
	set  map[string]bool // flags given on the command line

	brokers, generate, startOffsets, logLevel string
}

// ParseFlags reads args into a Config. Errors are [*UsageError], or
// flag.ErrHelp after writing the usage to usageOut for -h.
func ParseFlags(spec Spec, args []string, usageOut io.Writer) (Config, error) {
	cfg := Config{}
	fs := flag.NewFlagSet(spec.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	p := &parser{spec: spec, cfg: &cfg, fs: fs}
	p.kafkaFlags()
	p.jobFlags()
	p.outputFlags()
	p.logFlags()
	p.securityFlags()
	p.memberFlags()

	usage := func() {
		fmt.Fprintf(usageOut, "Usage: %s [flags]\n\n%s\n\n", spec.Name, spec.Summary)
		fmt.Fprintf(usageOut, "With no flags it starts an embedded Kafka broker, feeds it with a built-in generator\n"+
			"and runs the job until Ctrl-C, which stops after the batch in flight commits.\n\nFlags:\n")
		fs.SetOutput(usageOut)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return cfg, err
		}
		return cfg, flagError(spec.Name, err)
	}
	if fs.NArg() > 0 {
		return cfg, usagef("unexpected argument %q; every setting is a flag, see %s -h.", fs.Arg(0), spec.Name)
	}
	p.set = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { p.set[f.Name] = true })
	for _, check := range []func() error{p.checkKafka, p.checkJob, p.checkOutput, p.checkLog, p.checkSecurity, p.checkMember} {
		if err := check(); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// kafkaFlags registers where the records come from.
func (p *parser) kafkaFlags() {
	fs, cfg, spec := p.fs, p.cfg, p.spec
	fs.StringVar(&p.brokers, "brokers", "", "Kafka seed brokers as `host:port[,host:port...]`; empty starts an embedded broker")
	fs.StringVar(&cfg.Listen, "listen", DefaultListen, "`host:port` the embedded broker listens on, for kcat and other clients; port 0 picks a free port")
	fs.StringVar(&cfg.Topic, "topic", spec.Topic, "Kafka `topic` to read (and to generate into)")
	wholeVar(fs, &cfg.Partitions, "partitions", DefaultPartitions, "`N` partitions of the topic when the example creates it (embedded broker, or --generate with --brokers)")
	fs.StringVar(&cfg.Group, "group", "sluice-"+spec.Name, "consumer `group` the job commits its offsets to after every batch, for lag tools; with --member, the group its processes join")
	fs.StringVar(&p.startOffsets, "start-offsets", "", "where partitions start when the checkpoint holds no position: `earliest|latest|topic:partition:offset[,...]`; default: the group's committed offsets, else earliest")
	wholeVar(fs, &cfg.MaxRatePerPartition, "max-rate-per-partition", 0, "most `records/s` read from each partition; 0 is unlimited")
	fs.BoolVar(&cfg.Backpressure, "backpressure", false, "adapt the read rate to how fast batches complete (PID controller)")
	fs.DurationVar(&cfg.RetryTimeout, "retry-timeout", kafkasource.DefaultRetryTimeout, "how long a batch retries a failing broker (down, unreachable, electing a leader) before the job stops with an error")
	rateDefault := "off"
	if spec.Generator != nil {
		rateDefault = fmt.Sprintf("%g with the embedded broker, 0 with --brokers", spec.Rate)
	}
	fs.StringVar(&p.generate, "generate", "", "`RATE` in records/s the built-in generator writes to the topic; 0 turns it off (default "+rateDefault+")")
}

func (p *parser) checkKafka() error {
	cfg, spec := p.cfg, p.spec
	if p.brokers != "" {
		for b := range strings.SplitSeq(p.brokers, ",") {
			b = strings.TrimSpace(b)
			if _, _, err := net.SplitHostPort(b); err != nil || b == "" {
				return usagef("--brokers %q holds %q, which is not host:port; write it as --brokers 127.0.0.1:9092.", p.brokers, b)
			}
			cfg.Brokers = append(cfg.Brokers, b)
		}
		if p.set["listen"] {
			return usagef("--listen sets the embedded broker's address, which --brokers turns off; drop one of them.")
		}
	} else if err := checkListen(cfg.Listen); err != nil {
		return err
	}
	switch {
	case cfg.Topic == "":
		return usagef("--topic is empty; name a topic, such as --topic %s.", spec.Topic)
	case cfg.Partitions < 1:
		return usagef("--partitions %d is too few; pass 1 or more.", cfg.Partitions)
	case cfg.Group == "":
		return usagef("--group is empty; name a consumer group, such as --group sluice-%s.", spec.Name)
	case cfg.MaxRatePerPartition < 0:
		return usagef("--max-rate-per-partition %d is negative; pass 0 (unlimited) or a rate in records/s.", cfg.MaxRatePerPartition)
	case cfg.RetryTimeout <= 0:
		return usagef("--retry-timeout %v is not positive; pass how long a batch rides out a broker outage, such as --retry-timeout 2m.", cfg.RetryTimeout)
	}
	if p.set["start-offsets"] {
		so, err := ParseStartOffsets(p.startOffsets, cfg.Topic)
		if err != nil {
			return err
		}
		cfg.StartOffsets = so
	}
	switch {
	case p.generate != "":
		r, err := strconv.ParseFloat(p.generate, 64)
		// ParseFloat also reads hex (0x1p4) and, after a base prefix, underscores.
		if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) || strings.ContainsAny(p.generate, "xX_") {
			return usagef("--generate %q is not a rate; pass records per second, such as --generate 100, or 0 to turn the generator off.", p.generate)
		}
		if r > 0 && spec.Generator == nil {
			return usagef("--generate: %s has no generator; drop the flag.", spec.Name)
		}
		cfg.Generate = r
	case cfg.Embedded() && spec.Generator != nil:
		cfg.Generate = spec.Rate
	}
	return nil
}

// jobFlags registers the shape of the job: batches, windows, parallelism,
// checkpoint and when it stops.
func (p *parser) jobFlags() {
	fs, cfg, spec := p.fs, p.cfg, p.spec
	defaultCkpt := filepath.Join(DataRoot, spec.Name, "checkpoint")
	fs.DurationVar(&cfg.Batch, "batch", DefaultBatch, "batch `interval`")
	if spec.Windowed {
		fs.DurationVar(&cfg.Window, "window", spec.Window, "window `length`, a multiple of --batch")
		fs.DurationVar(&cfg.Slide, "slide", spec.Slide, "window `slide`: results print every slide; a multiple of --batch")
	}
	wholeVar(fs, &cfg.Parallelism, "parallelism", 0, "most `N` tasks that run at once, and the partitions of keyed results; 0 is the number of CPUs")
	fs.StringVar(&cfg.Checkpoint, "checkpoint", defaultCkpt, "checkpoint `DIR` for state and offsets, so that a restart resumes; the embedded broker keeps its log in DIR-broker; empty: no checkpoint")
	fs.BoolVar(&cfg.RollbackOnCorrupt, "rollback-on-corrupt", false, "when the newest checkpoint commit does not verify, restore the newest one that does instead of stopping")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop gracefully after `D`; 0 runs until Ctrl-C")
	wholeVar(fs, &cfg.StopWhenIdle, "stop-when-idle", 0, "stop gracefully after `N` batches in a row that read nothing (no backlog left); 0 never")
}

func (p *parser) checkJob() error {
	cfg, spec := p.cfg, p.spec
	switch {
	case cfg.Batch <= 0:
		return usagef("--batch %v is not positive; pass a duration such as --batch 2s.", cfg.Batch)
	case cfg.Batch%time.Millisecond != 0:
		return usagef("--batch %v is not a whole number of milliseconds; pass a duration such as --batch 500ms.", cfg.Batch)
	case cfg.Parallelism < 0:
		return usagef("--parallelism %d is negative; pass 0 (the number of CPUs) or a number of tasks such as --parallelism 4.", cfg.Parallelism)
	case cfg.Duration < 0:
		return usagef("--duration %v is negative; pass 0 (run until Ctrl-C) or a duration such as --duration 1m.", cfg.Duration)
	case cfg.StopWhenIdle < 0:
		return usagef("--stop-when-idle %d is negative; pass 0 (never) or a number of batches such as --stop-when-idle 3.", cfg.StopWhenIdle)
	case cfg.RollbackOnCorrupt && cfg.Checkpoint == "":
		return usagef("--rollback-on-corrupt needs a checkpoint, and --checkpoint is empty; drop the flag or name a --checkpoint dir.")
	}
	if spec.Windowed {
		// A window that is left at its default while --batch grows past it
		// is stretched to one batch rather than refused.
		if !p.set["window"] && cfg.Window < cfg.Batch {
			cfg.Window = cfg.Batch
		}
		if !p.set["slide"] && cfg.Slide < cfg.Batch {
			cfg.Slide = cfg.Batch
		}
		switch {
		case cfg.Window <= 0 || cfg.Window%cfg.Batch != 0:
			return usagef("--window %v is not a positive multiple of --batch %v; pass a multiple such as --window %v.", cfg.Window, cfg.Batch, roundUp(cfg.Window, cfg.Batch))
		case cfg.Slide <= 0 || cfg.Slide%cfg.Batch != 0:
			return usagef("--slide %v is not a positive multiple of --batch %v; pass a multiple such as --slide %v.", cfg.Slide, cfg.Batch, roundUp(cfg.Slide, cfg.Batch))
		case cfg.Slide > cfg.Window:
			return usagef("--slide %v is longer than --window %v, so some batches would fall in no window; pass --slide %v or less.", cfg.Slide, cfg.Window, cfg.Window)
		}
	}
	if cfg.Checkpoint != "" {
		if fi, err := os.Stat(cfg.Checkpoint); err == nil && !fi.IsDir() {
			return usagef("--checkpoint %s is a file, not a directory; name a directory, new or used before by %s.", cfg.Checkpoint, spec.Name)
		}
	}
	return nil
}

// outputFlags registers what the job prints and saves.
func (p *parser) outputFlags() {
	fs, cfg := p.fs, p.cfg
	wholeVar(fs, &cfg.Top, "top", DefaultTop, "print the top `N` rows")
	fs.StringVar(&cfg.Save, "save", "", "write each batch's results as JSON lines to `PREFIX`-<batch ms>.jsonl")
	defaultSink, none := "", ""
	if p.spec.SinkByDefault {
		defaultSink, none = DefaultSink(p.spec.Name), `; "": none`
	}
	fs.StringVar(&cfg.Sink, "sink", defaultSink, "also write each batch's results to `SINK`, exactly once: "+sinkForms()+none)
	fs.StringVar(&cfg.DeadLetter, "dead-letter", "", "append each result row that cannot be encoded as JSON (a number past the float64 range) to `FILE`, one JSON object a line, instead of --save and --sink; empty: such rows are counted, named in a warning and skipped")
	fs.StringVar(&cfg.HTTP, "http", DefaultHTTP, "serve the status page, /metrics for Prometheus and /api on `host:port`; when the port is taken, the next free one; empty: none")
}

func (p *parser) checkOutput() error {
	cfg := p.cfg
	if err := checkHTTP(cfg.HTTP); err != nil {
		return err
	}
	if cfg.Sink != "" {
		if _, err := sinkScheme(cfg.Sink); err != nil {
			return err
		}
	}
	switch {
	case cfg.Top < 1:
		return usagef("--top %d prints nothing; pass 1 or more.", cfg.Top)
	case cfg.Save != "" && strings.HasSuffix(cfg.Save, string(filepath.Separator)):
		return usagef("--save %s ends in a directory separator; give a file name prefix, such as --save %sresults.", cfg.Save, cfg.Save)
	}
	return nil
}

// logFlags registers how the job logs (warnings, broker retries) on stderr.
func (p *parser) logFlags() {
	p.fs.StringVar(&p.logLevel, "log-level", "warn", "least `level` logged on stderr: debug, info, warn or error")
	p.fs.StringVar(&p.cfg.LogFormat, "log-format", "text", "`format` of the log on stderr: text (key=value) or json (one object a line)")
}

func (p *parser) checkLog() error {
	if err := p.cfg.LogLevel.UnmarshalText([]byte(p.logLevel)); err != nil || strings.ContainsAny(p.logLevel, "+-") {
		return usagef("--log-level %q is not a level; pass debug, info, warn or error.", p.logLevel)
	}
	if f := p.cfg.LogFormat; f != "text" && f != "json" {
		return usagef("--log-format %q is not a format; pass text or json.", f)
	}
	return nil
}

func roundUp(d, unit time.Duration) time.Duration {
	if d <= unit {
		return unit
	}
	return (d + unit - 1) / unit * unit
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

// wholeValue is a flag holding a whole number written in decimal digits,
// with a leading minus for a negative one (which the checks then refuse in
// a sentence of their own). Package flag's IntVar would also take 0x10,
// 010 (as octal 8) and 1_0.
type wholeValue[T int | int64] struct{ p *T }

func wholeVar[T int | int64](fs *flag.FlagSet, p *T, name string, value T, usage string) {
	*p = value
	fs.Var(wholeValue[T]{p}, name, usage)
}

func (w wholeValue[T]) String() string {
	if w.p == nil {
		return "0"
	}
	return strconv.FormatInt(int64(*w.p), 10)
}

func (w wholeValue[T]) Set(s string) error {
	digits, neg := strings.CutPrefix(s, "-")
	v, err := parseWhole(digits, 63)
	if err != nil {
		return err
	}
	if neg {
		v = -v
	}
	if int64(T(v)) != v {
		return strconv.ErrRange
	}
	*w.p = T(v)
	return nil
}

// flagError rewords package flag's parse errors as one plain sentence.
func flagError(name string, err error) error {
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return usagef("unknown flag --%s; run %s -h for the flags it takes.", strings.TrimLeft(f, "-"), name)
	}
	if f, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return usagef("flag --%s needs a value; run %s -h for its form.", strings.TrimLeft(f, "-"), name)
	}
	// invalid value "x" for flag -batch: parse error
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if val, f, ok := strings.Cut(rest, " for flag "); ok {
			f, _, _ = strings.Cut(f, ":")
			f = strings.TrimLeft(f, "-")
			return usagef("--%s %s is not a valid value; %s.", f, val, valueHint(f))
		}
	}
	if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		if val, f, ok := strings.Cut(rest, " for -"); ok {
			f, _, _ = strings.Cut(f, ":")
			return usagef("--%s %s is not true or false; write --%s or --%s=false.", f, val, f, f)
		}
	}
	return usagef("%s; run %s -h for the flags it takes.", msg, name)
}

func valueHint(flagName string) string {
	switch flagName {
	case "batch", "window", "slide", "duration", "retry-timeout", "session-timeout", "rebalance-timeout":
		return "pass a duration such as 2s, 500ms or 1m"
	case "backpressure", "rollback-on-corrupt":
		return "pass true or false"
	default:
		return "pass a whole number"
	}
}
