package handler_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"streamrelay/handler"
	"streamrelay/internal/limit"
	"streamrelay/internal/upstreamtest"
	"streamrelay/stream"
)

// apiKey is the upstream key the relay holds; it must never leak.
const apiKey = "sk-test-SECRET-0123456789"

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig() handler.Config {
	return handler.Config{
		Model:             "test-model",
		Models:            []string{"test-model", "other-model"},
		MaxBodyBytes:      1024,
		MaxTokens:         1000,
		FirstEventTimeout: 5 * time.Second,
		IdleTimeout:       5 * time.Second,
		StreamDeadline:    time.Minute,
		// Off: the tests send more than a caller's default share.
		Limits: limit.Config{PerMinute: limit.Off, PerCaller: limit.Off, Global: limit.Off},
	}
}

// relay starts the handler as a real server in front of upstream url.
func relay(t *testing.T, upstreamURL string, change func(*handler.Config)) (*httptest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	if change != nil {
		change(&cfg)
	}
	client := openai.NewClient(
		option.WithBaseURL(upstreamURL),
		option.WithAPIKey(apiKey),
		option.WithMaxRetries(0),
	)
	h, err := handler.New(cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if strings.Contains(logs.String(), apiKey) {
			t.Errorf("the API key appears in the logs")
		}
	})
	return srv, logs
}

// upstream starts a scripted fake upstream and a relay in front of it.
func upstream(t *testing.T, steps ...upstreamtest.Step) (*upstreamtest.Server, *httptest.Server) {
	t.Helper()
	up := upstreamtest.New(steps...)
	t.Cleanup(up.Close)
	srv, _ := relay(t, up.BaseURL(), nil)
	return up, srv
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	res, err := http.Post(url+"/message/stream", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func TestStreamBody(t *testing.T) {
	long := strings.Repeat("0123456789abcdé\n", 64) // 1 KiB with breaks
	var longDeltas []string
	for range 1024 {
		longDeltas = append(longDeltas, long)
	}
	tests := map[string]struct {
		events []string
		want   string
	}{
		"words": {upstreamtest.Answer("Hello", ",", " world"), "Hello\n,\n world\n"},
		"multi-line delta": {upstreamtest.Answer("one\ntwo\n\nthree"),
			"one<br />two<br /><br />three\n"},
		"crlf and lone cr": {upstreamtest.Answer("a\r\nb", "c\rd"), "a<br />b\nc<br />d\n"},
		"only a newline":   {upstreamtest.Answer("x", "\n", "y"), "x\n<br />\ny\n"},
		"empty deltas":     {upstreamtest.Answer("", "a", "", "", "b"), "a\nb\n"},
		"multi-byte":       {upstreamtest.Answer("café", " naïve", " 你好", "🚀"), "café\n naïve\n 你好\n🚀\n"},
		"usage chunk": {[]string{upstreamtest.Role(), upstreamtest.Content("u"), upstreamtest.Finish("stop"),
			upstreamtest.Usage(5, 1), upstreamtest.Done}, "u\n"},
		"done without a finish_reason is a clean end": {[]string{upstreamtest.Role(), upstreamtest.Content("d"),
			upstreamtest.Done}, "d\n"},
		"1 MB answer": {upstreamtest.Answer(longDeltas...),
			strings.Repeat(strings.ReplaceAll(long, "\n", "<br />")+"\n", 1024)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, srv := upstream(t, upstreamtest.Events(tt.events...)...)
			res := post(t, srv.URL, `{"prompt":"hi"}`)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status = %d", res.StatusCode)
			}
			for k, v := range map[string]string{
				"Content-Type":           "text/plain; charset=utf-8",
				"Cache-Control":          "no-cache",
				"X-Accel-Buffering":      "no",
				"X-Content-Type-Options": "nosniff",
			} {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if string(body) != tt.want {
				t.Errorf("body = %.200q, want %.200q", body, tt.want)
			}
		})
	}
}

// TestStreamSendsRequest checks what reaches the upstream.
func TestStreamSendsRequest(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Events(upstreamtest.Answer("ok")...)...)
	defer up.Close()
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.SystemPrompt = "Be brief." })
	res := post(t, srv.URL, `{"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"a1"},{"role":"user","content":"q2"}],"model":"other-model","max_tokens":7,"temperature":0.5}`)
	io.Copy(io.Discard, res.Body)
	var got struct {
		Model    string `json:"model"`
		Messages []struct {
			Role, Content string
		} `json:"messages"`
		MaxTokens     *int    `json:"max_tokens"`
		MaxCompTokens int     `json:"max_completion_tokens"`
		Temperature   float64 `json:"temperature"`
		Stream        bool    `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(<-up.Bodies, &got); err != nil {
		t.Fatal(err)
	}
	roles := ""
	for _, m := range got.Messages {
		roles += m.Role + ":" + m.Content + " "
	}
	if roles != "system:Be brief. user:q1 assistant:a1 user:q2 " {
		t.Errorf("messages = %s", roles)
	}
	if got.Model != "other-model" || got.MaxCompTokens != 7 || got.MaxTokens != nil || got.Temperature != 0.5 || !got.Stream || !got.StreamOptions.IncludeUsage {
		t.Errorf("upstream request = %+v", got)
	}
}

func TestStreamUpstreamErrors(t *testing.T) {
	tests := map[string]struct {
		step       upstreamtest.Step
		status     int
		code       string
		retryAfter string
	}{
		"rate limited":            {upstreamtest.Status(429, "Retry-After", "7"), 429, "upstream_rate_limited", "7"},
		"rate limited, ms":        {upstreamtest.Status(429, "Retry-After-Ms", "1500"), 429, "upstream_rate_limited", "2"},
		"rate limited, no header": {upstreamtest.Status(429), 429, "upstream_rate_limited", ""},
		"bad key":                 {upstreamtest.Status(401), 502, "upstream_auth_failed", ""},
		"forbidden":               {upstreamtest.Status(403), 502, "upstream_auth_failed", ""},
		"server error":            {upstreamtest.Status(500), 502, "upstream_error", ""},
		"bad gateway":             {upstreamtest.Status(503), 502, "upstream_error", ""},
		"not found":               {upstreamtest.Status(404), 502, "upstream_rejected", ""},
		"reset before any chunk":  {upstreamtest.Reset(), 502, "upstream_unreachable", ""},
		"empty stream":            {upstreamtest.Event(upstreamtest.Done), 502, "upstream_empty", ""},
		"error event":             {upstreamtest.Event(`data: {"error":{"message":"overloaded"}}` + "\n\n"), 502, "upstream_error", ""},
		"malformed first chunk":   {upstreamtest.Event("data: {oops\n\n"), 502, "upstream_malformed", ""},
		"oversized first chunk": {upstreamtest.Event(upstreamtest.Content(strings.Repeat("x", 3<<20))), 502,
			"upstream_event_too_large", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, srv := upstream(t, tt.step)
			res := post(t, srv.URL, `{"prompt":"hi"}`)
			e := decodeError(t, res, tt.status, tt.code)
			if got := res.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
			}
			if strings.Contains(e.Message, "fake upstream error") {
				t.Errorf("message echoes the upstream's body: %q", e.Message)
			}
		})
	}
}

func TestStreamUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/v1/"
	ln.Close()
	srv, _ := relay(t, url, nil)
	decodeError(t, post(t, srv.URL, `{"prompt":"hi"}`), 502, "upstream_unreachable")
}

func TestStreamFirstEventTimeout(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Hang())
	defer up.Close()
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.FirstEventTimeout = 200 * time.Millisecond })
	decodeError(t, post(t, srv.URL, `{"prompt":"hi"}`), 504, "upstream_timeout")
	waitCancelled(t, up)
}

// TestStreamFailsMidStream checks that a failure after the first line ends
// the body without its terminating chunk, so the client sees it incomplete.
func TestStreamFailsMidStream(t *testing.T) {
	first := []upstreamtest.Step{upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("partial"))}
	tests := map[string]struct {
		steps    []upstreamtest.Step
		idle     time.Duration
		maxEvent int
		log      string
	}{
		"connection reset": {steps: append(first, upstreamtest.Reset())},
		"malformed chunk":  {steps: append(first, upstreamtest.Event("data: {oops\n\n"))},
		"body cut short":   {steps: first, log: "finish_reason or [DONE]"},
		"oversized chunk": {steps: append(first, upstreamtest.Event(upstreamtest.Content(strings.Repeat("x", 64<<10)))),
			maxEvent: 32 << 10, log: "larger than the cap"},
		"error event":     {steps: append(first, upstreamtest.Event(`data: {"error":{"message":"boom"}}`+"\n\n"))},
		"stall past idle": {steps: append(first, upstreamtest.Hang()), idle: 300 * time.Millisecond, log: `"outcome":"timeout"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := upstreamtest.New(tt.steps...)
			defer up.Close()
			srv, logs := relay(t, up.BaseURL(), func(c *handler.Config) {
				if tt.idle > 0 {
					c.IdleTimeout = tt.idle
				}
				c.MaxEventBytes = tt.maxEvent
			})
			raw := rawPost(t, srv.URL, `{"prompt":"hi"}`)
			if !strings.HasPrefix(raw, "HTTP/1.1 200 OK\r\n") {
				t.Fatalf("response = %q", raw)
			}
			if !strings.HasSuffix(raw, "\r\n\r\n8\r\npartial\n\r\n") {
				t.Errorf("raw response does not end right after the partial line: %q", raw)
			}
			res := post(t, srv.URL, `{"prompt":"hi"}`)
			body, err := io.ReadAll(res.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("reading body: err = %v, want io.ErrUnexpectedEOF", err)
			}
			if string(body) != "partial\n" {
				t.Errorf("body = %q", body)
			}
			if !strings.Contains(logs.String(), tt.log) || !strings.Contains(logs.String(), "reading upstream") {
				t.Errorf("log does not say why (%q): %s", tt.log, logs)
			}
		})
	}
}

// rawPost sends a request over a plain TCP connection and returns every
// byte of the response until the server closes the connection.
func rawPost(t *testing.T, url, body string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST /message/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading raw response: %v", err)
	}
	// Drop the header lines that vary.
	var kept []string
	for _, line := range strings.SplitAfter(string(raw), "\r\n") {
		if !strings.HasPrefix(line, "Date: ") && !strings.HasPrefix(line, "X-Request-Id: ") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "")
}

// TestStreamIncremental checks that the client has the first line while
// the upstream still holds back its second chunk.
func TestStreamIncremental(t *testing.T) {
	gate := make(chan struct{})
	_, srv := upstream(t,
		upstreamtest.Event(upstreamtest.Role()),
		upstreamtest.Event(upstreamtest.Content("first")),
		upstreamtest.Wait(gate),
		upstreamtest.Event(upstreamtest.Content("second")),
		upstreamtest.Event(upstreamtest.Finish("stop")),
		upstreamtest.Event(upstreamtest.Done),
	)
	res := post(t, srv.URL, `{"prompt":"hi"}`)
	r := bufio.NewReader(res.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	close(gate)
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
}

// TestStreamClientDisconnect checks that a client leaving cancels the
// upstream request within a second.
func TestStreamClientDisconnect(t *testing.T) {
	up, srv := upstream(t,
		upstreamtest.Event(upstreamtest.Role()),
		upstreamtest.Event(upstreamtest.Content("first")),
		upstreamtest.Hang(),
	)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/message/stream", strings.NewReader(`{"prompt":"hi"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(res.Body).ReadString('\n'); line != "first\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	cancel()
	res.Body.Close()
	waitCancelled(t, up)
}

// TestStreamClientGoneBeforeFirstEvent checks that a client that leaves
// before the upstream's first event is logged and counted as 499, the
// client's doing, and that the upstream request is cancelled.
func TestStreamClientGoneBeforeFirstEvent(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Hang())
	defer up.Close()
	srv, logs := relay(t, up.BaseURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/message/stream", strings.NewReader(`{"prompt":"hi"}`))
	req.Header.Set("Content-Type", "application/json")
	go func() {
		<-up.Bodies // the upstream has the request: the client leaves
		cancel()
	}()
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("the request was answered: %d", res.StatusCode)
	}
	waitCancelled(t, up)
	waitFor(t, func() bool { return strings.Contains(logs.String(), `"status":499`) }, "a log line with status 499")
	if !strings.Contains(logs.String(), `"outcome":"client_closed_request"`) || !strings.Contains(logs.String(), `"level":"INFO"`) {
		t.Errorf("log: %s", logs)
	}
	families := scrape(t, srv.URL)
	if got := counter(t, families, "streamrelay_requests_total", "code", "499"); got != 1 {
		t.Errorf("requests with 499 = %v, want 1", got)
	}
	if got := counter(t, families, "streamrelay_client_aborts_total", "", ""); got != 1 {
		t.Errorf("client aborts = %v, want 1", got)
	}
	if _, ok := families["streamrelay_upstream_errors_total"]; ok {
		t.Error("a client gone is counted as an upstream error")
	}
}

func waitCancelled(t *testing.T, up *upstreamtest.Server) {
	t.Helper()
	select {
	case <-up.Cancelled:
	case <-time.After(time.Second):
		t.Fatal("the upstream request was not cancelled within one second")
	}
}

type apiError struct{ Code, Message string }

func decodeError(t *testing.T, res *http.Response, status int, code string) apiError {
	t.Helper()
	if res.StatusCode != status {
		t.Errorf("status = %d, want %d", res.StatusCode, status)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	body, _ := io.ReadAll(res.Body)
	if bytes.Contains(body, []byte(apiKey)) {
		t.Errorf("the API key appears in the response")
	}
	var e struct{ Error apiError }
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	if e.Error.Code != code || !strings.HasSuffix(e.Error.Message, ".") {
		t.Errorf("error = %+v, want code %q and a sentence", e.Error, code)
	}
	return e.Error
}

// TestStreamDemoRoundTrip reads a stream back with the stream package's
// decoder, as a Go client of the API would.
func TestStreamDecodesBack(t *testing.T) {
	deltas := []string{"Line one\n", "line two\r\n", "中文 ", "🚀"}
	_, srv := upstream(t, upstreamtest.Events(upstreamtest.Answer(deltas...)...)...)
	got, err := stream.ReadAll(post(t, srv.URL, `{"prompt":"hi"}`).Body)
	if want := "Line one\nline two\n中文 🚀"; got != want || err != nil {
		t.Errorf("decoded = %q, %v; want %q", got, err, want)
	}
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}
