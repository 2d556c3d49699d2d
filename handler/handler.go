// Package handler is the relay's HTTP side: POST /message/stream, which
// streams an upstream model's answer as plain-text lines, plus health checks
// and the frontend.
package handler

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"streamrelay/stream"
)

// Config is what the handler needs to know; main fills it from the
// environment.
type Config struct {
	Model        string   // the default model
	Models       []string // the models a request may ask for
	SystemPrompt string   // prepended to every conversation if set
	MaxBodyBytes int64
	MaxTokens    int64 // the cap on max_tokens, and its default
	IncludeUsage bool  // ask the upstream for a usage chunk

	FirstEventTimeout time.Duration // until the upstream's first event
	IdleTimeout       time.Duration // between upstream chunks
	StreamDeadline    time.Duration // for a whole stream

	Demo           bool     // the upstream is the built-in demo
	FrontendDir    string   // the built frontend, served at /
	TrustedProxies []string // whose X-Forwarded-For to believe
	Logger         *slog.Logger
}

// Handler serves the relay's HTTP API.
type Handler struct {
	cfg    Config
	client openai.Client
	log    *slog.Logger
}

// New returns the relay's HTTP handler, sending upstream requests through
// client.
func New(cfg Config, client openai.Client) (http.Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, client: client, log: cfg.Logger}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	r.Use(h.logRequests, h.recoverPanics)
	r.POST("/message/stream", h.stream)
	r.GET("/healthz", h.health)
	r.NoMethod(func(c *gin.Context) { writeError(c, errMethodNotAllowed) })
	r.NoRoute(h.frontend)
	return r, nil
}

// health answers GET /healthz: alive, and whether the upstream is the demo.
func (h *Handler) health(c *gin.Context) {
	upstream := "openai-compatible"
	if h.cfg.Demo {
		upstream = "demo"
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "upstream": upstream, "model": h.cfg.Model})
}

// stream answers POST /message/stream.
func (h *Handler) stream(c *gin.Context) {
	params, e := h.readRequest(c)
	if e != nil {
		writeError(c, e)
		return
	}
	rec := recordOf(c)
	reqCtx := c.Request.Context()
	ctx, cancel := context.WithCancelCause(reqCtx)
	defer cancel(nil)
	ctx, cancelDeadline := context.WithTimeoutCause(ctx, h.cfg.StreamDeadline, errStreamDeadline)
	defer cancelDeadline()

	dog := newWatchdog(h.cfg.FirstEventTimeout, h.cfg.IdleTimeout, cancel)
	defer dog.stop()
	var res *http.Response
	upstream := h.client.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&res))
	defer upstream.Close()

	relay := stream.NewRelay(dog.watch(upstream))
	if err := relay.Start(); err != nil {
		rec.fail(classify(ctx, reqCtx), err)
		writeError(c, startError(err, rec.outcome, res))
		return
	}
	rec.firstEvent = time.Since(rec.start)

	header := c.Writer.Header()
	header.Set("Content-Type", "text/plain; charset=utf-8")
	header.Set("Cache-Control", "no-cache")
	header.Set("X-Accel-Buffering", "no")
	header.Set("X-Content-Type-Options", "nosniff")
	c.Status(http.StatusOK)
	flush := http.NewResponseController(c.Writer).Flush
	err := flush()
	if err == nil {
		err = relay.Copy(c.Writer, flush)
	}
	rec.lines, rec.bytes, rec.usage = relay.Lines, relay.Bytes, relay.Usage
	if err == nil {
		rec.outcome = outcomeCompleted
		return
	}
	var writeErr *stream.WriteError
	if errors.As(err, &writeErr) {
		rec.fail(outcomeClientAbort, err)
	} else {
		rec.fail(classify(ctx, reqCtx), err)
	}
	// After the first line the status can't change: end the body abruptly,
	// without its terminating chunk, so the client sees it is incomplete.
	panic(http.ErrAbortHandler)
}
