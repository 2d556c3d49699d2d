package handler_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"streamrelay/handler"
	"streamrelay/internal/limit"
	"streamrelay/internal/upstreamtest"
)

// do sends a request with headers given as pairs.
func do(t *testing.T, method, url, body string, headerPairs ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		req.Header.Set(headerPairs[i], headerPairs[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func okUpstream(t *testing.T) *upstreamtest.Server {
	up := upstreamtest.New(upstreamtest.Events(upstreamtest.Answer("a", "b")...)...)
	t.Cleanup(up.Close)
	return up
}

func TestAuth(t *testing.T) {
	up := okUpstream(t)
	open, _ := relay(t, up.BaseURL(), nil)
	closed, logs := relay(t, up.BaseURL(), func(c *handler.Config) { c.Tokens = []string{"tok-one", "tok-two"} })
	tests := map[string]struct {
		srv           string
		authorization string
		status        int
		code          string
		challenge     string
	}{
		"open, no token":      {open.URL, "", 200, "", ""},
		"open, any token":     {open.URL, "Bearer whatever", 200, "", ""},
		"no token":            {closed.URL, "", 401, "unauthorized", `Bearer realm="streamrelay"`},
		"wrong token":         {closed.URL, "Bearer tok-three", 401, "invalid_token", `Bearer realm="streamrelay", error="invalid_token"`},
		"prefix of a token":   {closed.URL, "Bearer tok-", 401, "invalid_token", `Bearer realm="streamrelay", error="invalid_token"`},
		"token plus more":     {closed.URL, "Bearer tok-one2", 401, "invalid_token", `Bearer realm="streamrelay", error="invalid_token"`},
		"basic scheme":        {closed.URL, "Basic dG9rLW9uZTo=", 401, "unauthorized", `Bearer realm="streamrelay"`},
		"right token":         {closed.URL, "Bearer tok-one", 200, "", ""},
		"other right token":   {closed.URL, "Bearer tok-two", 200, "", ""},
		"scheme in lowercase": {closed.URL, "bearer tok-two", 200, "", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res := do(t, "POST", tt.srv+"/message/stream", `{"prompt":"hi"}`, "Authorization", tt.authorization)
			if tt.status == 200 {
				if body := readAll(t, res); res.StatusCode != 200 || body != "a\nb\n" {
					t.Fatalf("status %d, body %q", res.StatusCode, body)
				}
				return
			}
			decodeError(t, res, tt.status, tt.code)
			if got := res.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
		})
	}
	if strings.Contains(logs.String(), "tok-") {
		t.Errorf("a token appears in the logs")
	}
	res := do(t, "GET", closed.URL+"/metrics", "")
	if res.StatusCode != 401 {
		t.Errorf("/metrics without a token: %d, want 401", res.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	up := okUpstream(t)
	none, _ := relay(t, up.BaseURL(), nil)
	some, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.CORSOrigins = []string{"https://app.example"} })
	any, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.CORSOrigins = []string{"*"} })
	preflight := []string{"Origin", "https://app.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type"}
	tests := map[string]struct {
		srv, method string
		headers     []string
		status      int
		allowOrigin string
	}{
		"no origin":                    {none.URL, "POST", nil, 200, ""},
		"same origin":                  {none.URL, "POST", []string{"Origin", "http://127.0.0.1:1234"}, 200, ""},
		"cross origin, closed":         {none.URL, "POST", []string{"Origin", "https://evil.example"}, 403, ""},
		"preflight, closed":            {none.URL, "OPTIONS", preflight, 403, ""},
		"allowed origin":               {some.URL, "POST", []string{"Origin", "https://app.example"}, 200, "https://app.example"},
		"allowed preflight":            {some.URL, "OPTIONS", preflight, 204, "https://app.example"},
		"other origin":                 {some.URL, "POST", []string{"Origin", "https://evil.example"}, 403, ""},
		"lookalike origin":             {some.URL, "POST", []string{"Origin", "https://app.example.evil"}, 403, ""},
		"any origin":                   {any.URL, "POST", []string{"Origin", "https://whoever.example"}, 200, "*"},
		"any origin preflight":         {any.URL, "OPTIONS", preflight, 204, "*"},
		"plain OPTIONS is not allowed": {none.URL, "OPTIONS", nil, 405, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			body := ""
			if tt.method == "POST" {
				body = `{"prompt":"hi"}`
			}
			res := do(t, tt.method, tt.srv+"/message/stream", body, tt.headers...)
			if res.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.status)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != tt.allowOrigin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.allowOrigin)
			}
			if got := res.Header.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("Access-Control-Allow-Credentials = %q, want none", got)
			}
			if tt.srv != none.URL && res.Header.Get("Vary") != "Origin" {
				t.Errorf("Vary = %q, want Origin", res.Header.Get("Vary"))
			}
			if tt.status == 204 && !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
				t.Errorf("preflight allows headers %q", res.Header.Get("Access-Control-Allow-Headers"))
			}
		})
	}
}

func TestInputLimits(t *testing.T) {
	up := okUpstream(t)
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.MaxMessages = 2; c.MaxInputChars = 10 })
	tests := map[string]struct {
		body   string
		status int
		code   string
	}{
		"at the limits":     {`{"messages":[{"role":"user","content":"12345"},{"role":"user","content":"é6789"}]}`, 200, ""},
		"too many messages": {`{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}`, 400, "too_many_messages"},
		"prompt too long":   {`{"prompt":"12345678901"}`, 400, "input_too_long"},
		"messages too long": {`{"messages":[{"role":"user","content":"123456"},{"role":"user","content":"12345"}]}`, 400, "input_too_long"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res := post(t, srv.URL, tt.body)
			if tt.status == 200 {
				if res.StatusCode != 200 {
					t.Fatalf("status = %d", res.StatusCode)
				}
				return
			}
			e := decodeError(t, res, tt.status, tt.code)
			if !strings.Contains(e.Message, "limit is") {
				t.Errorf("message does not name the limit: %q", e.Message)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	up := okUpstream(t)
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.Limits = limit.Config{PerMinute: 6, Burst: 2} })
	for i := range 2 {
		if res := post(t, srv.URL, `{"prompt":"hi"}`); res.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, res.StatusCode)
		}
	}
	res := post(t, srv.URL, `{"prompt":"hi"}`)
	decodeError(t, res, 429, "rate_limited")
	if got := res.Header.Get("Retry-After"); got != "10" {
		t.Errorf("Retry-After = %q, want 10 (one request per 10 s)", got)
	}
	if n := up.Requests.Load(); n != 2 {
		t.Errorf("the upstream got %d requests, want 2", n)
	}
}

// TestConcurrencyLimits holds N streams open and checks that the N+1th is
// refused, per caller and for the whole server, and that once they end a
// new one is admitted.
func TestConcurrencyLimits(t *testing.T) {
	tests := map[string]struct {
		limits  limit.Config
		callers []string // the tokens of the streams held open, then of the refused one
		code    string
	}{
		"per caller": {limit.Config{PerCaller: 2}, []string{"a", "a", "a"}, "too_many_streams"},
		"global":     {limit.Config{Global: 2}, []string{"a", "b", "c"}, "server_busy"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			gate := make(chan struct{})
			up := upstreamtest.New(upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("1")),
				upstreamtest.Wait(gate), upstreamtest.Event(upstreamtest.Finish("stop")), upstreamtest.Event(upstreamtest.Done))
			defer up.Close()
			srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.Limits = tt.limits; c.Tokens = []string{"a", "b", "c"} })
			var held []*bufio.Reader
			for _, token := range tt.callers[:2] {
				res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Authorization", "Bearer "+token)
				r := bufio.NewReader(res.Body)
				if line, err := r.ReadString('\n'); line != "1\n" {
					t.Fatalf("held stream: %q, %v", line, err)
				}
				held = append(held, r)
			}
			last := "Bearer " + tt.callers[2]
			res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Authorization", last)
			decodeError(t, res, 429, tt.code)
			if res.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			close(gate)
			for _, r := range held {
				if _, err := io.ReadAll(r); err != nil {
					t.Fatal(err)
				}
			}
			res = do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Authorization", last)
			if body := readAll(t, res); res.StatusCode != 200 || body != "1\n" {
				t.Errorf("after the others ended: %d %q", res.StatusCode, body)
			}
			if n := up.Requests.Load(); n != 3 {
				t.Errorf("the upstream got %d requests, want 3", n)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	up := upstreamtest.New(append(upstreamtest.Events(upstreamtest.Answer("x", "y\nz", "w")[:5]...), upstreamtest.Event(upstreamtest.Usage(11, 3)), upstreamtest.Event(upstreamtest.Done))...)
	defer up.Close()
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.Limits = limit.Config{PerMinute: 60, Burst: 3} })
	failing := upstreamtest.New(upstreamtest.Status(500))
	defer failing.Close()

	readAll(t, post(t, srv.URL, `{"prompt":"hi"}`))    // 200: 3 lines
	readAll(t, post(t, srv.URL, `{"prompt":""}`))      // 400
	readAll(t, post(t, srv.URL, `{"prompt":"hi"}`))    // 200 again
	readAll(t, post(t, srv.URL, `{"prompt":"again"}`)) // 429: the burst of 3 is spent

	families := scrape(t, srv.URL)
	checks := map[string]struct {
		got  float64
		want float64
	}{
		"requests 200":           {counter(t, families, "streamrelay_requests_total", "code", "200"), 2},
		"requests 400":           {counter(t, families, "streamrelay_requests_total", "code", "400"), 1},
		"requests 429":           {counter(t, families, "streamrelay_requests_total", "code", "429"), 1},
		"lines":                  {counter(t, families, "streamrelay_lines_total", "", ""), 6},
		"bytes":                  {counter(t, families, "streamrelay_bytes_total", "", ""), 2 * float64(len("x\ny<br />z\nw\n"))},
		"prompt tokens":          {counter(t, families, "streamrelay_tokens_total", "type", "prompt"), 22},
		"completion tokens":      {counter(t, families, "streamrelay_tokens_total", "type", "completion"), 6},
		"rejections":             {counter(t, families, "streamrelay_rate_limit_rejections_total", "limit", "rate"), 1},
		"active":                 {gauge(t, families, "streamrelay_streams_active"), 0},
		"first event histogram":  {histogramCount(t, families, "streamrelay_first_event_seconds"), 2},
		"first line histogram":   {histogramCount(t, families, "streamrelay_first_line_seconds"), 2},
		"duration histogram":     {histogramCount(t, families, "streamrelay_stream_duration_seconds"), 2},
		"client aborts, at zero": {counter(t, families, "streamrelay_client_aborts_total", "", ""), 0},
	}
	for name, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}

	failed, _ := relay(t, failing.BaseURL(), nil)
	readAll(t, post(t, failed.URL, `{"prompt":"hi"}`))
	if got := counter(t, scrape(t, failed.URL), "streamrelay_upstream_errors_total", "kind", "upstream_error"); got != 1 {
		t.Errorf("upstream errors = %v, want 1", got)
	}
}

// scrape reads /metrics, sending headers given as pairs.
func scrape(t *testing.T, url string, headerPairs ...string) map[string]*dto.MetricFamily {
	t.Helper()
	res := do(t, "GET", url+"/metrics", "", headerPairs...)
	body, _ := io.ReadAll(res.Body)
	if strings.Contains(string(body), apiKey) {
		t.Error("the API key appears in the metrics")
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// find returns the metric of the family with the label, or the only one.
func find(t *testing.T, families map[string]*dto.MetricFamily, name, label, value string) *dto.Metric {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.Metric {
		if label == "" {
			return m
		}
		for _, l := range m.Label {
			if l.GetName() == label && l.GetValue() == value {
				return m
			}
		}
	}
	return nil
}

func counter(t *testing.T, f map[string]*dto.MetricFamily, name, label, value string) float64 {
	if m := find(t, f, name, label, value); m != nil {
		return m.GetCounter().GetValue()
	}
	return 0
}

func gauge(t *testing.T, f map[string]*dto.MetricFamily, name string) float64 {
	return find(t, f, name, "", "").GetGauge().GetValue()
}

func histogramCount(t *testing.T, f map[string]*dto.MetricFamily, name string) float64 {
	return float64(find(t, f, name, "", "").GetHistogram().GetSampleCount())
}

func TestRequestLog(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Events(upstreamtest.Role(), upstreamtest.Content("secret answer"), upstreamtest.Finish("stop"), upstreamtest.Usage(4, 2), upstreamtest.Done)...)
	defer up.Close()
	srv, logs := relay(t, up.BaseURL(), nil)
	res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"my private prompt"}`, "X-Request-ID", "req-42")
	readAll(t, res)
	if got := res.Header.Get("X-Request-ID"); got != "req-42" {
		t.Errorf("X-Request-ID echoed = %q", got)
	}
	bad := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"x"}`, "X-Request-ID", "has spaces\tand tabs")
	readAll(t, bad)
	if got := bad.Header.Get("X-Request-ID"); got == "" || strings.ContainsAny(got, " \t") {
		t.Errorf("an insane X-Request-ID was kept or none generated: %q", got)
	}

	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, `"req-42"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]any{
		"msg": "request", "request_id": "req-42", "method": "POST", "path": "/message/stream",
		"client": "127.0.0.1", "status": float64(200), "outcome": "completed",
		"lines": float64(1), "bytes": float64(len("secret answer\n")), "prompt_tokens": float64(4), "completion_tokens": float64(2),
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
	for _, k := range []string{"duration", "first_event", "first_line"} {
		if _, ok := line[k]; !ok {
			t.Errorf("log line lacks %s", k)
		}
	}
	if strings.Contains(logs.String(), "private prompt") || strings.Contains(logs.String(), "secret answer") {
		t.Error("a prompt or an answer appears in the logs")
	}
}

func TestPagesHaveSecurityHeaders(t *testing.T) {
	srv, _ := relay(t, "http://127.0.0.1:1/v1/", func(c *handler.Config) { c.FrontendDir = t.TempDir() })
	res := do(t, "GET", srv.URL+"/", "")
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers = %v", res.Header)
	}
}

func TestHealthAndReady(t *testing.T) {
	srv, _ := relay(t, "http://127.0.0.1:1/v1/", func(c *handler.Config) { c.Demo = true })
	for _, path := range []string{"/healthz", "/readyz"} {
		body := readAll(t, do(t, "GET", srv.URL+path, ""))
		if !strings.Contains(body, `"upstream":"demo"`) {
			t.Errorf("%s = %s", path, body)
		}
	}
}

// TestWriteTimeout checks that a client that stops reading is cut after
// the write timeout, and its upstream request cancelled, while the idle
// and stream timeouts are far away.
func TestWriteTimeout(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	steps := []upstreamtest.Step{upstreamtest.Event(upstreamtest.Role())}
	for range 128 { // 8 MiB: more than the socket buffers between us
		steps = append(steps, upstreamtest.Event(upstreamtest.Content(big)))
	}
	up := upstreamtest.New(append(steps, upstreamtest.Hang())...)
	defer up.Close()
	srv, logs := relay(t, up.BaseURL(), func(c *handler.Config) { c.WriteTimeout = 300 * time.Millisecond })

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	body := `{"prompt":"hi"}`
	fmt.Fprintf(conn, "POST /message/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// ...and never read.
	select {
	case <-up.Cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream to a client that reads nothing was not cut")
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "i/o timeout") }, "a log line with the write timeout")
	if !strings.Contains(logs.String(), `"outcome":"client_abort"`) {
		t.Errorf("log: %s", logs)
	}
}

// waitFor polls cond a bounded number of times: for state that only shows
// in logs written after the response.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestDetachedStreamsHoldTheirSlots starts streams with Prefer:
// respond-async, which answer 202 at once and go on without a client:
// they still count against the concurrency limit until they end, so a
// caller can't start more of them than of ordinary streams.
func TestDetachedStreamsHoldTheirSlots(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("1")), upstreamtest.Hang())
	defer up.Close()
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) {
		c.Limits = limit.Config{PerCaller: 2}
		c.ResumeGrace = time.Minute
	})
	var ids []string
	defer func() { // stop what still runs, before the upstream closes
		for _, id := range ids {
			do(t, "DELETE", srv.URL+"/message/stream/"+id, "").Body.Close()
		}
	}()
	for range 2 {
		res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Prefer", "respond-async")
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("detached stream: %d, want 202", res.StatusCode)
		}
		ids = append(ids, res.Header.Get("X-Stream-ID"))
	}
	decodeError(t, do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Prefer", "respond-async"), 429, "too_many_streams")
	decodeError(t, do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`), 429, "too_many_streams")

	// Stopping one gives its slot back.
	if res := do(t, "DELETE", srv.URL+"/message/stream/"+ids[0], ""); res.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", res.StatusCode)
	}
	waitCancelled(t, up)
	waitEnded(t, srv.URL, ids[0])
	for deadline := time.Now().Add(5 * time.Second); ; {
		res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Prefer", "respond-async")
		res.Body.Close()
		if res.StatusCode == http.StatusAccepted {
			ids = append(ids, res.Header.Get("X-Stream-ID"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d 5 s after a detached stream ended; want its slot back", res.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
