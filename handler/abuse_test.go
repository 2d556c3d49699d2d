package handler_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"streamrelay/handler"
	"streamrelay/internal/limit"
	"streamrelay/internal/upstreamtest"
)

// rawRequest sends head (request line and headers, without the blank line
// that ends them) on a new connection and returns the connection.
func rawRequest(t *testing.T, srvURL, head string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestUnsentBodyIsAnswered checks that a request announcing a body it never
// sends is answered, with Connection: close, and its connection closed, on
// every route: at once where the handler does not read the body, after the
// body timeout where it does.
func TestUnsentBodyIsAnswered(t *testing.T) {
	const bodyTimeout = 300 * time.Millisecond
	up := okUpstream(t)
	open, _ := relay(t, up.BaseURL(), func(c *handler.Config) {
		c.BodyReadTimeout = bodyTimeout
		c.FrontendDir = t.TempDir()
	})
	closed, _ := relay(t, up.BaseURL(), func(c *handler.Config) {
		c.BodyReadTimeout = bodyTimeout
		c.Tokens = []string{"tok-one"}
	})
	json := "Content-Type: application/json"
	tests := map[string]struct {
		srv, head string
		status    int
		code      string
	}{
		"healthz":                {open.URL, "GET /healthz HTTP/1.1", 200, ""},
		"metrics":                {open.URL, "GET /metrics HTTP/1.1", 200, ""},
		"not found":              {open.URL, "POST /nowhere HTTP/1.1", 404, "not_found"},
		"method not allowed":     {open.URL, "PUT /message/stream HTTP/1.1", 405, "method_not_allowed"},
		"unsupported media type": {open.URL, "POST /message/stream HTTP/1.1\r\nContent-Type: text/plain", 415, "unsupported_media_type"},
		"foreign origin":         {open.URL, "POST /message/stream HTTP/1.1\r\nOrigin: https://evil.example\r\n" + json, 403, "origin_not_allowed"},
		"no token":               {closed.URL, "POST /message/stream HTTP/1.1\r\n" + json, 401, "unauthorized"},
		"stream":                 {open.URL, "POST /message/stream HTTP/1.1\r\n" + json, 400, "unreadable_body"},
	}
	for name, tt := range tests {
		for _, framing := range []string{"Content-Length: 100", "Transfer-Encoding: chunked"} {
			t.Run(name+", "+framing, func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				conn := rawRequest(t, tt.srv, tt.head+"\r\nHost: 127.0.0.1\r\n"+framing)
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(conn)
				res, err := http.ReadResponse(r, nil)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				if tt.code != "" {
					decodeError(t, res, tt.status, tt.code)
				} else if res.StatusCode != tt.status {
					t.Errorf("status %d, want %d", res.StatusCode, tt.status)
				}
				if !res.Close {
					t.Errorf("the answer lacks Connection: close: %v", res.Header)
				}
				if _, err := io.ReadAll(r); err != nil {
					t.Errorf("the connection was not closed: %v", err)
				}
				if took := time.Since(start); took > bodyTimeout+time.Second {
					t.Errorf("answered and closed after %v, want within the body timeout (%v) and a second", took, bodyTimeout)
				}
			})
		}
	}
}

// TestHalfSentBody checks that a stream whose body stops halfway gets its
// 400 and a closed connection after the body timeout.
func TestHalfSentBody(t *testing.T) {
	up := okUpstream(t)
	srv, logs := relay(t, up.BaseURL(), func(c *handler.Config) { c.BodyReadTimeout = 300 * time.Millisecond })
	start := time.Now()
	conn := rawRequest(t, srv.URL, "POST /message/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 40")
	io.WriteString(conn, `{"prompt":`)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	decodeError(t, res, 400, "unreadable_body")
	if _, err := io.ReadAll(r); err != nil {
		t.Errorf("the connection was not closed: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v", took)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), `"status":400`) }, "the request's log line")
}

// TestTimeoutsSpareLongStreams checks that a stream whose first line comes
// after the body and write timeouts have passed is not cut by them, and
// that the connection serves a next request.
func TestTimeoutsSpareLongStreams(t *testing.T) {
	later := make(chan struct{})
	timer := time.AfterFunc(time.Second, func() { close(later) })
	defer timer.Stop()
	up := upstreamtest.New(append([]upstreamtest.Step{upstreamtest.Wait(later)}, upstreamtest.Events(upstreamtest.Answer("a", "b")...)...)...)
	defer up.Close()
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) {
		c.BodyReadTimeout = 200 * time.Millisecond
		c.WriteTimeout = 200 * time.Millisecond
	})
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	res, err := client.Post(srv.URL+"/message/stream", "application/json", strings.NewReader(`{"prompt":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, res); res.StatusCode != 200 || body != "a\nb\n" {
		t.Fatalf("status %d, body %q", res.StatusCode, body)
	}
	res, err = client.Get(srv.URL + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("next request on the connection: %v", err)
	}
	readAll(t, res)
}

// TestWriteTimeoutOffTheStream checks that a client that never reads a
// large page is cut after the write timeout.
func TestWriteTimeoutOffTheStream(t *testing.T) {
	dir := t.TempDir()
	const size = 32 << 20
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<!doctype html>"), 0o644)
	os.WriteFile(filepath.Join(dir, "big.js"), make([]byte, size), 0o644)
	srv, logs := relay(t, "http://127.0.0.1:1/v1/", func(c *handler.Config) {
		c.FrontendDir = dir
		c.WriteTimeout = 300 * time.Millisecond
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The file is larger than the socket buffers between us can hold. (A
	// small read buffer would not do: the kernel would then drain what the
	// server left in its buffers at a trickle, long after the close.)
	io.WriteString(conn, "GET /big.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	// ...and read nothing until the handler has given up.
	waitFor(t, func() bool { return strings.Contains(logs.String(), `"path":"/big.js"`) }, "the request's log line")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	t.Logf("read %d bytes, then %v", n, err)
	if n >= size {
		t.Errorf("read %d bytes, the whole file: the write was not cut", n)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the connection stayed open after the handler gave up")
	}
}

// TestUpstreamErrorRedacted checks that an upstream error carrying the
// key, a token and the prompt reaches neither the log nor the client, at
// the start of a stream and in its middle, and that the log names the
// upstream's error type and code.
func TestUpstreamErrorRedacted(t *testing.T) {
	const token, prompt = "tok-secret-7f3a", "my private prompt 42"
	errorEvent := upstreamtest.Event(`data: {"error":{"message":"boom: key ` + apiKey + ` token ` + token +
		` prompt ` + prompt + ` other key sk-live-abcdef123456","type":"server_error","code":"overloaded"}}` + "\n\n")
	tests := map[string][]upstreamtest.Step{
		"before the first chunk": {errorEvent},
		"mid-stream":             {upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("x")), errorEvent},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			up := upstreamtest.New(steps...)
			defer up.Close()
			srv, logs := relay(t, up.BaseURL(), func(c *handler.Config) {
				c.Tokens = []string{token}
				c.APIKey = apiKey
			})
			res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"`+prompt+`"}`, "Authorization", "Bearer "+token)
			body, _ := io.ReadAll(res.Body)
			waitFor(t, func() bool { return strings.Contains(logs.String(), `"msg":"request"`) }, "the request's log line")
			for _, secret := range []string{apiKey, token, prompt, "sk-live-abcdef123456"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("%q appears in the log:\n%s", secret, logs)
				}
				if strings.Contains(string(body), secret) {
					t.Errorf("%q appears in the response: %s", secret, body)
				}
			}
			for _, want := range []string{`"upstream_error_type":"server_error"`, `"upstream_error_code":"overloaded"`, "boom: key [redacted]"} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log lacks %s:\n%s", want, logs)
				}
			}
		})
	}
}

// TestFirstEventTimeoutLogsCause checks that a first-event timeout that
// strikes before the upstream sent any header is logged as such.
func TestFirstEventTimeoutLogsCause(t *testing.T) {
	// It reads the body first: net/http notices a client that leaves only
	// once the body is read.
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer silent.Close()
	srv, logs := relay(t, silent.URL+"/v1/", func(c *handler.Config) { c.FirstEventTimeout = 200 * time.Millisecond })
	decodeError(t, post(t, srv.URL, `{"prompt":"hi"}`), 504, "upstream_timeout")
	waitFor(t, func() bool { return strings.Contains(logs.String(), `"msg":"request"`) }, "the request's log line")
	if !strings.Contains(logs.String(), "within the first-event timeout") {
		t.Errorf("the log does not give the timeout as the cause:\n%s", logs)
	}
}

// TestFailedAuthLimited checks that an address that keeps sending wrong
// tokens gets 429 with Retry-After, whatever it sends next, while other
// addresses are not affected, and that /metrics counts it.
func TestFailedAuthLimited(t *testing.T) {
	if !canBind("127.0.0.2") {
		t.Skip("cannot use 127.0.0.2 as a local address here")
	}
	up := okUpstream(t)
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) {
		c.Tokens = []string{"tok-right"}
		c.AuthFailures = limit.NewFailures(10)
	})
	guesser := clientFrom("127.0.0.2")
	try := func(token string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/message/stream", strings.NewReader(`{"prompt":"hi"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := guesser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	for i := range 10 {
		decodeError(t, try(fmt.Sprintf("guess-%d", i)), 401, "invalid_token")
	}
	res := try("guess-10")
	decodeError(t, res, 429, "too_many_auth_failures")
	if got := res.Header.Get("Retry-After"); got != "6" {
		t.Errorf("Retry-After = %q, want 6 (10 failures a minute)", got)
	}
	decodeError(t, try("tok-right"), 429, "too_many_auth_failures")

	res = do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Authorization", "Bearer tok-right")
	if body := readAll(t, res); res.StatusCode != 200 {
		t.Fatalf("another address with the right token: %d %s", res.StatusCode, body)
	}
	f := scrape(t, srv.URL, "Authorization", "Bearer tok-right")
	if got := counter(t, f, "streamrelay_rate_limit_rejections_total", "limit", "auth_failures"); got != 2 {
		t.Errorf("auth_failures rejections = %v, want 2", got)
	}
	if got := find(t, f, "streamrelay_auth_failures_total", "", "").GetCounter().GetValue(); got != 10 {
		t.Errorf("streamrelay_auth_failures_total = %v, want 10", got)
	}
}

// TestHostAllowlist checks that while the API is open only the allowed
// Host names are served, and with tokens any is.
func TestHostAllowlist(t *testing.T) {
	up := okUpstream(t)
	byDefault, _ := relay(t, up.BaseURL(), nil)
	named, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.AllowedHosts = []string{"Relay.Example"} })
	anyHost, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.AllowedHosts = []string{"*"} })
	tokens, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.Tokens = []string{"tok"} })
	tests := map[string]struct {
		srv, host string
		status    int
	}{
		"localhost":                    {byDefault.URL, "localhost:8080", 200},
		"127.0.0.1":                    {byDefault.URL, "127.0.0.1", 200},
		"::1":                          {byDefault.URL, "[::1]:8080", 200},
		"rebound name":                 {byDefault.URL, "attacker.example", 403},
		"rebound name with port":       {byDefault.URL, "attacker.example:8080", 403},
		"localhost lookalike":          {byDefault.URL, "localhost.attacker.example", 403},
		"configured name":              {named.URL, "relay.example", 200},
		"default gone when configured": {named.URL, "localhost", 403},
		"any":                          {anyHost.URL, "attacker.example", 200},
		"tokens: any host":             {tokens.URL, "attacker.example", 200},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", tt.srv+"/message/stream", strings.NewReader(`{"prompt":"hi"}`))
			req.Host = tt.host
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer tok")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if tt.status == 403 {
				decodeError(t, res, 403, "host_not_allowed")
			} else if body := readAll(t, res); res.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
		})
	}
}

// TestForwardedForWarnsOnce checks the warning about X-Forwarded-For from a
// peer that is not a trusted proxy: once, and only then.
func TestForwardedForWarnsOnce(t *testing.T) {
	up := okUpstream(t)
	const warning = "not in TRUSTED_PROXIES"
	untrusted, logs := relay(t, up.BaseURL(), nil)
	for range 3 {
		readAll(t, do(t, "GET", untrusted.URL+"/healthz", "", "X-Forwarded-For", "203.0.113.9"))
	}
	waitFor(t, func() bool { return strings.Count(logs.String(), `"msg":"request"`) == 3 }, "three log lines")
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, logs)
	}
	trusted, logs := relay(t, up.BaseURL(), func(c *handler.Config) { c.TrustedProxies = []string{"127.0.0.1/8", "::1"} })
	readAll(t, do(t, "GET", trusted.URL+"/healthz", "", "X-Forwarded-For", "203.0.113.9"))
	waitFor(t, func() bool { return strings.Contains(logs.String(), `"msg":"request"`) }, "the log line")
	if strings.Contains(logs.String(), warning) {
		t.Errorf("warned about a trusted proxy:\n%s", logs)
	}
}

func canBind(ip string) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err == nil {
		ln.Close()
	}
	return err == nil
}

// clientFrom returns a client whose connections start from localIP.
func clientFrom(localIP string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}
