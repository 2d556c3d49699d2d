package demo

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxQuote bounds how much of the prompt the answer quotes, in runes.
const maxQuote = 300

// Answer returns the demo's answer to prompt: a few paragraphs of Markdown
// (bold, a list, a table, a fenced code block) that quote the prompt and
// carry newlines, accents, CJK and an emoji, so every awkward byte of the
// wire format, and every block the page renders, shows up in an ordinary run.
func Answer(prompt string) string {
	return fmt.Sprintf(`You asked: “%s”

This is the **built-in demo**, not a real model: no OPENAI_API_KEY is set, so nothing left this machine. The answer still travels the real way, as OpenAI chat-completion chunks over HTTP, parsed by the official SDK and relayed one line per delta.

Things that tend to break a stream, all in one answer:
- accents: café, naïve, crème brûlée
- CJK: 你好，世界 and こんにちは
- an emoji: 🚀
- a line break inside a delta

| part | job |
|------|-----|
| relay | one line per delta |
| page | Markdown, per frame |

Asking the relay yourself:

`+"```"+`sh
curl -N localhost:8080/message/stream \
  -H 'Content-Type: application/json' \
  -d '{"prompt": "hello"}'
`+"```"+`

Set OPENAI_API_KEY (and, for another server, OPENAI_BASE_URL and OPENAI_MODEL) to talk to a real model.`, quote(prompt))
}

// quote shortens a prompt to at most maxQuote runes.
func quote(prompt string) string {
	prompt = strings.TrimSpace(prompt)
	if utf8.RuneCountInString(prompt) <= maxQuote {
		return prompt
	}
	runes := []rune(prompt)
	return string(runes[:maxQuote]) + "…"
}

// Tokens splits text the way the demo streams it: a token is the spaces
// before a word, the word, and any line breaks right after it. Joined, the
// tokens give back text exactly.
func Tokens(text string) []string {
	var tokens []string
	start, i := 0, 0
	for i < len(text) {
		// leading spaces, the word, then trailing line breaks
		for i < len(text) && text[i] == ' ' {
			i++
		}
		for i < len(text) && text[i] != ' ' && text[i] != '\n' && text[i] != '\r' {
			i++
		}
		for i < len(text) && (text[i] == '\n' || text[i] == '\r') {
			i++
		}
		tokens = append(tokens, text[start:i])
		start = i
	}
	return tokens
}
