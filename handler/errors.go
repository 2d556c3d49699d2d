package handler

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"streamrelay/internal/limit"
)

// apiError is an error the API answers with: a status and the JSON body
// {"error": {"code": ..., "message": ...}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter, if set, is sent as the Retry-After header.
	RetryAfter string `json:"-"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func badRequest(code, message string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Message: message}
}

// writeError answers with e and stops the handler chain.
func writeError(c *gin.Context, e *apiError) {
	if e.RetryAfter != "" {
		c.Header("Retry-After", e.RetryAfter)
	}
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(e.Status, gin.H{"error": e})
}

var (
	errNotFound = &apiError{Status: http.StatusNotFound, Code: "not_found",
		Message: "There is nothing at this path; the API is POST /message/stream."}
	errMethodNotAllowed = &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
		Message: "This path does not answer that method; see the Allow header."}
	errInternal = &apiError{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "The server failed while handling the request; it has been logged."}
)

// tooMany is the answer to a request refused by a limit.
func tooMany(r *limit.Rejection) *apiError {
	e := &apiError{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(r.RetryAfterSeconds())}
	switch r.Limit {
	case limit.LimitRate:
		e.Code, e.Message = "rate_limited", "Too many requests from this caller; wait for the time in Retry-After."
	case limit.LimitAuthFailures:
		e.Code, e.Message = "too_many_auth_failures", "Too many failed authentications from this address; wait for the time in Retry-After."
	case limit.LimitPerCaller:
		e.Code, e.Message = "too_many_streams", "This caller already has as many streams open as it may; wait for one to end."
	default:
		e.Code, e.Message = "server_busy", "The server is at its limit of open streams; try again shortly."
	}
	return e
}
