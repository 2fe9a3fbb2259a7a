// Package examples_test runs the README's commands in the order the README
// gives them, against the examples' binaries, kcat and the embedded and
// stand-alone brokers, as a user who follows the README from the top would.
package examples_test

import (
	"bufio"
	"cmp"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
)

// readmeCommand is a command as the README shows it: a line of a sh block
// (continued by a trailing backslash, its comment dropped) or a "$ " line of
// a transcript block (continued while a double quote is open), with the
// transcript's lines up to the next "$ " line or the block's end.
type readmeCommand struct {
	section string // the "## " heading it is under
	text    string
	output  []string
}

var readmeComment = regexp.MustCompile(`\s+# .*$`)

func readmeCommands(t *testing.T, path string) []readmeCommand {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		cmds     []readmeCommand
		section  string
		block    string // "" outside a fence, else its language ("text" for none)
		pending  string // a command continued on the next line
		shOutput bool   // the last command is a transcript's, collecting output
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case block == "" && strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
		case block == "" && strings.HasPrefix(line, "```"):
			block = cmp.Or(strings.TrimPrefix(line, "```"), "text")
		case block != "" && line == "```":
			block, pending, shOutput = "", "", false
		case block == "sh":
			if pending == "" && (strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#")) {
				continue
			}
			line = readmeComment.ReplaceAllString(line, "")
			if rest, ok := strings.CutSuffix(line, `\`); ok {
				pending += strings.TrimSpace(rest) + " "
				continue
			}
			cmds = append(cmds, readmeCommand{section: section, text: pending + strings.TrimSpace(line)})
			pending = ""
		case block == "text" && pending != "":
			pending += "\n" + line
			if strings.Count(pending, `"`)%2 == 0 {
				cmds[len(cmds)-1].text, pending = pending, ""
			}
		case block == "text" && strings.HasPrefix(line, "$ "):
			text := strings.TrimPrefix(line, "$ ")
			cmds = append(cmds, readmeCommand{section: section, text: text})
			if strings.Count(text, `"`)%2 == 1 {
				pending = text
			}
			shOutput = true
		case block == "text" && shOutput:
			cmds[len(cmds)-1].output = append(cmds[len(cmds)-1].output, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// readmeStep says how to run one README command. A command runs to its end
// and must exit 0, unless:
type readmeStep struct {
	text string // the command, as the README has it
	skip string // why the test does not run it
	// until makes it a command that runs until stopped: once a line of its
	// output matches, it gets SIGINT and must exit 0.
	until string
	// untilEach is until with several patterns: once each has matched a
	// line, in any order.
	untilEach []string
	// ready makes it a command that runs beside the next ones (another
	// terminal, or a trailing &): the next command starts once a line of its
	// output matches ready; when the README section ends, it gets SIGINT
	// once a line matches until, and must exit 0.
	ready string
	// output: the transcript's lines are its exact output.
	output bool
}

// readmeSteps are every README command, in the README's order.
var readmeSteps = []readmeStep{
	// Quickstart
	{text: "go run ./examples/wordcount", until: `^batch \S+: \d+ records`},
	{text: "go test ./...", skip: "the test suite this test is part of"},
	// The examples
	{text: "go run ./examples/wordcount", until: `^wordcount: .*resuming from checkpoint`},
	{text: "go run ./examples/wordcount --window 1m --slide 4s --top 20 --checkpoint sluice-data/wordcount/1m", until: `^top 20 words of window`},
	{text: "go run ./examples/wordcount --brokers kafka1:9092 --topic lines --save out/wc", until: `^batch \S+: 0 records`},
	{text: "head -3 out/wc-1795292752000.jsonl", skip: "shows the files of a run on a cluster whose topic has lines in it"},
	{text: "head -2 out/wc-totals-1795292752000.jsonl", skip: "shows the files of a run on a cluster whose topic has lines in it"},
	{text: "go run ./examples/pagepopularity", until: `^top 10 of \d+ pages in state`},
	{text: "go run ./examples/pagepopularity --generate 5000 --batch 1s --checkpoint sluice-data/pagepopularity/load", until: `^batch \S+: [1-9]\d* records`},
	{text: "go run ./examples/ipcount", until: `^batch \S+: \d+ records`},
	{text: "go run ./examples/ipcount --brokers kafka1:9092 --topic proxy-access-log --window 5m --slide 30s --checkpoint sluice-data/ipcount/proxy", until: `^batch \S+: 0 records`},
	// The Kafka sink
	{text: "go run ./examples/pagepopularity --listen 127.0.0.1:19092 --sink kafka:popularity", ready: `^batch \S+: [1-9]\d* records`},
	{text: "kcat -b 127.0.0.1:19092 -X isolation.level=read_committed -C -t popularity -f '%h %s\\n'", until: `^sluice-batch-time=\d+ \{"page":"page\d+","popularity":-?\d+\.\d{6}\}$`},
	// The SQL sinks
	{text: "go run ./examples/pagepopularity", until: `^batch \S+: [1-9]\d* records`},
	{text: "sqlite3 sluice-data/pagepopularity/results.db \"SELECT row FROM sluice_results WHERE job = 'pagepopularity' AND kind = ''\n    AND batch_time_ms = (SELECT MAX(batch_time_ms) FROM sluice_results WHERE job = 'pagepopularity') ORDER BY row_index\""},
	{text: "sqlite3 sluice-data/pagepopularity/results.db \"SELECT topic, kafka_partition, until_offset, batch_time_ms FROM sluice_progress\n    WHERE job = 'pagepopularity' AND sink = 'results'\""},
	// Producing with kcat to the embedded broker
	{text: "go run ./examples/wordcount --listen 127.0.0.1:19092 --generate 0 --batch 1s --window 10s --slide 2s --checkpoint sluice-data/wordcount/kcat",
		ready: `^wordcount: batch 1s, window 10s sliding every 2s, checkpoint .*; Ctrl-C stops$`, until: `^batch \S+: \d+ records?, 1 malformed \(first words\[\d\]@\d+: not UTF-8 text\)`},
	{text: `printf 'To be, or not to be, that is the question:\nWhether tis nobler in the mind to suffer\nThe slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n' | kcat -P -b 127.0.0.1:19092 -t words`},
	{text: `printf 'bad \xff\xfe line\n' | kcat -P -b 127.0.0.1:19092 -t words`},
	{text: "kcat -b 127.0.0.1:19092 -L -t words"},
	{text: "go run ./examples/pagepopularity --listen 127.0.0.1:19093 --generate 0 --checkpoint sluice-data/pagepopularity/kcat",
		ready: `^pagepopularity: batch 2s, checkpoint .*; Ctrl-C stops$`, until: `^   1\. page7 +10\.800$`},
	{text: "echo 'page7|3|2.5|1' | kcat -P -b 127.0.0.1:19093 -t user-behavior"},
	{text: "echo 'page7:page7|3|2.5|1' | kcat -P -b 127.0.0.1:19093 -t user-behavior -K:"},
	// Running against a real Kafka cluster
	{text: "go run ./examples/pagepopularity --brokers kafka1:9092,kafka2:9092 --topic user-behavior-topic --batch 5s --max-rate-per-partition 10000 --backpressure --checkpoint /var/lib/sluice/popularity", until: `^batch \S+: 0 records`},
	{text: "go run ./examples/wordcount --brokers kafka1:9092 --generate 200", until: `^batch \S+: [1-9]\d* records`},
	{text: "go run ./cmd/sluice-broker --listen 127.0.0.1:19555 --topic user-behavior:2 &", ready: `^sluice-broker listening on `},
	{text: "printf 'page1:page1|2|3.5|1\\npage2:page2|1|0.25|-1\\npage1:page1|4|1.5|0\\nbad:page3|x|1|1\\n' | kcat -P -b 127.0.0.1:19555 -t user-behavior -K:"},
	{text: "go run ./examples/pagepopularity --brokers 127.0.0.1:19555 --checkpoint ck --batch 1s --stop-when-idle 2 --save out/pop"},
	{text: "cat out/pop-1795292713000.jsonl", output: true},
	{text: "read -rs SLUICE_SASL_PASSWORD && export SLUICE_SASL_PASSWORD", skip: "reads a password from the terminal"},
	{text: "go run ./examples/pagepopularity --brokers kafka1:9093 --tls-ca /etc/kafka/ca.pem --sasl-mechanism scram-sha-512 --sasl-user sluice",
		skip: "needs a cluster with TLS and SCRAM; exampleutil's TestRunWithTLS and TestRunWithSASL run these flags against such a kfake cluster"},
	// Running on several processes
	{text: "go run ./cmd/sluice-broker --listen 127.0.0.1:19556 --topic words:3 --topic user-behavior:4 &", ready: `^sluice-broker listening on `},
	{text: "go run ./examples/wordcount --brokers 127.0.0.1:19556 --member a --batch 1s --sink kafka:wc", ready: `^batch \S+: \d+ records?`},
	{text: "go run ./examples/wordcount --brokers 127.0.0.1:19556 --member b --batch 1s --sink kafka:wc", ready: `^batch \S+: \d+ records?`},
	{text: "go run ./examples/wordcount --brokers 127.0.0.1:19556 --member c --batch 1s --sink kafka:wc", ready: `^batch \S+: \d+ records?`},
	{text: `printf 'the cat sat on the mat\nThe dog sat on the cat.\nA cat, a dog!\n' | kcat -P -b 127.0.0.1:19556 -t words`},
	{text: "kcat -b 127.0.0.1:19556 -X isolation.level=read_committed -C -t wc-totals -f '%s\\n'", untilEach: []string{
		`^\{"word":"the","count":4\}$`, `^\{"word":"cat","count":3\}$`, `^\{"word":"sat","count":2\}$`, `^\{"word":"on","count":2\}$`,
		`^\{"word":"dog","count":2\}$`, `^\{"word":"a","count":2\}$`, `^\{"word":"mat","count":1\}$`}},
	{text: `printf 'page1:page1|2|3.5|1\npage2:page2|1|0.25|-1\npage10:page10|4|1.5|0\npage14:page14|1|1|1\npage1:page1|4|1.5|0\n' | kcat -P -b 127.0.0.1:19556 -t user-behavior -K: -X partitioner=murmur2_random`},
	{text: "go run ./examples/pagepopularity --brokers 127.0.0.1:19556 --member a --batch 1s --session-timeout 6s --sink kafka:popularity", ready: `^batch \S+: \d+ records?`},
	{text: "go run ./examples/pagepopularity --brokers 127.0.0.1:19556 --member b --batch 1s --session-timeout 6s --sink kafka:popularity", ready: `^batch \S+: \d+ records?`},
	{text: "go run ./examples/pagepopularity --brokers 127.0.0.1:19556 --member c --batch 1s --session-timeout 6s --sink kafka:popularity --duration 15s"},
	{text: `printf 'page1:page1|1|1|1\npage2:page2|3|2|1\npage10:page10|1|1|0\npage14:page14|2|0.5|1\n' | kcat -P -b 127.0.0.1:19556 -t user-behavior -K: -X partitioner=murmur2_random`},
	{text: "kcat -b 127.0.0.1:19556 -X isolation.level=read_committed -C -t popularity -f '%s\\n'", untilEach: []string{
		`^\{"page":"page1","popularity":12\.400000\}$`, `^\{"page":"page2","popularity":5\.000000\}$`,
		`^\{"page":"page10","popularity":6\.000000\}$`, `^\{"page":"page14","popularity":5\.600000\}$`}},
	// Checkpoints: what the directory holds
	{text: "go run ./cmd/sluice-checkpoint inspect ck"},
	// Performance
	{text: "go run ./benchmarks", skip: "the full benchmark run takes minutes"},
	{text: "go run ./benchmarks -quick", skip: "the benchmark run takes most of a minute"},
	{text: "go run ./benchmarks -workloads wordcount -batches 5 -cpuprofile wc.pprof && go tool pprof -top wc.pprof", skip: "a benchmark run"},
	{text: "go run ./benchmarks -workloads batchcost", skip: "a benchmark run"},
	{text: "go run ./benchmarks -workloads batchcost -checkpoint on -trace bc.trace && go tool trace -pprof=syscall bc.trace > io.pprof && go tool pprof -top io.pprof", skip: "a benchmark run"},
	{text: "go run ./benchmarks -workloads sinks -out benchmarks/results/sinks.json", skip: "a benchmark run"},
	{text: "go run ./benchmarks -workloads scaleout -out benchmarks/results/scaleout.json", skip: "a benchmark run"},
	{text: "go run ./benchmarks -h"},
	{text: "go test ./benchmarks", skip: "part of the test suite this test is part of"},
}

// readmeFile is a file name with a batch time, which differs from run to run.
var readmeFile = regexp.MustCompile(`(\S+)-\d{13}\.jsonl`)

// TestReadmeCommands runs every command of the README in order, in an empty
// directory, as a user following it from the Quickstart down would, with
// these replacements: "go run ./examples/X" and "go run ./cmd/X" run the
// binaries built once; the fixed ports become free ones; the real cluster
// (kafka1:9092) is a stand-alone sluice-broker; /var/lib/sluice is under
// the directory; a file with a batch time is the newest such file.
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's commands, most of a minute; run without -short")
	}
	for _, tool := range []string{"kcat", "sqlite3"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " is not installed; install it (apt-get install " + tool + ", brew install " + tool + ") to run the README's commands"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	root := exampletest.ModuleRoot(t)
	cmds := readmeCommands(t, filepath.Join(root, "README.md"))
	var texts, want []string
	for _, c := range cmds {
		texts = append(texts, c.text)
	}
	for _, s := range readmeSteps {
		want = append(want, s.text)
	}
	if !slices.Equal(texts, want) {
		t.Fatalf("the README's commands are not the ones this test runs; update readmeSteps.\nREADME:\n%s\n\nreadmeSteps:\n%s",
			strings.Join(texts, "\n"), strings.Join(want, "\n"))
	}

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./examples/wordcount", "./examples/pagepopularity",
		"./examples/ipcount", "./cmd/sluice-broker", "./cmd/sluice-checkpoint", "./benchmarks")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cluster := exampletest.StartBroker(t, "user-behavior-topic", 2)
	replace := strings.NewReplacer(
		"go run ./examples/", bin+"/",
		"go run ./cmd/", bin+"/",
		"go run ./benchmarks", bin+"/benchmarks",
		"kafka1:9092,kafka2:9092", cluster,
		"kafka1:9092", cluster,
		"127.0.0.1:19092", freeAddr(t),
		"127.0.0.1:19093", freeAddr(t),
		"127.0.0.1:19555", freeAddr(t),
		"127.0.0.1:19556", freeAddr(t),
		"/var/lib/sluice/", "var/lib/sluice/",
	)
	dir := t.TempDir()

	var beside []*readmeProc // commands running beside the next ones
	stopBeside := func() {
		for _, p := range slices.Backward(beside) {
			p.stop(t)
		}
		beside = nil
	}
	section := ""
	for i, c := range cmds {
		step := readmeSteps[i]
		if c.section != section {
			stopBeside()
			section = c.section
		}
		if step.skip != "" {
			t.Logf("not run: %s (%s)", c.text, step.skip)
			continue
		}
		script := replace.Replace(c.text)
		script = readmeFile.ReplaceAllString(script, `"$$(ls $1-*.jsonl | tail -n 1)"`)
		script, bg := strings.CutSuffix(script, " &")
		if !strings.ContainsAny(script, "|&;$") {
			script = "exec " + script // so that SIGINT reaches the command itself
		}
		t.Logf("$ %s", c.text)
		p := startReadmeProc(t, c.text, script, dir)
		switch {
		case step.ready != "":
			p.await(t, step.ready)
			p.until = step.until
			beside = append(beside, p)
		case bg:
			t.Fatalf("%q runs in the background; give it a ready pattern", c.text)
		case step.until != "" || step.untilEach != nil:
			p.until, p.untilEach = step.until, step.untilEach
			p.stop(t)
		default:
			out := p.wait(t)
			if step.output && !slices.Equal(out, c.output) {
				t.Errorf("%s printed\n%s\nthe README shows\n%s", c.text, strings.Join(out, "\n"), strings.Join(c.output, "\n"))
			}
		}
	}
	stopBeside()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// readmeProc is a running README command, its standard output and error
// read line by line.
type readmeProc struct {
	text      string
	until     string
	untilEach []string
	cmd       *exec.Cmd
	lines     chan string
	done      chan struct{}
	err       error

	mu  sync.Mutex
	out []string
}

const readmeTimeout = 60 * time.Second

func startReadmeProc(t *testing.T, text, script, dir string) *readmeProc {
	t.Helper()
	p := &readmeProc{text: text, cmd: exec.Command("bash", "-c", script), lines: make(chan string, 4096), done: make(chan struct{})}
	p.cmd.Dir = dir
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		w.Close()
	}()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for a pattern: the line is kept in out
			}
		}
		close(p.lines)
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *readmeProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.out, "\n")
}

// await reads output until a line matches pattern.
func (p *readmeProc) await(t *testing.T, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.After(readmeTimeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				t.Fatalf("%s ended (%v) before printing a line matching %q:\n%s", p.text, p.err, pattern, p.output())
			}
			if re.MatchString(l) {
				return
			}
		case <-deadline:
			t.Fatalf("%s printed no line matching %q within %v:\n%s", p.text, pattern, readmeTimeout, p.output())
		}
	}
}

// awaitEach reads output until each of patterns has matched a line.
func (p *readmeProc) awaitEach(t *testing.T, patterns []string) {
	t.Helper()
	left := make([]*regexp.Regexp, len(patterns))
	for i, pat := range patterns {
		left[i] = regexp.MustCompile(pat)
	}
	deadline := time.After(readmeTimeout)
	for len(left) > 0 {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				t.Fatalf("%s ended (%v) before printing lines matching %q:\n%s", p.text, p.err, left, p.output())
			}
			left = slices.DeleteFunc(left, func(re *regexp.Regexp) bool { return re.MatchString(l) })
		case <-deadline:
			t.Fatalf("%s printed no lines matching %q within %v:\n%s", p.text, left, readmeTimeout, p.output())
		}
	}
}

// stop waits for a line matching p.until, sends SIGINT and waits for a clean
// exit.
func (p *readmeProc) stop(t *testing.T) {
	t.Helper()
	if p.until != "" {
		p.await(t, p.until)
	}
	if p.untilEach != nil {
		p.awaitEach(t, p.untilEach)
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("interrupting %s: %v", p.text, err)
	}
	p.wait(t)
}

// wait waits for the command to end and fails unless it exited 0. It
// returns the output.
func (p *readmeProc) wait(t *testing.T) []string {
	t.Helper()
	go func() {
		for range p.lines {
		}
	}()
	select {
	case <-p.done:
	case <-time.After(readmeTimeout):
		t.Fatalf("%s did not end within %v:\n%s", p.text, readmeTimeout, p.output())
	}
	if p.err != nil {
		t.Fatalf("%s failed (%v):\n%s", p.text, p.err, p.output())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.out)
}
