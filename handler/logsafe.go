package handler

import (
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"streamrelay/internal/redact"
	"streamrelay/stream"
)

// errorAttrs describes a failed request's error for the log. Upstream text
// never goes in verbatim: an upstream error is given as its status, type and
// code, and the message is cleaned of the key, the tokens, key-shaped text
// and the request's own text, and capped (see redact.Redactor.Clean).
func (h *Handler) errorAttrs(err error, texts []string) []slog.Attr {
	attrs := []slog.Attr{slog.String("error", h.redactor.Clean(err.Error(), texts...))}
	var apiErr *openai.Error
	var streamErr *ssestream.StreamError
	var eventErr *stream.EventError
	switch {
	case errors.As(err, &eventErr):
		if eventErr.Message != "" {
			attrs[0] = slog.String("error", h.redactor.Clean(err.Error()+": "+eventErr.Message, texts...))
		}
		code := eventErr.Code
		if code == eventErr.Type {
			code = "" // errorCode fell back to the type
		}
		attrs = h.appendUpstreamKind(attrs, texts, eventErr.Type, code)
	case errors.As(err, &apiErr):
		attrs = append(attrs, slog.Int("upstream_status", apiErr.StatusCode))
		attrs = h.appendUpstreamKind(attrs, texts, apiErr.Type, apiErr.Code)
	case errors.As(err, &streamErr):
		var event struct {
			Error struct {
				Type string          `json:"type"`
				Code json.RawMessage `json:"code"`
			} `json:"error"`
		}
		json.Unmarshal(streamErr.Event.Data, &event)
		attrs = h.appendUpstreamKind(attrs, texts, event.Error.Type, jsonScalar(event.Error.Code))
	}
	return attrs
}

// appendUpstreamKind adds the upstream's error type and code, cleaned and
// cut short like the message: they are meant to be identifiers, but come
// from outside.
func (h *Handler) appendUpstreamKind(attrs []slog.Attr, texts []string, typ, code string) []slog.Attr {
	const maxLen = 64
	if typ != "" {
		attrs = append(attrs, slog.String("upstream_error_type", redact.Cap(h.redactor.Clean(typ, texts...), maxLen)))
	}
	if code != "" {
		attrs = append(attrs, slog.String("upstream_error_code", redact.Cap(h.redactor.Clean(code, texts...), maxLen)))
	}
	return attrs
}

// jsonScalar returns a JSON string or number as text; anything else as "".
func jsonScalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}
