package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"streamrelay/internal/demo"
)

// The fake upstream runs in a process of its own, so that its CPU is not
// mixed into the load tool's or the server's: the bench binary (or the test
// binary) re-executes itself with these variables set.
const (
	roleEnv   = "STREAMRELAY_BENCH_ROLE"
	delayEnv  = "STREAMRELAY_BENCH_DELAY"
	deltasEnv = "STREAMRELAY_BENCH_DELTAS"
)

// maybeServeUpstream serves the demo upstream and exits if this process was
// started as one; otherwise it returns at once.
func maybeServeUpstream() {
	if os.Getenv(roleEnv) != "upstream" {
		return
	}
	if err := serveUpstream(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench upstream:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveUpstream serves demo.Handler with stamped deltas on a loopback port,
// writes "listening ADDR" to out, and serves until in reaches EOF: the
// parent closed the pipe or died.
func serveUpstream(in io.Reader, out io.Writer) error {
	delay, err := time.ParseDuration(os.Getenv(delayEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", delayEnv, err)
	}
	deltas, err := strconv.Atoi(os.Getenv(deltasEnv))
	if err != nil || deltas < 1 {
		return fmt.Errorf("%s must be a count above 0", deltasEnv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           demo.Handler(demo.Options{Delay: delay, Deltas: deltas, Stamp: true}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln)
	fmt.Fprintf(out, "listening %s\n", ln.Addr())
	io.Copy(io.Discard, in)
	return srv.Close()
}

// startUpstream starts the fake upstream process and returns it with its
// address.
func startUpstream(lv Level) (*proc, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"=upstream",
		delayEnv+"="+lv.D.String(), deltasEnv+"="+strconv.Itoa(lv.K))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{name: "upstream", cmd: cmd, pids: []int{cmd.Process.Pid}, stop: func() { stdin.Close() }}
	line, err := readLineWithin(stdout, 10*time.Second)
	addr, ok := strings.CutPrefix(line, "listening ")
	if err != nil || !ok {
		p.kill()
		return nil, "", fmt.Errorf("upstream did not start: %q %v", line, err)
	}
	return p, addr, nil
}

// readLineWithin reads one line from r, giving up after d.
func readLineWithin(r io.Reader, d time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	select {
	case res := <-ch:
		return res.line, res.err
	case <-time.After(d):
		return "", fmt.Errorf("no line within %v", d)
	}
}
