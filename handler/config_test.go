package handler_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"streamrelay/handler"
	"streamrelay/internal/upstreamtest"
	"streamrelay/stream"
)

// TestZeroConfigWorks checks that a zero Config means the defaults: a
// request streams its answer instead of timing out or being too large.
func TestZeroConfigWorks(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Events(upstreamtest.Answer("Hello", " world")...)...)
	t.Cleanup(up.Close)
	client := openai.NewClient(option.WithBaseURL(up.BaseURL()), option.WithAPIKey(apiKey), option.WithMaxRetries(0))
	h, err := handler.New(handler.Config{}, client)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	res := post(t, srv.URL, `{"prompt":"hi"}`)
	got, err := stream.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || got != "Hello world" || err != nil {
		t.Errorf("zero Config: %d %q, %v; want 200 and the answer", res.StatusCode, got, err)
	}
}

// TestWithDefaults checks that WithDefaults fills what is zero and keeps
// what is set, Off included.
func TestWithDefaults(t *testing.T) {
	got := handler.Config{Model: "m", MaxMessages: handler.Off, MaxBodyBytes: 10}.WithDefaults()
	if got.Model != "m" || len(got.Models) != 1 || got.Models[0] != "m" || got.MaxMessages != handler.Off || got.MaxBodyBytes != 10 {
		t.Errorf("set fields changed: %+v", got)
	}
	if got.FirstEventTimeout <= 0 || got.IdleTimeout <= 0 || got.StreamDeadline <= 0 || got.MaxInputChars <= 0 || got.Limits.PerMinute <= 0 || got.Logger == nil {
		t.Errorf("zero fields not defaulted: %+v", got)
	}
}
