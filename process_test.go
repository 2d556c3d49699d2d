package main

// These tests run the server binary as a separate process, where what they
// check belongs to the process: its file limit, its memory, its signals,
// everything it prints.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"streamrelay/internal/demo"
	"streamrelay/internal/upstreamtest"
)

var (
	buildOnce sync.Once
	binDir    string
	binErr    error
)

// TestMain removes the server binary the process tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// serverBinary builds the server once per test run and returns its path.
func serverBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "streamrelay-test-bin"); binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "streamrelay"), ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "streamrelay")
}

// proc is the server running as a process.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	logs   *syncBuffer // its stderr: JSON log lines
	exited chan struct{}
}

// startProcess runs the server binary with env (LOG_FORMAT=json and a free
// loopback ADDR added) and, if nofile is above 0, with that file limit,
// soft and hard. It returns once the server listens, and stops it when the
// test ends.
func startProcess(t *testing.T, env map[string]string, nofile int) *proc {
	t.Helper()
	args := []string{serverBinary(t)}
	if nofile > 0 {
		// The shell's ulimit sets both limits for the exec'd server: Go
		// raises its soft limit to the hard one at start-up.
		args = append([]string{"sh", "-c", `ulimit -n ` + strconv.Itoa(nofile) + ` && exec "$0" "$@"`}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LOG_FORMAT=json", "ADDR=127.0.0.1:0", "FRONTEND_DIR=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, logs: &syncBuffer{}, exited: make(chan struct{})}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go p.readLog(stderr, listening)
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs)
		}
	})
	select {
	case url := <-listening:
		p.addr = strings.TrimPrefix(url, "http://")
	case <-p.exited:
		t.Fatalf("the server exited at start:\n%s", p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not listen within 30s:\n%s", p.logs)
	}
	return p
}

// readLog copies the server's log into p.logs, and sends the URL of its
// "listening" line.
func (p *proc) readLog(r io.Reader, listening chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.logs.Write(append(sc.Bytes(), '\n'))
		var line struct{ Msg, URL string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
			listening <- line.URL
		}
	}
}

// vm returns a field of /proc/<pid>/status in KiB, such as VmHWM.
func (p *proc) vm(t *testing.T, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc status", field)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// checkAllJSON checks that every line the server printed is a JSON log
// line: net/http's own messages too.
func checkAllJSON(t *testing.T, logs string) {
	t.Helper()
	for line := range strings.Lines(logs) {
		if !json.Valid([]byte(line)) {
			t.Errorf("the server printed a line that is not a JSON log line: %q", line)
		}
	}
}

// TestUnsentBodiesAtFileLimit floods a server whose file limit is 512 with
// 600 connections that announce a body and never send it, then checks that
// a fresh /healthz and a fresh stream are answered within the header and
// body timeouts plus a second, and that every flooding connection is
// answered or closed.
func TestUnsentBodiesAtFileLimit(t *testing.T) {
	const (
		conns       = 600
		nofile      = 512
		timeouts    = 2 * time.Second // each of READ_HEADER_TIMEOUT and BODY_READ_TIMEOUT
		fdWaitSlack = time.Second     // net/http's accept retries back off up to 1s
	)
	p := startProcess(t, appEnv(demoUpstream(t, demo.Options{}),
		"READ_HEADER_TIMEOUT", "2s", "BODY_READ_TIMEOUT", "2s",
		"RATE_LIMIT_PER_MINUTE", "0", "STREAMS_PER_CALLER", "0", "MAX_STREAMS", "0"), nofile)
	limits, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid))
	if !regexp.MustCompile(`Max open files\s+512\s+512`).Match(limits) {
		t.Fatalf("the server's file limit is not 512:\n%s", limits)
	}

	heads := []string{
		"POST /message/stream HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100",
		"POST /message/stream HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
		"GET /healthz HTTP/1.1\r\nContent-Length: 100",
		"POST /nowhere HTTP/1.1\r\nContent-Length: 100",
	}
	ended := make(chan time.Duration, conns)
	for i := range conns {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer conn.Close()
		sent := time.Now()
		fmt.Fprintf(conn, "%s\r\nHost: 127.0.0.1\r\n\r\n", heads[i%len(heads)])
		go func() {
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			io.Copy(io.Discard, conn)
			ended <- time.Since(sent)
		}()
	}

	client := &http.Client{Timeout: 30 * time.Second}
	fresh := func(name string, do func() (*http.Response, error)) {
		start := time.Now()
		res, err := do()
		took := time.Since(start)
		if err != nil {
			t.Errorf("fresh %s: %v", name, err)
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Logf("fresh %s: %d after %v", name, res.StatusCode, took.Round(time.Millisecond))
		if res.StatusCode != 200 || took > 2*timeouts+time.Second {
			t.Errorf("fresh %s: status %d after %v, want 200 within %v: %s", name, res.StatusCode, took, 2*timeouts+time.Second, body)
		}
	}
	fresh("/healthz", func() (*http.Response, error) { return client.Get("http://" + p.addr + "/healthz") })
	fresh("stream", func() (*http.Response, error) {
		return client.Post("http://"+p.addr+"/message/stream", "application/json", strings.NewReader(`{"prompt":"hi"}`))
	})

	// A connection that found no free descriptor waits in the listen
	// backlog until the first timeouts free some, then runs its own.
	bound := 2*timeouts + fdWaitSlack + time.Second
	var longest time.Duration
	for range conns {
		d := <-ended
		longest = max(longest, d)
	}
	t.Logf("the longest flooding connection ended after %v", longest.Round(time.Millisecond))
	if longest > bound {
		t.Errorf("a flooding connection stayed open %v, want at most %v", longest, bound)
	}
	if !strings.Contains(p.logs.String(), "too many open files") {
		t.Error("the server never hit its file limit: the test did not test it")
	}
	checkAllJSON(t, p.logs.String())
}

// TestOversizedHeaders checks that headers over MAX_HEADER_BYTES (64 KiB by
// default) get 431, and that 300 connections sending 900 KiB of headers
// each don't cost the server more than 120 MiB. With Go's default of 1 MB,
// each would hold its 900 KiB.
func TestOversizedHeaders(t *testing.T) {
	p := startProcess(t, appEnv(demoUpstream(t, demo.Options{})), 0)
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 70<<10))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", res.StatusCode)
	}

	before := p.vm(t, "VmHWM")
	var wg sync.WaitGroup
	for range 300 {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
			line := "X-Pad: " + strings.Repeat("b", 1000) + "\r\n"
			for range 900 {
				if _, err := io.WriteString(conn, line); err != nil {
					return // the server answered 431 and closed
				}
			}
		}()
	}
	wg.Wait()
	grew := (p.vm(t, "VmHWM") - before) >> 10
	t.Logf("peak memory grew by %d MiB", grew)
	if grew > 120 {
		t.Errorf("peak memory grew by %d MiB, want at most 120", grew)
	}
}

// TestSecondSignalCutsDrain checks that a second SIGTERM during the drain
// cuts the streams at once and exits non-zero, and that the first already
// refuses new connections.
func TestSecondSignalCutsDrain(t *testing.T) {
	up := fakeUpstream(t, upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("x")), upstreamtest.Hang())
	p := startProcess(t, appEnv(up.BaseURL(), "DRAIN_TIMEOUT", "5m"), 0)
	res, err := http.Post("http://"+p.addr+"/message/stream", "application/json", strings.NewReader(`{"prompt":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := bufio.NewReader(res.Body)
	if line, err := r.ReadString('\n'); line != "x\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitRefused(t, "http://"+p.addr)
	select {
	case <-p.exited:
		t.Fatal("the server exited at the first signal, with a stream in flight")
	default:
	}
	second := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the server still runs 5s after the second signal")
	}
	t.Logf("exited %v after the second signal", time.Since(second).Round(time.Millisecond))
	if code := p.cmd.ProcessState.ExitCode(); code == 0 {
		t.Error("exit code 0 after streams were cut, want non-zero")
	}
	if _, err := io.ReadAll(r); err == nil {
		t.Error("the cut stream ended cleanly, want an incomplete body")
	}
	checkAllJSON(t, p.logs.String())
}
