package exampleutil

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/kafkasource"
)

var testSpec = Spec{
	Name:     "demo",
	Summary:  "Counts demo records.",
	Topic:    "demo",
	Windowed: true,
	Window:   30 * time.Second,
	Slide:    10 * time.Second,
	Rate:     25,
	Generator: func() Generator {
		return Generator{Next: nil}
	},
}

func TestParseFlagsDefaults(t *testing.T) {
	cases := []struct {
		name  string
		spec  Spec
		args  []string
		check func(t *testing.T, c Config)
	}{
		{"embedded broker generates at the spec's rate", testSpec, nil, func(t *testing.T, c Config) {
			require.True(t, c.Embedded())
			require.Equal(t, 25.0, c.Generate)
			require.Equal(t, DefaultBatch, c.Batch)
			require.Equal(t, 30*time.Second, c.Window)
			require.Equal(t, 10*time.Second, c.Slide)
			require.Equal(t, DefaultTop, c.Top)
			require.Equal(t, DefaultPartitions, c.Partitions)
			require.Equal(t, DefaultListen, c.Listen)
			require.Equal(t, "demo", c.Topic)
			require.Equal(t, "sluice-demo", c.Group)
			require.Equal(t, filepath.Join(DataRoot, "demo", "checkpoint"), c.Checkpoint)
			require.Equal(t, filepath.Join(DataRoot, "demo", "checkpoint-broker"), c.BrokerDataDir())
			require.Zero(t, c.Duration)
			require.Zero(t, c.StopWhenIdle)
		}},
		{"brokers turn the generator off", testSpec, []string{"--brokers", "a:9092, b:9092"}, func(t *testing.T, c Config) {
			require.Equal(t, []string{"a:9092", "b:9092"}, c.Brokers)
			require.Zero(t, c.Generate)
		}},
		{"brokers with an explicit rate generate", testSpec, []string{"--brokers", "a:9092", "--generate", "7.5"}, func(t *testing.T, c Config) {
			require.Equal(t, 7.5, c.Generate)
		}},
		{"generate 0 turns it off", testSpec, []string{"--generate", "0"}, func(t *testing.T, c Config) {
			require.Zero(t, c.Generate)
		}},
		{"no checkpoint keeps the broker in memory", testSpec, []string{"--checkpoint", ""}, func(t *testing.T, c Config) {
			require.Empty(t, c.BrokerDataDir())
		}},
		{"a batch longer than the default slide stretches it", testSpec, []string{"--batch", "20s", "--window", "40s"}, func(t *testing.T, c Config) {
			require.Equal(t, 20*time.Second, c.Slide)
		}},
		{"every flag", testSpec, []string{"--topic", "t", "--partitions", "3", "--group", "g", "--batch", "500ms",
			"--window", "5s", "--slide", "1s", "--top", "3", "--checkpoint", "ck", "--max-rate-per-partition", "100",
			"--backpressure", "--retry-timeout", "2m", "--save", "out/r", "--duration", "1m", "--stop-when-idle", "4", "--listen", "127.0.0.1:19092",
			"--parallelism", "3", "--rollback-on-corrupt", "--start-offsets", "t:1:42,latest", "--log-level", "debug", "--log-format", "json", "--http", "127.0.0.1:8080"},
			func(t *testing.T, c Config) {
				require.Equal(t, Config{Listen: "127.0.0.1:19092", Topic: "t", Partitions: 3, Group: "g", Batch: 500 * time.Millisecond,
					Window: 5 * time.Second, Slide: time.Second, Top: 3, Checkpoint: "ck", MaxRatePerPartition: 100,
					Backpressure: true, RetryTimeout: 2 * time.Minute, Generate: 25, Save: "out/r", Duration: time.Minute, StopWhenIdle: 4,
					Parallelism: 3, RollbackOnCorrupt: true, LogLevel: slog.LevelDebug, LogFormat: "json", HTTP: "127.0.0.1:8080", SessionTimeout: DefaultSessionTimeout, RebalanceTimeout: DefaultRebalanceTimeout,
					StartOffsets: StartOffsets{Policy: "latest", Offsets: map[kafkasource.TopicPartition]int64{{Topic: "t", Partition: 1}: 42}}}, c)
			}},
		{"logs warnings as text by default", testSpec, nil, func(t *testing.T, c Config) {
			require.Equal(t, slog.LevelWarn, c.LogLevel)
			require.Equal(t, "text", c.LogFormat)
			require.Zero(t, c.StartOffsets)
			require.Equal(t, 30*time.Second, c.RetryTimeout)
		}},
		{"a leading zero is decimal, not octal", testSpec, []string{"--partitions", "010"}, func(t *testing.T, c Config) {
			require.Equal(t, 10, c.Partitions)
		}},
		{"start offsets earliest", testSpec, []string{"--start-offsets", "earliest"}, func(t *testing.T, c Config) {
			require.Equal(t, StartOffsets{Policy: "earliest"}, c.StartOffsets)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseFlags(c.spec, c.args, new(bytes.Buffer))
			require.NoError(t, err)
			c.check(t, cfg)
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	unwindowed := testSpec
	unwindowed.Windowed = false
	noGen := testSpec
	noGen.Generator = nil
	cases := []struct {
		name string
		spec Spec
		args []string
		want string
	}{
		{"unknown flag", testSpec, []string{"--nope"}, "unknown flag --nope; run demo -h for the flags it takes."},
		{"missing value", testSpec, []string{"--batch"}, "flag --batch needs a value; run demo -h for its form."},
		{"bad duration", testSpec, []string{"--batch", "soon"}, `--batch "soon" is not a valid value; pass a duration such as 2s, 500ms or 1m.`},
		{"bad number", testSpec, []string{"--top", "many"}, `--top "many" is not a valid value; pass a whole number.`},
		{"hex number", testSpec, []string{"--top", "0x10"}, `--top "0x10" is not a valid value; pass a whole number.`},
		{"underscore in a number", testSpec, []string{"--partitions", "1_0"}, `--partitions "1_0" is not a valid value; pass a whole number.`},
		{"sign before a number", testSpec, []string{"--stop-when-idle", "+3"}, `--stop-when-idle "+3" is not a valid value; pass a whole number.`},
		{"number overflow", testSpec, []string{"--max-rate-per-partition", "99999999999999999999"}, `--max-rate-per-partition "99999999999999999999" is not a valid value; pass a whole number.`},
		{"negative parallelism", testSpec, []string{"--parallelism", "-2"}, "--parallelism -2 is negative; pass 0 (the number of CPUs) or a number of tasks such as --parallelism 4."},
		{"bad boolean", testSpec, []string{"--backpressure=maybe"}, `--backpressure "maybe" is not true or false; write --backpressure or --backpressure=false.`},
		{"argument", testSpec, []string{"extra"}, `unexpected argument "extra"; every setting is a flag, see demo -h.`},
		{"broker not host:port", testSpec, []string{"--brokers", "kafka"}, `--brokers "kafka" holds "kafka", which is not host:port; write it as --brokers 127.0.0.1:9092.`},
		{"empty broker in list", testSpec, []string{"--brokers", "a:1,"}, `--brokers "a:1," holds "", which is not host:port; write it as --brokers 127.0.0.1:9092.`},
		{"listen with brokers", testSpec, []string{"--brokers", "a:1", "--listen", "127.0.0.1:0"}, "--listen sets the embedded broker's address, which --brokers turns off; drop one of them."},
		{"listen not host:port", testSpec, []string{"--listen", "9092"}, `--listen "9092" is not host:port; write it as --listen 127.0.0.1:9092.`},
		{"listen bad port", testSpec, []string{"--listen", "127.0.0.1:99999"}, `--listen "127.0.0.1:99999" has no valid port; use a number from 0 to 65535, as in --listen 127.0.0.1:9092.`},
		{"empty topic", testSpec, []string{"--topic", ""}, "--topic is empty; name a topic, such as --topic demo."},
		{"no partitions", testSpec, []string{"--partitions", "0"}, "--partitions 0 is too few; pass 1 or more."},
		{"empty group", testSpec, []string{"--group", ""}, "--group is empty; name a consumer group, such as --group sluice-demo."},
		{"zero batch", testSpec, []string{"--batch", "0s"}, "--batch 0s is not positive; pass a duration such as --batch 2s."},
		{"sub-millisecond batch", testSpec, []string{"--batch", "1500us"}, "--batch 1.5ms is not a whole number of milliseconds; pass a duration such as --batch 500ms."},
		{"window not a multiple", testSpec, []string{"--batch", "2s", "--window", "5s"}, "--window 5s is not a positive multiple of --batch 2s; pass a multiple such as --window 6s."},
		{"slide not a multiple", testSpec, []string{"--batch", "3s"}, "--slide 10s is not a positive multiple of --batch 3s; pass a multiple such as --slide 12s."},
		{"slide past window", testSpec, []string{"--window", "10s", "--slide", "20s"}, "--slide 20s is longer than --window 10s, so some batches would fall in no window; pass --slide 10s or less."},
		{"window on an unwindowed example", unwindowed, []string{"--window", "10s"}, "unknown flag --window; run demo -h for the flags it takes."},
		{"zero top", testSpec, []string{"--top", "0"}, "--top 0 prints nothing; pass 1 or more."},
		{"negative rate limit", testSpec, []string{"--max-rate-per-partition", "-1"}, "--max-rate-per-partition -1 is negative; pass 0 (unlimited) or a rate in records/s."},
		{"bad generate", testSpec, []string{"--generate", "fast"}, `--generate "fast" is not a rate; pass records per second, such as --generate 100, or 0 to turn the generator off.`},
		{"retry timeout zero", testSpec, []string{"--retry-timeout", "0s"}, "--retry-timeout 0s is not positive; pass how long a batch rides out a broker outage, such as --retry-timeout 2m."},
		{"retry timeout not a duration", testSpec, []string{"--retry-timeout", "long"}, `--retry-timeout "long" is not a valid value; pass a duration such as 2s, 500ms or 1m.`},
		{"hex generate", testSpec, []string{"--generate", "0x1p4"}, `--generate "0x1p4" is not a rate; pass records per second, such as --generate 100, or 0 to turn the generator off.`},
		{"negative generate", testSpec, []string{"--generate", "-3"}, `--generate "-3" is not a rate; pass records per second, such as --generate 100, or 0 to turn the generator off.`},
		{"generate without a generator", noGen, []string{"--generate", "3"}, "--generate: demo has no generator; drop the flag."},
		{"negative duration", testSpec, []string{"--duration", "-1s"}, "--duration -1s is negative; pass 0 (run until Ctrl-C) or a duration such as --duration 1m."},
		{"negative idle", testSpec, []string{"--stop-when-idle", "-2"}, "--stop-when-idle -2 is negative; pass 0 (never) or a number of batches such as --stop-when-idle 3."},
		{"checkpoint is a file", testSpec, []string{"--checkpoint", file}, "--checkpoint " + file + " is a file, not a directory; name a directory, new or used before by demo."},
		{"negative parallelism", testSpec, []string{"--parallelism", "-1"}, "--parallelism -1 is negative; pass 0 (the number of CPUs) or a number of tasks such as --parallelism 4."},
		{"rollback without checkpoint", testSpec, []string{"--checkpoint", "", "--rollback-on-corrupt"}, "--rollback-on-corrupt needs a checkpoint, and --checkpoint is empty; drop the flag or name a --checkpoint dir."},
		{"bad rollback", testSpec, []string{"--rollback-on-corrupt=often"}, `--rollback-on-corrupt "often" is not true or false; write --rollback-on-corrupt or --rollback-on-corrupt=false.`},
		{"start offsets empty", testSpec, []string{"--start-offsets", ""}, "--start-offsets is empty; pass earliest, latest, or topic:partition:offset such as --start-offsets demo:0:42."},
		{"start offsets word", testSpec, []string{"--start-offsets", "oldest"}, `--start-offsets "oldest" holds "oldest", which is not earliest, latest or topic:partition:offset; write it as --start-offsets demo:0:42.`},
		{"start offsets other topic", testSpec, []string{"--start-offsets", "x:0:1"}, `--start-offsets "x:0:1" names topic "x", but the job reads --topic demo; name partitions of demo.`},
		{"start offsets negative", testSpec, []string{"--start-offsets", "demo:0:-1"}, `--start-offsets "demo:0:-1" holds "demo:0:-1", whose partition and offset are not whole numbers >= 0; write it as --start-offsets demo:0:42.`},
		{"start offsets underscore", testSpec, []string{"--start-offsets", "demo:0:1_0"}, `--start-offsets "demo:0:1_0" holds "demo:0:1_0", whose partition and offset are not whole numbers >= 0; write it as --start-offsets demo:0:42.`},
		{"start offsets overflow", testSpec, []string{"--start-offsets", "demo:0:99999999999999999999"}, `--start-offsets "demo:0:99999999999999999999" holds "demo:0:99999999999999999999", whose partition and offset are not whole numbers >= 0; write it as --start-offsets demo:0:42.`},
		{"start offsets twice", testSpec, []string{"--start-offsets", "demo:0:1,demo:0:2"}, `--start-offsets "demo:0:1,demo:0:2" names demo:0 twice; keep one offset for it.`},
		{"start offsets two policies", testSpec, []string{"--start-offsets", "earliest,latest"}, `--start-offsets "earliest,latest" names both earliest and latest; keep one of them.`},
		{"bad log level", testSpec, []string{"--log-level", "loud"}, `--log-level "loud" is not a level; pass debug, info, warn or error.`},
		{"bad log format", testSpec, []string{"--log-format", "xml"}, `--log-format "xml" is not a format; pass text or json.`},
		{"save prefix is a directory", testSpec, []string{"--save", "out/"}, "--save out/ ends in a directory separator; give a file name prefix, such as --save out/results."},
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

func TestParseFlagsHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := ParseFlags(testSpec, []string{"-h"}, &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	help := out.String()
	for _, want := range []string{
		"Usage: demo [flags]", "Counts demo records.",
		"-brokers", "-listen", "-topic", `(default "demo")`, "-partitions", "(default 2)", "-group", `(default "sluice-demo")`,
		"-batch", "(default 2s)", "-window", "(default 30s)", "-slide", "(default 10s)", "-top", "(default 10)",
		"-checkpoint", `(default "sluice-data/demo/checkpoint")`, "-max-rate-per-partition", "-backpressure",
		"-generate", "(default 25 with the embedded broker, 0 with --brokers)", "-save", "-duration", "-stop-when-idle",
		"-parallelism", "-rollback-on-corrupt", "-start-offsets", "-log-level", `(default "warn")`, "-log-format", `(default "text")`,
	} {
		require.Contains(t, help, want)
	}
}
