package handler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/openai/openai-go/v3"
)

// streamRequest is the body of POST /message/stream.
type streamRequest struct {
	Prompt      *string    `json:"prompt"`
	Messages    *[]message `json:"messages"`
	Model       *string    `json:"model"`
	MaxTokens   *int64     `json:"max_tokens"`
	Temperature *float64   `json:"temperature"`
	Resumable   bool       `json:"resumable"`
}

// request is a checked POST /message/stream: the upstream parameters it
// asks for, and whether it outlives a dropped client.
type request struct {
	params    *openai.ChatCompletionNewParams
	resumable bool
}

// message is one turn of a multi-turn chat.
type message struct {
	Role    string  `json:"role"`
	Content *string `json:"content"`
}

// readRequest reads, decodes and checks the request body.
func (h *Handler) readRequest(c *gin.Context) (*request, *apiError) {
	if e := checkContentType(c.GetHeader("Content-Type")); e != nil {
		return nil, e
	}
	body, e := readBody(c, h.cfg.MaxBodyBytes)
	if e != nil {
		return nil, e
	}
	var req streamRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, decodeError(err)
	}
	recordOf(c).texts = req.texts()
	params, e := h.params(req)
	if e != nil {
		return nil, e
	}
	return &request{params: params, resumable: req.Resumable}, nil
}

// texts returns the prompt and the messages' contents.
func (req streamRequest) texts() []string {
	var out []string
	if req.Prompt != nil {
		out = append(out, *req.Prompt)
	}
	if req.Messages != nil {
		for _, m := range *req.Messages {
			if m.Content != nil {
				out = append(out, *m.Content)
			}
		}
	}
	return out
}

// checkContentType accepts application/json, with or without parameters.
func checkContentType(header string) *apiError {
	mediaType, _, err := mime.ParseMediaType(header)
	if err == nil && mediaType == "application/json" {
		return nil
	}
	return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
		Message: "Send the body as JSON, with Content-Type: application/json."}
}

// readBody reads the whole body, refusing more than limit bytes while
// reading. bound's read deadline stops a slow sender; a failed read keeps
// it, so that net/http does not wait on the rest of the body either.
func readBody(c *gin.Context, limit int64) ([]byte, *apiError) {
	tooLarge := &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: fmt.Sprintf("The request body is larger than the limit of %d bytes.", limit)}
	if c.Request.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, tooLarge
	case err != nil:
		return nil, badRequest("unreadable_body", "The request body could not be read.")
	}
	liftDeadlines(c)
	return body, nil
}

// decodeError explains why the body is not a valid request.
func decodeError(err error) *apiError {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return badRequest("invalid_json", "The request body must be a JSON object.")
		}
		return badRequest("invalid_field", fmt.Sprintf("The field %q must be %s.", typeErr.Field, kind(typeErr.Type.Kind().String())))
	}
	return badRequest("invalid_json", "The request body is not valid JSON.")
}

// kind names a Go kind the way a JSON user would.
func kind(k string) string {
	switch {
	case k == "string":
		return "a string"
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "float"):
		return "a number"
	case k == "slice":
		return "an array"
	case k == "struct":
		return "an object"
	}
	return "of another type"
}

// params checks a decoded request against the configuration and builds the
// upstream request.
func (h *Handler) params(req streamRequest) (*openai.ChatCompletionNewParams, *apiError) {
	p := &openai.ChatCompletionNewParams{}
	if e := h.checkSize(req); e != nil {
		return nil, e
	}
	msgs, e := h.messages(req)
	if e != nil {
		return nil, e
	}
	p.Messages = msgs
	p.Model = h.cfg.Model
	if req.Model != nil {
		if !slices.Contains(h.cfg.Models, *req.Model) {
			return nil, badRequest("model_not_allowed", fmt.Sprintf("The model %q is not allowed here; allowed: %s.", *req.Model, strings.Join(h.cfg.Models, ", ")))
		}
		p.Model = *req.Model
	}
	if e := h.setMaxTokens(p, req.MaxTokens); e != nil {
		return nil, e
	}
	if t := req.Temperature; t != nil {
		if *t < 0 || *t > 2 {
			return nil, badRequest("invalid_temperature", "The field \"temperature\" must be between 0 and 2.")
		}
		p.Temperature = openai.Float(*t)
	}
	if !h.cfg.OmitUsage {
		p.StreamOptions.IncludeUsage = openai.Bool(true)
	}
	return p, nil
}

// messages turns prompt or messages into the upstream's messages, with the
// configured system prompt first.
func (h *Handler) messages(req streamRequest) ([]openai.ChatCompletionMessageParamUnion, *apiError) {
	var out []openai.ChatCompletionMessageParamUnion
	if h.cfg.SystemPrompt != "" {
		out = append(out, openai.SystemMessage(h.cfg.SystemPrompt))
	}
	switch {
	case req.Prompt != nil && req.Messages != nil:
		return nil, badRequest("prompt_and_messages", "Send either \"prompt\" or \"messages\", not both.")
	case req.Prompt != nil:
		if strings.TrimSpace(*req.Prompt) == "" {
			return nil, badRequest("empty_prompt", "The field \"prompt\" is empty.")
		}
		return append(out, openai.UserMessage(*req.Prompt)), nil
	case req.Messages != nil:
		return appendMessages(out, *req.Messages)
	}
	return nil, badRequest("missing_prompt", "Send a \"prompt\" string or a \"messages\" array.")
}

// appendMessages checks each turn and appends it to out.
func appendMessages(out []openai.ChatCompletionMessageParamUnion, msgs []message) ([]openai.ChatCompletionMessageParamUnion, *apiError) {
	if len(msgs) == 0 {
		return nil, badRequest("empty_messages", "The field \"messages\" is an empty array.")
	}
	hasUser := false
	for i, m := range msgs {
		if m.Content == nil {
			return nil, badRequest("invalid_message", fmt.Sprintf("Message %d has no \"content\" string.", i))
		}
		switch m.Role {
		case "system":
			out = append(out, openai.SystemMessage(*m.Content))
		case "user":
			hasUser = hasUser || strings.TrimSpace(*m.Content) != ""
			out = append(out, openai.UserMessage(*m.Content))
		case "assistant":
			out = append(out, openai.AssistantMessage(*m.Content))
		default:
			return nil, badRequest("invalid_role", fmt.Sprintf("Message %d has role %q; use \"system\", \"user\" or \"assistant\".", i, m.Role))
		}
	}
	if !hasUser {
		return nil, badRequest("empty_prompt", "The messages hold no user message with text.")
	}
	return out, nil
}

// checkSize applies the configured limits on the number of messages and the
// characters of prompt and messages together.
func (h *Handler) checkSize(req streamRequest) *apiError {
	chars := 0
	if req.Prompt != nil {
		chars += utf8.RuneCountInString(*req.Prompt)
	}
	if req.Messages != nil {
		if n := len(*req.Messages); h.cfg.MaxMessages > 0 && n > h.cfg.MaxMessages {
			return badRequest("too_many_messages", fmt.Sprintf("The request has %d messages; this server's limit is %d.", n, h.cfg.MaxMessages))
		}
		for _, m := range *req.Messages {
			if m.Content != nil {
				chars += utf8.RuneCountInString(*m.Content)
			}
		}
	}
	if h.cfg.MaxInputChars > 0 && chars > h.cfg.MaxInputChars {
		return badRequest("input_too_long", fmt.Sprintf("The prompt and messages hold %d characters; this server's limit is %d.", chars, h.cfg.MaxInputChars))
	}
	return nil
}

// setMaxTokens puts the request's max_tokens, or else the configured cap,
// in the parameter the upstream takes; with neither there is none, and
// the upstream's own default applies.
func (h *Handler) setMaxTokens(p *openai.ChatCompletionNewParams, asked *int64) *apiError {
	n := h.cfg.MaxTokens
	switch {
	case asked == nil:
	case *asked < 1:
		return badRequest("invalid_max_tokens", "The field \"max_tokens\" must be a positive integer.")
	case n > 0 && *asked > n:
		return badRequest("max_tokens_too_large", fmt.Sprintf("The field \"max_tokens\" is over this server's limit of %d.", n))
	default:
		n = *asked
	}
	switch {
	case n <= 0:
	case h.cfg.TokensParam == TokensParamLegacy:
		p.MaxTokens = openai.Int(n)
	default:
		p.MaxCompletionTokens = openai.Int(n)
	}
	return nil
}
