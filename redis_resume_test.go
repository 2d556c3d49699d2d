package main

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"streamrelay/internal/cutproxy"
	"streamrelay/internal/redistest"
	"streamrelay/internal/upstreamtest"
	"streamrelay/stream"
)

// crossDeltas are the deltas of the cross-instance resume tests: newlines,
// a literal break, multi-byte text. The cut comes inside "four".
var crossDeltas = []string{"one ", "two\nlines ", "three<br />", "four ", "five\r\n", "六 ", "seven ", "eight ", "nine ", "ten"}

const crossCut = "fo" // the cutting proxy cuts a response right after it

// gatedCrossUpstream sends crossDeltas, pausing after the sixth for the
// gate current when the request came; swap puts a new gate in place.
func gatedCrossUpstream(t *testing.T) (up *upstreamtest.Server, swap func() chan struct{}) {
	wait, swap := swappableGate()
	steps := []upstreamtest.Step{upstreamtest.Event(upstreamtest.Role())}
	for i, d := range crossDeltas {
		if i == 6 {
			steps = append(steps, wait)
		}
		steps = append(steps, upstreamtest.Event(upstreamtest.Content(d)))
	}
	steps = append(steps, upstreamtest.Events(upstreamtest.Finish("stop"), upstreamtest.Usage(3, 10), upstreamtest.Done)...)
	return fakeUpstream(t, steps...), swap
}

// crossPlainBody is the uninterrupted plain body of crossDeltas.
func crossPlainBody() string {
	var b []byte
	for _, d := range crossDeltas {
		b = stream.AppendLine(b, d)
	}
	return string(b)
}

// cutPost posts a resumable prompt through p, which cuts the response, and
// returns the stream's id and what arrived before the cut.
func cutPost(t *testing.T, p *cutproxy.Proxy, accept string) (id string, got []byte) {
	t.Helper()
	p.CutOnce(crossCut)
	req, _ := http.NewRequest("POST", p.URL()+"/message/stream", strings.NewReader(`{"prompt":"hi","resumable":true}`))
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, err = io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("POST through the cutting proxy: %d, %v; want 200 and a cut", res.StatusCode, err)
	}
	if id = res.Header.Get("X-Stream-ID"); id == "" {
		t.Fatal("no X-Stream-ID")
	}
	return id, got
}

// resumeGet resumes stream id at base, with header pairs.
func resumeGet(t *testing.T, base, id string, headerPairs ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/message/stream/"+id, nil)
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

// waitState polls base's status of stream id until it is state.
func waitState(t *testing.T, base, id, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		body = get(t, base+"/message/stream/"+id+"/status")
		if strings.Contains(body, `"state":"`+state+`"`) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("status of %s at %s: %s, want %s", id, base, body, state)
}

// resumePlain resumes stream id at base after the whole lines of got, and
// checks that got's whole lines and the resumed body are the
// uninterrupted body, byte for byte. release, if not nil, is called once
// the resume has started.
func resumePlain(t *testing.T, base, id string, got []byte, release func()) {
	t.Helper()
	whole := string(got[:strings.LastIndexByte(string(got), '\n')+1])
	n := strings.Count(whole, "\n")
	if n < 2 {
		t.Fatalf("cut after %d lines (%q), want a cut mid-stream", n, got)
	}
	res := resumeGet(t, base, id+"?from="+strconv.Itoa(n))
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("resume at %s: %d %s", base, res.StatusCode, b)
	}
	if release != nil {
		release()
	}
	rest, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("resume at %s: %v after %q", base, err, rest)
	}
	if want := crossPlainBody(); whole+string(rest) != want {
		t.Errorf("cut %q + resumed %q\nwant %q", whole, rest, want)
	}
}

// events reads SSE events as "id:name:data" until the body ends.
func events(r io.Reader) []string {
	er := stream.NewEventReader(r)
	var out []string
	for er.Next() {
		ev := er.Event()
		out = append(out, ev.ID+":"+ev.Name+":"+ev.Data)
	}
	return out
}

// crossInstances starts two instances sharing srv, both relaying
// gatedCrossUpstream, and a cutting proxy before A.
func crossInstances(t *testing.T, srv *redistest.Server) (a, b *app, viaA *cutproxy.Proxy, swap func() chan struct{}) {
	t.Helper()
	up, swap := gatedCrossUpstream(t)
	env := appEnv(up.BaseURL(), "REDIS_URL", srv.URL(), "RESUME_GRACE", "30s")
	a, b = launch(t, env), launch(t, env)
	viaA, err := cutproxy.New(strings.TrimPrefix(a.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viaA.Close)
	return a, b, viaA, swap
}

// TestRedisResumeAcrossInstances runs a stream on A, cuts its client, and
// resumes it on B: directly while A still generates and after it
// finished, with SSE and Last-Event-ID, and through nginx with both
// instances as its upstreams.
func TestRedisResumeAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	a, b, viaA, swap := crossInstances(t, srv)

	t.Run("while A generates", func(t *testing.T) {
		gate := swap()
		id, got := cutPost(t, viaA, "")
		resumePlain(t, b.url, id, got, func() { close(gate) })
	})
	t.Run("after A finished", func(t *testing.T) {
		gate := swap()
		id, got := cutPost(t, viaA, "")
		close(gate)
		waitState(t, b.url, id, "completed")
		resumePlain(t, b.url, id, got, nil)
	})
	t.Run("SSE with Last-Event-ID", func(t *testing.T) {
		close(swap())
		want := uninterruptedEvents(t, b.url)
		gate := swap()
		id, got := cutPost(t, viaA, "text/event-stream")
		before := events(strings.NewReader(string(got)))
		if len(before) < 2 {
			t.Fatalf("events before the cut: %q", before)
		}
		last := before[len(before)-1]
		res := resumeGet(t, b.url, id, "Accept", "text/event-stream", "Last-Event-ID", last[:strings.IndexByte(last, ':')])
		close(gate)
		after := events(res.Body)
		if got := strings.Join(append(before, after...), "|"); got != strings.Join(want, "|") {
			t.Errorf("events before the cut and resumed:\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("Prefer: respond-async on A, EventSource's GET on B", func(t *testing.T) {
		close(swap())
		want := uninterruptedEvents(t, b.url)
		gate := swap()
		req, _ := http.NewRequest("POST", a.url+"/message/stream", strings.NewReader(`{"prompt":"hi"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "respond-async")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("POST with Prefer: respond-async: %d, want 202", res.StatusCode)
		}
		attached := resumeGet(t, b.url, strings.TrimPrefix(res.Header.Get("Location"), "/message/stream/"), "Accept", "text/event-stream")
		close(gate)
		if got := events(attached.Body); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("attached on B:\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("through nginx", func(t *testing.T) {
		// The shipped nginx.conf with both instances in its upstream block.
		one := "server " + confAppAddr + ";"
		conf := strings.Replace(shippedConf(t), one, one+"\n        server "+strings.TrimPrefix(b.url, "http://")+";", 1)
		ngx := startNginx(t, conf, strings.TrimPrefix(a.url, "http://"))
		viaNginx, err := cutproxy.New(strings.TrimPrefix(ngx, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(viaNginx.Close)
		gate := swap()
		id, got := cutPost(t, viaNginx, "")
		// nginx takes its upstreams in turn, so two resumes reach both
		// instances: one of them is not the one that runs the stream.
		resumePlain(t, ngx, id, got, func() { close(gate) })
		resumePlain(t, ngx, id, got, nil)
		path := "path=/message/stream/" + id + " "
		for name, inst := range map[string]*app{"A": a, "B": b} {
			if !strings.Contains(inst.logs.String(), path) {
				t.Errorf("instance %s served no resume of the stream; nginx should have sent one there", name)
			}
		}
	})
}

// uninterruptedEvents reads a whole SSE stream from base.
func uninterruptedEvents(t *testing.T, base string) []string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/message/stream", strings.NewReader(`{"prompt":"hi"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	return events(res.Body)
}

// TestRedisCancelAcrossInstances sends the DELETE to B for a stream that
// runs on A: A's upstream request is cancelled within a second.
func TestRedisCancelAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	up := fakeUpstream(t, append(upstreamtest.Events(upstreamtest.Role(), upstreamtest.Content("a")), upstreamtest.Hang())...)
	env := appEnv(up.BaseURL(), "REDIS_URL", srv.URL())
	a, b := launch(t, env), launch(t, env)
	res := a.post(t, "hi")
	defer res.Body.Close()
	if line, err := bufio.NewReader(res.Body).ReadString('\n'); line != "a\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	req, _ := http.NewRequest("DELETE", b.url+"/message/stream/"+res.Header.Get("X-Stream-ID"), nil)
	del, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	del.Body.Close()
	if del.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE on B: %d, want 204", del.StatusCode)
	}
	sent := time.Now()
	select {
	case <-up.Cancelled:
		t.Logf("A's upstream cancelled %v after B's 204", time.Since(sent))
	case <-time.After(time.Second):
		t.Fatal("A's upstream still running a second after the DELETE on B")
	}
	waitState(t, b.url, res.Header.Get("X-Stream-ID"), "cancelled")
}

// TestRedisDownResume kills Redis with a stream in flight: it finishes,
// new streams still work (without an id to resume them by), a resume
// answers 503 resume_unavailable, and once Redis is back a stream started
// on A resumes on B again, without restarting either.
func TestRedisDownResume(t *testing.T) {
	srv := redistest.Start(t)
	a, b, viaA, swap := crossInstances(t, srv)

	gate := swap()
	inFlight := a.post(t, "hi")
	defer inFlight.Body.Close()
	id := inFlight.Header.Get("X-Stream-ID")
	srv.Kill(t)
	waitReady(t, b, "degraded", "down")
	close(gate)
	if body, err := io.ReadAll(inFlight.Body); string(body) != crossPlainBody() || err != nil {
		t.Errorf("the stream in flight: %q, %v; want the whole answer", body, err)
	}
	res := resumeGet(t, b.url, id)
	checkErrorBody(t, mustRead(t, res.Body), "resume_unavailable")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("resume while Redis is down: %d, want 503", res.StatusCode)
	}
	during := a.post(t, "hi")
	defer during.Body.Close()
	if body, err := io.ReadAll(during.Body); string(body) != crossPlainBody() || err != nil {
		t.Errorf("a stream started while Redis is down: %d %q, %v; want the whole answer", during.StatusCode, body, err)
	}
	if during.Header.Get("X-Stream-ID") != "" {
		t.Error("a stream started while Redis is down has an X-Stream-ID, but nothing keeps it")
	}
	if m := get(t, a.url+"/metrics"); !strings.Contains(m, `streamrelay_redis_fail_open_total{what="resume"} 1`) {
		t.Error(`/metrics lacks streamrelay_redis_fail_open_total{what="resume"} 1`)
	}

	srv.Restart(t)
	waitReady(t, a, "ready", "up")
	waitReady(t, b, "ready", "up")
	gate = swap()
	id, got := cutPost(t, viaA, "")
	resumePlain(t, b.url, id, got, func() { close(gate) })
}

func mustRead(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
