package handler

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"streamrelay/stream"
)

// Causes for cancelling a stream's upstream request, kept in its context.
var (
	errFirstEventTimeout = errors.New("no first event from the upstream within the first-event timeout")
	errIdleTimeout       = errors.New("no chunk from the upstream within the idle timeout")
	errStreamDeadline    = errors.New("the stream ran past its deadline")
	// ErrShutdown is the cause the server cancels streams with when it stops.
	ErrShutdown = errors.New("the server is shutting down")
)

// watchdog wraps an upstream stream and cancels its request when the
// upstream stays silent: longer than first before the first chunk, longer
// than idle between chunks.
type watchdog struct {
	stream.Chunks
	timer   *time.Timer
	idle    time.Duration
	started atomic.Bool
}

// newWatchdog starts the first-event timer, before the request is sent, so
// that it covers the SDK's connect and retries; set Chunks once there is a
// stream. cancel is the upstream request's cancel.
func newWatchdog(first, idle time.Duration, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{idle: idle}
	w.timer = time.AfterFunc(first, func() {
		if w.started.Load() {
			cancel(errIdleTimeout)
		} else {
			cancel(errFirstEventTimeout)
		}
	})
	return w
}

// Next reads the next chunk and restarts the idle timer.
func (w *watchdog) Next() bool {
	if !w.Chunks.Next() {
		return false
	}
	w.started.Store(true)
	w.timer.Reset(w.idle)
	return true
}

// stop ends the watch; call it once the stream is over.
func (w *watchdog) stop() { w.timer.Stop() }

// outcome says how a stream ended, for logs and metrics.
type outcome string

const (
	outcomeCompleted     outcome = "completed"
	outcomeClientAbort   outcome = "client_abort"
	outcomeUpstreamError outcome = "upstream_error"
	outcomeTimeout       outcome = "timeout"
	outcomeShutdown      outcome = "shutdown"
	outcomeRejected      outcome = "rejected" // answered with an error before streaming
	outcomePanic         outcome = "panic"
)

// classify tells why a stream failed: the client left, the server is
// stopping, one of our timeouts, or the upstream itself.
func classify(ctx, reqCtx context.Context) outcome {
	switch cause := context.Cause(ctx); {
	case errors.Is(context.Cause(reqCtx), ErrShutdown):
		return outcomeShutdown
	case reqCtx.Err() != nil:
		return outcomeClientAbort
	case errors.Is(cause, errFirstEventTimeout), errors.Is(cause, errIdleTimeout), errors.Is(cause, errStreamDeadline):
		return outcomeTimeout
	}
	return outcomeUpstreamError
}

// startError turns a failure before the first upstream event into the
// answer for the client. res is the upstream's response, if one came.
func startError(err error, out outcome, res *http.Response) *apiError {
	switch out {
	case outcomeShutdown:
		return &apiError{Status: http.StatusServiceUnavailable, Code: "shutting_down",
			Message: "The server is shutting down; try again shortly."}
	case outcomeTimeout:
		return &apiError{Status: http.StatusGatewayTimeout, Code: "upstream_timeout",
			Message: "The model server did not start answering in time."}
	}
	var apiErr *openai.Error
	status := 0
	if errors.As(err, &apiErr) {
		status = apiErr.StatusCode
	} else if res != nil && res.StatusCode >= 400 {
		status = res.StatusCode
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return upstreamFailed("upstream_auth_failed", "The model server rejected this relay's credentials.")
	case status == http.StatusTooManyRequests:
		return &apiError{Status: http.StatusTooManyRequests, Code: "upstream_rate_limited",
			Message: "The model server is rate limiting this relay; try again later.", RetryAfter: retryAfter(res)}
	case status >= 500:
		return upstreamFailed("upstream_error", "The model server failed (status "+strconv.Itoa(status)+").")
	case status >= 400:
		return upstreamFailed("upstream_rejected", "The model server rejected the request (status "+strconv.Itoa(status)+").")
	}
	var streamErr *ssestream.StreamError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &streamErr):
		return upstreamFailed("upstream_error", "The model server answered with an error.")
	case errors.As(err, &syntaxErr):
		return upstreamFailed("upstream_malformed", "The model server sent a chunk that is not valid JSON.")
	case errors.Is(err, stream.ErrNoChunks):
		return upstreamFailed("upstream_empty", "The model server ended its answer before sending anything.")
	case res != nil:
		return upstreamFailed("upstream_error", "The model server's answer could not be read.")
	}
	return upstreamFailed("upstream_unreachable", "The model server could not be reached.")
}

func upstreamFailed(code, message string) *apiError {
	return &apiError{Status: http.StatusBadGateway, Code: code, Message: message}
}

// retryAfter returns the upstream's wait in whole seconds, or "" if it gave
// none that makes sense. It reads Retry-After (seconds or an HTTP date) and
// OpenAI's Retry-After-Ms.
func retryAfter(res *http.Response) string {
	if res == nil {
		return ""
	}
	if ms, err := strconv.ParseFloat(res.Header.Get("Retry-After-Ms"), 64); err == nil && ms >= 0 && ms < 1e9 {
		return strconv.Itoa(int(math.Ceil(ms / 1000)))
	}
	v := res.Header.Get("Retry-After")
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return strconv.Itoa(s)
	}
	if t, err := http.ParseTime(v); err == nil {
		return strconv.Itoa(max(0, int(math.Ceil(time.Until(t).Seconds()))))
	}
	return ""
}
