package stream

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/openai/openai-go/v3/packages/ssestream"
)

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name    string
		n       int64
		content string
		want    string
	}{
		{"one line", 1, "Hello", "id: 1\ndata: Hello\n\n"},
		{"newline", 2, "a\nb", "id: 2\ndata: a\ndata: b\n\n"},
		{"crlf and cr", 3, "a\r\nb\rc", "id: 3\ndata: a\ndata: b\ndata: c\n\n"},
		{"leading and trailing newlines", 4, "\nx\n", "id: 4\ndata: \ndata: x\ndata: \n\n"},
		{"only a newline", 5, "\n", "id: 5\ndata: \ndata: \n\n"},
		{"a literal break is kept", 6, "a<br />b", "id: 6\ndata: a<br />b\n\n"},
		{"leading space", 7, " x", "id: 7\ndata:  x\n\n"},
		{"colon", 8, "data: x", "id: 8\ndata: data: x\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendEvent(nil, tt.n, tt.content)); got != tt.want {
				t.Errorf("AppendEvent = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppendNamedEvent(t *testing.T) {
	got := string(AppendNamedEvent(nil, "done", `{"finish_reason":"stop"}`))
	if want := "event: done\ndata: {\"finish_reason\":\"stop\"}\n\n"; got != want {
		t.Errorf("AppendNamedEvent = %q, want %q", got, want)
	}
}

// sseDeltas are contents that a naive framing would lose or change.
var sseDeltas = []string{
	"Hello", " world", "\n", "two\nlines", "crlf\r\nhere", "lone\rcr", "a<br />b",
	"\n\nblank lines\n\n", " leading space", "data: not a field", ": not a comment",
	"héllo wörld 🎉", "id: 99",
}

// sseBody frames sseDeltas, a keep-alive and a done event.
func sseBody() []byte {
	var body []byte
	for i, d := range sseDeltas {
		body = AppendEvent(body, int64(i+1), d)
		if i == 2 {
			body = append(body, KeepAliveEvent...)
		}
	}
	return AppendNamedEvent(body, "done", `{"finish_reason":"stop","usage":null}`)
}

// normalized is content as an SSE parser gives it back: "\r\n" and "\r"
// become "\n".
func normalized(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// splitReader returns r's bytes in two reads, split at i.
func splitReader(b []byte, i int) io.Reader {
	return io.MultiReader(bytes.NewReader(b[:i]), bytes.NewReader(b[i:]))
}

func TestEventReaderRoundTrip(t *testing.T) {
	body := sseBody()
	for i := range len(body) + 1 {
		check := func(name string, r io.Reader) {
			er := NewEventReader(r)
			for j, d := range sseDeltas {
				if !er.Next() {
					t.Fatalf("%s split at %d: event %d missing: %v", name, i, j, er.Err())
				}
				ev := er.Event()
				if ev.Name != "" || ev.Data != normalized(d) || ev.ID != strconv.Itoa(j+1) {
					t.Fatalf("%s split at %d: event %d = %+v, want data %q", name, i, j, ev, normalized(d))
				}
			}
			if !er.Next() || er.Event().Name != "done" || er.Event().ID != strconv.Itoa(len(sseDeltas)) {
				t.Fatalf("%s split at %d: no done event: %+v %v", name, i, er.Event(), er.Err())
			}
			if er.Next() || er.Err() != nil {
				t.Fatalf("%s split at %d: after done: %v", name, i, er.Err())
			}
		}
		check("two reads", splitReader(body, i))
		if i == 0 {
			check("one byte at a time", iotest.OneByteReader(bytes.NewReader(body)))
		}
	}
}

// TestOpenAIDecoderReadsEvents checks the framing against another parser:
// openai-go's, which keeps a trailing "\n" on the data and does not
// treat a lone "\r" as a line end (the encoder never writes one).
func TestOpenAIDecoderReadsEvents(t *testing.T) {
	body := sseBody()
	for _, i := range []int{0, 1, 7, len(body) / 3, len(body) / 2, len(body) - 1} {
		res := &http.Response{Header: http.Header{"Content-Type": {"text/event-stream"}},
			Body: io.NopCloser(splitReader(body, i))}
		dec := ssestream.NewDecoder(res)
		for j, d := range sseDeltas {
			if !dec.Next() {
				t.Fatalf("split at %d: event %d missing: %v", i, j, dec.Err())
			}
			ev := dec.Event()
			if got := strings.TrimSuffix(string(ev.Data), "\n"); ev.Type != "" || got != normalized(d) {
				t.Fatalf("split at %d: event %d = %q %q, want %q", i, j, ev.Type, got, normalized(d))
			}
		}
		if !dec.Next() || dec.Event().Type != "done" {
			t.Fatalf("split at %d: no done event", i)
		}
		if dec.Next() {
			t.Fatalf("split at %d: an event after done", i)
		}
	}
}

func TestEventReaderEnds(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		events int
		err    error
	}{
		{"clean end", "id: 1\ndata: a\n\n", 1, nil},
		{"cut inside an event", "id: 1\ndata: a\n\nid: 2\ndata: b\n", 1, io.ErrUnexpectedEOF},
		{"cut inside a line", "id: 1\ndata: a\n\ndata: b", 1, io.ErrUnexpectedEOF},
		{"only keep-alives", ": keep-alive\n\n: keep-alive\n\n", 0, nil},
		{"cr line ends", "id: 1\rdata: a\rdata: b\r\r", 1, nil},
		{"event without data is not dispatched", "event: x\n\n", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			er := NewEventReader(strings.NewReader(tt.body))
			n := 0
			for er.Next() {
				n++
			}
			if n != tt.events || !errors.Is(er.Err(), tt.err) {
				t.Errorf("got %d events, err %v; want %d, %v", n, er.Err(), tt.events, tt.err)
			}
		})
	}
}

func TestAppendEventAllocations(t *testing.T) {
	buf := make([]byte, 0, 256)
	avg := testing.AllocsPerRun(1000, func() { buf = AppendEvent(buf[:0], 123456, "two\nlines") })
	if avg != 0 {
		t.Errorf("AppendEvent allocates %.1f times, want 0", avg)
	}
}
