package handler

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/openai/openai-go/v3"

	"streamrelay/stream"
)

// ErrShutdown is the cause the server cancels streams with when it stops.
var ErrShutdown = stream.ErrShutdown

// statusFromUpstream marks an outcome whose status depends on the
// upstream's own error: see startError.
const statusFromUpstream = -1

// outcomeRow is what one stream outcome means for the request's answer,
// metrics and log.
type outcomeRow struct {
	label  string // the log's outcome
	status int    // the answer when nothing was written yet
	answer *apiError
	// midStream is the error a replay's status and an SSE error event
	// carry, for a stream that failed after it started.
	midStream *apiError
	kind      string // the upstream_errors_total kind; "" for none
	level     slog.Level
}

// outcomes is the one table from a stream's outcome to its status, metric
// label and log level. A stream that started answers 200 whatever its
// outcome; its failure cuts the body.
var outcomes = [stream.NumOutcomes]outcomeRow{
	stream.Completed: {label: "completed", status: http.StatusOK, level: slog.LevelInfo},
	stream.ClientGone: {label: string(outcomeClientGone), status: statusClientClosedRequest, midStream: errClientLeft,
		level: slog.LevelInfo},
	stream.ClientLeft: {label: string(outcomeClientAbort), status: http.StatusOK, midStream: errClientLeft,
		level: slog.LevelInfo},
	stream.UpstreamFailed: {label: "upstream_error", status: statusFromUpstream,
		level: slog.LevelWarn}, // kind: the answer's code
	stream.UpstreamTimeout: {label: "timeout", status: http.StatusGatewayTimeout, answer: errUpstreamTimeout,
		kind: "upstream_timeout", level: slog.LevelWarn},
	stream.UpstreamCut: {label: "upstream_error", status: http.StatusOK, midStream: errUpstreamCut,
		kind: "midstream_read", level: slog.LevelWarn},
	stream.UpstreamTruncated: {label: "upstream_error", status: http.StatusOK, midStream: errUpstreamTruncated,
		kind: "midstream_truncated", level: slog.LevelWarn},
	stream.UpstreamStalled: {label: "timeout", status: http.StatusOK, midStream: errUpstreamStalled,
		kind: "midstream_timeout", level: slog.LevelWarn},
	stream.Shutdown: {label: "shutdown", status: http.StatusServiceUnavailable, answer: errShuttingDown,
		level: slog.LevelWarn},
	stream.Cancelled: {label: "cancelled", status: http.StatusConflict, answer: errStreamCancelled,
		level: slog.LevelInfo},
}

// The errors of a stream that failed after it started, as its status and
// an SSE error event give them.
var (
	errClientLeft = &apiError{Code: "client_left",
		Message: "The client went away before the answer was complete."}
	errUpstreamCut = &apiError{Code: "upstream_error",
		Message: "The model server failed in the middle of the answer."}
	errUpstreamTruncated = &apiError{Code: "upstream_truncated",
		Message: "The model server's answer ended before it was complete."}
	errUpstreamStalled = &apiError{Code: "upstream_timeout",
		Message: "The model server stopped sending in the middle of the answer."}
	errStreamCancelled = &apiError{Status: http.StatusConflict, Code: "stream_cancelled",
		Message: "The stream was stopped on request."}
)

// midStreamError returns the error that says why a started stream failed.
// res is its result and upstream the upstream's response, if one came.
func midStreamError(res stream.Result, upstream *http.Response) *apiError {
	row := outcomes[res.Outcome]
	switch {
	case row.midStream != nil:
		return row.midStream
	case row.answer != nil:
		return row.answer
	case row.status == statusFromUpstream:
		return startError(res.Err, upstream)
	}
	return errUpstreamCut
}

// The outcomes that count as the client's doing in the metrics.
const (
	outcomeClientGone  outcome = "client_closed_request"
	outcomeClientAbort outcome = "client_abort"
)

// statusClientClosedRequest is nginx's status for a client that left
// before the answer began; Caddy logs it too.
const statusClientClosedRequest = 499

var (
	errUpstreamTimeout = &apiError{Status: http.StatusGatewayTimeout, Code: "upstream_timeout",
		Message: "The model server did not start answering in time."}
	errShuttingDown = &apiError{Status: http.StatusServiceUnavailable, Code: "shutting_down",
		Message: "The server is shutting down; try again shortly."}
)

// startError turns an upstream's failure before its first event into the
// answer for the client. res is the upstream's response, if one came.
func startError(err error, res *http.Response) *apiError {
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
	var eventErr *stream.EventError
	switch {
	case errors.As(err, &eventErr):
		return upstreamFailed("upstream_error", "The model server answered with an error.")
	case errors.Is(err, stream.ErrMalformedEvent):
		return upstreamFailed("upstream_malformed", "The model server sent a chunk that is not valid JSON.")
	case errors.Is(err, stream.ErrEventTooLarge):
		return upstreamFailed("upstream_event_too_large", "The model server sent a chunk larger than this relay accepts.")
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
