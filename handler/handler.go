// Package handler is the relay's HTTP side: POST /message/stream, which
// streams an upstream model's answer as plain-text lines, plus health
// checks, metrics and the frontend.
package handler

import (
	"context"
	"errors"
	"io"
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
	limiter *limit.Limiter
	metrics *metrics

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
		limiter: limit.New(cfg.Limits),
		metrics: newMetrics(),

		redactor: redact.New(append([]string{cfg.APIKey}, cfg.Tokens...)...),
		hosts:    newHostSet(cfg.AllowedHosts),
		proxies:  newProxyWatch(cfg.TrustedProxies),
	}
	if h.cfg.AuthFailures == nil && cfg.AuthFailuresPerMinute > 0 {
		h.cfg.AuthFailures = limit.NewFailures(cfg.AuthFailuresPerMinute)
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

// ready answers GET /readyz: configured and able to take streams.
func (h *Handler) ready(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ready", "upstream": h.upstreamKind(), "model": h.cfg.Model})
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
	h.metrics.active.Inc()
	defer func() {
		h.metrics.active.Dec()
		release()
	}()
	c.Next()
}

// stream answers POST /message/stream.
func (h *Handler) stream(c *gin.Context) {
	rec := recordOf(c)
	params, e := h.readRequest(c)
	if e != nil {
		writeError(c, e)
		return
	}
	reqCtx := c.Request.Context()
	ctx, cancel := context.WithCancelCause(reqCtx)
	defer cancel(nil)
	ctx, cancelDeadline := context.WithTimeoutCause(ctx, h.cfg.StreamDeadline, errStreamDeadline)
	defer cancelDeadline()

	upstream := h.callUpstream(ctx, params, cancel)
	defer upstream.stop()
	defer upstream.Close()

	relay := stream.NewRelay(upstream)
	if err := relay.Start(); err != nil {
		rec.fail(classify(ctx, reqCtx), withCause(ctx, err))
		e := h.withUpstreamReason(startError(err, rec.outcome, upstream.res), err, params)
		if rec.outcome != outcomeClientAbort && rec.outcome != outcomeShutdown {
			rec.upstreamError = e.Code
		}
		writeError(c, e)
		return
	}
	rec.firstEvent = time.Since(rec.start)
	defer func() { rec.duration = time.Since(rec.start) }()

	header := c.Writer.Header()
	header.Set("Content-Type", "text/plain; charset=utf-8")
	header.Set("Cache-Control", "no-cache")
	header.Set("X-Accel-Buffering", "no")
	header.Set("X-Content-Type-Options", "nosniff")
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	out := &clientWriter{w: c.Writer, rc: rc, timeout: h.cfg.WriteTimeout}
	defer out.close()
	err := rc.Flush()
	if err == nil {
		err = relay.Copy(out, rc.Flush)
	}
	rec.lines, rec.bytes, rec.usage = relay.Lines, relay.Bytes, relay.Usage
	if !out.first.IsZero() {
		rec.firstLine = out.first.Sub(rec.start)
	}
	if err == nil {
		rec.outcome = outcomeCompleted
		return
	}
	var writeErr *stream.WriteError
	if errors.As(err, &writeErr) {
		rec.fail(outcomeClientAbort, err)
	} else {
		rec.fail(classify(ctx, reqCtx), withCause(ctx, err))
		rec.upstreamError = midStreamKind(rec.outcome, err)
	}
	// After the first line the status can't change: end the body abruptly,
	// without its terminating chunk, so the client sees it is incomplete.
	// A client still there gets a moment first: Chromium drops the bytes
	// that arrive together with the connection's end instead of handing
	// them to the page's reader.
	if rec.outcome != outcomeClientAbort {
		time.Sleep(abortGrace)
	}
	panic(http.ErrAbortHandler)
}

// abortGrace is how long a failed stream's last lines get to reach the
// client before the connection is cut.
const abortGrace = 100 * time.Millisecond

// upstreamCall is one streaming request to the upstream, watched for
// silence.
type upstreamCall struct {
	*watchdog
	res *http.Response // the upstream's response, once it came
}

// callUpstream sends the upstream request; the first-event timeout runs
// from here, so that it covers the SDK's connect and retries.
func (h *Handler) callUpstream(ctx context.Context, params *openai.ChatCompletionNewParams, cancel context.CancelCauseFunc) *upstreamCall {
	call := &upstreamCall{watchdog: newWatchdog(h.cfg.FirstEventTimeout, h.cfg.IdleTimeout, cancel)}
	call.Chunks = h.client.Chat.Completions.NewStreaming(ctx, *params, option.WithResponseInto(&call.res))
	return call
}

// midStreamKind names a failure after the first event for the metrics.
func midStreamKind(out outcome, err error) string {
	switch {
	case out == outcomeClientAbort || out == outcomeShutdown:
		return ""
	case out == outcomeTimeout:
		return "midstream_timeout"
	case errors.Is(err, stream.ErrTruncated):
		return "midstream_truncated"
	}
	return "midstream_read"
}

// clientWriter writes the stream to the client. It keeps a write deadline
// a little ahead of each write, so a client that stops reading can't hold a
// stream forever while a long, slow stream is never cut, and notes when the
// first line went out.
type clientWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
	setAt   time.Time // when the deadline was last moved
	first   time.Time
}

func (cw *clientWriter) Write(p []byte) (int, error) {
	now := time.Now()
	if cw.first.IsZero() {
		cw.first = now
	}
	// Moving the deadline on every line would cost a little on the hot
	// path; moving it every eighth of the timeout is as good.
	if cw.timeout > 0 && now.Sub(cw.setAt) > cw.timeout/8 {
		cw.rc.SetWriteDeadline(now.Add(cw.timeout))
		cw.setAt = now
	}
	return cw.w.Write(p)
}

// close lifts the deadline, so a kept-alive connection's next request
// doesn't inherit it.
func (cw *clientWriter) close() {
	if !cw.setAt.IsZero() {
		cw.rc.SetWriteDeadline(time.Time{})
	}
}
