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
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"streamrelay/internal/limit"
	"streamrelay/internal/redact"
	"streamrelay/resume"
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
	resume  resume.Store

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
			KeepAlive:         max(0, cfg.KeepAliveInterval),
		},
		resume: cfg.Resume,

		redactor: redact.New(append([]string{cfg.APIKey}, cfg.Tokens...)...),
		hosts:    newHostSet(cfg.AllowedHosts),
		proxies:  newProxyWatch(cfg.TrustedProxies),
	}
	if h.cfg.AuthFailures == nil && cfg.AuthFailuresPerMinute > 0 {
		h.cfg.AuthFailures = limit.NewFailures(cfg.AuthFailuresPerMinute)
	}
	if h.resume == nil {
		h.resume = resume.NewMemory(resume.Limits{TTL: cfg.ResumeTTL, MaxBytes: cfg.ResumeMaxBytes, Memory: cfg.ResumeMemory})
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
	r.GET("/message/stream/:id", h.authenticate, h.follow)
	r.GET("/message/stream/:id/status", h.authenticate, h.status)
	r.DELETE("/message/stream/:id", h.authenticate, h.cancelStream)
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
// and holds the stream's slot until the request ends, or, for a stream
// that goes on without it (Prefer: respond-async), until that stream
// ends: see keepSlot.
func (h *Handler) admit(c *gin.Context) {
	release, err := h.limiter.Admit(c.GetString(callerKey), time.Now())
	var rejection *limit.Rejection
	if errors.As(err, &rejection) {
		recordOf(c).rejectedBy = rejection.Limit
		writeError(c, tooMany(rejection))
		return
	}
	slot := &slot{release: release}
	c.Set(slotKey, slot)
	defer slot.free()
	c.Next()
}

const slotKey = "streamrelay.slot"

// slot is a stream's admission, released once.
type slot struct {
	release func()
	kept    bool
}

// free releases the slot when the request ends, unless keepSlot took it.
func (s *slot) free() {
	if !s.kept {
		s.release()
	}
}

// keepSlot takes the request's admission slot out of the request, for a
// stream that outlives it, and returns what releases it.
func keepSlot(c *gin.Context) func() {
	v, _ := c.Get(slotKey)
	s, ok := v.(*slot)
	if !ok {
		return func() {}
	}
	s.kept = true
	return s.release
}

// stream answers POST /message/stream: the relay runs the stream, and its
// outcome goes to the request's record through the outcome table. Every
// stream gets an id and a replay log, so that it can be resumed.
func (h *Handler) stream(c *gin.Context) {
	req, e := h.readRequest(c)
	if e != nil {
		writeError(c, e)
		return
	}
	st := h.newStream(c, req)
	if st == nil {
		return
	}
	if preferAsync(c.GetHeader("Prefer")) {
		h.startDetached(c, st)
		return
	}
	enc := stream.Negotiate(c.GetHeader("Accept"))
	opts := stream.Options{Encoder: enc, Stop: st.stop}
	if st.log != nil {
		c.Header("X-Stream-ID", st.id)
		opts.Tee = st.log
		if req.resumable {
			opts.Grace = max(0, h.cfg.ResumeGrace)
		}
	}
	began := time.Now()
	res := h.relay.RunWith(c.Request.Context(), c.Writer, st.open, opts)
	rec := recordOf(c)
	rec.result(res, began)
	ending := h.finish(st, res)
	row := outcomes[res.Outcome]
	switch {
	case res.Detached:
	case res.Committed && (res.Cut() || res.Outcome == stream.Completed):
		if h.endInBand(c, enc, ending) || res.Outcome == stream.Completed {
			return
		}
		// After the first line the status can't change: end the body
		// abruptly, without its terminating chunk, so that the client sees
		// it is incomplete.
		panic(http.ErrAbortHandler)
	case row.status == statusFromUpstream:
		e := h.withUpstreamReason(startError(res.Err, st.upstream), res.Err, req.params)
		rec.upstreamError = e.Code
		writeError(c, e)
	case row.answer != nil:
		writeError(c, row.answer)
	default:
		c.AbortWithStatus(row.status)
	}
}

// liveStream is one stream being generated: its id, its replay log, and
// what stops it.
type liveStream struct {
	id       string
	log      resume.Log
	stop     context.Context // done when a DELETE came
	cancel   context.CancelCauseFunc
	open     stream.Open
	upstream *http.Response // the upstream's response, once it came
}

// newStream gives a new stream its id and replay log. When the store
// fails, a stream the client reads runs without a log (a relay answers
// before it keeps a replay), and one that must be attached to later
// (Prefer: respond-async) is refused: newStream then answers with the
// error and returns nil.
func (h *Handler) newStream(c *gin.Context, req *request) *liveStream {
	st := &liveStream{id: resume.NewID()}
	st.stop, st.cancel = context.WithCancelCause(context.Background())
	log, err := h.resume.Create(c.Request.Context(), st.id, ownerOf(c), func() { st.cancel(stream.ErrCancelled) })
	if err != nil {
		// Debug: a store on Redis says once that Redis is down, and
		// counts each stream it could not keep.
		h.log.Debug("resume store failed; the stream can't be resumed", "error", err)
		if preferAsync(c.GetHeader("Prefer")) {
			writeError(c, errResumeUnavailable)
			return nil
		}
	}
	st.log = log
	params := req.params
	st.open = func(ctx context.Context) (*http.Response, error) {
		s := h.client.Chat.Completions.NewStreaming(ctx, *params, option.WithResponseInto(&st.upstream))
		return st.upstream, s.Err()
	}
	return st
}

// finish writes how the stream ended into its log, and returns it for an
// encoder that says so in-band.
func (h *Handler) finish(st *liveStream, res stream.Result) stream.Ending {
	st.cancel(nil)
	ending := stream.Ending{FinishReason: res.FinishReason}
	if res.Usage != (stream.Usage{}) {
		ending.Usage = &res.Usage
	}
	end := resume.End{State: resume.Completed, FinishReason: res.FinishReason}
	if ending.Usage != nil {
		end.Usage = &resume.Usage{PromptTokens: res.Usage.PromptTokens, CompletionTokens: res.Usage.CompletionTokens}
	}
	if res.Outcome != stream.Completed {
		e := midStreamError(res, st.upstream)
		ending.Code, ending.Message = e.Code, e.Message
		end.State, end.Error = resume.Failed, &resume.Error{Code: e.Code, Message: e.Message}
		if res.Outcome == stream.Cancelled {
			end.State = resume.Cancelled
		}
	}
	if st.log == nil {
		return ending
	}
	if err := st.log.Finish(end); err != nil {
		h.log.Warn("resume store failed", "error", err)
	}
	return ending
}

// endInBand writes the end of a stream in the encoder's framing, and
// reports whether it could: SSE says done or error in-band, plain text
// can only end cleanly or be cut.
func (h *Handler) endInBand(c *gin.Context, enc stream.Encoder, ending stream.Ending) bool {
	end := enc.AppendEnd(nil, ending)
	if len(end) == 0 {
		return false
	}
	c.Writer.Write(end)
	c.Writer.Flush()
	return true
}

// preferAsync reports whether a Prefer header asks for respond-async
// (RFC 7240).
func preferAsync(prefer string) bool {
	for _, p := range strings.Split(prefer, ",") {
		name, _, _ := strings.Cut(p, ";")
		if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
			return true
		}
	}
	return false
}

// startDetached answers 202 at once and generates in the background, for a
// client (EventSource) that attaches with a GET. Nobody attaching within
// the grace period stops it.
func (h *Handler) startDetached(c *gin.Context, st *liveStream) {
	opts := stream.Options{Tee: st.log, Stop: st.stop, Detached: true, Grace: max(time.Millisecond, h.cfg.ResumeGrace)}
	ctx := context.WithoutCancel(c.Request.Context())
	release := keepSlot(c) // the stream counts against the limits while it runs
	go func() {
		defer release()
		res := h.relay.RunWith(ctx, discard{}, st.open, opts)
		h.finish(st, res)
	}()
	url := "/message/stream/" + st.id
	c.Header("Location", url)
	c.Header("X-Stream-ID", st.id)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusAccepted, gin.H{"id": st.id, "url": url})
}

// discard is the response writer of a stream without a client.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

// abortGrace is how long a failed stream's last lines get to reach the
// client before the connection is cut: Chromium drops the bytes that arrive
// together with the connection's end instead of handing them to the page.
const abortGrace = 100 * time.Millisecond
