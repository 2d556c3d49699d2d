package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"streamrelay/internal/upstreamtest"
)

// gatedUpstream sends each stream's first line, then holds it until gate
// is closed, then ends it.
func gatedUpstream(t *testing.T, gate <-chan struct{}) *upstreamtest.Server {
	return fakeUpstream(t,
		upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("x")),
		upstreamtest.Wait(gate),
		upstreamtest.Event(upstreamtest.Content("y")), upstreamtest.Event(upstreamtest.Finish("stop")), upstreamtest.Event(upstreamtest.Done))
}

// openStream opens a stream to base from localIP with the extra header
// lines, and returns its status once the first line came (or the error
// body's code), and a function that reads the rest and reports whether the
// body was "x\ny\n", complete.
func openStream(base, localIP, extra string) (status int, rest func() error, err error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	conn, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		return 0, nil, err
	}
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	body := promptJSON("hi")
	fmt.Fprintf(conn, "POST /message/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", extra, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return 0, nil, err
	}
	r := bufio.NewReader(resp.Body)
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return resp.StatusCode, nil, nil
	}
	if line, err := r.ReadString('\n'); line != "x\n" {
		conn.Close()
		return 0, nil, fmt.Errorf("first line %q, %v", line, err)
	}
	return resp.StatusCode, func() error {
		defer conn.Close()
		b, err := io.ReadAll(r)
		if err != nil || string(b) != "y\n" {
			return fmt.Errorf("rest %q, %v", b, err)
		}
		return nil
	}, nil
}

// TestNginxClientsGetTheirOwnBudget runs the app with its default settings
// behind the shipped nginx: six clients from six addresses each open as
// many streams as one caller may (STREAMS_PER_CALLER, 5), all at once,
// and all get them. Were nginx's address the caller, 25 would get 429.
func TestNginxClientsGetTheirOwnBudget(t *testing.T) {
	const perCaller = 5
	var ips []string
	for i := 2; i <= 7; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		if !canBind(ip) {
			t.Skipf("cannot use %s as a local address here", ip)
		}
		ips = append(ips, ip)
	}
	gate := make(chan struct{})
	env := appEnv(gatedUpstream(t, gate).BaseURL())
	delete(env, "TRUSTED_PROXIES") // the defaults
	delete(env, "ALLOWED_HOSTS")
	appAddr, _ := startApp(t, env)
	base := startNginx(t, shippedConf(t), appAddr)

	var rests []func() error
	for _, ip := range ips {
		for range perCaller {
			status, rest, err := openStream(base, ip, "")
			if err != nil || status != http.StatusOK {
				t.Fatalf("client %s: status %d, %v", ip, status, err)
			}
			rests = append(rests, rest)
		}
	}
	close(gate)
	for _, rest := range rests {
		if err := rest(); err != nil {
			t.Error(err)
		}
	}
}

// TestSpoofedForwardedForIsLimited checks that, with loopback not trusted
// (TRUSTED_PROXIES=none), a client on the host that sends its own
// X-Forwarded-For straight to the app is limited under its own address.
func TestSpoofedForwardedForIsLimited(t *testing.T) {
	const perCaller = 5
	if !canBind("127.0.0.2") {
		t.Skip("cannot use 127.0.0.2 as a local address here")
	}
	gate := make(chan struct{})
	appAddr, _ := startApp(t, appEnv(gatedUpstream(t, gate).BaseURL(), "TRUSTED_PROXIES", "none"))
	// The open streams are held until the end: a connection nothing refers
	// to any more is closed by its finalizer at the next GC, which would
	// free its slot.
	var open []func() error
	defer func() {
		close(gate)
		for _, rest := range open {
			rest()
		}
	}()
	for i := range perCaller + 1 {
		want := http.StatusOK
		if i == perCaller {
			want = http.StatusTooManyRequests
		}
		xff := fmt.Sprintf("X-Forwarded-For: 203.0.113.%d\r\n", i+1)
		status, rest, err := openStream("http://"+appAddr, "127.0.0.2", xff)
		if rest != nil {
			open = append(open, rest)
		}
		if err != nil || status != want {
			t.Fatalf("stream %d claiming another address: status %d, %v; want %d", i+1, status, err, want)
		}
	}
}

// TestNginxManyStreams holds 2000 streams open at once through the shipped
// nginx.conf to the app (a separate process), then lets them all finish:
// none may fail.
func TestNginxManyStreams(t *testing.T) {
	const streams = 2000
	gate := make(chan struct{})
	up := gatedUpstream(t, gate)
	p := startProcess(t, appEnv(up.BaseURL(), "STREAMS_PER_CALLER", "0", "RATE_LIMIT_PER_MINUTE", "0"), 0)
	base := startNginx(t, shippedConf(t), p.addr)

	type opened struct {
		rest func() error
		err  error
	}
	results := make(chan opened, streams)
	var wg sync.WaitGroup
	start := time.Now()
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, rest, err := openStream(base, "", "")
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("status %d", status)
			}
			results <- opened{rest, err}
		}()
	}
	var rests []func() error
	failed := 0
	for range streams {
		o := <-results
		if o.err != nil {
			if failed++; failed <= 5 {
				t.Errorf("opening: %v", o.err)
			}
			continue
		}
		rests = append(rests, o.rest)
	}
	t.Logf("%d streams open at once after %v", len(rests), time.Since(start).Round(time.Millisecond))
	close(gate)
	for _, rest := range rests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rest(); err != nil {
				results <- opened{err: err}
			}
		}()
	}
	wg.Wait()
	close(results)
	for o := range results {
		if failed++; failed <= 5 {
			t.Errorf("finishing: %v", o.err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d streams failed, want 0", failed, streams)
	}
}
