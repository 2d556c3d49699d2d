package handler

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"streamrelay/stream"
)

// record is what the request log line says about one request.
type record struct {
	start         time.Time
	firstEvent    time.Duration // until the upstream's first event
	firstLine     time.Duration // until the first line went to the client
	duration      time.Duration // of the stream, once it started
	lines         int64
	bytes         int64
	usage         stream.Usage
	outcome       outcome
	level         slog.Level // of the request's log line
	err           error
	upstreamError string   // the kind of upstream failure, for the metrics
	rejectedBy    string   // the limit that refused the request
	texts         []string // the request's prompt and messages, to keep out of the log
}

// outcome says how a request ended, for logs and metrics: a stream's
// outcome label from the outcome table, or one of these.
type outcome string

const (
	outcomeRejected outcome = "rejected" // answered with an error before streaming
	outcomePanic    outcome = "panic"
)

// fail notes how and why a request failed.
func (r *record) fail(out outcome, err error) {
	r.outcome, r.err = out, err
}

// result notes how a stream went, through the outcome table. began is when
// the relay started, to count its times from the request's start.
func (r *record) result(res stream.Result, began time.Time) {
	row := outcomes[res.Outcome]
	r.fail(outcome(row.label), res.Err)
	r.level, r.upstreamError = row.level, row.kind
	r.lines, r.bytes, r.usage = res.Lines, res.Bytes, res.Usage
	offset := began.Sub(r.start)
	if res.FirstEvent > 0 {
		r.firstEvent = offset + res.FirstEvent
		r.duration = time.Since(r.start)
	}
	if res.FirstLine > 0 {
		r.firstLine = offset + res.FirstLine
	}
}

const recordKey = "streamrelay.record"

// recordOf returns the request's record, which logRequests put there.
func recordOf(c *gin.Context) *record {
	if v, ok := c.Get(recordKey); ok {
		return v.(*record)
	}
	return &record{start: time.Now()}
}

// requestIDPattern is what an incoming X-Request-ID must look like to be kept.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// logRequests gives each request an ID, echoed in X-Request-ID, and writes
// one log line when it ends, however it ends: even when the handler aborts
// the response by panicking. Prompts, answers and keys are never logged,
// nor upstream text verbatim (see errorAttrs).
func (h *Handler) logRequests(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !requestIDPattern.MatchString(id) {
		id = newRequestID()
	}
	c.Header("X-Request-ID", id)
	rec := &record{start: time.Now()}
	c.Set(recordKey, rec)
	defer func() {
		status := c.Writer.Status()
		if rec.outcome == "" && status >= 400 {
			rec.outcome = outcomeRejected
		}
		attrs := []slog.Attr{
			slog.String("request_id", id),
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.String("client", c.ClientIP()),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(rec.start)),
		}
		if rec.outcome != "" {
			attrs = append(attrs,
				slog.String("outcome", string(rec.outcome)),
				slog.Duration("first_event", rec.firstEvent),
				slog.Duration("first_line", rec.firstLine),
				slog.Int64("lines", rec.lines),
				slog.Int64("bytes", rec.bytes),
				slog.Int64("prompt_tokens", rec.usage.PromptTokens),
				slog.Int64("completion_tokens", rec.usage.CompletionTokens))
		}
		if rec.err != nil {
			attrs = append(attrs, h.errorAttrs(rec.err, rec.texts)...)
		}
		h.log.LogAttrs(c.Request.Context(), rec.level, "request", attrs...)
		route := c.FullPath()
		if route == "" {
			route = "other"
		}
		h.metrics.observe(route, status, rec)
	}()
	c.Next()
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recoverPanics keeps a panicking handler from killing the server or showing
// its internals. Unlike gin.Recovery, it lets http.ErrAbortHandler through,
// so that an aborted stream really ends without its terminating chunk.
func (h *Handler) recoverPanics(c *gin.Context) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		h.log.Error("panic in handler", "panic", p, "stack", string(debug.Stack()))
		recordOf(c).fail(outcomePanic, nil)
		if c.Writer.Written() {
			panic(http.ErrAbortHandler)
		}
		writeError(c, errInternal)
	}()
	c.Next()
}
