package redact

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	r := New("the-upstream-key", "tok-alpha", "", "   ")
	tests := map[string]struct {
		in    string
		texts []string
		want  string
	}{
		"nothing secret":        {"upstream said: overloaded", nil, "upstream said: overloaded"},
		"configured key":        {"bad key the-upstream-key!", nil, "bad key [redacted]!"},
		"token":                 {"token tok-alpha seen", nil, "token [redacted] seen"},
		"key shape":             {"Incorrect API key provided: sk-proj-abc123XYZ.", nil, "Incorrect API key provided: [redacted]."},
		"not a key":             {"a task-force of risk-takers", nil, "a task-force of risk-takers"},
		"bearer":                {"sent Authorization: Bearer tok.en-1 twice", nil, "sent Authorization: [redacted] twice"},
		"masked key shape":      {"key sk-****abcd is wrong", nil, "key [redacted] is wrong"},
		"prompt":                {"you asked: tell me a secret plan", []string{"tell me a secret plan"}, "you asked: [redacted]"},
		"prompt, JSON-escaped":  {`{"message":"echo: line \"one\"\nline two"}`, []string{"line \"one\"\nline two"}, `{"message":"echo: [redacted]"}`},
		"longest text first":    {"abcdefgh", []string{"abcd", "abcdefgh"}, "[redacted]"},
		"short text is kept":    {"hi there, hi", []string{"hi"}, "hi there, hi"},
		"empty secret is no-op": {"plain", nil, "plain"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := r.Clean(tt.in, tt.texts...); got != tt.want {
				t.Errorf("Clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCleanCaps(t *testing.T) {
	in := strings.Repeat("é", 500)
	got := New().Clean(in)
	if n := utf8.RuneCountInString(got); n != MaxLen || !strings.HasSuffix(got, "…") {
		t.Errorf("capped to %d characters (%q...), want %d ending in …", n, got[:10], MaxLen)
	}
	// A secret cut by the cap must not leave its start behind.
	long := strings.Repeat("x", MaxLen-5) + "the-upstream-key"
	if got := New("the-upstream-key").Clean(long); strings.Contains(got, "the-up") {
		t.Errorf("the start of a secret survived the cap: %q", got)
	}
}

func TestNilRedactor(t *testing.T) {
	var r *Redactor
	if got := r.Clean("sk-abcdef"); got != Mask {
		t.Errorf("nil Redactor: %q", got)
	}
}
