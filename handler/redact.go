package handler

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// keyShapes matches what looks like a credential whatever its source:
// OpenAI-style keys (sk-..., sk-proj-...) and bearer tokens.
var keyShapes = regexp.MustCompile(`\bsk-[A-Za-z0-9_\-]{6,}|(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]+`)

// minSecret is the shortest secret redact replaces as it is: a shorter
// one, like a two-letter prompt, would blank out ordinary words.
const minSecret = 4

// redact returns s with each of secrets (keys, tokens, the user's text)
// and anything shaped like a key replaced by [redacted], cut to at most
// max characters.
func redact(s string, max int, secrets ...string) string {
	for _, secret := range secrets {
		if utf8.RuneCountInString(strings.TrimSpace(secret)) >= minSecret {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	s = keyShapes.ReplaceAllString(s, "[redacted]")
	return truncate(s, max)
}

// truncate cuts s to at most max characters, marking the cut with "…".
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	runes := []rune(s)
	return strings.TrimSpace(string(runes[:max-1])) + "…"
}
