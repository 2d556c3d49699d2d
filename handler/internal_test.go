package handler

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestTokenSetHoldsDigests checks what makes the comparison constant-time:
// every stored token is a fixed-size digest, compared in full each time.
func TestTokenSetHoldsDigests(t *testing.T) {
	set := newTokenSet([]string{"short", strings.Repeat("long", 100)})
	for _, tok := range []string{"short", strings.Repeat("long", 100)} {
		if _, ok := set.match(tok); !ok {
			t.Errorf("%q not matched", tok)
		}
	}
	for _, tok := range []string{"", "shor", "short ", "SHORT", strings.Repeat("long", 99)} {
		if _, ok := set.match(tok); ok {
			t.Errorf("%q matched", tok)
		}
	}
	name, _ := set.match("short")
	if strings.Contains(name, "short") || !strings.HasPrefix(name, "token:") {
		t.Errorf("caller name %q gives the token away", name)
	}
}

// TestRecoverPanics checks that a panicking handler answers 500 JSON
// without internals, and that the server goes on.
func TestRecoverPanics(t *testing.T) {
	h := &Handler{log: discardLogger(), metrics: newMetrics()}
	r := gin.New()
	r.Use(h.logRequests, h.recoverPanics)
	r.GET("/boom", func(*gin.Context) { panic("secret internal detail") })
	r.GET("/fine", func(c *gin.Context) { c.String(200, "fine") })
	srv := httptest.NewServer(r)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var e struct{ Error apiError }
	if res.StatusCode != 500 || json.Unmarshal(body, &e) != nil || e.Error.Code != "internal_error" || strings.Contains(string(body), "secret") {
		t.Errorf("panic answered %d %s", res.StatusCode, body)
	}
	res, err = http.Get(srv.URL + "/fine")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("after a panic: %v", err)
	}
	res.Body.Close()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
