package handler_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"streamrelay/handler"
	"streamrelay/internal/upstreamtest"
	"streamrelay/stream"
)

// TestTokenLimitSent checks which token limit reaches the upstream, in
// which parameter: none unless the request or the configuration asks.
func TestTokenLimitSent(t *testing.T) {
	tests := map[string]struct {
		cap, param string // MAX_TOKENS as a number, TOKENS_PARAM
		body       string
		want       string // the upstream body's limit fields, or "" for none
	}{
		"none asked, no cap":  {"0", "", `{"prompt":"hi"}`, ""},
		"none asked, a cap":   {"50", "", `{"prompt":"hi"}`, `"max_completion_tokens":50`},
		"asked, no cap":       {"0", "", `{"prompt":"hi","max_tokens":100000}`, `"max_completion_tokens":100000`},
		"asked, under a cap":  {"50", "", `{"prompt":"hi","max_tokens":7}`, `"max_completion_tokens":7`},
		"legacy, asked":       {"0", handler.TokensParamLegacy, `{"prompt":"hi","max_tokens":7}`, `"max_tokens":7`},
		"legacy, a cap":       {"50", handler.TokensParamLegacy, `{"prompt":"hi"}`, `"max_tokens":50`},
		"legacy, none at all": {"0", handler.TokensParamLegacy, `{"prompt":"hi"}`, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := upstreamtest.New(upstreamtest.Events(upstreamtest.Answer("ok")...)...)
			t.Cleanup(up.Close)
			srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) {
				c.MaxTokens = map[string]int64{"0": 0, "50": 50}[tt.cap]
				c.TokensParam = tt.param
			})
			res := post(t, srv.URL, tt.body)
			io.Copy(io.Discard, res.Body)
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(<-up.Bodies, &fields); err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, key := range []string{"max_completion_tokens", "max_tokens"} {
				if v, ok := fields[key]; ok {
					got += `"` + key + `":` + string(v)
				}
			}
			if res.StatusCode != http.StatusOK || got != tt.want {
				t.Errorf("status %d, upstream got %q; want 200 and %q", res.StatusCode, got, tt.want)
			}
		})
	}
}

// TestReasoningModel runs the relay with its default token settings in
// front of an upstream that behaves like OpenAI's reasoning models, and
// checks that a request it rejects gets the upstream's own reason.
func TestReasoningModel(t *testing.T) {
	const rejected = `{"error":{"code":"upstream_rejected","message":"The model server rejected the request (status 400): invalid_request_error: `
	tests := map[string]struct {
		param  string
		body   string
		status int
		want   string
	}{
		"plain":          {"", `{"prompt":"hi"}`, 200, "ok"},
		"max_tokens":     {"", `{"prompt":"hi","max_tokens":5}`, 200, "ok"},
		"temperature 1":  {"", `{"prompt":"hi","temperature":1}`, 200, "ok"},
		"temperature .5": {"", `{"prompt":"hi","temperature":0.5}`, 502, rejected + `Unsupported value: 'temperature' does not support 0.5 with this model. Only the default (1) value is supported."}}`},
		"legacy param":   {handler.TokensParamLegacy, `{"prompt":"hi","max_tokens":5}`, 502, rejected + `Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."}}`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := upstreamtest.New(append([]upstreamtest.Step{upstreamtest.Reasoning()}, upstreamtest.Events(upstreamtest.Answer("ok")...)...)...)
			t.Cleanup(up.Close)
			srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) { c.MaxTokens = 0; c.TokensParam = tt.param })
			res := post(t, srv.URL, tt.body)
			var got string
			if res.StatusCode == http.StatusOK {
				got, _ = stream.ReadAll(res.Body)
			} else {
				b, _ := io.ReadAll(res.Body)
				got = strings.TrimSpace(string(b))
			}
			if res.StatusCode != tt.status || got != tt.want {
				t.Errorf("got %d %s\nwant %d %s", res.StatusCode, got, tt.status, tt.want)
			}
		})
	}
}

// TestUpstreamReasonRedacted checks that what passes of an upstream's
// rejection holds no key, token or prompt, is capped, and passes only for
// 400 and 422.
func TestUpstreamReasonRedacted(t *testing.T) {
	const prompt = "my secret plan for the launch"
	long := "Bad request with key upstream-key-42 from caller tok-caller-1 (sk-proj-abcdef123456) about '" + prompt + "'. " + strings.Repeat("more detail ", 40)
	tests := map[string]struct {
		status   int
		withText bool
	}{
		"400": {400, true},
		"422": {422, true},
		"404": {404, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := upstreamtest.New(upstreamtest.Error(tt.status, long, "invalid_request_error", "", ""))
			t.Cleanup(up.Close)
			srv, _ := relay(t, up.BaseURL(), func(c *handler.Config) {
				c.APIKey = "upstream-key-42"
				c.Tokens = []string{"tok-caller-1"}
			})
			req, _ := http.NewRequest("POST", srv.URL+"/message/stream", strings.NewReader(`{"prompt":"`+prompt+`"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer tok-caller-1")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body struct {
				Error struct{ Code, Message string }
			}
			json.NewDecoder(res.Body).Decode(&body)
			msg := body.Error.Message
			for _, secret := range []string{"upstream-key-42", "tok-caller-1", "sk-proj", prompt} {
				if strings.Contains(msg, secret) {
					t.Errorf("the answer holds %q: %s", secret, msg)
				}
			}
			reason, found := strings.CutPrefix(msg, "The model server rejected the request (status "+name[:3]+"): ")
			switch {
			case res.StatusCode != 502 || body.Error.Code != "upstream_rejected":
				t.Errorf("got %d %s, want 502 upstream_rejected", res.StatusCode, body.Error.Code)
			case tt.withText && (!found || !strings.HasPrefix(reason, "invalid_request_error: Bad request with key [redacted] from caller [redacted] ([redacted]) about '[redacted]'.") || len([]rune(reason)) != 200):
				t.Errorf("reason = %q (%d characters); want the upstream's, redacted, in 200 characters", reason, len([]rune(reason)))
			case !tt.withText && msg != "The model server rejected the request (status 404).":
				t.Errorf("message = %q; want no upstream text for a 404", msg)
			}
		})
	}
}
