// Command sluice-checkpoint inspects and verifies a Sluice checkpoint
// directory.
//
//	sluice-checkpoint inspect DIR   commits, batch times, offsets per partition, operators, sizes
//	sluice-checkpoint verify DIR    checks every file's checksum; exit status 0 when all verify, 1 otherwise
//
// Both commands only read; they may run while the job runs.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/state"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: sluice-checkpoint inspect DIR | verify DIR`

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice-checkpoint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 2 {
		fmt.Fprintln(stderr, "sluice-checkpoint needs a command and a directory; "+usage)
		return 2
	}
	cmd, dir := fs.Arg(0), fs.Arg(1)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "sluice-checkpoint: %s is not a directory; pass the job's checkpoint directory\n", dir)
		return 2
	}
	switch cmd {
	case "inspect":
		bad, err := inspect(dir, stdout)
		if err != nil {
			fmt.Fprintln(stderr, "sluice-checkpoint:", err)
			return 1
		}
		if bad > 0 {
			fmt.Fprintf(stderr, "sluice-checkpoint: %s does not verify; run sluice-checkpoint verify %s for the details\n", plural(bad, "commit"), dir)
			return 1
		}
		return 0
	case "verify":
		return verify(dir, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "sluice-checkpoint: unknown command %q; %s\n", cmd, usage)
		return 2
	}
}

func commitTimes(dir string) ([]int64, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "commits"))
	if err != nil {
		return nil, fmt.Errorf("%s has no commits directory (%w); is it a Sluice checkpoint?", dir, err)
	}
	var ms []int64
	for _, e := range entries {
		if v, err := strconv.ParseInt(e.Name(), 10, 64); err == nil {
			ms = append(ms, v)
		}
	}
	slices.Sort(ms)
	return ms, nil
}

func stamp(ms int64) string {
	return fmt.Sprintf("%d (%s)", ms, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano))
}

// plural returns "1 commit", "2 commits".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// inspect prints what dir holds and returns how many commits do not verify.
func inspect(dir string, w io.Writer) (bad int, err error) {
	times, err := commitTimes(dir)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(w, "checkpoint %s: %s\n", dir, plural(len(times), "commit"))
	for _, ms := range times {
		m, _, err := engine.LoadCommit(state.OSFS{}, dir, ms)
		if collected(dir, ms, err) {
			continue
		}
		if err != nil {
			fmt.Fprintf(w, "\ncommit %s: DOES NOT VERIFY: %v\n", stamp(ms), err)
			bad++
			continue
		}
		fmt.Fprintf(w, "\ncommit %s, batch interval %v\n", stamp(ms), time.Duration(m.IntervalMS)*time.Millisecond)
		for _, op := range m.Operators {
			var size int64
			var kinds []string
			for _, f := range op.Files {
				size += f.Len
				kinds = append(kinds, f.Kind)
			}
			params := ""
			if op.Params != "" {
				params = "; " + op.Params
			}
			fmt.Fprintf(w, "  operator %-28s %-22s %s (%s), %s%s\n", op.Name, op.Kind, plural(len(op.Files), "file"), summarize(kinds), plural(int(size), "byte"), params)
		}
		names := slices.Sorted(maps.Keys(m.Sources))
		for _, name := range names {
			fmt.Fprintf(w, "  source %s:\n", name)
			printSource(w, m.Sources[name])
		}
	}
	pending, err := os.ReadDir(filepath.Join(dir, "offsets"))
	if err == nil && len(times) > 0 {
		last := times[len(times)-1]
		for _, e := range pending {
			if v, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && v > last {
				fmt.Fprintf(w, "\nplanned, not committed: batch %s (re-run on restart)\n", stamp(v))
			}
		}
	}
	return bad, nil
}

func summarize(kinds []string) string {
	counts := map[string]int{}
	for _, k := range kinds {
		counts[k]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	return strings.Join(parts, ", ")
}

// printSource prints what a source reported: a list of offset ranges when
// it has that shape, its JSON otherwise.
func printSource(w io.Writer, raw json.RawMessage) {
	var ranges []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		From      int64  `json:"from"`
		Until     int64  `json:"until"`
	}
	if err := json.Unmarshal(raw, &ranges); err == nil && len(ranges) > 0 && ranges[0].Topic != "" {
		for _, r := range ranges {
			fmt.Fprintf(w, "    %s[%d] offsets [%d, %d) %s\n", r.Topic, r.Partition, r.From, r.Until, plural(int(r.Until-r.From), "record"))
		}
		return
	}
	fmt.Fprintf(w, "    %s\n", raw)
}

// collected reports whether LoadCommit failed on commit ms only because the
// running job collected the commit, with its files, after it was listed.
func collected(dir string, ms int64, err error) bool {
	if !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	_, serr := os.Stat(filepath.Join(dir, "commits", strconv.FormatInt(ms, 10)))
	return errors.Is(serr, fs.ErrNotExist)
}

// verify checks the FORMAT file, every commit with the files it references,
// and every planned-input file. Commits and planned-input files that a
// running job removes while verify reads them are skipped.
// format is the part of a checkpoint's FORMAT file that verify checks the
// commits against.
type format struct {
	ZeroMS     int64 `json:"zero_ms"`
	IntervalMS int64 `json:"interval_ms"`
}

// readFormat reads dir's FORMAT file. A missing one is reported with what
// the job does about it.
func readFormat(dir string) (*format, error) {
	p := filepath.Join(dir, "FORMAT")
	body, err := state.ReadFile(state.OSFS{}, p, state.KindFormat)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing; the job rebuilds it from the newest verified commit when it starts (and refuses to start when there is none)", p)
	}
	if err != nil {
		return nil, err
	}
	var fm format
	if err := json.Unmarshal(body, &fm); err != nil {
		return nil, fmt.Errorf("%s does not parse: %v", p, err)
	}
	return &fm, nil
}

func verify(dir string, stdout, stderr io.Writer) int {
	bad := 0
	report := func(err error) {
		bad++
		fmt.Fprintln(stderr, "FAIL", err)
	}
	fm, err := readFormat(dir)
	if err != nil {
		report(err)
	}
	var times []int64
	files, verified := 0, 0
	// A job that keeps few commits may collect every listed one before it
	// is read: list again then.
	for attempt := 0; attempt < 3 && verified == 0 && bad == 0; attempt++ {
		var err error
		if times, err = commitTimes(dir); err != nil {
			report(err)
		}
		for _, ms := range times {
			m, _, err := engine.LoadCommit(state.OSFS{}, dir, ms)
			if collected(dir, ms, err) {
				continue
			}
			if err != nil {
				report(err)
				continue
			}
			if fm != nil && (m.IntervalMS != fm.IntervalMS || m.ZeroMS != fm.ZeroMS) {
				report(fmt.Errorf("commit %d was written with batch interval %v from zero time %d ms but FORMAT says %v from %d ms; the job refuses to restore it",
					ms, time.Duration(m.IntervalMS)*time.Millisecond, m.ZeroMS, time.Duration(fm.IntervalMS)*time.Millisecond, fm.ZeroMS))
				continue
			}
			verified++
			files++
			for _, op := range m.Operators {
				files += len(op.Files)
			}
		}
	}
	offsets, _ := os.ReadDir(filepath.Join(dir, "offsets"))
	for _, e := range offsets {
		if strings.HasPrefix(e.Name(), state.TempPrefix) {
			continue
		}
		_, err := state.ReadFile(state.OSFS{}, filepath.Join(dir, "offsets", e.Name()), state.KindOffsets)
		if errors.Is(err, fs.ErrNotExist) {
			continue // collected by the running job
		}
		files++
		if err != nil {
			report(err)
		}
	}
	if bad > 0 {
		fmt.Fprintf(stdout, "%s: %s found; see above\n", dir, plural(bad, "problem"))
		return 1
	}
	if verified == 0 {
		report(errors.New("no commits: nothing to restore from"))
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK, %s, %s verified\n", dir, plural(verified, "commit"), plural(files, "file"))
	return 0
}
