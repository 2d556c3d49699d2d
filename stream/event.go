package stream

import (
	"bytes"
	"errors"
	"io"
	"net/http"
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

// ParseEvent decodes the data of one chunk into ev: one validating pass and
// one pass over the top-level members, without copying the content unless it
// has escapes. The strings in ev may share memory with data.
func ParseEvent(data []byte, ev *Event) error {
	s := unsafe.String(unsafe.SliceData(data), len(data))
	if !gjson.Valid(s) {
		return ErrMalformedEvent
	}
	root := gjson.Parse(s)
	if !root.IsObject() {
		return ErrMalformedEvent
	}
	var err error
	root.ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "choices":
			choice := value.Get("0")
			ev.Content = choice.Get("delta.content").Str
			ev.FinishReason = choice.Get("finish_reason").Str
		case "usage":
			if value.IsObject() {
				ev.Usage.PromptTokens = value.Get("prompt_tokens").Int()
				ev.Usage.CompletionTokens = value.Get("completion_tokens").Int()
			}
		case "error":
			if value.Type != gjson.Null {
				err = &EventError{Code: errorCode(value), Type: value.Get("type").Str, Message: value.Get("message").Str}
				return false
			}
		}
		return true
	})
	return err
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
