package stream

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"streamrelay/internal/upstreamtest"
)

// sdkStream parses an SSE body with openai-go, as the relay does in
// production, but from memory.
func sdkStream(r io.Reader) *ssestream.Stream[openai.ChatCompletionChunk] {
	res := &http.Response{
		Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body:   io.NopCloser(r),
	}
	return ssestream.NewStream[openai.ChatCompletionChunk](ssestream.NewDecoder(res), nil)
}

func sse(events ...string) io.Reader { return strings.NewReader(strings.Join(events, "")) }

// flushLog records, for each flush, how much had been written by then.
type flushLog struct {
	bytes.Buffer
	flushes []int
}

func (f *flushLog) flush() error {
	f.flushes = append(f.flushes, f.Len())
	return nil
}

func TestRelayCopy(t *testing.T) {
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
		"usage chunk with no choices": {
			[]string{upstreamtest.Role(), u("hi"), upstreamtest.Finish("stop"), upstreamtest.Usage(3, 1), upstreamtest.Done},
			"hi\n"},
		"refusal and tool calls write nothing": {
			[]string{upstreamtest.Role(),
				`data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"refusal":"no"},"finish_reason":null}]}` + "\n\n",
				`data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}` + "\n\n",
				u("ok"), upstreamtest.Finish("tool_calls"), upstreamtest.Done},
			"ok\n"},
		"finish without done": {[]string{upstreamtest.Role(), u("a"), upstreamtest.Finish("length")}, "a\n"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := NewRelay(sdkStream(sse(tt.events...)))
			if err := r.Start(); err != nil {
				t.Fatalf("Start: %v", err)
			}
			var out flushLog
			if err := r.Copy(&out, out.flush); err != nil {
				t.Fatalf("Copy: %v", err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("body = %q, want %q", got, tt.want)
			}
			if lines := strings.Count(tt.want, "\n"); int(r.Lines) != lines || len(out.flushes) != lines {
				t.Errorf("Lines = %d, flushes = %d, want %d each", r.Lines, len(out.flushes), lines)
			}
			for i, at := range out.flushes {
				if out.String()[at-1] != '\n' {
					t.Errorf("flush %d came mid-line, after %d bytes", i, at)
				}
			}
			if int(r.Bytes) != len(tt.want) {
				t.Errorf("Bytes = %d, want %d", r.Bytes, len(tt.want))
			}
		})
	}
}

func TestRelayUsage(t *testing.T) {
	r := NewRelay(sdkStream(sse(upstreamtest.Role(), upstreamtest.Content("x"), upstreamtest.Finish("stop"), upstreamtest.Usage(12, 34), upstreamtest.Done)))
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.Copy(io.Discard, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if r.Usage != (Usage{PromptTokens: 12, CompletionTokens: 34}) {
		t.Errorf("Usage = %+v", r.Usage)
	}
}

func TestRelayFailures(t *testing.T) {
	errBoom := errors.New("connection reset by peer")
	tests := map[string]struct {
		body      io.Reader
		startErr  error // wanted from Start, wrapped in *ReadError
		copyErr   error // wanted from Copy, wrapped in *ReadError
		wantLines string
	}{
		"empty body":       {body: sse(), startErr: ErrNoChunks},
		"only done":        {body: sse(upstreamtest.Done), startErr: ErrNoChunks},
		"reset before any": {body: iotest.ErrReader(errBoom), startErr: errBoom},
		"cut before finish": {body: sse(upstreamtest.Role(), upstreamtest.Content("a")),
			copyErr: ErrTruncated, wantLines: "a\n"},
		"done before finish": {body: sse(upstreamtest.Role(), upstreamtest.Content("a"), upstreamtest.Done),
			copyErr: ErrTruncated, wantLines: "a\n"},
		"reset mid-stream": {body: io.MultiReader(sse(upstreamtest.Role(), upstreamtest.Content("a")), iotest.ErrReader(errBoom)),
			copyErr: errBoom, wantLines: "a\n"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := NewRelay(sdkStream(tt.body))
			err := r.Start()
			if tt.startErr != nil {
				assertReadError(t, "Start", err, tt.startErr)
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			var out bytes.Buffer
			err = r.Copy(&out, func() error { return nil })
			assertReadError(t, "Copy", err, tt.copyErr)
			if out.String() != tt.wantLines {
				t.Errorf("body = %q, want %q", out.String(), tt.wantLines)
			}
		})
	}
}

func TestRelayMalformedChunk(t *testing.T) {
	r := NewRelay(sdkStream(sse(upstreamtest.Role(), upstreamtest.Content("a"), "data: {not json\n\n", upstreamtest.Finish("stop"))))
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := r.Copy(&out, func() error { return nil })
	var readErr *ReadError
	if !errors.As(err, &readErr) || errors.Is(err, ErrTruncated) {
		t.Errorf("Copy = %v, want a *ReadError from the malformed chunk", err)
	}
	if out.String() != "a\n" {
		t.Errorf("body = %q", out.String())
	}
}

func TestRelayWriteError(t *testing.T) {
	errGone := errors.New("broken pipe")
	r := NewRelay(sdkStream(sse(upstreamtest.Answer("a", "b")...)))
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	err := r.Copy(failingWriter{errGone}, func() error { return nil })
	var writeErr *WriteError
	if !errors.As(err, &writeErr) || !errors.Is(err, errGone) {
		t.Fatalf("Copy = %v, want a *WriteError wrapping %v", err, errGone)
	}
	if !strings.HasPrefix(err.Error(), "writing client: ") {
		t.Errorf("error %q does not say it was the client side", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func assertReadError(t *testing.T, op string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s = %v, want nil", op, err)
		}
		return
	}
	var readErr *ReadError
	if !errors.As(err, &readErr) || !errors.Is(err, want) {
		t.Fatalf("%s = %v, want a *ReadError wrapping %v", op, err, want)
	}
	if !strings.HasPrefix(err.Error(), "reading upstream: ") {
		t.Errorf("error %q does not say it was the upstream side", err)
	}
}
