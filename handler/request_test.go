package handler_test

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"streamrelay/internal/upstreamtest"
)

func TestBadRequests(t *testing.T) {
	up := upstreamtest.New(upstreamtest.Events(upstreamtest.Answer("never")...)...)
	defer up.Close()
	srv, _ := relay(t, up.BaseURL(), nil)
	big := `{"prompt":"` + strings.Repeat("x", 2000) + `"}`
	tests := map[string]struct {
		contentType, body string
		status            int
		code              string
	}{
		"not json":              {"application/json", `{"prompt":`, 400, "invalid_json"},
		"trailing garbage":      {"application/json", `{"prompt":"a"} x`, 400, "invalid_json"},
		"not an object":         {"application/json", `["a"]`, 400, "invalid_json"},
		"empty body":            {"application/json", ``, 400, "invalid_json"},
		"no prompt":             {"application/json", `{}`, 400, "missing_prompt"},
		"null prompt":           {"application/json", `{"prompt":null}`, 400, "missing_prompt"},
		"empty prompt":          {"application/json", `{"prompt":""}`, 400, "empty_prompt"},
		"blank prompt":          {"application/json", `{"prompt":" \n\t"}`, 400, "empty_prompt"},
		"prompt not a string":   {"application/json", `{"prompt":42}`, 400, "invalid_field"},
		"prompt and messages":   {"application/json", `{"prompt":"a","messages":[{"role":"user","content":"b"}]}`, 400, "prompt_and_messages"},
		"messages not an array": {"application/json", `{"messages":"hi"}`, 400, "invalid_field"},
		"empty messages":        {"application/json", `{"messages":[]}`, 400, "empty_messages"},
		"bad role":              {"application/json", `{"messages":[{"role":"tool","content":"b"}]}`, 400, "invalid_role"},
		"no content":            {"application/json", `{"messages":[{"role":"user"}]}`, 400, "invalid_message"},
		"content not a string":  {"application/json", `{"messages":[{"role":"user","content":[1]}]}`, 400, "invalid_field"},
		"no user text":          {"application/json", `{"messages":[{"role":"system","content":"be nice"}]}`, 400, "empty_prompt"},
		"model not allowed":     {"application/json", `{"prompt":"a","model":"gpt-9"}`, 400, "model_not_allowed"},
		"model not a string":    {"application/json", `{"prompt":"a","model":1}`, 400, "invalid_field"},
		"max_tokens zero":       {"application/json", `{"prompt":"a","max_tokens":0}`, 400, "invalid_max_tokens"},
		"max_tokens negative":   {"application/json", `{"prompt":"a","max_tokens":-5}`, 400, "invalid_max_tokens"},
		"max_tokens fraction":   {"application/json", `{"prompt":"a","max_tokens":1.5}`, 400, "invalid_field"},
		"max_tokens over cap":   {"application/json", `{"prompt":"a","max_tokens":1001}`, 400, "max_tokens_too_large"},
		"max_tokens a string":   {"application/json", `{"prompt":"a","max_tokens":"5"}`, 400, "invalid_field"},
		"temperature too high":  {"application/json", `{"prompt":"a","temperature":2.5}`, 400, "invalid_temperature"},
		"temperature negative":  {"application/json", `{"prompt":"a","temperature":-0.1}`, 400, "invalid_temperature"},
		"body over the limit":   {"application/json", big, 413, "body_too_large"},
		"form content type":     {"application/x-www-form-urlencoded", `{"prompt":"a"}`, 415, "unsupported_media_type"},
		"text content type":     {"text/plain", `{"prompt":"a"}`, 415, "unsupported_media_type"},
		"no content type":       {"", `{"prompt":"a"}`, 415, "unsupported_media_type"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/message/stream", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			decodeError(t, res, tt.status, tt.code)
		})
	}
	if n := up.Requests.Load(); n != 0 {
		t.Errorf("bad requests reached the upstream %d times", n)
	}
}

// TestBodyLimitWhileReading sends an over-limit body without a length, so
// the limit must be enforced while reading.
func TestBodyLimitWhileReading(t *testing.T) {
	srv, _ := relay(t, "http://127.0.0.1:1/v1/", nil)
	pr := strings.NewReader(`{"prompt":"` + strings.Repeat("y", 5000) + `"}`)
	req, _ := http.NewRequest("POST", srv.URL+"/message/stream", struct{ *strings.Reader }{pr})
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.ContentLength = -1
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	decodeError(t, res, 413, "body_too_large")
}

func TestMethodNotAllowed(t *testing.T) {
	srv, _ := relay(t, "http://127.0.0.1:1/v1/", nil)
	for _, method := range []string{"GET", "PUT", "DELETE", "PATCH"} {
		req, _ := http.NewRequest(method, srv.URL+"/message/stream", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		decodeError(t, res, 405, "method_not_allowed")
		if got := res.Header.Get("Allow"); got != "POST" {
			t.Errorf("%s: Allow = %q, want POST", method, got)
		}
		res.Body.Close()
	}
}

// TestNoGoroutineLeaks runs 100 streams, some cut off by their clients,
// and checks that every goroutine they started is gone.
func TestNoGoroutineLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	up := upstreamtest.New(upstreamtest.Events(upstreamtest.Answer("a", "b\n", "c")...)...)
	srv, _ := relay(t, up.BaseURL(), nil)
	for i := range 100 {
		res := post(t, srv.URL, `{"prompt":"hi"}`)
		if i%3 == 0 {
			res.Body.Close() // leave early
			continue
		}
		if body := readAll(t, res); body != "a\nb<br />\nc\n" {
			t.Fatalf("stream %d: body = %q", i, body)
		}
	}
	srv.Close()
	up.Close()
	http.DefaultClient.CloseIdleConnections()
}
