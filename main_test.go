package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"streamrelay/handler"
	"streamrelay/internal/demo"
	"streamrelay/internal/limit"
	"streamrelay/internal/upstreamtest"
	"streamrelay/stream"
)

func TestLoadConfigDefaults(t *testing.T) {
	cfg, _, err := loadConfig(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = nil // slog.Default(), which DeepEqual can't compare
	want := config{
		Config: handler.Config{
			Model: "gpt-4o-mini", Models: []string{"gpt-4o-mini"},
			MaxBodyBytes: 384 << 10, TokensParam: "max_completion_tokens", MaxMessages: 100, MaxInputChars: 32000,
			FirstEventTimeout: 10 * time.Minute, IdleTimeout: 60 * time.Second, StreamDeadline: 10 * time.Minute,
			WriteTimeout: 30 * time.Second, BodyReadTimeout: 10 * time.Second, MaxEventBytes: 2 << 20,
			KeepAliveInterval: 15 * time.Second, ResumeTTL: 2 * time.Minute, ResumeMaxBytes: 1 << 20,
			ResumeMemory: 256 << 20, ResumeGrace: 15 * time.Second,
			Limits:         limit.Config{PerMinute: 60, Burst: 20, PerCaller: 5, Global: 5000},
			Demo:           true,
			TrustedProxies: []string{"127.0.0.1/8", "::1"}, AuthFailuresPerMinute: 10,
			AllowedHosts: []string{"localhost", "127.0.0.1", "[::1]"},
		},
		MaxHeaderBytes: 64 << 10,
		Addr:           "127.0.0.1:8080", Retries: 2, DrainTimeout: 30 * time.Second, ReadHeaderTimeout: 10 * time.Second,
		DemoDelay: 30 * time.Millisecond, LogFormat: "text", LogLevel: "info",
		RedisPrefix: "streamrelay:", RedisLease: 30 * time.Second,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := map[string]string{
		"ADDR":                     "localhost",
		"MAX_BODY_BYTES":           "0",
		"MAX_EVENT_BYTES":          "-1",
		"MAX_TOKENS":               "lots",
		"UPSTREAM_RETRIES":         "-1",
		"FIRST_EVENT_TIMEOUT":      "0s",
		"IDLE_TIMEOUT":             "soon",
		"STREAM_DEADLINE":          "-5m",
		"DRAIN_TIMEOUT":            "30",
		"DEMO_DELAY":               "fast",
		"INCLUDE_USAGE":            "maybe",
		"LOG_FORMAT":               "xml",
		"LOG_LEVEL":                "loud",
		"TRUSTED_PROXIES":          "nginx.local",
		"OPENAI_MODELS":            "gpt-4o, o3",
		"API_TOKENS_FILE":          "/nonexistent/tokens",
		"MAX_STREAMS":              "-1",
		"WRITE_TIMEOUT":            "0",
		"RATE_LIMIT_BURST":         "0",
		"MAX_HEADER_BYTES":         "0",
		"AUTH_FAILURES_PER_MINUTE": "-1",
		"REDIS_URL":                "http://127.0.0.1:6379",
	}
	for name, value := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := loadConfig(nil, func(k string) string {
				if k == name {
					return value
				}
				return ""
			})
			if err == nil || !strings.HasPrefix(err.Error(), name+" ") {
				t.Errorf("%s=%q: err = %v, want one naming %s", name, value, err, name)
			}
			flagName := "-" + strings.ReplaceAll(strings.ToLower(name), "_", "-")
			_, _, err = loadConfig([]string{flagName + "=" + value}, func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), flagName) && !strings.HasPrefix(err.Error(), name+" ") {
				t.Errorf("%s=%q: err = %v, want one naming %s or %s", flagName, value, err, flagName, name)
			}
		})
	}
}

// TestFlagsOverrideEnvironment checks that a flag wins over its variable,
// and that 0 turns a limit off either way.
func TestLoadConfigTrustedProxiesAndHosts(t *testing.T) {
	loopback := []string{"127.0.0.1/8", "::1"}
	names := []string{"localhost", "127.0.0.1", "[::1]"}
	tests := map[string]struct {
		env     map[string]string
		proxies []string
		hosts   []string
		err     bool
	}{
		"defaults":       {nil, loopback, names, false},
		"none":           {map[string]string{"TRUSTED_PROXIES": "None"}, []string{}, names, false},
		"none with more": {map[string]string{"TRUSTED_PROXIES": "none, 10.0.0.1"}, nil, nil, true},
		"listen name":    {map[string]string{"ADDR": "relay.lan:8080"}, loopback, append(names, "relay.lan"), false},
		"configured": {map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8", "ALLOWED_HOSTS": "relay.example.com, relay.example"},
			[]string{"10.0.0.0/8"}, []string{"relay.example.com", "relay.example"}, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, _, err := loadConfig(nil, func(k string) string { return tt.env[k] })
			if tt.err {
				if err == nil || !strings.HasPrefix(err.Error(), "TRUSTED_PROXIES ") {
					t.Errorf("err = %v, want one naming TRUSTED_PROXIES", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.TrustedProxies, tt.proxies) {
				t.Errorf("TrustedProxies = %q, want %q", cfg.TrustedProxies, tt.proxies)
			}
			if !reflect.DeepEqual(cfg.AllowedHosts, tt.hosts) {
				t.Errorf("AllowedHosts = %q, want %q", cfg.AllowedHosts, tt.hosts)
			}
		})
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	env := map[string]string{"MAX_BODY_BYTES": "500000", "ADDR": "127.0.0.1:1", "MAX_STREAMS": "7", "INCLUDE_USAGE": "false"}
	cfg, _, err := loadConfig([]string{"-max-body-bytes", "600000", "-addr=127.0.0.1:2", "-max-streams=0", "-include-usage"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBodyBytes != 600000 || cfg.Addr != "127.0.0.1:2" || cfg.Limits.Global != limit.Off || cfg.OmitUsage {
		t.Errorf("got body %d, addr %s, max streams %d, omit usage %v; want the flags' 600000, 127.0.0.1:2, off, false",
			cfg.MaxBodyBytes, cfg.Addr, cfg.Limits.Global, cfg.OmitUsage)
	}
	cfg, _, err = loadConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	env["MAX_STREAMS"] = "lots"
	if _, _, err := loadConfig([]string{"-max-streams=3"}, func(k string) string { return env[k] }); err != nil {
		t.Errorf("a bad MAX_STREAMS that -max-streams overrides: %v, want no error", err)
	}
	if cfg.MaxBodyBytes != 500000 || cfg.Limits.Global != 7 || !cfg.OmitUsage {
		t.Errorf("without flags: body %d, max streams %d, omit usage %v; want the environment's", cfg.MaxBodyBytes, cfg.Limits.Global, cfg.OmitUsage)
	}
}

// TestBodyLimitFitsInput checks that the loader refuses a body limit too
// small for the input limit, and derives the default from it.
func TestBodyLimitFitsInput(t *testing.T) {
	tests := map[string]struct {
		env      map[string]string
		wantBody int64 // 0: an error naming MAX_BODY_BYTES
	}{
		"default":                  {nil, 393216},
		"set large enough":         {map[string]string{"MAX_BODY_BYTES": "391424"}, 391424},
		"set too small":            {map[string]string{"MAX_BODY_BYTES": "391423"}, 0},
		"too small, no char limit": {map[string]string{"MAX_BODY_BYTES": "1000", "MAX_INPUT_CHARS": "0"}, 1000},
		"smaller input":            {map[string]string{"MAX_BODY_BYTES": "20000", "MAX_INPUT_CHARS": "1000"}, 20000},
		"larger input, derived":    {map[string]string{"MAX_INPUT_CHARS": "100000"}, 1245184},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, _, err := loadConfig(nil, func(k string) string { return tt.env[k] })
			switch {
			case tt.wantBody == 0 && (err == nil || !strings.HasPrefix(err.Error(), "MAX_BODY_BYTES ")):
				t.Errorf("err = %v, want one naming MAX_BODY_BYTES", err)
			case tt.wantBody != 0 && (err != nil || cfg.MaxBodyBytes != tt.wantBody):
				t.Errorf("MaxBodyBytes = %d, %v; want %d", cfg.MaxBodyBytes, err, tt.wantBody)
			}
		})
	}
}

// TestUsageListsEverySetting checks that -h names every setting's flag,
// variable and default.
func TestUsageListsEverySetting(t *testing.T) {
	var b strings.Builder
	printUsage(&b)
	usage := b.String()
	for _, s := range defaultsTable() {
		line := fmt.Sprintf("  -%s  (%s, default %s)\n", s.flagName(), s.env, strings.ReplaceAll(s.shownDefault(), "`", ""))
		if !strings.Contains(usage, line) {
			t.Errorf("-h lacks %q", line)
		}
	}
	for _, want := range []string{"-max-body-bytes  (MAX_BODY_BYTES, default 393216)", "-stream-deadline  (STREAM_DEADLINE, default 10m)", "-version"} {
		if !strings.Contains(usage, want) {
			t.Errorf("-h lacks %q:\n%s", want, usage)
		}
	}
}

// update rewrites the README's configuration table: go test -run TestREADME -update .
var update = flag.Bool("update", false, "rewrite the README's configuration table from the code")

// TestREADMEConfigTable checks that the README's configuration table is
// the one the code makes (go run . -print-config-table).
func TestREADMEConfigTable(t *testing.T) {
	const start, end = "<!-- config-table: made by go run . -print-config-table -->\n", "<!-- end of config-table -->\n"
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(readme), start)
	table, after, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatalf("README.md lacks the markers %q and %q around the configuration table", start, end)
	}
	want := configTable()
	if *update {
		if err := os.WriteFile("README.md", []byte(before+start+want+end+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if table != want {
		t.Errorf("README.md's configuration table differs from the code's; run make readme. README:\n%s\ncode:\n%s", table, want)
	}
}

// app is the whole server running in-process.
type app struct {
	url   string
	logs  *syncBuffer
	stop  chan struct{}
	force chan struct{}
	done  chan error
}

// launch runs the server as main does, with env as its environment, on
// env's ADDR or a free loopback port.
func launch(t *testing.T, env map[string]string) *app {
	t.Helper()
	cfg, _, err := loadConfig(nil, func(k string) string { return env[k] })
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
	a := &app{url: "http://" + ln.Addr().String(), logs: &syncBuffer{}, stop: make(chan struct{}), force: make(chan struct{}), done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(a.logs, nil))
	go func() { a.done <- run(cfg, log, ln, a.stop, a.force) }()
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

// TestRunServesEmbeddedPage checks that the binary serves the page built
// into it when FRONTEND_DIR is not set, scripts included.
func TestRunServesEmbeddedPage(t *testing.T) {
	a := launch(t, map[string]string{"DEMO_DELAY": "0s"})
	page := get(t, a.url+"/")
	if !strings.Contains(page, `<div id="root"></div>`) {
		t.Fatalf("/ = %s, want the built page", page)
	}
	script := regexp.MustCompile(`src="(/assets/[^"]+\.js)"`).FindStringSubmatch(page)
	if script == nil {
		t.Fatalf("the page names no script: %s", page)
	}
	if js := get(t, a.url+script[1]); !strings.Contains(js, "data-testid") {
		t.Errorf("%s does not look like the page's script (%d bytes)", script[1], len(js))
	}
}

// get returns the body of a GET that must answer 200.
func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET %s = %d, %v", url, res.StatusCode, err)
	}
	return string(body)
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

// TestReasoningModelDefaults runs the server with default settings in
// front of an upstream that behaves like OpenAI's reasoning models.
func TestReasoningModelDefaults(t *testing.T) {
	up := upstreamtest.New(append([]upstreamtest.Step{upstreamtest.Reasoning()}, upstreamtest.Events(upstreamtest.Answer("fine")...)...)...)
	defer up.Close()
	a := launch(t, map[string]string{"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": up.BaseURL(), "OPENAI_MODEL": "gpt-5-mini"})
	for _, body := range []string{`{"prompt":"hi"}`, `{"prompt":"hi","max_tokens":100}`} {
		res, err := http.Post(a.url+"/message/stream", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := stream.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || got != "fine" || err != nil {
			t.Errorf("%s: %d %q, %v; want 200 and the answer", body, res.StatusCode, got, err)
		}
	}
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

// TestBinaryFlags builds the command and runs it as a user would, with -h,
// -version and a bad setting.
func TestBinaryFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "streamrelay")
	// -buildvcs=auto: the environment may turn it off through GOFLAGS.
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-h").Output()
	if err != nil || !strings.Contains(string(out), "-max-body-bytes  (MAX_BODY_BYTES, default ") {
		t.Errorf("-h: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "-version").Output()
	if err != nil || !strings.HasPrefix(string(out), "streamrelay ") {
		t.Errorf("-version: %v, %q", err, out)
	}
	// The go command finds a repository only where .git is a directory,
	// not in a git worktree, whose .git is a file.
	if fi, statErr := os.Stat(".git"); statErr != nil || !fi.IsDir() {
		t.Log("no .git directory: the revision is not checked")
	} else if rev, gitErr := exec.Command("git", "rev-parse", "HEAD").Output(); gitErr == nil && !strings.Contains(string(out), strings.TrimSpace(string(rev))) {
		t.Errorf("-version = %q, want the revision %s", out, rev)
	}
	cmd := exec.Command(bin, "-max-streams", "-1")
	cmd.Env = append(os.Environ(), "OPENAI_API_KEY=")
	out, err = cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "-max-streams") {
		t.Errorf("a bad flag: %v\n%s; want exit code 2 and a message naming -max-streams", err, out)
	}
}
