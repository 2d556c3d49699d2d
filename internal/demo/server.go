// Package demo is a small OpenAI-compatible chat-completions server that
// answers deterministically and never pretends to be a real model. The relay
// runs it when no API key is configured, and tests and benchmarks use it as
// their fake upstream: it speaks the real streaming wire format (SSE: a role
// chunk, content chunks, a finish chunk, an optional usage chunk, then
// "data: [DONE]").
package demo

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Model is the model name the demo reports in every chunk.
const Model = "demo"

// Options shape the demo's answers.
type Options struct {
	// Delay is the pause before each content delta.
	Delay time.Duration
	// Deltas, when positive, replaces the demo text with exactly this many
	// generated deltas ("w1 ", "w2 ", ...): a load for benchmarks.
	Deltas int
	// Stamp prefixes each delta with "T<unix nanos>|", the time it was sent,
	// so a receiver can measure the latency added on the way.
	Stamp bool
}

// Handler returns the demo server. It answers POST .../chat/completions,
// streaming or not, and 404 to everything else.
func Handler(opts Options) http.Handler {
	return &server{opts: opts}
}

type server struct {
	opts Options
	ids  atomic.Int64
}

// request is the part of a chat-completions request the demo reads.
type request struct {
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream              bool   `json:"stream"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
	StreamOptions       struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		writeError(w, http.StatusNotFound, "not_found", "The demo serves only POST /v1/chat/completions.")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Use POST.")
		return
	}
	var req request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body is not a valid chat-completions request.")
		return
	}
	prompt, problem := lastUserText(req)
	if problem != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", problem)
		return
	}
	a := s.newAnswer(prompt, req)
	if !req.Stream {
		a.writeWhole(w)
		return
	}
	a.stream(w, r, req.StreamOptions.IncludeUsage)
}

// lastUserText returns the text of the last user message, or a sentence
// for the client saying what is wrong with the request.
func lastUserText(req request) (text, problem string) {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := req.Messages[i]
		if m.Role != "user" {
			continue
		}
		if json.Unmarshal(m.Content, &text) == nil {
			return text, ""
		}
		var parts []struct{ Type, Text string }
		if json.Unmarshal(m.Content, &parts) == nil {
			var b strings.Builder
			for _, p := range parts {
				b.WriteString(p.Text)
			}
			return b.String(), ""
		}
		return "", "A message's content must be a string or an array of text parts."
	}
	return "", "The request needs at least one user message."
}

// writeError answers in the OpenAI error format.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": message, "type": "invalid_request_error", "code": code, "param": nil,
	}})
	w.Write(body)
}

// limit returns the max_tokens the request asked for, or 0 for none.
func limit(req request) int {
	for _, v := range []*int64{req.MaxCompletionTokens, req.MaxTokens} {
		if v != nil && *v > 0 {
			return int(*v)
		}
	}
	return 0
}

// itoa is strconv.Itoa for int64.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
