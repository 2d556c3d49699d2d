// Package redact keeps secrets and user text out of what the server logs
// or returns: it replaces known secrets, anything shaped like an OpenAI key,
// and the caller's own text, then caps the length.
package redact

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Mask is what a redacted secret or text becomes.
const Mask = "[redacted]"

// MaxLen is the length, in characters, that Redactor.Clean caps text at.
const MaxLen = 200

// keyShape matches what looks like a credential whatever its source:
// OpenAI-style keys, including the masked forms upstreams echo
// ("sk-proj-****abcd"), and bearer tokens.
var keyShape = regexp.MustCompile(`\bsk-[A-Za-z0-9_*\-]{3,}|(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]+`)

// minText is the shortest user text that is redacted: shorter ones would
// blank out common words of the message and hide little.
const minText = 4

// Redactor removes a fixed set of secrets. The zero value removes only
// key-shaped text.
type Redactor struct {
	secrets []string
}

// New returns a Redactor for secrets, such as the upstream key and the
// callers' tokens; empty ones are ignored.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	for _, s := range secrets {
		if strings.TrimSpace(s) != "" {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// Clean returns s with r's secrets, key-shaped text and each of texts (the
// request's prompt and messages) replaced by Mask, capped at MaxLen
// characters. A secret or text is also found in its JSON-escaped form, as
// it appears inside a raw upstream body.
func (r *Redactor) Clean(s string, texts ...string) string {
	var all []string
	if r != nil {
		all = append(all, r.secrets...)
	}
	for _, t := range texts {
		if utf8.RuneCountInString(t) >= minText {
			all = append(all, t)
		}
	}
	s = replaceAll(s, withEscaped(all))
	s = keyShape.ReplaceAllString(s, Mask)
	return Cap(s, MaxLen)
}

// withEscaped returns each of ss and its JSON-escaped form, longest first,
// so that a text containing another is replaced whole.
func withEscaped(ss []string) []string {
	out := make([]string, 0, 2*len(ss))
	for _, s := range ss {
		out = append(out, s)
		b, _ := json.Marshal(s)
		if e := string(b[1 : len(b)-1]); e != s {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func replaceAll(s string, secrets []string) string {
	for _, secret := range secrets {
		s = strings.ReplaceAll(s, secret, Mask)
	}
	return s
}

// Cap returns s cut to at most n characters, with "…" at the end if cut.
func Cap(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}
