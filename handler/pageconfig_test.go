package handler_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"streamrelay/handler"
)

func TestConfigEndpoint(t *testing.T) {
	tests := map[string]struct {
		change func(*handler.Config)
		want   string
	}{
		"demo, open": {
			change: func(c *handler.Config) { c.Demo = true; c.MaxInputChars = 1500; c.MaxMessages = handler.Off },
			want:   `{"model":"test-model","models":["test-model"],"demo":true,"max_input_chars":1500,"max_messages":0,"tokens_required":false}`,
		},
		"tokens and an allowlist": {
			change: func(c *handler.Config) {
				c.Tokens = []string{"s3cret-token"}
				c.Models = []string{"test-model", "other"}
				c.MaxInputChars = 32000
				c.MaxMessages = 100
			},
			want: `{"model":"test-model","models":["test-model","other"],"demo":false,"max_input_chars":32000,"max_messages":100,"tokens_required":true}`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			srv, _ := relay(t, "http://127.0.0.1:1/v1/", func(c *handler.Config) {
				c.Model = "test-model"
				c.Models = nil
				tt.change(c)
			})
			res := do(t, "GET", srv.URL+"/config", "")
			body := readAll(t, res)
			if res.StatusCode != http.StatusOK || body != tt.want {
				t.Errorf("GET /config = %d %s\nwant 200 %s", res.StatusCode, body, tt.want)
			}
			if strings.Contains(body, apiKey) || strings.Contains(body, "s3cret-token") {
				t.Error("/config shows a secret")
			}
		})
	}
}

func TestFrontendFromFS(t *testing.T) {
	pages := fstest.MapFS{
		"index.html":         {Data: []byte("<!doctype html><title>page</title>")},
		"assets/index-a1.js": {Data: []byte("console.log(1)")},
		"favicon.svg":        {Data: []byte("<svg/>")},
	}
	srv, _ := relay(t, "http://127.0.0.1:1/v1/", func(c *handler.Config) { c.Frontend = pages })
	tests := map[string]struct {
		path, status, body, cache string
	}{
		"root":            {"/", "200", "<!doctype html><title>page</title>", "no-cache"},
		"a page path":     {"/chat/123", "200", "<!doctype html><title>page</title>", "no-cache"},
		"an asset":        {"/assets/index-a1.js", "200", "console.log(1)", "public, max-age=31536000, immutable"},
		"a file":          {"/favicon.svg", "200", "<svg/>", ""},
		"missing file":    {"/missing.js", "404", "", ""},
		"api path":        {"/message/other", "404", "", ""},
		"dot-dot refused": {"/../../etc/passwd", "400", "", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res := do(t, "GET", srv.URL+tt.path, "")
			body := readAll(t, res)
			if got := res.Status[:3]; got != tt.status {
				t.Fatalf("status = %s, want %s (%s)", got, tt.status, body)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
			if got := res.Header.Get("Cache-Control"); tt.status == "200" && got != tt.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tt.cache)
			}
			if res.Header.Get("Content-Security-Policy") == "" {
				t.Error("no Content-Security-Policy")
			}
		})
	}
}
