// Package handler is the relay's HTTP side: POST /message/stream, which
// streams an upstream model's answer as plain-text lines, plus health
// checks, metrics and the frontend.
package handler

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"streamrelay/internal/redact"
	"streamrelay/limit"
	"streamrelay/stream"
)

// Handler serves the relay's HTTP API.
type Handler struct {
	cfg     Config
	client  openai.Client
	log     *slog.Logger
	tokens  tokenSet
	limiter limit.Admitter
	metrics *metrics
	relay   *stream.Relay

	redactor *redact.Redactor
	hosts    hostSet
	proxies  *proxyWatch
}

// New returns the relay's HTTP handler, sending upstream requests through
// client. Zero fields of cfg take their defaults.
func New(cfg Config, client openai.Client) (http.Handler, error) {
	cfg = cfg.WithDefaults()
	if cfg.FrontendDir != "" {
		cfg.Frontend = os.DirFS(cfg.FrontendDir)
	}
	h := &Handler{
		cfg:     cfg,
		client:  client,
		log:     cfg.Logger,
		tokens:  newTokenSet(cfg.Tokens),
		limiter: cfg.Limiter,
		metrics: newMetrics(),
		relay: &stream.Relay{
			FirstEventTimeout: cfg.FirstEventTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			Deadline:          cfg.StreamDeadline,
			WriteTimeout:      cfg.WriteTimeout,
			MaxEventBytes:     cfg.MaxEventBytes,
			AbortGrace:        abortGrace,
		},

		redactor: redact.New(append([]string{cfg.APIKey}, cfg.Tokens...)...),
		hosts:    newHostSet(cfg.AllowedHosts),
		proxies:  newProxyWatch(cfg.TrustedProxies),
	}
	if h.cfg.AuthFailures == nil && cfg.AuthFailuresPerMinute > 0 {
		h.cfg.AuthFailures = limit.NewFailures(cfg.AuthFailuresPerMinute)
	}
	if h.limiter == nil {
		h.limiter = limit.New(cfg.Limits)
	}
	h.metrics.countOpen(h.limiter.Open)
	for _, c := range cfg.Collectors {
		if err := h.metrics.registry.Register(c); err != nil {
			return nil, err
		}
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	r.Use(h.logRequests, h.recoverPanics, h.bound, h.watchForwarded, h.checkHost, h.cors)
	r.POST("/message/stream", h.authenticate, h.admit, h.stream)
	r.GET("/config", h.config)
	r.GET("/healthz", h.health)
	r.GET("/readyz", h.ready)
	r.GET("/metrics", h.authenticate, gin.WrapH(promhttp.HandlerFor(h.metrics.registry, promhttp.HandlerOpts{})))
	r.NoMethod(func(c *gin.Context) { writeError(c, errMethodNotAllowed) })
	r.NoRoute(h.frontend)
	return r, nil
}

// upstreamKind says what the upstream is, for the health checks.
func (h *Handler) upstreamKind() string {
	if h.cfg.Demo {
		return "demo"
	}
	return "openai-compatible"
}

// health answers GET /healthz: the process is alive.
func (h *Handler) health(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok", "upstream": h.upstreamKind(), "model": h.cfg.Model})
}

// ready answers GET /readyz: configured and able to take streams. A
// dependency that is down makes the status degraded, not unready: streams
// still work without it (limits fail open), and an instance taken out of
// its load balancer for it would help no one.
func (h *Handler) ready(c *gin.Context) {
	body := gin.H{"status": "ready", "upstream": h.upstreamKind(), "model": h.cfg.Model}
	for name, check := range h.cfg.Dependencies {
		ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
		body[name] = "up"
		if check(ctx) != nil {
			body[name], body["status"] = "down", "degraded"
		}
		cancel()
	}
	c.JSON(http.StatusOK, body)
}

// admit applies the rate and concurrency limits before any upstream call,
// and holds the stream's slot until the request ends.
func (h *Handler) admit(c *gin.Context) {
	release, err := h.limiter.Admit(c.GetString(callerKey), time.Now())
	var rejection *limit.Rejection
	if errors.As(err, &rejection) {
		recordOf(c).rejectedBy = rejection.Limit
		writeError(c, tooMany(rejection))
		return
	}
	defer release()
	c.Next()
}

// stream answers POST /message/stream: the relay runs the stream, and its
// outcome goes to the request's record through the outcome table.
func (h *Handler) stream(c *gin.Context) {
	rec := recordOf(c)
	params, e := h.readRequest(c)
	if e != nil {
		writeError(c, e)
		return
	}
	var upstream *http.Response // the upstream's response, once it came
	open := func(ctx context.Context) (*http.Response, error) {
		s := h.client.Chat.Completions.NewStreaming(ctx, *params, option.WithResponseInto(&upstream))
		return upstream, s.Err()
	}
	began := time.Now()
	res := h.relay.Run(c.Request.Context(), c.Writer, open)
	rec.result(res, began)
	row := outcomes[res.Outcome]
	switch {
	case res.Cut():
		// After the first line the status can't change: end the body
		// abruptly, without its terminating chunk, so that the client sees
		// it is incomplete.
		panic(http.ErrAbortHandler)
	case res.Committed:
	case row.status == statusFromUpstream:
		e := h.withUpstreamReason(startError(res.Err, upstream), res.Err, params)
		rec.upstreamError = e.Code
		writeError(c, e)
	case row.answer != nil:
		writeError(c, row.answer)
	default:
		c.AbortWithStatus(row.status)
	}
}

// abortGrace is how long a failed stream's last lines get to reach the
// client before the connection is cut: Chromium drops the bytes that arrive
// together with the connection's end instead of handing them to the page.
const abortGrace = 100 * time.Millisecond
