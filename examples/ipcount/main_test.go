package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
)

func TestClientIP(t *testing.T) {
	cases := []struct {
		name, line string
		ip         string
		ok         bool
		err        string
	}{
		{"nginx line", `{"time_local":"21/Nov/2026:20:00:00 +0000","client_real_ip":"203.0.113.7","status":200}`, "203.0.113.7", true, ""},
		{"IPv6", `{"client_real_ip":"2001:db8::1"}`, "2001:db8::1", true, ""},
		{"IPv6 is written canonically", `{"client_real_ip":"2001:DB8:0:0:0:0:0:1"}`, "2001:db8::1", true, ""},
		{"no field", `{"remote_addr":"10.0.0.2","request":"GET /healthz HTTP/1.1"}`, "", false, ""},
		{"null field", `{"client_real_ip":null}`, "", false, ""},
		{"empty field", `{"client_real_ip":""}`, "", false, ""},
		{"field name in another value", `{"note":"client_real_ip"}`, "", false, ""},
		{"cut short", `{"client_real_ip":"203.0.11`, "", false, "not a JSON object"},
		{"not UTF-8", "{\"client_real_ip\":\"203.0.113.7\",\"agent\":\"q\xfe\"}", "", false, "not UTF-8 text"},
		{"not JSON", `203.0.113.7 - - [21/Nov/2026] "GET /"`, "", false, "not a JSON object"},
		{"JSON but not an object", `["client_real_ip"]`, "", false, "not a JSON object"},
		{"JSON null", `null`, "", false, "not a JSON object"},
		{"number instead of string", `{"client_real_ip":42}`, "", false, "client_real_ip is a JSON number, not an IP address string"},
		{"object instead of string", `{"client_real_ip":{"ip":"192.0.2.1"}}`, "", false, "client_real_ip is a JSON object, not an IP address string"},
		{"not an address", `{"client_real_ip":"unknown"}`, "", false, `client_real_ip "unknown" is not an IP address`},
		{"address with a port", `{"client_real_ip":"192.0.2.1:443"}`, "", false, `client_real_ip "192.0.2.1:443" is not an IP address`},
		{"IPv4 with leading zeros", `{"client_real_ip":"192.0.2.010"}`, "", false, `client_real_ip "192.0.2.010" is not an IP address`},
		{"IPv6 zone", `{"client_real_ip":"fe80::1%eth0"}`, "", false, "has an IPv6 zone"},
		{"IPv4-mapped IPv6 is the IPv4 address", `{"client_real_ip":"::ffff:192.0.2.1"}`, "192.0.2.1", true, ""},
		{"escaped field name", `{"client\u005freal_ip":"192.0.2.1"}`, "192.0.2.1", true, ""},
		{"escaped address", `{"client_real_ip":"192.0.2.\u0031"}`, "192.0.2.1", true, ""},
		{"field name in another case is another field", `{"Client_Real_IP":"192.0.2.1"}`, "", false, ""},
		{"field given twice", `{"client_real_ip":"192.0.2.1","client_real_ip":"192.0.2.2"}`, "", false, "client_real_ip appears more than once"},
		{"field given twice, once null", `{"client_real_ip":null,"client_real_ip":"192.0.2.2"}`, "", false, "client_real_ip appears more than once"},
		{"other fields given twice", `{"status":200,"status":404,"client_real_ip":"192.0.2.1"}`, "192.0.2.1", true, ""},
		{"any valid number elsewhere", `{"bytes":1e999,"rt":-0.0,"client_real_ip":"192.0.2.1"}`, "192.0.2.1", true, ""},
		{"whitespace around the object", " \t{\"client_real_ip\" : \"192.0.2.1\"}\r\n", "192.0.2.1", true, ""},
		{"data after the object", `{"client_real_ip":"192.0.2.1"}{}`, "", false, "not a JSON object: invalid character '{' after top-level value"},
		{"trailing comma", `{"client_real_ip":"192.0.2.1",}`, "", false, "not a JSON object"},
		{"single quotes", `{'client_real_ip':'192.0.2.1'}`, "", false, "not a JSON object"},
		{"empty line", ``, "", false, "not a JSON object: unexpected end of JSON input"},
		{"JSON string", `"192.0.2.1"`, "", false, "not a JSON object: the line holds a JSON string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ip, ok, err := ClientIP([]byte(c.line))
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.ok, ok)
			require.Equal(t, c.ip, ip)
		})
	}
}

// FuzzClientIP holds ClientIP to its documented format on any line, and
// checks it against a reading of its own: encoding/json's decoding into a
// map, whose keys are exact.
//
//   - Not UTF-8: "not UTF-8 text". Not one JSON value: "not a JSON
//     object: <the scanner's error>". Another JSON value than an object:
//     "not a JSON object".
//   - client_real_ip missing, null or "": no address and no error.
//   - A string that netip.ParseAddr refuses or that has a zone: an error
//     quoting it; another JSON kind: an error naming the kind.
//   - client_real_ip twice: "appears more than once" (the map keeps one).
//   - An address: the canonical, unmapped form of the field's string, which
//     reads back as itself in a line of its own.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{
		`{"time_local":"21/Nov/2026:20:00:00 +0000","client_real_ip":"203.0.113.7","status":200}`,
		`{"client_real_ip":"2001:DB8:0:0:0:0:0:1"}`, `{"client_real_ip":"::ffff:192.0.2.1"}`, `{"client_real_ip":"fe80::1%eth0"}`,
		`{"client_real_ip":null}`, `{"client_real_ip":""}`, `{"client_real_ip":42}`, `{"client_real_ip":"192.0.2.010"}`,
		`{"client\u005freal_ip":"192.0.2.1"}`, `{"Client_Real_IP":"192.0.2.1"}`, `{"client_real_ip":"192.0.2.1","client_real_ip":"192.0.2.2"}`,
		`{"client_real_ip":"192.0.2.1"}{}`, `{"client_real_ip":"203.0.11`, "{\"client_real_ip\":\"203.0.113.7\",\"agent\":\"q\xfe\"}",
		`["client_real_ip"]`, `null`, ``, ` {"bytes":1e999} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ip, ok, err := ClientIP(line)
		if err != nil {
			require.Empty(t, ip)
			require.False(t, ok)
		}
		switch {
		case !utf8.Valid(line):
			require.EqualError(t, err, "not UTF-8 text")
			return
		case !json.Valid(line):
			require.ErrorContains(t, err, "not a JSON object: ")
			return
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(line, &fields) != nil || fields == nil {
			require.ErrorContains(t, err, "not a JSON object")
			return
		}
		raw, has := fields[ipField]
		if err != nil && strings.Contains(err.Error(), "appears more than once") {
			require.True(t, has, "a field given twice is in the map")
			return
		}
		var s string
		switch {
		case !has || string(raw) == "null" || string(raw) == `""`:
			require.NoError(t, err)
			require.False(t, ok)
			require.Empty(t, ip)
			return
		case json.Unmarshal(raw, &s) != nil:
			require.ErrorContains(t, err, ipField+" is a JSON ")
			require.ErrorContains(t, err, ", not an IP address string")
			return
		}
		addr, perr := netip.ParseAddr(s)
		if perr != nil || addr.Zone() != "" {
			require.ErrorContains(t, err, fmt.Sprintf("%s %q is not an IP address", ipField, s))
			return
		}
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, addr.Unmap().String(), ip)
		require.True(t, utf8.ValidString(ip))
		again, err := netip.ParseAddr(ip)
		require.NoError(t, err)
		require.Equal(t, ip, again.String(), "canonical")
		require.False(t, again.Is4In6(), "unmapped")
		own, err := json.Marshal(map[string]string{ipField: ip})
		require.NoError(t, err)
		ip2, ok2, err := ClientIP(own)
		require.NoError(t, err)
		require.True(t, ok2)
		require.Equal(t, ip, ip2, "reads back as itself")
	})
}

func ExampleClientIP() {
	for _, line := range []string{
		`{"remote_addr":"10.0.1.3","client_real_ip":"198.51.100.23","request":"GET / HTTP/1.1","status":200}`,
		`{"remote_addr":"10.0.1.3","request":"GET /healthz HTTP/1.1","status":200}`,
		`{"remote_addr":"10.0.1.3","client_real_ip":"198.5`,
	} {
		ip, ok, err := ClientIP([]byte(line))
		fmt.Printf("%q %v %v\n", ip, ok, err != nil)
	}
	// Output:
	// "198.51.100.23" true false
	// "" false false
	// "" false true
}

func TestGeneratorWritesAccessLogs(t *testing.T) {
	g := newGenerator()
	r := rand.New(rand.NewPCG(5, 6))
	var with, without, broken int
	ips := map[string]int{}
	for range 4000 {
		_, v := g.Next(r)
		ip, ok, err := ClientIP(v)
		switch {
		case err != nil:
			broken++
		case ok:
			with++
			ips[ip]++
		default:
			without++
			var e map[string]any
			require.NoError(t, json.Unmarshal(v, &e))
			require.Contains(t, e, "request")
		}
	}
	require.Greater(t, with, 3000)
	require.Positive(t, without, "some lines lack client_real_ip")
	require.Positive(t, broken, "a few lines are cut short")
	require.Less(t, broken, 100)
	require.Greater(t, len(ips), 20, "many client addresses")
}

var (
	topHeader = regexp.MustCompile(`^top (\d+) of (\d+) IPs? in window \((\S+), (\S+)\]: (\d+) requests?$`)
	topRow    = regexp.MustCompile(`^\s+(\d+)\. (\S+)\s+(\d+)$`)
	batchLine = regexp.MustCompile(`^batch \d\d:\d\d:\d\d\.\d{3}: (\d+) records?, (\d+) malformed.*, (\d+) without client_real_ip`)
)

type saved struct {
	IP    string `json:"ip"`
	Count int64  `json:"count"`
}

// TestEndToEnd runs ipcount on its embedded broker and generator and checks
// the printed windows and the saved files.
func TestEndToEnd(t *testing.T) {
	bin := exampletest.Build(t, "./examples/ipcount")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out", "ip")
	p := exampletest.Start(t, bin, "--listen", "127.0.0.1:0", "--checkpoint", filepath.Join(dir, "ck"),
		"--batch", "200ms", "--window", "1s", "--slide", "400ms", "--generate", "300", "--top", "5",
		"--save", prefix, "--duration", "3s")
	out := p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.Empty(t, p.StderrExceptLateBatches(), "nothing on stderr but a late-batch warning, which a loaded machine may cause")
	text := strings.Join(out, "\n")
	require.Regexp(t, `ipcount: stopped \(--duration 3s passed\) after \d+ batches`, out[len(out)-1])

	var batches, headers, without int
	for i, l := range out {
		if m := batchLine.FindStringSubmatch(l); m != nil {
			batches++
			n, _ := strconv.Atoi(m[3])
			without += n
		}
		m := topHeader.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		headers++
		n, _ := strconv.Atoi(m[1])
		distinct, _ := strconv.Atoi(m[2])
		require.Equal(t, min(5, distinct), n, l)
		prev := int64(-1)
		for r := 1; r <= n; r++ {
			row := topRow.FindStringSubmatch(out[i+r])
			require.NotNil(t, row, "row %d after %q: %q", r, l, out[i+r])
			count, _ := strconv.ParseInt(row[3], 10, 64)
			require.Positive(t, count)
			if prev >= 0 {
				require.LessOrEqual(t, count, prev, "busiest first")
			}
			prev = count
		}
	}
	require.GreaterOrEqual(t, batches, 5, text)
	require.GreaterOrEqual(t, headers, 3, text)
	require.Positive(t, without, "the batch lines count lines without client_real_ip:\n%s", text)

	files := exampletest.Saved(t, prefix, "")
	require.Len(t, files, headers)
	for _, path := range files {
		rows := exampletest.ReadJSONLines[saved](t, path)
		for i := 1; i < len(rows); i++ {
			a, b := rows[i-1], rows[i]
			require.True(t, a.Count > b.Count || a.Count == b.Count && a.IP < b.IP, "%s: %v before %v", path, a, b)
		}
	}
}

// TestRecoveryAfterKills kills ipcount with SIGKILL at random moments while
// it works through a fixed input on a stand-alone broker, restarts it from
// its checkpoint each time, and checks that the last window it saves,
// which covers the whole input, counts every request exactly once.
//
// A restart takes longer than the 100ms slide, so the batch times the job
// missed while it was down are skipped: the window resumes across a gap.
func TestRecoveryAfterKills(t *testing.T) {
	seed := exampletest.Seed(t)
	rnd := rand.New(rand.NewPCG(seed, seed^0x5eed))
	gen := newGenerator()
	truth := map[string]int64{}
	var values [][]byte
	for range 1200 {
		_, v := gen.Next(rnd)
		values = append(values, v)
		if ip, ok, err := ClientIP(v); err == nil && ok {
			truth[ip]++
		}
	}
	prefix := exampletest.Recover(t, rnd, "./examples/ipcount", "access-log", nil, values, "--window", "60s", "--slide", "100ms")

	got := map[string]int64{}
	for _, r := range exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix, "")) {
		got[r.IP] = r.Count
	}
	require.Equal(t, truth, got, "request counts of the last window after the kills")
}

// TestSinkByDefault runs ipcount with its default checkpoint and sink: the
// results land in sluice-data/ipcount/results.db beside the checkpoint,
// batch by batch the rows of the --save files, with the offsets the job
// read; --sink "" writes no database.
func TestSinkByDefault(t *testing.T) {
	bin := exampletest.Build(t, "./examples/ipcount")
	args := []string{"--listen", "127.0.0.1:0", "--batch", "200ms", "--window", "1s", "--slide", "400ms",
		"--generate", "300", "--duration", "2s", "--http", ""}
	prefix := filepath.Join(t.TempDir(), "out", "ip")
	p := exampletest.Start(t, bin, append(args, "--save", prefix)...)
	out := p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	var records int64
	for _, l := range out {
		if m := batchRecords.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			records += n
		}
	}
	db := filepath.Join(p.Dir, "sluice-data", "ipcount", "results.db")
	require.DirExists(t, filepath.Join(p.Dir, "sluice-data", "ipcount", "checkpoint"))
	saved := exampletest.SavedRows(t, prefix, "")
	require.NotEmpty(t, saved)
	require.Equal(t, saved, exampletest.SinkRows(t, db, ""), "the default sink's rows, batch by batch")
	var stored int64
	for tp, o := range exampletest.SinkOffsets(t, db, "ipcount") {
		require.True(t, strings.HasPrefix(tp, "access-log/"), tp)
		stored += o
	}
	require.Positive(t, stored, "the progress rows hold the offsets read")
	require.LessOrEqual(t, stored, records, "the progress rows hold no more offsets than the job read")

	p = exampletest.Start(t, bin, append(args, "--sink", "")...)
	out = p.Wait(t, 30*time.Second)
	require.NoError(t, p.Err, "stderr: %s", p.Stderr)
	require.NoFileExists(t, filepath.Join(p.Dir, "sluice-data", "ipcount", "results.db"), "--sink \"\" writes no database")
	require.DirExists(t, filepath.Join(p.Dir, "sluice-data", "ipcount", "checkpoint"))
}

// TestHostileRecords runs ipcount on lines a lenient reader would take:
// non-UTF-8 bytes in client_real_ip (two distinct ids that would both read
// as "q\ufffd") and elsewhere in the line, JSON that is not RFC 8259 or has
// data after the object, the field twice, addresses with leading zeros or a
// port, a number. Each is counted as malformed and skipped, a field in
// another case counts as without client_real_ip, and the saved window holds
// only the good lines' addresses in canonical form, each once. A rerun on
// the same checkpoint succeeds and saves the same counts.
func TestHostileRecords(t *testing.T) {
	addr := exampletest.StartBroker(t, "access-log", 1)
	bad := []string{
		"{\"client_real_ip\":\"q\xfe\"}", "{\"client_real_ip\":\"q\xff\"}",
		"{\"client_real_ip\":\"192.0.2.1\",\"agent\":\"\xff\"}",
		`{'client_real_ip':'192.0.2.1'}`, `{"client_real_ip":"192.0.2.1",}`, `{"client_real_ip":"192.0.2.1"}{}`,
		`{"client_real_ip":"192.0.2.1","client_real_ip":"192.0.2.2"}`, `{"client_real_ip":"192.0.2.010"}`,
		`{"client_real_ip":"192.0.2.1:443"}`, `{"client_real_ip":42}`, `{"client_real_ip":"192.0.2.1"`,
	}
	good := []string{`{"client_real_ip":"192.0.2.1"}`, `{"client_real_ip":"2001:DB8::1"}`, `{"client_real_ip":"::ffff:192.0.2.1"}`,
		`{"bytes":1e999,"client_real_ip":"192.0.2.1"}`}
	var values [][]byte
	for i, b := range bad {
		values = append(values, []byte(b))
		if i < len(good) {
			values = append(values, []byte(good[i]))
		}
	}
	values = append(values, []byte(`{"Client_Real_IP":"192.0.2.9"}`))
	exampletest.Produce(t, addr, "access-log", nil, values)
	bin := exampletest.Build(t, "./examples/ipcount")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out", "ip")
	args := []string{"--brokers", addr, "--checkpoint", filepath.Join(dir, "ck"), "--save", prefix, "--sink", "", "--http", "",
		"--batch", "100ms", "--window", "60s", "--slide", "100ms", "--stop-when-idle", "2"}
	for run := range 2 {
		p := exampletest.Start(t, bin, args...)
		out := p.Wait(t, 30*time.Second)
		require.NoError(t, p.Err, "run %d stderr: %s", run, p.Stderr)
		var malformed, without int
		for _, l := range out {
			if m := batchLine.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[2])
				malformed += n
				n, _ = strconv.Atoi(m[3])
				without += n
			}
		}
		if run == 0 {
			require.Equal(t, len(bad), malformed, strings.Join(out, "\n"))
			require.Equal(t, 1, without, strings.Join(out, "\n"))
		}
		rows := exampletest.ReadJSONLines[saved](t, exampletest.Newest(t, prefix, ""))
		require.Equal(t, []saved{{"192.0.2.1", 3}, {"2001:db8::1", 1}}, rows, "run %d", run)
	}
}

var batchRecords = regexp.MustCompile(`^batch \S+: (\d+) records?`)

// BenchmarkClientIP reads a typical access-log line, beside a plain
// json.Unmarshal of the same line into a struct with the field, the
// lenient reading it replaced.
func BenchmarkClientIP(b *testing.B) {
	line := []byte(`{"time":"2026-12-03T21:20:24Z","method":"GET","path":"/index.html","status":200,"bytes":5120,"client_real_ip":"192.0.2.17","user_agent":"curl/8.5"}`)
	b.Run("ClientIP", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := ClientIP(line); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e struct {
				IP *string `json:"client_real_ip"`
			}
			if err := json.Unmarshal(line, &e); err != nil || e.IP == nil {
				b.Fatal(err)
			}
		}
	})
}
