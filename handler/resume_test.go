package handler_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"streamrelay/handler"
	"streamrelay/internal/cutproxy"
	"streamrelay/internal/upstreamtest"
	"streamrelay/stream"
)

// resumeDeltas are the deltas of the resume tests: newlines, a literal
// break, multi-byte text.
var resumeDeltas = []string{"one ", "two\nlines ", "three<br />", "four ", "five\r\n", "六 ", "seven ", "eight ", "nine ", "ten"}

// plainBody is the uninterrupted plain body of deltas.
func plainBody(deltas []string) string {
	var b []byte
	for _, d := range deltas {
		b = stream.AppendLine(b, d)
	}
	return string(b)
}

// gatedAnswer is an upstream script that sends the first n deltas, waits
// for gate, then sends the rest and finishes.
func gatedAnswer(deltas []string, n int, gate <-chan struct{}) []upstreamtest.Step {
	steps := []upstreamtest.Step{upstreamtest.Event(upstreamtest.Role())}
	for i, d := range deltas {
		if i == n {
			steps = append(steps, upstreamtest.Wait(gate))
		}
		steps = append(steps, upstreamtest.Event(upstreamtest.Content(d)))
	}
	return append(steps, upstreamtest.Events(upstreamtest.Finish("stop"), upstreamtest.Usage(3, 10), upstreamtest.Done)...)
}

// resumeRelay starts a fake upstream running steps, a relay before it and
// a cutting proxy before the relay.
func resumeRelay(t *testing.T, change func(*handler.Config), steps ...upstreamtest.Step) (*upstreamtest.Server, string, *cutproxy.Proxy) {
	t.Helper()
	up := upstreamtest.New(steps...)
	t.Cleanup(up.Close)
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) {
		c.ResumeGrace = 5 * time.Second
		if change != nil {
			change(c)
		}
	})
	p, err := cutproxy.New(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return up, srv.URL, p
}

// completeLines returns the part of a plain body made of whole lines, and
// how many lines that is: a client resumes after the last whole line.
func completeLines(body string) (string, int) {
	i := strings.LastIndexByte(body, '\n')
	if i < 0 {
		return "", 0
	}
	whole := body[:i+1]
	return whole, strings.Count(whole, "\n")
}

func TestResumeWithCurl(t *testing.T) {
	gate := make(chan struct{})
	_, direct, p := resumeRelay(t, nil, gatedAnswer(resumeDeltas, 6, gate)...)
	p.CutOnce(stream.Encoded("three<br />"))
	dir := t.TempDir()
	headers := dir + "/headers"
	first := exec.Command("curl", "-sN", "-D", headers, "-X", "POST", p.URL()+"/message/stream",
		"-H", "Content-Type: application/json", "-d", `{"prompt":"hi","resumable":true}`)
	out, err := first.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 18 {
		t.Fatalf("curl on the cut stream: %v, want exit 18 (partial file)", err)
	}
	got, n := completeLines(string(out))
	id := streamID(t, headers)

	// Resume while the upstream is still generating, then let it finish.
	resumed := exec.Command("curl", "-sSN", "--fail-with-body", direct+"/message/stream/"+id+"?from="+strconv.Itoa(n))
	var rest bytes.Buffer
	resumed.Stdout = &rest
	if err := resumed.Start(); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if err := resumed.Wait(); err != nil {
		t.Fatalf("curl resume: %v; got %q", err, rest.String())
	}
	if want := plainBody(resumeDeltas); got+rest.String() != want {
		t.Errorf("cut %q + resumed %q\nwant %q", got, rest.String(), want)
	}
	if n < 2 {
		t.Errorf("the cut came after %d lines, want a cut mid-stream", n)
	}
}

// streamID reads X-Stream-ID from a curl header dump.
func streamID(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\r\n") {
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "X-Stream-ID") {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no X-Stream-ID in %q", b)
	return ""
}

// pythonResume posts through a cutting proxy, reads whole lines until the
// cut, waits for the stream to end, then resumes from the lines it has. It
// says "ready" on stderr once it holds 4 lines, so that the test sends the
// rest only then: lines that reach the relay together go out in one chunk,
// and requests drops a chunk that is cut in its middle.
const pythonResume = `
import sys, time, requests
cut, direct = sys.argv[1], sys.argv[2]
body, lines, sid = "", 0, None
try:
    with requests.post(cut + "/message/stream", json={"prompt": "hi", "resumable": True}, stream=True) as r:
        r.raise_for_status()
        sid = r.headers["X-Stream-ID"]
        buf = b""
        for chunk in r.iter_content(chunk_size=None):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                body += line.decode() + "\n"
                lines += 1
                if lines == 4:
                    sys.stderr.write("ready\n")
                    sys.stderr.flush()
    sys.exit("the stream was not cut")
except requests.exceptions.ChunkedEncodingError:
    pass
while requests.get(direct + "/message/stream/" + sid + "/status").json()["state"] == "running":
    time.sleep(0.05)
with requests.get(direct + "/message/stream/" + sid, params={"from": lines}, stream=True) as r:
    r.raise_for_status()
    rest = r.content.decode()
sys.stdout.write(str(lines) + "\n" + body + rest)
`

func TestResumeWithPythonRequests(t *testing.T) {
	if exec.Command("python3", "-c", "import requests").Run() != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 with requests is needed under CI (apt-get install python3-requests)")
		}
		t.Skip("python3 with requests is not installed")
	}
	gate := make(chan struct{})
	_, direct, p := resumeRelay(t, nil, gatedAnswer(resumeDeltas, 4, gate)...)
	p.CutOnce(stream.Encoded("六 "))
	cmd := exec.Command("python3", "-c", pythonResume, p.URL(), direct)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var errText strings.Builder
	for sc := bufio.NewScanner(stderr); sc.Scan(); {
		if sc.Text() == "ready" {
			close(gate)
		} else {
			errText.WriteString(sc.Text() + "\n")
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v: %s", err, errText.String())
	}
	out := stdout.String()
	count, joined, _ := strings.Cut(out, "\n")
	if want := plainBody(resumeDeltas); joined != want {
		t.Errorf("joined %q\nwant %q", joined, want)
	}
	if count == "0" || count == strconv.Itoa(len(resumeDeltas)) {
		t.Errorf("python read %s lines before the cut, want a cut mid-stream", count)
	}
}

func TestResumeErrors(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Events(upstreamtest.Answer(resumeDeltas...)...)...)
	t.Cleanup(up.Close)
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) {
		c.Tokens = []string{"alice-token", "bob-token"}
		c.ResumeMaxBytes = 20
	})
	res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Authorization", "Bearer alice-token")
	readAll(t, res)
	id := res.Header.Get("X-Stream-ID")
	if len(id) != 22 {
		t.Fatalf("X-Stream-ID = %q, want 22 characters of base64url", id)
	}
	tests := []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"unknown id", "/message/stream/AAAAAAAAAAAAAAAAAAAAAA", "alice-token", 404, "stream_not_found"},
		{"garbage id", "/message/stream/nope", "alice-token", 404, "stream_not_found"},
		{"unknown status", "/message/stream/AAAAAAAAAAAAAAAAAAAAAA/status", "alice-token", 404, "stream_not_found"},
		{"from beyond", "/message/stream/" + id + "?from=11", "alice-token", 400, "invalid_from"},
		{"from not a number", "/message/stream/" + id + "?from=x", "alice-token", 400, "invalid_from"},
		{"evicted", "/message/stream/" + id + "?from=1", "alice-token", 410, "resume_window_passed"},
		{"another token", "/message/stream/" + id + "?from=9", "bob-token", 403, "stream_forbidden"},
		{"another token's status", "/message/stream/" + id + "/status", "bob-token", 403, "stream_forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decodeError(t, do(t, "GET", srv.URL+tt.path, "", "Authorization", "Bearer "+tt.token), tt.status, tt.code)
		})
	}
	res = do(t, "GET", srv.URL+"/message/stream/"+id+"?from=9", "", "Authorization", "Bearer alice-token")
	if body := readAll(t, res); res.StatusCode != 200 || body != plainBody(resumeDeltas[9:]) {
		t.Errorf("owner's resume: %d %q", res.StatusCode, body)
	}
}

// streamStatus is the JSON of GET /message/stream/{id}/status.
type streamStatus struct {
	State        string
	Lines        int
	FinishReason *string `json:"finish_reason"`
	Usage        *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	}
	Error *apiError
}

func getStatus(t *testing.T, base, id string) streamStatus {
	t.Helper()
	res := do(t, "GET", base+"/message/stream/"+id+"/status", "")
	var st streamStatus
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil || res.StatusCode != 200 {
		t.Fatalf("status: %d %v", res.StatusCode, err)
	}
	return st
}

// waitEnded polls a stream's status until it is no longer running.
func waitEnded(t *testing.T, base, id string) streamStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := getStatus(t, base, id)
		if st.State != "running" || time.Now().After(deadline) {
			return st
		}
		time.Sleep(20 * time.Millisecond) // polling another server's state, with a deadline
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name   string
		steps  []upstreamtest.Step
		state  string
		reason string
		code   string
	}{
		{"completed", upstreamtest.Events(upstreamtest.Answer("a", "b")...), "completed", "stop", ""},
		{"length", upstreamtest.Events(upstreamtest.Role(), upstreamtest.Content("a"), upstreamtest.Finish("length"), upstreamtest.Done), "completed", "length", ""},
		{"cut", append(upstreamtest.Events(upstreamtest.Role(), upstreamtest.Content("a")), upstreamtest.Reset()), "failed", "", "upstream_error"},
		{"truncated", upstreamtest.Events(upstreamtest.Role(), upstreamtest.Content("a")), "failed", "", "upstream_truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := upstream(t, tt.steps...)
			res := post(t, srv.URL, `{"prompt":"hi"}`)
			io.ReadAll(res.Body)
			st := waitEnded(t, srv.URL, res.Header.Get("X-Stream-ID"))
			if st.State != tt.state || st.Lines < 1 {
				t.Errorf("state = %q, lines %d; want %q", st.State, st.Lines, tt.state)
			}
			if reason := st.FinishReason; (reason == nil) != (tt.reason == "") || reason != nil && *reason != tt.reason {
				t.Errorf("finish_reason = %v, want %q", reason, tt.reason)
			}
			if (st.Error == nil) != (tt.code == "") || st.Error != nil && st.Error.Code != tt.code {
				t.Errorf("error = %+v, want code %q", st.Error, tt.code)
			}
		})
	}
}

func TestDeleteCancels(t *testing.T) {
	up, srv := upstream(t, append(upstreamtest.Events(upstreamtest.Role(), upstreamtest.Content("a")), upstreamtest.Hang())...)
	res := post(t, srv.URL, `{"prompt":"hi","resumable":true}`)
	id := res.Header.Get("X-Stream-ID")
	line, _ := readLine(res.Body)
	if line != "a\n" {
		t.Fatalf("first line %q", line)
	}
	del := do(t, "DELETE", srv.URL+"/message/stream/"+id, "")
	if del.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", del.StatusCode)
	}
	waitCancelled(t, up)
	if _, err := io.ReadAll(res.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("the POST's body after DELETE: %v, want a cut", err)
	}
	st := waitEnded(t, srv.URL, id)
	if st.State != "cancelled" || st.Error == nil || st.Error.Code != "stream_cancelled" {
		t.Errorf("status = %+v, want cancelled", st)
	}
	// A resume then ends the way a failed stream does: cut.
	resumed := do(t, "GET", srv.URL+"/message/stream/"+id, "")
	if body, err := io.ReadAll(resumed.Body); string(body) != "a\n" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("resume after DELETE: %q, %v; want the line, then a cut", body, err)
	}
	decodeError(t, do(t, "DELETE", srv.URL+"/message/stream/AAAAAAAAAAAAAAAAAAAAAA", ""), 404, "stream_not_found")
}

// readLine reads one byte at a time up to a newline.
func readLine(r io.Reader) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := r.Read(one); err != nil {
			return string(b), err
		}
		b = append(b, one[0])
		if one[0] == '\n' {
			return string(b), nil
		}
	}
}

func TestGraceKeepsUpstreamForItsWindowOnly(t *testing.T) {
	const grace = time.Second
	up, _, p := resumeRelay(t, func(c *handler.Config) { c.ResumeGrace = grace },
		append(upstreamtest.Events(upstreamtest.Role(), upstreamtest.Content("a"), upstreamtest.Content("cut here")), upstreamtest.Hang())...)
	p.CutOnce(stream.Encoded("cut here"))
	res, err := http.Post(p.URL()+"/message/stream", "application/json", strings.NewReader(`{"prompt":"hi","resumable":true}`))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	res.Body.Close()
	cutAt := time.Now()
	<-p.Cuts
	select {
	case <-up.Cancelled:
		t.Fatalf("the upstream was cancelled %v after the cut, within the grace of %v", time.Since(cutAt), grace)
	case <-time.After(grace * 8 / 10):
	}
	select {
	case <-up.Cancelled:
		if d := time.Since(cutAt); d > grace+700*time.Millisecond {
			t.Errorf("the upstream was cancelled %v after the cut, want about %v", d, grace)
		}
	case <-time.After(2 * grace):
		t.Fatal("the upstream was not cancelled after the grace period")
	}
}

func TestSSE(t *testing.T) {
	deltas := []string{"multi\nline", " a literal <br /> stays", "\r\n", "end"}
	steps := upstreamtest.Events(upstreamtest.Role())
	for _, d := range deltas {
		steps = append(steps, upstreamtest.Event(upstreamtest.Content(d)))
	}
	steps = append(steps, upstreamtest.Events(upstreamtest.Finish("stop"), upstreamtest.Usage(2, 4), upstreamtest.Done)...)
	_, srv := upstream(t, steps...)
	res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Accept", "text/event-stream")
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" || res.Header.Get("X-Accel-Buffering") != "no" {
		t.Errorf("headers: %v", res.Header)
	}
	events := readEvents(t, res.Body)
	want := []string{"1::multi\nline", "2:: a literal <br /> stays", "3::\n", "4::end",
		`4:done:{"finish_reason":"stop","usage":{"prompt_tokens":2,"completion_tokens":4}}`}
	if strings.Join(events, "|") != strings.Join(want, "|") {
		t.Errorf("events %q\nwant   %q", events, want)
	}
	id := res.Header.Get("X-Stream-ID")
	resumed := do(t, "GET", srv.URL+"/message/stream/"+id, "", "Accept", "text/event-stream", "Last-Event-ID", "2")
	if got := readEvents(t, resumed.Body); strings.Join(got, "|") != strings.Join(want[2:], "|") {
		t.Errorf("resumed events %q, want %q", got, want[2:])
	}
	ended := do(t, "GET", srv.URL+"/message/stream/"+id, "", "Accept", "text/event-stream", "Last-Event-ID", "4")
	if ended.StatusCode != http.StatusNoContent {
		t.Errorf("Last-Event-ID at the end of an ended stream: %d, want 204", ended.StatusCode)
	}
}

// readEvents reads SSE events as "id:name:data".
func readEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	er := stream.NewEventReader(r)
	var out []string
	for er.Next() {
		ev := er.Event()
		out = append(out, ev.ID+":"+ev.Name+":"+ev.Data)
	}
	if err := er.Err(); err != nil {
		t.Errorf("reading events: %v", err)
	}
	return out
}

func TestSSEErrorEvent(t *testing.T) {
	_, srv := upstream(t, append(upstreamtest.Events(upstreamtest.Role(), upstreamtest.Content("a")), upstreamtest.Reset())...)
	res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Accept", "text/event-stream")
	got := readEvents(t, res.Body)
	if len(got) != 2 || got[0] != "1::a" || !strings.HasPrefix(got[1], `1:error:{"error":{"code":"upstream_error",`) {
		t.Errorf("events %q, want a delta then an error event", got)
	}
}

func TestRespondAsync(t *testing.T) {
	up, srv := upstream(t, upstreamtest.Events(upstreamtest.Answer(resumeDeltas...)...)...)
	res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Prefer", "respond-async")
	var body struct{ ID, URL string }
	json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != http.StatusAccepted || body.URL != "/message/stream/"+body.ID || res.Header.Get("Location") != body.URL {
		t.Fatalf("202 answer: %d %+v %v", res.StatusCode, body, res.Header)
	}
	got := readEvents(t, do(t, "GET", srv.URL+body.URL, "", "Accept", "text/event-stream").Body)
	var text strings.Builder
	for _, ev := range got[:len(got)-1] {
		text.WriteString(strings.SplitN(ev, ":", 3)[2])
	}
	want := strings.NewReplacer("\r\n", "\n").Replace(strings.Join(resumeDeltas, ""))
	if text.String() != want || !strings.Contains(got[len(got)-1], ":done:") {
		t.Errorf("attached: %q\nwant %q then done", text.String(), want)
	}
	_ = up
}

func TestRespondAsyncNobodyAttaches(t *testing.T) {
	up := upstreamtest.New(append(upstreamtest.Events(upstreamtest.Role()), upstreamtest.Hang())...)
	t.Cleanup(up.Close)
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.ResumeGrace = 300 * time.Millisecond })
	res := do(t, "POST", srv.URL+"/message/stream", `{"prompt":"hi"}`, "Prefer", "respond-async")
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", res.StatusCode)
	}
	select {
	case <-up.Cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("the upstream was not cancelled after the grace period")
	}
}

// keepAliveRelay is a relay with KEEPALIVE_INTERVAL=1s.
func keepAliveRelay(t *testing.T, steps ...upstreamtest.Step) string {
	up := upstreamtest.New(steps...)
	t.Cleanup(up.Close)
	srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.KeepAliveInterval = time.Second })
	return srv.URL
}

func TestKeepAliveBetweenDeltas(t *testing.T) {
	t.Parallel()
	url := keepAliveRelay(t, upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("a")),
		upstreamtest.Pause(3*time.Second), upstreamtest.Event(upstreamtest.Content("b")),
		upstreamtest.Event(upstreamtest.Finish("stop")), upstreamtest.Event(upstreamtest.Done))
	for _, sse := range []bool{false, true} {
		t.Run(fmt.Sprint("sse=", sse), func(t *testing.T) {
			accept := "text/plain"
			if sse {
				accept = "text/event-stream"
			}
			res := do(t, "POST", url+"/message/stream", `{"prompt":"hi"}`, "Accept", accept)
			body := readAll(t, res)
			switch {
			case !sse && (!strings.HasPrefix(body, "a\n\n\n") || !strings.HasSuffix(body, "\nb\n")):
				t.Errorf("plain body %q, want a, empty lines, b", body)
			case sse && strings.Count(body, ": keep-alive\n\n") < 2:
				t.Errorf("SSE body %q, want keep-alive comments", body)
			}
			if !sse {
				if text, err := stream.ReadAll(strings.NewReader(body)); text != "ab" || err != nil {
					t.Errorf("read back %q, %v", text, err)
				}
			} else if got := readEvents(t, strings.NewReader(body)); len(got) != 3 || got[0] != "1::a" || got[1] != "2::b" {
				t.Errorf("events %q", got)
			}
		})
	}
}

func TestKeepAliveBeforeFirstEvent(t *testing.T) {
	t.Parallel()
	url := keepAliveRelay(t, upstreamtest.Pause(3*time.Second), upstreamtest.Event(upstreamtest.Role()),
		upstreamtest.Event(upstreamtest.Content("late")), upstreamtest.Event(upstreamtest.Finish("stop")), upstreamtest.Event(upstreamtest.Done))
	start := time.Now()
	res := post(t, url, `{"prompt":"hi"}`)
	if d := time.Since(start); res.StatusCode != 200 || d > 2*time.Second {
		t.Errorf("status %d after %v, want 200 within about 1s", res.StatusCode, d)
	}
	if body := readAll(t, res); !strings.HasPrefix(body, "\n\n") || !strings.HasSuffix(body, "\nlate\n") {
		t.Errorf("body %q, want empty lines, then the delta", body)
	}
}

func TestKeepAliveThenFailure(t *testing.T) {
	t.Parallel()
	url := keepAliveRelay(t, upstreamtest.Pause(2*time.Second), upstreamtest.Reset())
	out, err := exec.CommandContext(context.Background(), "curl", "-sN", "-X", "POST", url+"/message/stream",
		"-H", "Content-Type: application/json", "-d", `{"prompt":"hi"}`).Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 18 {
		t.Errorf("curl: %v, output %q; want exit 18", err, out)
	}
	res := do(t, "POST", url+"/message/stream", `{"prompt":"hi"}`, "Accept", "text/event-stream")
	if got := readEvents(t, res.Body); len(got) != 1 || !strings.HasPrefix(got[0], `:error:{"error":{"code":"upstream_error"`) {
		t.Errorf("SSE events %q, want one error event", got)
	}
}
