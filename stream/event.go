package stream

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"unsafe"

	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/tidwall/gjson"
)

// DefaultMaxEventBytes caps one upstream event when no cap is given.
const DefaultMaxEventBytes = 2 << 20

var (
	// ErrMalformedEvent means an upstream event's data is not a JSON object.
	ErrMalformedEvent = errors.New("upstream event is not valid JSON")
	// ErrEventTooLarge means one upstream event ran past its cap.
	ErrEventTooLarge = errors.New("upstream event larger than the cap")
)

// EventError is an error object the upstream sent in place of a chunk:
// its type, code and message, as the upstream wrote them. The message is
// upstream text: clean it before it goes into a log.
type EventError struct{ Type, Code, Message string }

func (e *EventError) Error() string {
	if e.Message == "" {
		return "upstream sent an error event"
	}
	return "upstream sent an error event: " + e.Message
}

// Event is what the relay takes from one upstream chunk: the first
// choice's content and finish_reason, and the usage if the chunk has it.
type Event struct {
	Content      string
	FinishReason string
	Usage        Usage
}

// Usage is the token count an upstream reports in its usage chunk.
type Usage struct {
	PromptTokens, CompletionTokens int64
}

// Events reads an upstream's chunks from its server-sent events, in the
// style of bufio.Scanner: call Next until false, then check Err. It frames
// events with openai-go's ssestream decoder and decodes only the few
// fields the relay needs.
type Events struct {
	body *capReader
	dec  ssestream.Decoder
	ev   Event
	done bool // the [DONE] sentinel ended the stream
	err  error
}

// NewEvents reads the events of res's body, which it closes on Close. An
// event of more than maxEventBytes ends the stream with ErrEventTooLarge;
// 0 means DefaultMaxEventBytes.
func NewEvents(res *http.Response, maxEventBytes int) *Events {
	if maxEventBytes <= 0 {
		maxEventBytes = DefaultMaxEventBytes
	}
	capped := *res
	body := &capReader{rc: res.Body, max: maxEventBytes}
	capped.Body = body
	return &Events{body: body, dec: ssestream.NewDecoder(&capped)}
}

// BeforeRead makes Next call fn before it waits for the upstream's next
// bytes; an error from fn ends the stream with that error.
func (e *Events) BeforeRead(fn func() error) { e.body.beforeRead = fn }

// Next advances to the next chunk and reports whether there is one. It
// returns false at the [DONE] sentinel, at the body's end and on an error.
func (e *Events) Next() bool {
	if e.err != nil || e.done {
		return false
	}
	if !e.dec.Next() {
		e.err = e.dec.Err()
		return false
	}
	data := e.dec.Event().Data
	if bytes.HasPrefix(data, done) {
		e.done = true
		return false
	}
	e.ev = Event{}
	if err := ParseEvent(data, &e.ev); err != nil {
		e.err = err
		return false
	}
	return true
}

var done = []byte("[DONE]")

// Event returns the current chunk; it is valid until the next call to Next.
func (e *Events) Event() *Event { return &e.ev }

// Done reports whether the stream ended with the [DONE] sentinel.
func (e *Events) Done() bool { return e.done }

// Err returns the error that ended the stream, if any.
func (e *Events) Err() error { return e.err }

// Close closes the upstream's body.
func (e *Events) Close() error { return e.dec.Close() }

// ParseEvent decodes the data of one chunk into ev, in one pass over its
// members and one over its first choice's, without allocating: the strings
// in ev share data's memory unless they hold escapes. It checks the
// object's outline only (it opens and closes, and its members parse): a
// full validation would cost as much again, and the relay reads nothing
// else of the chunk.
func ParseEvent(data []byte, ev *Event) error {
	s := unsafe.String(unsafe.SliceData(data), len(data))
	root := gjson.Parse(s)
	if !root.IsObject() {
		return ErrMalformedEvent
	}
	end := strings.IndexByte(s, '{') + 1 // where the last member ends
	var err error
	root.ForEach(func(key, value gjson.Result) bool {
		end = value.Index + len(value.Raw)
		switch key.Str {
		case "choices":
			parseChoice(value.Get("0"), ev)
		case "usage":
			if value.IsObject() {
				ev.Usage.PromptTokens = value.Get("prompt_tokens").Int()
				ev.Usage.CompletionTokens = value.Get("completion_tokens").Int()
			}
		case "error":
			if value.Type != gjson.Null {
				err = eventError(value)
				return false
			}
		}
		return true
	})
	if err == nil && strings.TrimSpace(s[end:]) != "}" {
		err = ErrMalformedEvent
	}
	return err
}

// parseChoice takes a choice's content and finish_reason.
func parseChoice(choice gjson.Result, ev *Event) {
	choice.ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "delta":
			ev.Content = value.Get("content").Str
		case "finish_reason":
			ev.FinishReason = value.Str
		}
		return true
	})
}

// eventError returns the error an in-band error object stands for.
func eventError(e gjson.Result) *EventError {
	out := &EventError{Type: e.Get("type").Str, Message: e.Get("message").Str}
	if code := e.Get("code"); code.Type == gjson.String || code.Type == gjson.Number {
		out.Code = code.String()
	}
	if !e.IsObject() {
		out.Message = e.String()
	}
	return out
}
