package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"streamrelay/demo"
	"streamrelay/internal/upstreamtest"
	"streamrelay/stream"
)

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Model: "gpt-4o-mini", Models: []string{"gpt-4o-mini"}, Addr: "127.0.0.1:8080",
		MaxBodyBytes: 64 << 10, MaxTokens: 4096, IncludeUsage: true, Retries: 2,
		FirstEventTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, StreamDeadline: 10 * time.Minute,
		DrainTimeout: 30 * time.Second, ReadHeaderTimeout: 10 * time.Second,
		DemoDelay: 30 * time.Millisecond, FrontendDir: "frontend/dist", LogFormat: "text", LogLevel: "info",
		MaxMessages: 100, MaxInputChars: 32000, RatePerMinute: 60, RateBurst: 20, StreamsPerCall: 5, MaxStreams: 5000,
		WriteTimeout: 30 * time.Second, BodyReadTimeout: 10 * time.Second,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if !cfg.demo() {
		t.Error("no key and no base URL should mean the demo")
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := map[string]string{
		"ADDR":                "localhost",
		"MAX_BODY_BYTES":      "0",
		"MAX_TOKENS":          "lots",
		"UPSTREAM_RETRIES":    "-1",
		"FIRST_EVENT_TIMEOUT": "0s",
		"IDLE_TIMEOUT":        "soon",
		"STREAM_DEADLINE":     "-5m",
		"DRAIN_TIMEOUT":       "30",
		"DEMO_DELAY":          "fast",
		"INCLUDE_USAGE":       "maybe",
		"LOG_FORMAT":          "xml",
		"LOG_LEVEL":           "loud",
		"TRUSTED_PROXIES":     "nginx.local",
		"OPENAI_MODELS":       "gpt-4o, o3",
		"API_TOKENS_FILE":     "/nonexistent/tokens",
		"MAX_STREAMS":         "-1",
		"WRITE_TIMEOUT":       "0",
	}
	for name, value := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(func(k string) string {
				if k == name {
					return value
				}
				return ""
			})
			if err == nil || !strings.HasPrefix(err.Error(), name+" ") {
				t.Errorf("%s=%q: err = %v, want one naming %s", name, value, err, name)
			}
		})
	}
}

// app is the whole server running in-process.
type app struct {
	url  string
	logs *syncBuffer
	stop chan struct{}
	done chan error
}

// launch runs the server as main does, with env as its environment, on
// env's ADDR or a free loopback port.
func launch(t *testing.T, env map[string]string) *app {
	t.Helper()
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	addr := env["ADDR"]
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{url: "http://" + ln.Addr().String(), logs: &syncBuffer{}, stop: make(chan struct{}), done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(a.logs, nil))
	go func() { a.done <- run(cfg, log, ln, a.stop) }()
	t.Cleanup(func() {
		select {
		case <-a.stop:
		default:
			close(a.stop)
		}
		if err := <-a.done; err != nil {
			t.Errorf("app stopped: %v", err)
		}
	})
	return a
}

// syncBuffer is a bytes.Buffer safe for the app's goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (a *app) post(t *testing.T, prompt string) *http.Response {
	t.Helper()
	res, err := http.Post(a.url+"/message/stream", "application/json", strings.NewReader(`{"prompt":"`+prompt+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestRunDemo runs the product on its embedded default, as `make run` does.
func TestRunDemo(t *testing.T) {
	a := launch(t, map[string]string{"DEMO_DELAY": "0s", "FRONTEND_DIR": t.TempDir()})
	res, err := http.Get(a.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	health, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(health), `"upstream":"demo"`) {
		t.Errorf("/healthz = %s, want it to say demo", health)
	}

	res = a.post(t, "what does 42 signify, in brief?")
	defer res.Body.Close()
	got, err := stream.ReadAll(res.Body)
	if want := demo.Answer("what does 42 signify, in brief?"); got != want || err != nil {
		t.Errorf("answer = %q, %v; want %q", got, err, want)
	}

	res, err = http.Get(a.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), "npm run build") {
		t.Errorf("/ without a built frontend = %d %s", res.StatusCode, page)
	}
}

// TestShutdownDrains checks that a stream in flight at shutdown finishes
// whole, while new connections are refused.
func TestShutdownDrains(t *testing.T) {
	gate := make(chan struct{})
	up := upstreamtest.New(
		upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("before")),
		upstreamtest.Wait(gate),
		upstreamtest.Event(upstreamtest.Content(" after")), upstreamtest.Event(upstreamtest.Finish("stop")), upstreamtest.Event(upstreamtest.Done))
	defer up.Close()
	a := launch(t, map[string]string{"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": up.BaseURL()})
	res := a.post(t, "hi")
	defer res.Body.Close()
	r := bufio.NewReader(res.Body)
	if line, err := r.ReadString('\n'); line != "before\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	close(a.stop)
	waitRefused(t, a.url)
	close(gate)
	rest, err := io.ReadAll(r)
	if string(rest) != " after\n" || err != nil {
		t.Errorf("rest = %q, %v; want the whole answer", rest, err)
	}
	if err := <-a.done; err != nil {
		t.Errorf("run = %v, want nil", err)
	}
	a.done <- nil // for the cleanup
}

// TestShutdownCancelsAfterDrain checks that streams still running at the
// drain deadline are cancelled and end incomplete, and run returns nil.
func TestShutdownCancelsAfterDrain(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("x")), upstreamtest.Hang())
	defer up.Close()
	a := launch(t, map[string]string{"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": up.BaseURL(), "DRAIN_TIMEOUT": "200ms"})
	res := a.post(t, "hi")
	defer res.Body.Close()
	r := bufio.NewReader(res.Body)
	if line, _ := r.ReadString('\n'); line != "x\n" {
		t.Fatalf("first line = %q", line)
	}
	close(a.stop)
	if _, err := io.ReadAll(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("body end: err = %v, want io.ErrUnexpectedEOF", err)
	}
	select {
	case <-up.Cancelled:
	case <-time.After(5 * time.Second):
		t.Error("the upstream request was not cancelled")
	}
	if err := <-a.done; err != nil {
		t.Errorf("run = %v, want nil", err)
	}
	a.done <- nil
}

// waitRefused waits until the server stops accepting connections.
func waitRefused(t *testing.T, url string) {
	t.Helper()
	addr := strings.TrimPrefix(url, "http://")
	for range 100 {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		conn.Close()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the server still accepts connections after shutdown began")
}

// TestSlowHeadersAreCut checks the read-header timeout: a client sending
// its headers a byte at a time is disconnected, not waited for.
func TestSlowHeadersAreCut(t *testing.T) {
	a := launch(t, map[string]string{"DEMO_DELAY": "0s", "READ_HEADER_TIMEOUT": "300ms"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	go func() {
		// The slow client: one byte every 50 ms, headers never finished.
		for _, b := range []byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 200)) {
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn)
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		t.Fatal("the server still held the connection after 5 s")
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("the connection was closed after %v, want about the 300 ms timeout", took)
	}
}

// TestWarnsWhenOpenBeyondLoopback checks the start-up warning about an API
// without tokens that anyone on the network can reach.
func TestWarnsWhenOpenBeyondLoopback(t *testing.T) {
	tests := map[string]struct {
		env  map[string]string
		warn bool
	}{
		"open on all interfaces":   {map[string]string{"ADDR": "0.0.0.0:0"}, true},
		"tokens on all interfaces": {map[string]string{"ADDR": "0.0.0.0:0", "API_TOKENS": "t"}, false},
		"open on loopback":         {map[string]string{"ADDR": "127.0.0.1:0"}, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := launch(t, tt.env)
			close(a.stop)
			if err := <-a.done; err != nil {
				t.Fatal(err)
			}
			a.done <- nil
			if got := strings.Contains(a.logs.String(), "open to anyone"); got != tt.warn {
				t.Errorf("warned = %v, want %v; log:\n%s", got, tt.warn, a.logs)
			}
		})
	}
}
