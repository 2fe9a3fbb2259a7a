// Package pgtest starts one real PostgreSQL server per test binary, on a
// temporary directory and a free loopback port, for tests that need a
// database. initdb and pg_ctl refuse to run as root, so as root they run
// as the postgres user through runuser.
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

var (
	once   sync.Once
	dsn    string
	errMsg string
	stop   func()
	// ctl runs pg_ctl on the server's data directory with its options.
	ctl func(args ...string) ([]byte, error)
)

func findBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(m) > 0 {
		return m[len(m)-1]
	}
	return ""
}

// DSN returns the connection string of the test binary's server, starting
// it on first use. Without PostgreSQL's binaries it skips the test, or
// fails it when the environment variable CI is "true".
func DSN(t testing.TB) string {
	t.Helper()
	d, err := Start()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err.Error())
		}
		t.Skip(err.Error())
	}
	return d
}

// Start returns the connection string of the process's server, starting
// it on first use, for programs that are not tests (benchmarks). Its error
// says why no server runs and how to install PostgreSQL.
func Start() (string, error) {
	once.Do(start)
	if errMsg != "" {
		return "", errors.New(errMsg)
	}
	return dsn, nil
}

// Stop stops the server if it was started; call it from TestMain after
// m.Run.
func Stop() {
	if stop != nil {
		stop()
	}
}

// Crash stops the test binary's server at once (pg_ctl stop -m
// immediate), as a crash of the database would, keeping its data for
// [Restart]. Connections to it break; new ones are refused.
func Crash(t testing.TB) {
	t.Helper()
	DSN(t)
	if out, err := ctl("-m", "immediate", "stop"); err != nil {
		t.Fatalf("pg_ctl stop failed: %v: %s", err, out)
	}
}

// Restart starts the server [Crash] stopped again, on the same port and
// data, and waits until it accepts connections.
func Restart(t testing.TB) {
	t.Helper()
	DSN(t)
	if out, err := ctl("start"); err != nil {
		t.Fatalf("pg_ctl start failed: %v: %s", err, out)
	}
}

func start() {
	initdb, pgctl := findBin("initdb"), findBin("pg_ctl")
	if initdb == "" || pgctl == "" {
		errMsg = "PostgreSQL's initdb and pg_ctl are not on PATH nor in /usr/lib/postgresql/*/bin; install Debian's postgresql (apt-get install postgresql)"
		return
	}
	dir, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		errMsg = "cannot make the PostgreSQL data directory: " + err.Error()
		return
	}
	run := func(args ...string) *exec.Cmd { return exec.Command(args[0], args[1:]...) }
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			errMsg = "running as root needs a postgres user to run the server; install Debian's postgresql (apt-get install postgresql)"
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			errMsg = "cannot give the PostgreSQL data directory to the postgres user: " + err.Error()
			return
		}
		run = func(args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := run(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8").CombinedOutput(); err != nil {
		errMsg = fmt.Sprintf("initdb failed: %v: %s", err, out)
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		errMsg = "cannot find a free loopback port: " + err.Error()
		return
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -F", port, dir)
	if out, err := run(pgctl, "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		errMsg = fmt.Sprintf("pg_ctl start failed: %v: %s %s", err, out, log)
		return
	}
	ctl = func(args ...string) ([]byte, error) {
		return run(append([]string{pgctl, "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w"}, args...)...).CombinedOutput()
	}
	dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	stop = func() {
		run(pgctl, "-D", data, "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
	}
}
