package stream

import (
	"encoding/json"
	"mime"
	"strings"
)

// Encoder frames a stream's content for the client: the body's media type,
// the bytes of each line, of a keep-alive and of the end. The relay numbers
// the lines from 1, so that an encoder can give them ids.
type Encoder interface {
	// ContentType is the body's Content-Type.
	ContentType() string
	// AppendDelta appends line n, carrying content, to dst and returns the
	// extended buffer.
	AppendDelta(dst []byte, n int64, content string) []byte
	// KeepAlive is what is written while nothing else is.
	KeepAlive() string
	// AppendEnd appends what says in-band how the stream ended; nothing
	// for a framing that can't say it.
	AppendEnd(dst []byte, end Ending) []byte
}

// Ending is how a stream ended, for an encoder that says so in-band.
type Ending struct {
	FinishReason string
	Usage        *Usage
	// Code and Message say why it failed; Code is "" after a normal end.
	Code, Message string
}

// Plain is the plain-text wire format: one line per delta, see AppendLine.
type Plain struct{}

// ContentType returns "text/plain; charset=utf-8".
func (Plain) ContentType() string { return "text/plain; charset=utf-8" }

// AppendDelta appends content as one line; plain text has no line ids.
func (Plain) AppendDelta(dst []byte, _ int64, content string) []byte {
	return AppendLine(dst, content)
}

// KeepAlive returns an empty line, which readers skip.
func (Plain) KeepAlive() string { return KeepAliveLine }

// AppendEnd appends nothing: a plain stream ends cleanly or is cut.
func (Plain) AppendEnd(dst []byte, _ Ending) []byte { return dst }

// SSE is the Server-Sent Events framing, see AppendEvent.
type SSE struct{}

// ContentType returns "text/event-stream".
func (SSE) ContentType() string { return "text/event-stream" }

// AppendDelta appends content as one event with id n.
func (SSE) AppendDelta(dst []byte, n int64, content string) []byte {
	return AppendEvent(dst, n, content)
}

// KeepAlive returns a comment, which parsers skip.
func (SSE) KeepAlive() string { return KeepAliveEvent }

// AppendEnd appends an event named done, with the finish_reason and usage
// as JSON, or one named error, with the API's JSON error.
func (SSE) AppendEnd(dst []byte, end Ending) []byte {
	if end.Code != "" {
		type apiErr struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		data, _ := json.Marshal(struct {
			Error apiErr `json:"error"`
		}{apiErr{end.Code, end.Message}})
		return AppendNamedEvent(dst, "error", string(data))
	}
	var reason *string
	if end.FinishReason != "" {
		reason = &end.FinishReason
	}
	data, _ := json.Marshal(struct {
		FinishReason *string `json:"finish_reason"`
		Usage        *Usage  `json:"usage"`
	}{reason, end.Usage})
	return AppendNamedEvent(dst, "done", string(data))
}

// Negotiate returns SSE when an Accept header asks for text/event-stream,
// else Plain.
func Negotiate(accept string) Encoder {
	for _, part := range strings.Split(accept, ",") {
		if t, _, err := mime.ParseMediaType(part); err == nil && t == "text/event-stream" {
			return SSE{}
		}
	}
	return Plain{}
}
