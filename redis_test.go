package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"streamrelay/internal/redistest"
	"streamrelay/internal/upstreamtest"
)

// swappableGate returns a step that waits for the gate current when a
// request reaches it, and swap, which puts a new gate in place.
func swappableGate() (wait upstreamtest.Step, swap func() chan struct{}) {
	var gate atomic.Pointer[chan struct{}]
	swap = func() chan struct{} {
		ch := make(chan struct{})
		gate.Store(&ch)
		return ch
	}
	swap()
	wait = func(w http.ResponseWriter, r *http.Request) bool {
		return upstreamtest.Wait(*gate.Load())(w, r)
	}
	return wait, swap
}

// swappableUpstream answers "first", then waits for the gate current when the
// request came, then answers " last". swap puts a new gate in place.
func swappableUpstream(t *testing.T) (up *upstreamtest.Server, swap func() chan struct{}) {
	wait, swap := swappableGate()
	steps := []upstreamtest.Step{upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("first")), wait}
	steps = append(steps, upstreamtest.Events(upstreamtest.Content(" last"), upstreamtest.Finish("stop"), upstreamtest.Done)...)
	return fakeUpstream(t, steps...), swap
}

// opened posts to a and reads the stream's first line; the caller holds
// the body, which holds the stream's slot.
func opened(t *testing.T, a *app) *bufio.Reader {
	t.Helper()
	res := a.post(t, "hi")
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("%s: %d %s, want a stream", a.url, res.StatusCode, b)
	}
	r := bufio.NewReader(res.Body)
	if line, err := r.ReadString('\n'); line != "first\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	return r
}

// refusedBy posts to a and checks the answer is 429 with code.
func refusedBy(t *testing.T, a *app, code string) {
	t.Helper()
	res := a.post(t, "hi")
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), `"code":"`+code+`"`) {
		t.Fatalf("%s: %d %s, want 429 %s", a.url, res.StatusCode, b, code)
	}
}

// TestRedisSharedLimits spreads one caller over two instances: together
// they give it the single configured budget, for the rate and for its
// concurrent streams.
func TestRedisSharedLimits(t *testing.T) {
	srv := redistest.Start(t)
	up, swap := swappableUpstream(t)
	tests := map[string]struct {
		env  []string
		code string
	}{
		"rate":    {[]string{"RATE_LIMIT_PER_MINUTE", "1", "RATE_LIMIT_BURST", "3", "STREAMS_PER_CALLER", "0"}, "rate_limited"},
		"streams": {[]string{"RATE_LIMIT_PER_MINUTE", "0", "STREAMS_PER_CALLER", "3"}, "too_many_streams"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			srv.Flush(t)
			defer close(swap())
			env := appEnv(up.BaseURL(), append(tt.env, "REDIS_URL", srv.URL())...)
			a, b := launch(t, env), launch(t, env)
			opened(t, a)
			opened(t, b)
			opened(t, a)
			refusedBy(t, b, tt.code)
			refusedBy(t, a, tt.code)
		})
	}
}

// TestRedisKilledInstance kills an instance holding streams: their slots
// come back within the lease period, for the instance still running.
func TestRedisKilledInstance(t *testing.T) {
	const lease = 2 * time.Second
	srv := redistest.Start(t)
	up, swap := swappableUpstream(t)
	defer close(swap())
	env := appEnv(up.BaseURL(), "REDIS_URL", srv.URL(), "STREAMS_PER_CALLER", "2", "RATE_LIMIT_PER_MINUTE", "0")
	doomed := helperInstance(t, env, lease)
	live := launch(t, env)
	opened(t, doomed.app)
	opened(t, doomed.app)
	refusedBy(t, live, "too_many_streams")

	doomed.kill()
	killed := time.Now()
	refusedBy(t, live, "too_many_streams") // the dead hold their slots a while
	for {
		res := live.post(t, "hi")
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Since(killed) > 3*lease {
			t.Fatalf("still %d %v after the kill; want the slots back within the lease (%v)", res.StatusCode, time.Since(killed), lease)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if waited := time.Since(killed); waited > lease+lease/2 {
		t.Errorf("slots came back %v after the kill, want within the lease (%v)", waited, lease)
	}
}

// TestRedisDown kills Redis while a stream runs, and starts it again: the
// stream finishes, new streams work with each instance's own limits,
// /readyz and the metrics say Redis is down, and everything is shared
// again once Redis is back, without restarting the instances.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	up, swap := swappableUpstream(t)
	gate := swap()
	env := appEnv(up.BaseURL(), "REDIS_URL", srv.URL(), "STREAMS_PER_CALLER", "1")
	a, b := launch(t, env), launch(t, env)
	inFlight := opened(t, a)
	refusedBy(t, b, "too_many_streams")
	waitReady(t, b, "ready", "up")

	srv.Kill(t)
	waitReady(t, b, "degraded", "down")
	during := opened(t, b) // fails open: B's own limit has room
	refusedBy(t, b, "too_many_streams")
	metrics := get(t, b.url+"/metrics")
	for _, m := range []string{`streamrelay_redis_errors_total{kind="unreachable"`, `streamrelay_redis_fail_open_total{what="limits"}`, `streamrelay_redis_up 0`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	close(gate)
	for name, r := range map[string]*bufio.Reader{"in flight": inFlight, "opened while down": during} {
		if rest, err := io.ReadAll(r); string(rest) != " last\n" || err != nil {
			t.Errorf("stream %s: rest = %q, %v; want the whole answer", name, rest, err)
		}
	}

	srv.Restart(t)
	defer close(swap())
	waitReady(t, a, "ready", "up")
	waitReady(t, b, "ready", "up")
	opened(t, b)
	refusedBy(t, a, "too_many_streams")
	if m := get(t, a.url+"/metrics"); !strings.Contains(m, `streamrelay_redis_roundtrip_seconds_count{op="evalsha"}`) {
		t.Errorf("/metrics lacks the round-trip histogram:\n%s", m)
	}
}

// waitReady polls a's /readyz until it reports status and redis, for at
// most 10 s.
func waitReady(t *testing.T, a *app, status, redis string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got map[string]string
	for time.Now().Before(deadline) {
		got = nil
		json.Unmarshal([]byte(get(t, a.url+"/readyz")), &got)
		if got["status"] == status && got["redis"] == redis {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("/readyz = %v, want status %s and redis %s", got, status, redis)
}

// helperEnv marks the test binary run as a helper instance.
const helperEnv = "STREAMRELAY_TEST_INSTANCE"

// instance is an app in a process of its own, which a test can kill.
type instance struct {
	*app
	cmd    *exec.Cmd
	exited chan struct{}
}

// kill ends the instance with SIGKILL, as a crash would.
func (i *instance) kill() {
	i.cmd.Process.Kill()
	<-i.exited
}

// helperInstance runs the server in a process of its own (this test
// binary, running TestHelperInstance) with env and a lease of lease, until
// the test ends.
func helperInstance(t *testing.T, env map[string]string, lease time.Duration) *instance {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperInstance$")
	cmd.Env = append(os.Environ(), helperEnv+"="+lease.String(), "ADDR="+addr)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	i := &instance{app: &app{url: "http://" + addr, logs: logs}, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(i.exited) }()
	t.Cleanup(i.kill)
	if err := waitListening(addr, i.exited); err != nil {
		t.Fatalf("helper instance: %v\n%s", err, logs)
	}
	return i
}

// TestHelperInstance is not a test: it is the server in a process of its
// own, for helperInstance, with the lease from the environment.
func TestHelperInstance(t *testing.T) {
	lease, err := time.ParseDuration(os.Getenv(helperEnv))
	if err != nil {
		t.Skip("runs only as a helper process")
	}
	cfg, _, err := loadConfig(nil, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RedisLease = lease
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Fatal(run(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)), ln, nil, nil))
}
