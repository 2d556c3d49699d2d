package main

// These tests put the app behind a real nginx running the shipped nginx.conf
// (its marked addresses substituted, a private prefix in a temp directory)
// and check what a client of that nginx sees. Without an nginx binary they
// skip, except when CI is set: CI installs nginx, so there they fail.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"streamrelay/internal/demo"
	"streamrelay/internal/upstreamtest"
	"streamrelay/stream"
)

// The marked values of nginx.conf that the tests substitute.
const (
	confAppAddr    = "127.0.0.1:8080" // the app
	confListenAddr = "127.0.0.1:8081" // nginx
)

// TestNginxConfigTest checks that nginx -t accepts the shipped file and the
// variants made from it, so that a negative control fails for the reason it
// is meant to, not for a broken file.
func TestNginxConfigTest(t *testing.T) {
	bin := nginxBinary(t)
	for _, v := range confVariants {
		t.Run(v.name, func(t *testing.T) {
			prefix := t.TempDir()
			file := writeConf(t, prefix, nginxConf(t, v.edit(t, shippedConf(t)), confAppAddr, confListenAddr))
			out, err := exec.Command(bin, "-t", "-p", prefix+"/", "-c", file, "-e", "stderr").CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("test is successful")) {
				t.Fatalf("nginx -t: %v\n%s", err, out)
			}
		})
	}
}

// TestNginxStreamsIncrementally checks that lines reach a client that
// accepts gzip while the upstream is still producing, through the shipped
// config and the variants in confVariants, and that the same check catches
// the variant that delivers the stream in one piece at its end.
func TestNginxStreamsIncrementally(t *testing.T) {
	const deltas, pace = 12, 125 * time.Millisecond
	upstream := deltas * pace
	// The rows stream at once, all from 127.0.0.1: one caller to the app.
	env := appEnv(demoUpstream(t, demo.Options{Delay: pace, Deltas: deltas}), "STREAMS_PER_CALLER", "20")
	appAddr, _ := startApp(t, env)
	for _, v := range confVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			base := startNginx(t, v.edit(t, shippedConf(t)), appAddr)
			a := measureArrival(t, httpClient(t, ""), base)
			t.Logf("%s: first line after %v, end after %v; the upstream takes %v", v.name, a.first.Round(time.Millisecond), a.end.Round(time.Millisecond), upstream)
			if a.lines != deltas {
				t.Errorf("got %d lines, want %d", a.lines, deltas)
			}
			if a.encoding != v.wantEncoding {
				t.Errorf("Content-Encoding %q, want %q", a.encoding, v.wantEncoding)
			}
			if got := a.incremental(upstream); got != v.wantIncremental {
				t.Errorf("incremental = %v, want %v: the first line came %v before the end",
					got, v.wantIncremental, (a.end - a.first).Round(time.Millisecond))
			}
		})
	}
}

// TestNginxBodyMatchesApp checks that nginx passes the body on byte for byte.
func TestNginxBodyMatchesApp(t *testing.T) {
	appAddr, _ := startApp(t, appEnv(demoUpstream(t, demo.Options{})))
	base := startNginx(t, shippedConf(t), appAddr)
	client := httpClient(t, "")
	tests := []struct{ name, body string }{
		{"short", promptJSON("hello")},
		{"newlines and multi-byte", promptJSON("line one\nline two\r\ncafé 你好 🚀")},
		// Past nginx's default client_body_buffer_size (16k), at the limit.
		{"64 KiB body", bodyOfSize(strings.Repeat("x", 30000), 64<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			direct := readPlain(t, client, "http://"+appAddr, tt.body)
			proxied := readPlain(t, client, base, tt.body)
			if n := bytes.Count(direct, []byte("\n")); n < 10 {
				t.Fatalf("the app answered only %d lines:\n%s", n, direct)
			}
			if !bytes.Equal(proxied, direct) {
				t.Errorf("body through nginx differs from the app's:\n got %q\nwant %q", proxied, direct)
			}
		})
	}
}

// TestNginxBodyLimit checks that nginx's client_max_body_size matches the
// app's default MAX_BODY_BYTES: nginx passes every body the app accepts,
// and refuses a larger one itself, in the app's JSON error shape.
func TestNginxBodyLimit(t *testing.T) {
	appAddr, _ := startApp(t, appEnv(demoUpstream(t, demo.Options{})))
	base := startNginx(t, shippedConf(t), appAddr)
	client := httpClient(t, "")
	limit := int(config{}.withDefaults().MaxBodyBytes)
	tests := []struct {
		size     int
		want     int
		wantType string // the answer's media type
	}{
		{limit, http.StatusOK, "text/plain"},
		{limit + 1, http.StatusRequestEntityTooLarge, "application/json"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			body := bodyOfSize("hello", tt.size)
			if len(body) != tt.size {
				t.Fatalf("body is %d bytes, want %d", len(body), tt.size)
			}
			resp, err := postStream(context.Background(), client, base, body)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if resp.StatusCode != tt.want || mediaType != tt.wantType {
				t.Errorf("status %d, %s; want %d, %s", resp.StatusCode, mediaType, tt.want, tt.wantType)
			}
			if tt.want != http.StatusOK {
				checkErrorBody(t, got, "body_too_large")
			}
		})
	}
}

// TestNginxErrorsAreJSON checks that nginx's own errors come back in the
// app's JSON shape: here, the app unreachable.
func TestNginxErrorsAreJSON(t *testing.T) {
	gone := freeAddr(t) // nothing listens there
	base := startNginx(t, shippedConf(t), gone)
	resp, err := postStream(context.Background(), httpClient(t, ""), base, promptJSON("hi"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusBadGateway || mediaType != "application/json" {
		t.Errorf("status %d, %s; want 502, application/json", resp.StatusCode, mediaType)
	}
	checkErrorBody(t, body, "relay_unreachable")
}

// checkErrorBody checks that body is the JSON error with code, and a
// message.
func checkErrorBody(t *testing.T, body []byte, code string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("body %q, want the JSON error %s (%v)", body, code, err)
	}
}

// TestNginxClientDisconnect checks that a client leaving nginx makes the app
// cancel its upstream request, whether the answer had begun or not.
func TestNginxClientDisconnect(t *testing.T) {
	tests := []struct {
		name      string
		steps     []upstreamtest.Step
		firstLine bool // leave after the first line, not before any
	}{
		{"waiting for the first event", []upstreamtest.Step{upstreamtest.Hang()}, false},
		{"mid-stream", []upstreamtest.Step{
			upstreamtest.Event(upstreamtest.Role()),
			upstreamtest.Event(upstreamtest.Content("first")),
			upstreamtest.Hang(),
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := fakeUpstream(t, tt.steps...)
			appAddr, _ := startApp(t, appEnv(up.BaseURL()))
			base := startNginx(t, shippedConf(t), appAddr)

			client := httpClient(t, "")
			ctx, leave := context.WithCancel(context.Background())
			defer leave()
			lines := make(chan string, 1)
			ended := make(chan error, 1)
			go func() {
				resp, err := postStream(ctx, client, base, promptJSON("hi"))
				if err != nil {
					ended <- err
					return
				}
				defer resp.Body.Close()
				lr := stream.NewLineReader(resp.Body)
				if lr.Next() {
					lines <- lr.Text()
				}
				for lr.Next() {
				}
				ended <- lr.Err()
			}()

			if tt.firstLine {
				select {
				case line := <-lines:
					if line != "first" {
						t.Fatalf("first line %q, want %q", line, "first")
					}
				case err := <-ended:
					t.Fatalf("stream ended before its first line: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("no first line within 10s")
				}
			} else {
				select {
				case <-up.Bodies:
				case <-time.After(10 * time.Second):
					t.Fatal("the request did not reach the upstream within 10s")
				}
			}
			left := time.Now()
			leave()
			select {
			case <-up.Cancelled:
				t.Logf("upstream request cancelled %v after the client left", time.Since(left).Round(time.Millisecond))
			case <-time.After(5 * time.Second):
				t.Fatal("the app did not cancel its upstream request within 5s of the client leaving nginx")
			}
			<-ended
		})
	}
}

// TestNginxUpstreamFailure checks that a stream the upstream cuts short
// reaches nginx's client as an incomplete body, not as a clean end, both for
// Go's client and for curl.
func TestNginxUpstreamFailure(t *testing.T) {
	role, a, b := upstreamtest.Role(), upstreamtest.Content("a"), upstreamtest.Content("b")
	reset := append(upstreamtest.Events(role, a, b), upstreamtest.Reset())
	naive := func(t *testing.T, conf string) string { return naiveConf(t, conf, false) }
	tests := []struct {
		name           string
		steps          []upstreamtest.Step
		edit           func(t *testing.T, conf string) string // nil: the shipped conf
		wantIncomplete bool
	}{
		{"complete answer", upstreamtest.Events(upstreamtest.Answer("a", "b")...), nil, false},
		{"upstream connection reset", reset, nil, true},
		{"no finish_reason", upstreamtest.Events(role, a, b), nil, true},
		// HTTP/1.0 to the app: its abort is just the end of the body.
		{"upstream connection reset, naive proxy_pass", reset, naive, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := fakeUpstream(t, tt.steps...)
			appAddr, _ := startApp(t, appEnv(up.BaseURL()))
			conf := shippedConf(t)
			if tt.edit != nil {
				conf = tt.edit(t, conf)
			}
			base := startNginx(t, conf, appAddr)
			const want = "a\nb\n"

			resp, err := postStream(context.Background(), httpClient(t, ""), base, promptJSON("hi"))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tt.wantIncomplete || (!tt.wantIncomplete && err != nil) {
				t.Errorf("reading the body: error %v, want incomplete = %v", err, tt.wantIncomplete)
			}

			curl, err := exec.LookPath("curl")
			if err != nil {
				t.Log("curl not found: checked with Go's client only")
				return
			}
			wantCode := 0
			if tt.wantIncomplete {
				wantCode = 18 // CURLE_PARTIAL_FILE
			}
			out, err := exec.Command(curl, "-sS", "-N", "--max-time", "10",
				"-H", "Content-Type: application/json", "--data", promptJSON("hi"),
				base+"/message/stream").Output()
			code := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != wantCode || string(out) != want {
				t.Errorf("curl: exit code %d, body %q; want %d, %q", code, out, wantCode, want)
			}
		})
	}
}

// TestNginxClientAddress checks which client address the app logs: the one
// nginx forwards when nginx is a trusted proxy, the peer's otherwise, so a
// client can't choose its own by sending X-Forwarded-For.
func TestNginxClientAddress(t *testing.T) {
	const spoofed = "203.0.113.7"
	tests := []struct {
		name     string
		viaNginx bool
		trusted  string // TRUSTED_PROXIES
		from     string // the client's own address
		want     string // the client= the app logs
	}{
		// nginx forwards "203.0.113.7, 127.0.0.1": the client is itself a
		// trusted hop, so the address it passes on counts.
		{"via nginx, client behind a trusted hop", true, "127.0.0.1", "127.0.0.1", spoofed},
		// nginx forwards "203.0.113.7, 127.0.0.2": the rightmost untrusted.
		{"via nginx, untrusted client sending X-Forwarded-For", true, "127.0.0.1", "127.0.0.2", "127.0.0.2"},
		{"via nginx, no trusted proxy", true, "none", "127.0.0.2", "127.0.0.1"},
		// Loopback is trusted by default: the client, on loopback itself,
		// is a trusted hop too.
		{"via nginx, default trusted proxies", true, "", "127.0.0.2", spoofed},
		{"direct, no trusted proxy, client sending X-Forwarded-For", false, "none", "127.0.0.2", "127.0.0.2"},
		// The price of trusting loopback: a process on the host can claim
		// any address.
		{"direct, default trusted proxies, local client sending X-Forwarded-For", false, "", "127.0.0.2", spoofed},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !canBind(tt.from) {
				t.Skipf("cannot use %s as a local address here", tt.from)
			}
			appAddr, logs := startApp(t, appEnv(demoUpstream(t, demo.Options{}), "TRUSTED_PROXIES", tt.trusted))
			base := "http://" + appAddr
			if tt.viaNginx {
				base = startNginx(t, shippedConf(t), appAddr)
			}
			client := httpClient(t, tt.from)
			for j, req := range []*http.Request{
				newRequest(t, http.MethodPost, base+"/message/stream", promptJSON("hi")),
				newRequest(t, http.MethodGet, base+"/healthz", ""),
			} {
				id := fmt.Sprintf("client-address-%d-%d", i, j)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", spoofed)
				req.Header.Set("X-Request-ID", id)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d", req.URL.Path, resp.StatusCode)
				}
				if got := loggedClient(t, logs.String(), id); got != tt.want {
					t.Errorf("%s: the app logged client=%s, want %s", req.URL.Path, got, tt.want)
				}
			}
		})
	}
}

// confVariant is the shipped nginx.conf or a variant made from it, with
// what a client accepting gzip sees through it.
type confVariant struct {
	name            string
	edit            func(t *testing.T, conf string) string
	wantIncremental bool
	wantEncoding    string
}

var confVariants = []confVariant{
	{"shipped", func(_ *testing.T, conf string) string { return conf }, true, ""},
	// Debian's own nginx.conf has gzip on in its http block, with a
	// gzip_types line for text/plain ready to uncomment; the stream
	// location's gzip off must win.
	{"shipped in an http block with gzip on", gzipHTTPConf, true, ""},
	// The app's X-Accel-Buffering: no rescues an nginx nobody configured.
	{"naive proxy_pass", func(t *testing.T, conf string) string { return naiveConf(t, conf, false) }, true, ""},
	// The trap: buffering on, nothing to turn it off.
	{"naive proxy_pass ignoring X-Accel-Buffering", func(t *testing.T, conf string) string { return naiveConf(t, conf, true) }, false, ""},
	// Measured on nginx 1.22: unbuffered, its gzip flushes at every
	// upstream chunk, so this compresses but does not hold lines back.
	{"gzip on in the stream location", gzipConf, true, "gzip"},
}

// naiveConf replaces the stream location of conf with the one a newcomer
// starts from: proxy_pass alone (HTTP/1.0 to the app, buffering on), and
// if ignoreAccel, with the app's X-Accel-Buffering: no ignored, as if it
// did not send it.
func naiveConf(t *testing.T, conf string, ignoreAccel bool) string {
	t.Helper()
	loc := activeLine(t, conf, "location = /message/stream {")
	end := loc[1] + strings.Index(conf[loc[1]:], "}") + 1
	if strings.Contains(conf[loc[1]:end], "{") {
		t.Fatal("the stream location of nginx.conf holds a block: naiveConf can't cut it out")
	}
	block := "location = /message/stream {\n proxy_pass http://streamrelay;\n"
	if ignoreAccel {
		block += " proxy_ignore_headers X-Accel-Buffering;\n"
	}
	return conf[:loc[0]] + block + "}" + conf[end:]
}

// gzipConf turns gzip on for text/plain in the stream location of conf.
func gzipConf(t *testing.T, conf string) string {
	t.Helper()
	loc := activeLine(t, conf, "gzip off;")
	return conf[:loc[0]] + "gzip on; gzip_types text/plain;" + conf[loc[1]:]
}

// activeLine returns where directive stands in conf, alone on a line that
// is not a comment. It fails the test unless there is exactly one.
func activeLine(t *testing.T, conf, directive string) []int {
	t.Helper()
	re := regexp.MustCompile(`(?m)^[ \t]*(` + regexp.QuoteMeta(directive) + `)[ \t]*$`)
	found := re.FindAllStringSubmatchIndex(conf, -1)
	if len(found) != 1 {
		t.Fatalf("nginx.conf has %q on %d lines, want 1", directive, len(found))
	}
	return found[0][2:4]
}

// gzipHTTPConf turns gzip on for text/plain in the http block of conf, as
// an existing setup the server block is pasted into may have it.
func gzipHTTPConf(t *testing.T, conf string) string {
	t.Helper()
	const http = "\nhttp {\n"
	if n := strings.Count(conf, http); n != 1 {
		t.Fatalf("nginx.conf has %q %d times, want once", http, n)
	}
	return strings.Replace(conf, http, http+"gzip on; gzip_types text/plain;\n", 1)
}

// shippedConf returns the repo's nginx.conf.
func shippedConf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nginxConf returns conf with its marked addresses replaced.
func nginxConf(t *testing.T, conf, appAddr, listenAddr string) string {
	t.Helper()
	for _, mark := range []string{confAppAddr, confListenAddr} {
		if !strings.Contains(conf, mark) {
			t.Fatalf("nginx.conf lacks the marked value %s", mark)
		}
	}
	return strings.NewReplacer(confAppAddr, appAddr, confListenAddr, listenAddr).Replace(conf)
}

// writeConf writes conf as nginx.conf in dir and returns its path.
func writeConf(t *testing.T, dir, conf string) string {
	t.Helper()
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// nginxBinary returns the nginx to run. It skips the test when there is
// none, but fails it in CI, which installs one.
func nginxBinary(t *testing.T) string {
	t.Helper()
	// /usr/sbin is often missing from a non-root PATH.
	for _, name := range []string{"nginx", "/usr/sbin/nginx"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nginx not found (PATH, /usr/sbin): CI must install it (apt-get install -y nginx)")
	}
	t.Skip("nginx not found (PATH, /usr/sbin): install it to run the nginx tests (apt-get install -y nginx)")
	return ""
}

// startNginx runs nginx with conf, pointed at appAddr, in a private prefix,
// until the test ends, and returns its base URL.
func startNginx(t *testing.T, conf, appAddr string) string {
	t.Helper()
	bin := nginxBinary(t)
	var lastErr error
	for range 3 { // another process may take the free port first
		addr := freeAddr(t)
		prefix := t.TempDir()
		file := writeConf(t, prefix, nginxConf(t, conf, appAddr, addr))
		out, err := os.Create(filepath.Join(prefix, "stderr.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-p", prefix+"/", "-c", file, "-e", "stderr", "-g", "daemon off;")
		cmd.Stdout, cmd.Stderr = out, out
		err = cmd.Start()
		out.Close()
		if err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if lastErr = waitListening(addr, exited); lastErr == nil {
			t.Cleanup(func() {
				stopNginx(cmd, exited)
				if t.Failed() {
					t.Logf("nginx error.log:\n%s", readLog(prefix, "error.log"))
				}
			})
			return "http://" + addr
		}
		stopNginx(cmd, exited)
		lastErr = fmt.Errorf("%w\n%s%s", lastErr, readLog(prefix, "stderr.log"), readLog(prefix, "error.log"))
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	t.Fatalf("nginx did not start: %v", lastErr)
	return ""
}

// waitListening polls addr a bounded number of times until it accepts a
// connection, or nginx exits.
func waitListening(addr string, exited <-chan struct{}) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for range 500 {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("nginx exited")
		case <-tick.C:
		}
	}
	return fmt.Errorf("nginx not listening on %s after 5s", addr)
}

// stopNginx asks nginx to stop (SIGTERM: the master stops its workers),
// and kills it if it has not within 5 seconds.
func stopNginx(cmd *exec.Cmd, exited <-chan struct{}) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

func readLog(prefix, name string) string {
	b, _ := os.ReadFile(filepath.Join(prefix, name))
	return string(b)
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// canBind reports whether ip can be a local address for connections.
func canBind(ip string) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err == nil {
		ln.Close()
	}
	return err == nil
}

// appEnv is the environment of an app relaying upstreamURL, plus pairs of
// names and values.
func appEnv(upstreamURL string, pairs ...string) map[string]string {
	env := map[string]string{
		"OPENAI_API_KEY":   "test",
		"OPENAI_BASE_URL":  upstreamURL,
		"UPSTREAM_RETRIES": "0",
		"DRAIN_TIMEOUT":    "1s",
		"TRUSTED_PROXIES":  "127.0.0.1",
		// The naive variants' proxy_pass http://streamrelay sends Host:
		// streamrelay; the shipped config passes the client's.
		"ALLOWED_HOSTS": "127.0.0.1,streamrelay",
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		env[pairs[i]] = pairs[i+1]
	}
	return env
}

// startApp runs the app with env on a free loopback port until the test
// ends, and returns its address and its log.
func startApp(t *testing.T, env map[string]string) (string, *syncBuffer) {
	t.Helper()
	a := launch(t, env)
	return strings.TrimPrefix(a.url, "http://"), a.logs
}

// demoUpstream serves the demo upstream until the test ends and returns
// its base URL.
func demoUpstream(t *testing.T, opts demo.Options) string {
	srv := httptest.NewServer(demo.Handler(opts))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/"
}

// fakeUpstream serves steps until the test ends.
func fakeUpstream(t *testing.T, steps ...upstreamtest.Step) *upstreamtest.Server {
	srv := upstreamtest.New(steps...)
	t.Cleanup(srv.Close)
	return srv
}

// httpClient returns a client whose connections start from localIP, or
// from any address if it is empty.
func httpClient(t *testing.T, localIP string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// promptJSON is the request body asking for prompt.
func promptJSON(prompt string) string {
	return `{"prompt":"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`).Replace(prompt) + `"}`
}

func newRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// bodyOfSize is the request body asking for prompt, padded with JSON
// whitespace to size bytes: as large as needed, without a long prompt.
func bodyOfSize(prompt string, size int) string {
	body := promptJSON(prompt)
	return body[:len(body)-1] + strings.Repeat(" ", max(size-len(body), 0)) + "}"
}

// postStream posts body to base's /message/stream as a browser would, with
// Accept-Encoding: gzip. Set by hand, the header also keeps Go's transport
// from decompressing behind the test's back.
func postStream(ctx context.Context, client *http.Client, base, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/message/stream", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	return client.Do(req)
}

// readPlain posts body to base and returns the whole answer, which must be
// a complete, uncompressed 200.
func readPlain(t *testing.T, client *http.Client, base, body string) []byte {
	t.Helper()
	resp, err := postStream(context.Background(), client, base, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("%s: status %d, Content-Encoding %q, read error %v", base, resp.StatusCode, resp.Header.Get("Content-Encoding"), err)
	}
	return b
}

// arrival is when a streamed answer reached the client, measured from the
// moment the request was sent.
type arrival struct {
	first, end time.Duration // the first line; the end of the body
	lines      int
	encoding   string // the response's Content-Encoding
}

// incremental reports whether the lines arrived spread over the stream,
// not in one piece: the first came at least half of the upstream's
// duration before the end.
func (a arrival) incremental(upstream time.Duration) bool {
	return a.end-a.first >= upstream/2
}

// measureArrival streams an answer from base and times its lines,
// decompressing them if nginx gzipped them.
func measureArrival(t *testing.T, client *http.Client, base string) arrival {
	t.Helper()
	start := time.Now()
	resp, err := postStream(context.Background(), client, base, promptJSON("pace"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	a := arrival{encoding: resp.Header.Get("Content-Encoding")}
	var body io.Reader = resp.Body
	if a.encoding == "gzip" {
		gz, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body = gz
	}
	lr := stream.NewLineReader(body)
	for lr.Next() {
		if a.lines == 0 {
			a.first = time.Since(start)
		}
		a.lines++
	}
	a.end = time.Since(start)
	if err := lr.Err(); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return a
}

var clientField = regexp.MustCompile(`\bclient=(\S+)`)

// loggedClient returns the client= of the app's log line for request id.
func loggedClient(t *testing.T, logs, id string) string {
	t.Helper()
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "request_id="+id+" ") {
			if m := clientField.FindStringSubmatch(line); m != nil {
				return m[1]
			}
		}
	}
	t.Fatalf("no log line with client= for request %s in:\n%s", id, logs)
	return ""
}
