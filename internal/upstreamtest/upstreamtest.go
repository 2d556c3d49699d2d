// Package upstreamtest scripts a fake OpenAI-compatible upstream for tests:
// it writes real chat-completions SSE events, one step at a time, and can
// wait, stall, fail with a status, or reset its connection mid-stream.
package upstreamtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"time"
)

// Step is one thing the fake upstream does while answering.
type Step func(w http.ResponseWriter, r *http.Request) (more bool)

// Event writes raw bytes (usually one "data: ...\n\n" event) and flushes.
func Event(raw string) Step {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if _, err := w.Write([]byte(raw)); err != nil {
			return false
		}
		return http.NewResponseController(w).Flush() == nil
	}
}

// Events is Event for each of raw.
func Events(raw ...string) []Step {
	steps := make([]Step, len(raw))
	for i, r := range raw {
		steps[i] = Event(r)
	}
	return steps
}

// Wait blocks until ch is closed or the request is cancelled.
func Wait(ch <-chan struct{}) Step {
	return func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-ch:
			return true
		case <-r.Context().Done():
			return false
		}
	}
}

// Pause waits d, or until the request is cancelled: an upstream that
// takes its time between events.
func Pause(d time.Duration) Step {
	return func(w http.ResponseWriter, r *http.Request) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-r.Context().Done():
			return false
		}
	}
}

// Hang blocks until the request is cancelled: a stalled upstream.
func Hang() Step { return Wait(nil) }

// Reset closes the connection at once with a TCP reset, mid-body.
func Reset() Step {
	return func(w http.ResponseWriter, r *http.Request) bool {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			tcp.SetLinger(0)
		}
		conn.Close()
		return false
	}
}

// Status answers with an HTTP error status, a JSON error body in the
// OpenAI format, and the given header pairs ("Retry-After", "3", ...).
func Status(code int, headerPairs ...string) Step {
	return func(w http.ResponseWriter, r *http.Request) bool {
		for i := 0; i+1 < len(headerPairs); i += 2 {
			w.Header().Set(headerPairs[i], headerPairs[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write([]byte(`{"error":{"message":"fake upstream error","type":"test","code":"status_` + strconv.Itoa(code) + `","param":null}}`))
		return false
	}
}

// Error answers with an HTTP error status and an error body in OpenAI's
// exact shape: {"error": {"message", "type", "param", "code"}}.
func Error(status int, message, typ, param, code string) Step {
	return func(w http.ResponseWriter, r *http.Request) bool {
		body, _ := json.Marshal(map[string]map[string]any{"error": {
			"message": message, "type": typ, "param": nullable(param), "code": nullable(code)}})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(append(body, '\n'))
		return false
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Reasoning behaves like OpenAI's reasoning models (the o-series, gpt-5):
// a request with max_tokens, or with a temperature other than 1, is
// rejected with status 400 and OpenAI's error; any other goes on to the
// next step.
func Reasoning() Step {
	return func(w http.ResponseWriter, r *http.Request) bool {
		var req struct {
			MaxTokens   *int64   `json:"max_tokens"`
			Temperature *float64 `json:"temperature"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		switch {
		case req.MaxTokens != nil:
			return Error(http.StatusBadRequest,
				"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
				"invalid_request_error", "max_tokens", "unsupported_parameter")(w, r)
		case req.Temperature != nil && *req.Temperature != 1:
			b, _ := json.Marshal(*req.Temperature)
			return Error(http.StatusBadRequest,
				"Unsupported value: 'temperature' does not support "+string(b)+" with this model. Only the default (1) value is supported.",
				"invalid_request_error", "temperature", "unsupported_value")(w, r)
		}
		return true
	}
}

// Server is a fake upstream running on a loopback port.
type Server struct {
	*httptest.Server
	// Requests counts the requests it received.
	Requests atomic.Int64
	// Cancelled receives once for every request whose context ended before
	// its script did: the relay cancelled or dropped it.
	Cancelled chan struct{}
	// Bodies receives each request's body.
	Bodies chan []byte
}

// New starts a fake upstream that answers every request with steps.
// SSE headers are sent before the first step unless it is a Status step.
// Close it when done.
func New(steps ...Step) *Server {
	s := &Server{Cancelled: make(chan struct{}, 100), Bodies: make(chan []byte, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		var body json.RawMessage
		json.NewDecoder(r.Body).Decode(&body)
		r.Body = io.NopCloser(bytes.NewReader(body)) // again, for the steps
		select {
		case s.Bodies <- body:
		default:
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, step := range steps {
			if !step(w, r) {
				break
			}
		}
		if r.Context().Err() != nil {
			s.Cancelled <- struct{}{}
		}
	}))
	return s
}

// BaseURL is the URL to give the SDK.
func (s *Server) BaseURL() string { return s.URL + "/v1/" }

// Role is the first chunk of a stream: the role, no content.
func Role() string {
	return chunk(`{"role":"assistant","content":""}`, "null")
}

// Content is a chunk whose delta carries text.
func Content(text string) string {
	b, _ := json.Marshal(text)
	return chunk(`{"content":`+string(b)+`}`, "null")
}

// Finish is the chunk that ends a choice.
func Finish(reason string) string {
	return chunk(`{}`, `"`+reason+`"`)
}

// Usage is the usage chunk sent with stream_options.include_usage: its
// choices are empty.
func Usage(prompt, completion int) string {
	return `data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1,"model":"test","choices":[],"usage":{"prompt_tokens":` +
		strconv.Itoa(prompt) + `,"completion_tokens":` + strconv.Itoa(completion) + `,"total_tokens":` + strconv.Itoa(prompt+completion) + "}}\n\n"
}

// Done is the stream's last event.
const Done = "data: [DONE]\n\n"

// Answer is a whole well-formed stream carrying the given deltas.
func Answer(deltas ...string) []string {
	events := []string{Role()}
	for _, d := range deltas {
		events = append(events, Content(d))
	}
	return append(events, Finish("stop"), Done)
}

func chunk(delta, finishReason string) string {
	return `data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1,"model":"test","choices":[{"index":0,"delta":` +
		delta + `,"logprobs":null,"finish_reason":` + finishReason + "}]}\n\n"
}
