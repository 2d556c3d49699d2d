package stream

import (
	"bytes"
	"errors"
	"io"
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

// EventError is an error object the upstream sent in place of a chunk.
// Code is the object's code or type when it is a plain identifier. Type and
// Message are the upstream's own, raw: Error leaves them out, so that they
// reach a log only through a redactor.
type EventError struct{ Code, Type, Message string }

func (e *EventError) Error() string {
	if e.Code == "" {
		return "upstream sent an error event"
	}
	return "upstream sent an error event (" + e.Code + ")"
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
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
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

// drain reads and drops up to max bytes of the body past the decoder,
// until its end.
func (e *Events) drain(max int64) { io.CopyN(io.Discard, e.body.rc, max) }

// ParseEvent decodes the data of one chunk into ev, in one pass over its
// members and one over its first choice's, without allocating: the strings
// in ev share data's memory unless they hold escapes. It checks the
// object's outline only (it opens and closes, and its members parse): a
// full validation would cost as much again, and the relay reads nothing
// else of the chunk.
//
// The passes only pick members out; they are read after each pass, a call
// less deep, because gjson's frames are large and this runs on the stream's
// own goroutine (see onOwnStack).
func ParseEvent(data []byte, ev *Event) error {
	s := unsafe.String(unsafe.SliceData(data), len(data))
	root := gjson.Parse(s)
	if !root.IsObject() {
		return ErrMalformedEvent
	}
	end := strings.IndexByte(s, '{') + 1 // where the last member ends
	var choices, usage, errObj gjson.Result
	root.ForEach(func(key, value gjson.Result) bool {
		end = value.Index + len(value.Raw)
		switch key.Str {
		case "choices":
			choices = value
		case "usage":
			usage = value
		case "error":
			errObj = value
		}
		return true
	})
	if strings.TrimSpace(s[end:]) != "}" {
		return ErrMalformedEvent
	}
	if errObj.Exists() && errObj.Type != gjson.Null {
		return &EventError{Code: errorCode(errObj), Type: errObj.Get("type").Str, Message: errObj.Get("message").Str}
	}
	if choices.IsArray() {
		parseChoice(firstElement(choices), ev)
	}
	if usage.IsObject() {
		ev.Usage.PromptTokens = usage.Get("prompt_tokens").Int()
		ev.Usage.CompletionTokens = usage.Get("completion_tokens").Int()
	}
	return nil
}

// parseChoice takes a choice's content and finish_reason.
func parseChoice(choice gjson.Result, ev *Event) {
	var delta gjson.Result
	choice.ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "delta":
			delta = value
		case "finish_reason":
			ev.FinishReason = value.Str
		}
		return true
	})
	if delta.IsObject() {
		ev.Content = delta.Get("content").Str
	}
}

// firstElement returns an array's first element.
func firstElement(array gjson.Result) (first gjson.Result) {
	array.ForEach(func(_, value gjson.Result) bool {
		first = value
		return false
	})
	return first
}

// errorCode returns an error object's code, or else its type, when it is a
// short identifier; "" otherwise.
func errorCode(e gjson.Result) string {
	for _, key := range [...]string{"code", "type"} {
		if v := e.Get(key).Str; isIdentifier(v) {
			return v
		}
	}
	return ""
}

func isIdentifier(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
