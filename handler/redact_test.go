package handler

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRedact(t *testing.T) {
	tests := map[string]struct {
		in, want string
		secrets  []string
	}{
		"plain":         {"Unsupported parameter: 'max_tokens'.", "Unsupported parameter: 'max_tokens'.", nil},
		"the key":       {"Incorrect API key provided: my-own-key-123.", "Incorrect API key provided: [redacted].", []string{"my-own-key-123"}},
		"an sk- shape":  {"key sk-proj-AbC_12-xyz is bad", "key [redacted] is bad", nil},
		"a bearer":      {"sent Authorization: Bearer tok.en-1 twice", "sent Authorization: [redacted] twice", nil},
		"the prompt":    {"cannot answer 'tell me a secret' here", "cannot answer '[redacted]' here", []string{"tell me a secret"}},
		"short secrets": {"an is a word", "an is a word", []string{"an", "", "   "}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := redact(tt.in, 200, tt.secrets...); got != tt.want {
				t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactCaps(t *testing.T) {
	got := redact(strings.Repeat("é", 500), 200)
	if n := utf8.RuneCountInString(got); n != 200 || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("capped to %d characters, %q", n, got)
	}
}
