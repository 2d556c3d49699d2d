package handler

import (
	"errors"
	"net/http"
	"strings"

	"github.com/openai/openai-go/v3"

	"streamrelay/internal/redact"
)

// upstreamReasonMax is how many characters of the upstream's own reason a
// client sees.
const upstreamReasonMax = 200

// withUpstreamReason adds the upstream's own reason to the answer for a
// request it rejected with 400 or 422, so that a user sees, say,
// "Unsupported parameter: 'max_tokens'…" rather than a bare status. Only
// its error type and message pass, with the API key, the callers' tokens,
// key-shaped strings and the request's own text redacted, capped at
// upstreamReasonMax characters.
func (h *Handler) withUpstreamReason(e *apiError, err error, params *openai.ChatCompletionNewParams) *apiError {
	var apiErr *openai.Error
	if e.Code != "upstream_rejected" || !errors.As(err, &apiErr) ||
		(apiErr.StatusCode != http.StatusBadRequest && apiErr.StatusCode != http.StatusUnprocessableEntity) {
		return e
	}
	reason := strings.TrimSpace(apiErr.Message)
	if reason == "" {
		return e
	}
	if apiErr.Type != "" {
		reason = apiErr.Type + ": " + reason
	}
	var texts []string
	for _, m := range params.Messages {
		if s, ok := m.GetContent().AsAny().(*string); ok {
			texts = append(texts, *s)
		}
	}
	out := *e
	out.Message = strings.TrimSuffix(e.Message, ".") + ": " + redact.Cap(h.redactor.Clean(reason, texts...), upstreamReasonMax)
	return &out
}
