package demo_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"streamrelay/internal/demo"
)

func TestTokensJoinBack(t *testing.T) {
	for _, text := range []string{"", "a", "  lead", "trail  ", "a\n\nb", "\nstart", "tab\there", "x\r\ny", demo.Answer("hi\nthere")} {
		tokens := demo.Tokens(text)
		if got := strings.Join(tokens, ""); got != text {
			t.Errorf("Tokens(%q) joined = %q", text, got)
		}
		for _, tok := range tokens {
			if tok == "" || !utf8.ValidString(tok) {
				t.Errorf("Tokens(%q) has token %q", text, tok)
			}
		}
	}
}

func TestAnswer(t *testing.T) {
	a := demo.Answer("what does 42 signify?")
	for _, want := range []string{"what does 42 signify?", "\n", "café", "你好", "🚀", "demo", "not a real model",
		"**built-in demo**", "\n- accents", "\n| part | job |\n|---", "\n```sh\ncurl", "\n```\n"} {
		if !strings.Contains(a, want) {
			t.Errorf("answer lacks %q", want)
		}
	}
	long := demo.Answer(strings.Repeat("é", 5000))
	if utf8.RuneCountInString(long) > 2000 {
		t.Errorf("a long prompt is quoted whole: %d runes", utf8.RuneCountInString(long))
	}
}

func client(t *testing.T, opts demo.Options) openai.Client {
	srv := httptest.NewServer(demo.Handler(opts))
	t.Cleanup(srv.Close)
	return openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

func params(prompt string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "anything",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}
}

// TestStreamThroughSDK reads the demo with openai-go, as the relay does.
func TestStreamThroughSDK(t *testing.T) {
	c := client(t, demo.Options{Delay: time.Millisecond})
	p := params("hello")
	p.StreamOptions.IncludeUsage = openai.Bool(true)
	s := c.Chat.Completions.NewStreaming(context.Background(), p)
	defer s.Close()
	var text strings.Builder
	var finish string
	var usage int64
	chunks := 0
	for s.Next() {
		ch := s.Current()
		chunks++
		if ch.Model != demo.Model {
			t.Errorf("model = %q, want %q", ch.Model, demo.Model)
		}
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
			if r := ch.Choices[0].FinishReason; r != "" {
				finish = r
			}
		}
		usage += ch.Usage.CompletionTokens
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	want := demo.Answer("hello")
	if text.String() != want {
		t.Errorf("text = %q, want %q", text.String(), want)
	}
	if n := len(demo.Tokens(want)); chunks != n+3 || usage != int64(n) || finish != "stop" {
		t.Errorf("chunks = %d, usage = %d, finish = %q; want %d, %d, stop", chunks, usage, finish, n+3, n)
	}
}

func TestMaxTokensAndStamps(t *testing.T) {
	c := client(t, demo.Options{Deltas: 50, Stamp: true})
	p := params("x")
	p.MaxTokens = openai.Int(3)
	before := time.Now().UnixNano()
	s := c.Chat.Completions.NewStreaming(context.Background(), p)
	defer s.Close()
	var deltas []string
	var finish string
	for s.Next() {
		if ch := s.Current(); len(ch.Choices) > 0 {
			if d := ch.Choices[0].Delta.Content; d != "" {
				deltas = append(deltas, d)
			}
			if r := ch.Choices[0].FinishReason; r != "" {
				finish = r
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(deltas) != 3 || finish != "length" {
		t.Fatalf("deltas = %q, finish = %q; want 3 and length", deltas, finish)
	}
	for i, d := range deltas {
		stamp, word, ok := strings.Cut(strings.TrimPrefix(d, "T"), "|")
		if !ok || word != "w"+strconv.Itoa(i+1)+" " {
			t.Errorf("delta %d = %q", i, d)
		}
		if n, err := strconv.ParseInt(stamp, 10, 64); err != nil || n < before || n > time.Now().UnixNano() {
			t.Errorf("stamp %q is not the send time in unix nanoseconds", stamp)
		}
	}
}

func TestNotStreaming(t *testing.T) {
	c := client(t, demo.Options{})
	res, err := c.Chat.Completions.New(context.Background(), params("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Choices[0].Message.Content; got != demo.Answer("hi") {
		t.Errorf("content = %q", got)
	}
}

func TestRejectsRequestsWithoutUserMessage(t *testing.T) {
	c := client(t, demo.Options{})
	p := params("hi")
	p.Messages = []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("s")}
	_, err := c.Chat.Completions.New(context.Background(), p)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Errorf("err = %v, want a 400", err)
	}
}
