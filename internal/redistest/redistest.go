// Package redistest runs a real redis-server for tests: on a free loopback
// port, with no persistence, stopped when the test ends.
package redistest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server a test started.
type Server struct {
	Addr   string // host:port on loopback
	bin    string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Lookup returns the redis-server to run: on PATH, else where Debian puts
// it (/usr/bin; /usr/sbin is checked too, as for nginx).
func Lookup() (string, error) {
	for _, name := range []string{"redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("redis-server not found (apt-get install -y redis-server)")
}

// Command returns the command that runs bin on addr, a loopback host:port,
// without persistence, keeping its files in dir and its log in logFile
// ("" for standard output). The tests and the benchmark run Redis alike.
func Command(bin, addr, dir, logFile string) *exec.Cmd {
	_, port, _ := net.SplitHostPort(addr)
	return exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", logFile)
}

// Binary returns the redis-server to run. It skips the test when there is
// none, but fails it in CI, which installs one.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := Lookup()
	if err == nil {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatal(err.Error() + ": CI must install it")
	}
	t.Skip(err.Error() + ": install it to run the Redis tests")
	return ""
}

// Start runs a redis-server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), dir: t.TempDir()}
	var err error
	for range 3 { // another process may take the free port first
		if s.Addr, err = freeAddr(); err != nil {
			t.Fatal(err)
		}
		if err = s.start(); err == nil {
			t.Cleanup(s.stop)
			return s
		}
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redis-server did not start: %v", err)
	return nil
}

// URL is the server's address as REDIS_URL takes it.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Flush empties the server, so that subtests start afresh.
func (s *Server) Flush(t testing.TB) {
	t.Helper()
	if err := command(s.Addr, "FLUSHALL", "+OK\r\n"); err != nil {
		t.Fatal(err)
	}
}

// Kill ends the server at once with SIGKILL, as a crash would, and waits
// until it has exited.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.cmd.Process.Kill()
	<-s.exited
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	var err error
	for range 50 { // the old socket may linger a moment after a kill
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("redis-server did not restart on %s: %v", s.Addr, err)
}

// start runs redis-server on s.Addr and waits until it answers PING.
func (s *Server) start() error {
	logFile := filepath.Join(s.dir, "redis.log")
	s.cmd = Command(s.bin, s.Addr, s.dir, logFile)
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(s.cmd, s.exited)
	if err := waitPing(s.Addr, s.exited); err != nil {
		s.stop()
		b, _ := os.ReadFile(logFile)
		return fmt.Errorf("%w\n%s", err, b)
	}
	return nil
}

// stop asks the server to exit and kills it if it has not within 5 s.
func (s *Server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// waitPing polls addr with PING a bounded number of times until it
// answers +PONG, or the server exits.
func waitPing(addr string, exited <-chan struct{}) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for range 500 {
		if command(addr, "PING", "+PONG\r\n") == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("redis-server exited")
		case <-tick.C:
		}
	}
	return fmt.Errorf("redis-server not answering on %s after 5s", addr)
}

// command sends one inline command and checks the answer is want.
func command(addr, cmd, want string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return err
	}
	buf := make([]byte, len(want))
	n, err := io.ReadFull(c, buf)
	if string(buf[:n]) != want {
		return fmt.Errorf("%s answered %q: %v", cmd, buf[:n], err)
	}
	return nil
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WaitUp waits, for at most within, until conn has seen Redis answer
// again: after a Restart, a client that noticed Redis was down probes it
// about once a second.
func WaitUp(t testing.TB, conn interface{ Up() bool }, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !conn.Up() {
		if time.Now().After(deadline) {
			t.Fatalf("redis not seen up again after %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
