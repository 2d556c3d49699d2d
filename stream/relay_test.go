package stream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gin-gonic/gin"

	"streamrelay/internal/upstreamtest"
)

// testRelay is a relay with timeouts far away and no grace to wait out.
func testRelay() *Relay {
	return &Relay{FirstEventTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
}

// openBody opens an upstream whose SSE body is r, from memory.
func openBody(r io.Reader) Open {
	return func(context.Context) (*http.Response, error) {
		return &http.Response{
			StatusCode: http.StatusOK,
			Header:     http.Header{"Content-Type": {"text/event-stream"}},
			Body:       io.NopCloser(r),
		}, nil
	}
}

// openServer opens a real upstream over HTTP, under the relay's context.
func openServer(up *upstreamtest.Server) Open {
	return func(ctx context.Context) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, up.URL, nil)
		if err != nil {
			return nil, err
		}
		return up.Client().Do(req)
	}
}

func sse(events ...string) io.Reader { return strings.NewReader(strings.Join(events, "")) }

// flushRecorder is a client that notes, for each flush, how much had been
// written by then, and can fail its flushes.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushes  []int
	flushErr error // returned by every flush after the first (the header's)
}

func newFlushRecorder() *flushRecorder {
	return &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
}

func (f *flushRecorder) FlushError() error {
	f.flushes = append(f.flushes, f.Body.Len())
	if len(f.flushes) > 1 {
		return f.flushErr
	}
	return nil
}

func TestRelayBody(t *testing.T) {
	u := upstreamtest.Content
	tests := map[string]struct {
		events []string
		want   string
	}{
		"plain": {upstreamtest.Answer("Hello", " world"), "Hello\n world\n"},
		"newlines": {upstreamtest.Answer("a\nb", "\r\n", "c\rd", "\n"),
			"a<br />b\n<br />\nc<br />d\n<br />\n"},
		"empty deltas write nothing": {upstreamtest.Answer("", "x", ""), "x\n"},
		"multi-byte":                 {upstreamtest.Answer("café", " 你好", " 🚀"), "café\n 你好\n 🚀\n"},
		"escapes":                    {upstreamtest.Answer(`"quoted" \ back`, "tab\tend", "\u2028"), "\"quoted\" \\ back\ntab\tend\n\u2028\n"},
		"usage chunk with no choices": {
			[]string{upstreamtest.Role(), u("hi"), upstreamtest.Finish("stop"), upstreamtest.Usage(3, 1), upstreamtest.Done},
			"hi\n"},
		"refusal and tool calls write nothing": {
			[]string{upstreamtest.Role(),
				`data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"refusal":"no"},"finish_reason":null}]}` + "\n\n",
				`data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":null,"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}` + "\n\n",
				u("ok"), upstreamtest.Finish("tool_calls"), upstreamtest.Done},
			"ok\n"},
		"comments and other fields are skipped": {
			[]string{": keep-alive\n\n", "event: message\nid: 7\n" + upstreamtest.Role(), u("a"), upstreamtest.Finish("stop")},
			"a\n"},
		"crlf framing": {
			[]string{strings.ReplaceAll(upstreamtest.Role()+u("a")+upstreamtest.Finish("stop"), "\n", "\r\n")},
			"a\n"},
		"finish without done":          {[]string{upstreamtest.Role(), u("a"), upstreamtest.Finish("length")}, "a\n"},
		"done without finish is clean": {[]string{upstreamtest.Role(), u("a"), upstreamtest.Done}, "a\n"},
		"nothing read after done":      {[]string{upstreamtest.Role(), u("a"), upstreamtest.Done, u("late"), "data: {oops\n\n"}, "a\n"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			out := newFlushRecorder()
			res := testRelay().Run(context.Background(), out, openBody(sse(tt.events...)))
			if res.Outcome != Completed || res.Err != nil || !res.Committed {
				t.Fatalf("result = %v %v (committed %v), want completed", res.Outcome, res.Err, res.Committed)
			}
			if got := out.Body.String(); got != tt.want {
				t.Errorf("body = %q, want %q", got, tt.want)
			}
			if lines := strings.Count(tt.want, "\n"); int(res.Lines) != lines {
				t.Errorf("Lines = %d, want %d", res.Lines, lines)
			}
			if n := len(out.flushes); n < 2 || out.flushes[n-1] != len(tt.want) {
				t.Errorf("flushes at %v: the body's end was not flushed", out.flushes)
			}
			for i, at := range out.flushes[1:] {
				if out.Body.String()[at-1] != '\n' {
					t.Errorf("flush %d came mid-line, after %d bytes", i, at)
				}
			}
			if int(res.Bytes) != len(tt.want) {
				t.Errorf("Bytes = %d, want %d", res.Bytes, len(tt.want))
			}
		})
	}
}

func TestRelayHeaders(t *testing.T) {
	out := newFlushRecorder()
	res := testRelay().Run(context.Background(), out, openBody(sse(upstreamtest.Answer("x")...)))
	if res.Outcome != Completed {
		t.Fatalf("outcome %v: %v", res.Outcome, res.Err)
	}
	if out.Code != http.StatusOK {
		t.Errorf("status = %d", out.Code)
	}
	for k, v := range map[string]string{
		"Content-Type":           "text/plain; charset=utf-8",
		"Cache-Control":          "no-cache",
		"X-Accel-Buffering":      "no",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := out.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(out.flushes) == 0 || out.flushes[0] != 0 {
		t.Errorf("the headers were not flushed before the first line: flushes at %v", out.flushes)
	}
}

func TestRelayUsageAndTimes(t *testing.T) {
	out := newFlushRecorder()
	res := testRelay().Run(context.Background(), out,
		openBody(sse(upstreamtest.Role(), upstreamtest.Content("x"), upstreamtest.Finish("stop"), upstreamtest.Usage(12, 34), upstreamtest.Done)))
	if res.Usage != (Usage{PromptTokens: 12, CompletionTokens: 34}) {
		t.Errorf("Usage = %+v", res.Usage)
	}
	if res.FirstEvent <= 0 || res.FirstLine < res.FirstEvent {
		t.Errorf("FirstEvent = %v, FirstLine = %v", res.FirstEvent, res.FirstLine)
	}
}

// TestRelayFailsBeforeFirstEvent checks that nothing is written when the
// upstream fails before its first event, so the caller can answer with an
// HTTP error.
func TestRelayFailsBeforeFirstEvent(t *testing.T) {
	errBoom := errors.New("connection reset by peer")
	tests := map[string]struct {
		open Open
		want error
	}{
		"request failed":  {func(context.Context) (*http.Response, error) { return nil, errBoom }, errBoom},
		"empty body":      {openBody(sse()), ErrNoChunks},
		"only done":       {openBody(sse(upstreamtest.Done)), ErrNoChunks},
		"reset":           {openBody(iotest.ErrReader(errBoom)), errBoom},
		"malformed":       {openBody(sse("data: {oops\n\n")), ErrMalformedEvent},
		"not an object":   {openBody(sse("data: [1,2]\n\n")), ErrMalformedEvent},
		"error event":     {openBody(sse(`data: {"error":{"message":"overloaded","type":"server_error"}}` + "\n\n")), &EventError{}},
		"oversized event": {openBody(sse(upstreamtest.Content(strings.Repeat("x", 3<<20)))), ErrEventTooLarge},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			out := newFlushRecorder()
			res := testRelay().Run(context.Background(), out, tt.open)
			if res.Outcome != UpstreamFailed || res.Committed {
				t.Errorf("outcome = %v (committed %v), want %v", res.Outcome, res.Committed, UpstreamFailed)
			}
			assertReadError(t, res.Err, tt.want)
			if out.Body.Len() != 0 || len(out.flushes) != 0 || len(out.Header()) != 0 {
				t.Errorf("wrote %q, flushed %d times, headers %v", out.Body, len(out.flushes), out.Header())
			}
		})
	}
}

// TestRelayFailsMidStream checks what a failure after the first line does:
// the lines so far are written, and the result says the body must be cut.
func TestRelayFailsMidStream(t *testing.T) {
	errBoom := errors.New("connection reset by peer")
	first := func() io.Reader { return sse(upstreamtest.Role(), upstreamtest.Content("a")) }
	tests := map[string]struct {
		body    io.Reader
		outcome Outcome
		want    error
	}{
		"body ends with neither finish nor done": {first(), UpstreamTruncated, ErrTruncated},
		"reset":                                  {io.MultiReader(first(), iotest.ErrReader(errBoom)), UpstreamCut, errBoom},
		"malformed event":                        {io.MultiReader(first(), sse("data: {oops\n\n", upstreamtest.Finish("stop"))), UpstreamCut, ErrMalformedEvent},
		"error event":                            {io.MultiReader(first(), sse(`data: {"error":{"message":"boom"}}`+"\n\n")), UpstreamCut, &EventError{}},
		"oversized event":                        {io.MultiReader(first(), sse(upstreamtest.Content(strings.Repeat("y", 3<<20)), upstreamtest.Finish("stop"))), UpstreamCut, ErrEventTooLarge},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			out := newFlushRecorder()
			res := testRelay().Run(context.Background(), out, openBody(tt.body))
			if res.Outcome != tt.outcome || !res.Cut() {
				t.Errorf("outcome = %v (cut %v), want %v", res.Outcome, res.Cut(), tt.outcome)
			}
			assertReadError(t, res.Err, tt.want)
			if out.Body.String() != "a\n" || res.Lines != 1 {
				t.Errorf("body = %q, lines = %d", out.Body, res.Lines)
			}
		})
	}
}

// TestRelayEventCapIsExact checks that an event of exactly the cap passes
// and one byte more does not.
func TestRelayEventCapIsExact(t *testing.T) {
	event := upstreamtest.Content(strings.Repeat("x", 100)) // the longest
	for _, tt := range []struct {
		max  int
		want Outcome
	}{{len(event) - 1, Completed}, {len(event) - 2, UpstreamCut}} {
		relay := testRelay()
		relay.MaxEventBytes = tt.max // the blank line that ends it is not counted
		res := relay.Run(context.Background(), newFlushRecorder(),
			openBody(sse(upstreamtest.Role(), upstreamtest.Content("a"), event, upstreamtest.Finish("stop"))))
		if res.Outcome != tt.want {
			t.Errorf("cap %d for an event of %d bytes: outcome %v, %v; want %v", tt.max, len(event)-1, res.Outcome, res.Err, tt.want)
		}
	}
}

// TestRelayTimeouts runs the relay against a real upstream server that
// stalls, and checks that the relay cancels the upstream request.
func TestRelayTimeouts(t *testing.T) {
	role := upstreamtest.Event(upstreamtest.Role())
	content := upstreamtest.Event(upstreamtest.Content("a"))
	tests := map[string]struct {
		steps   []upstreamtest.Step
		relay   Relay
		outcome Outcome
		cause   error
	}{
		"no first event": {[]upstreamtest.Step{upstreamtest.Hang()},
			Relay{FirstEventTimeout: 100 * time.Millisecond, IdleTimeout: time.Hour}, UpstreamTimeout, errFirstEventTimeout},
		"deadline before the first event": {[]upstreamtest.Step{upstreamtest.Hang()},
			Relay{FirstEventTimeout: time.Hour, IdleTimeout: time.Hour, Deadline: 100 * time.Millisecond}, UpstreamTimeout, errDeadline},
		"idle after the first line": {[]upstreamtest.Step{role, content, upstreamtest.Hang()},
			Relay{FirstEventTimeout: time.Hour, IdleTimeout: 100 * time.Millisecond}, UpstreamStalled, errIdleTimeout},
		"deadline mid-stream": {[]upstreamtest.Step{role, content, upstreamtest.Hang()},
			Relay{FirstEventTimeout: time.Hour, IdleTimeout: time.Hour, Deadline: 200 * time.Millisecond}, UpstreamStalled, errDeadline},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := upstreamtest.New(tt.steps...)
			defer up.Close()
			res := tt.relay.Run(context.Background(), newFlushRecorder(), openServer(up))
			if res.Outcome != tt.outcome {
				t.Errorf("outcome = %v, want %v", res.Outcome, tt.outcome)
			}
			assertReadError(t, res.Err, tt.cause)
			waitCancelled(t, up)
		})
	}
}

// TestRelayIdleTimerRestartsOnEvents checks that events keep a stream alive
// past its idle timeout: the timeout is between events, not overall.
func TestRelayIdleTimerRestartsOnEvents(t *testing.T) {
	steps := []upstreamtest.Step{upstreamtest.Event(upstreamtest.Role())}
	for range 6 {
		steps = append(steps, upstreamtest.Pause(60*time.Millisecond), upstreamtest.Event(upstreamtest.Content("x")))
	}
	up := upstreamtest.New(append(steps, upstreamtest.Event(upstreamtest.Finish("stop")))...)
	defer up.Close()
	relay := Relay{FirstEventTimeout: time.Second, IdleTimeout: 200 * time.Millisecond}
	res := relay.Run(context.Background(), newFlushRecorder(), openServer(up))
	if res.Outcome != Completed || res.Lines != 6 {
		t.Errorf("outcome = %v %v, lines = %d", res.Outcome, res.Err, res.Lines)
	}
}

// TestRelayClientGoneBeforeFirstEvent checks that a client that leaves
// while the upstream has not answered yet is the client's doing (499), that
// nothing is written, and that the upstream request is cancelled.
func TestRelayClientGoneBeforeFirstEvent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	arrived := func(http.ResponseWriter, *http.Request) bool {
		cancel() // the client leaves once the upstream has the request
		return true
	}
	up := upstreamtest.New(arrived, upstreamtest.Hang())
	defer up.Close()
	out := newFlushRecorder()
	res := testRelay().Run(ctx, out, openServer(up))
	if res.Outcome != ClientGone || res.Committed {
		t.Errorf("outcome = %v (committed %v), want %v", res.Outcome, res.Committed, ClientGone)
	}
	var writeErr *WriteError
	if !errors.As(res.Err, &writeErr) || !errors.Is(res.Err, ErrClientGone) {
		t.Errorf("Err = %v, want a *WriteError wrapping ErrClientGone", res.Err)
	}
	if out.Body.Len() != 0 || len(out.flushes) != 0 {
		t.Errorf("wrote %q", out.Body)
	}
	waitCancelled(t, up)
}

func TestRelayShutdown(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Event(upstreamtest.Role()), upstreamtest.Event(upstreamtest.Content("a")), upstreamtest.Hang())
	defer up.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	relay := testRelay()
	relay.AbortGrace = time.Hour // cut short by the shutdown itself
	out := &cancelOnFirstLine{flushRecorder: newFlushRecorder(), cancel: func() { cancel(ErrShutdown) }}
	res := relay.Run(ctx, out, openServer(up))
	if res.Outcome != Shutdown || !errors.Is(res.Err, ErrShutdown) || !res.Cut() {
		t.Errorf("result = %v %v (cut %v), want a cut shutdown", res.Outcome, res.Err, res.Cut())
	}
	waitCancelled(t, up)
}

// cancelOnFirstLine calls cancel once the first line is written.
type cancelOnFirstLine struct {
	*flushRecorder
	cancel func()
}

func (c *cancelOnFirstLine) Write(p []byte) (int, error) {
	if len(p) > 0 {
		defer c.cancel()
	}
	return c.flushRecorder.Write(p)
}

// TestRelayFlushErrorThroughGin checks that a flush that fails under Gin's
// writer, whose own Flush returns nothing, still surfaces as a write error.
func TestRelayFlushErrorThroughGin(t *testing.T) {
	errGone := errors.New("broken pipe")
	rec := newFlushRecorder()
	rec.flushErr = errGone
	var res Result
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/", func(c *gin.Context) {
		res = testRelay().Run(c.Request.Context(), c.Writer, openBody(sse(upstreamtest.Answer("a", "b")...)))
	})
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if res.Outcome != ClientLeft || !res.Cut() {
		t.Errorf("outcome = %v (cut %v), want %v", res.Outcome, res.Cut(), ClientLeft)
	}
	var writeErr *WriteError
	if !errors.As(res.Err, &writeErr) || !errors.Is(res.Err, errGone) {
		t.Fatalf("Err = %v, want a *WriteError wrapping %v", res.Err, errGone)
	}
	if !strings.HasPrefix(res.Err.Error(), "writing client: ") {
		t.Errorf("error %q does not say it was the client side", res.Err)
	}
}

// TestRelayFlushesBeforeWaiting checks that every line reaches the client
// before the relay waits for the upstream's next event.
func TestRelayFlushesBeforeWaiting(t *testing.T) {
	pr, pw := io.Pipe()
	out := newFlushRecorder()
	flushed := make(chan string, 10)
	notify := &notifyFlush{flushRecorder: out, flushed: flushed}
	done := make(chan Result, 1)
	go func() { done <- testRelay().Run(context.Background(), notify, openBody(pr)) }()
	io.WriteString(pw, upstreamtest.Role())
	want := ""
	for _, delta := range []string{"a", "b", "c"} {
		io.WriteString(pw, upstreamtest.Content(delta))
		want += delta + "\n"
		for got := ""; got != want; {
			select {
			case got = <-flushed:
			case <-time.After(2 * time.Second):
				t.Fatalf("%q was not flushed while the relay waits (flushed: %q)", want, got)
			}
		}
	}
	io.WriteString(pw, upstreamtest.Finish("stop"))
	pw.Close()
	if res := <-done; res.Outcome != Completed {
		t.Errorf("outcome = %v %v", res.Outcome, res.Err)
	}
}

// notifyFlush sends the body flushed so far on each flush.
type notifyFlush struct {
	*flushRecorder
	flushed chan string
}

func (n *notifyFlush) FlushError() error {
	err := n.flushRecorder.FlushError()
	n.flushed <- n.Body.String()
	return err
}

// TestRelayFlushesTogether checks that the lines of events that arrive
// together go out in one flush: one write instead of one per line.
func TestRelayFlushesTogether(t *testing.T) {
	out := newFlushRecorder()
	body := strings.Join(upstreamtest.Answer("a", "b", "c"), "")
	res := testRelay().Run(context.Background(), out, openBody(strings.NewReader(body)))
	if res.Outcome != Completed || res.Lines != 3 {
		t.Fatalf("result = %v %v, %d lines", res.Outcome, res.Err, res.Lines)
	}
	if want := []int{0, len("a\nb\nc\n")}; !slices.Equal(out.flushes, want) {
		t.Errorf("flushes at %v, want %v: the headers, then the three lines at once", out.flushes, want)
	}
}

func TestRelayWriteError(t *testing.T) {
	errGone := errors.New("connection reset")
	out := &failingWriter{flushRecorder: newFlushRecorder(), err: errGone}
	res := testRelay().Run(context.Background(), out, openBody(sse(upstreamtest.Answer("a", "b")...)))
	if res.Outcome != ClientLeft || !errors.Is(res.Err, errGone) {
		t.Errorf("result = %v %v", res.Outcome, res.Err)
	}
}

type failingWriter struct {
	*flushRecorder
	err error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return 0, w.err
}

// TestRelayAbortGrace checks that a failed stream gives its last lines a
// moment before the caller cuts the connection, and that a client already
// gone gets none.
func TestRelayAbortGrace(t *testing.T) {
	relay := testRelay()
	relay.AbortGrace = 150 * time.Millisecond
	begin := time.Now()
	res := relay.Run(context.Background(), newFlushRecorder(), openBody(sse(upstreamtest.Role(), upstreamtest.Content("a"))))
	if took := time.Since(begin); !res.Cut() || took < relay.AbortGrace {
		t.Errorf("a cut stream returned after %v, before its grace of %v", took, relay.AbortGrace)
	}
	relay.AbortGrace = time.Hour
	out := &failingWriter{flushRecorder: newFlushRecorder(), err: errors.New("gone")}
	if res := relay.Run(context.Background(), out, openBody(sse(upstreamtest.Answer("a")...))); res.Outcome != ClientLeft {
		t.Errorf("outcome = %v", res.Outcome)
	}
}

func waitCancelled(t *testing.T, up *upstreamtest.Server) {
	t.Helper()
	select {
	case <-up.Cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
}

func assertReadError(t *testing.T, err, want error) {
	t.Helper()
	var readErr *ReadError
	if !errors.As(err, &readErr) {
		t.Fatalf("err = %v, want a *ReadError", err)
	}
	if eventErr := (*EventError)(nil); errors.As(want, &eventErr) {
		if !errors.As(err, &eventErr) {
			t.Errorf("err = %v, want an *EventError", err)
		}
	} else if !errors.Is(err, want) {
		t.Errorf("err = %v, want it to wrap %v", err, want)
	}
	if !strings.HasPrefix(err.Error(), "reading upstream: ") {
		t.Errorf("error %q does not say it was the upstream side", err)
	}
}
