package handler

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"streamrelay/resume"
	"streamrelay/stream"
)

// The answers of the resume routes when they can't resume.
var (
	errStreamNotFound = &apiError{Status: http.StatusNotFound, Code: "stream_not_found",
		Message: "There is no stream with this id; it may have expired."}
	errStreamForbidden = &apiError{Status: http.StatusForbidden, Code: "stream_forbidden",
		Message: "This stream belongs to another token."}
	errInvalidFrom = badRequest("invalid_from",
		"The line to resume from is not a whole number up to the lines the stream has.")
	errResumeWindowPassed = &apiError{Status: http.StatusGone, Code: "resume_window_passed",
		Message: "The lines after this point were dropped to save memory; start the stream again."}
	errResumeUnavailable = &apiError{Status: http.StatusServiceUnavailable, Code: "resume_unavailable",
		Message: "Streams can't be resumed just now; try again shortly."}
)

const ownerKey = "streamrelay.owner"

// ownerOf returns who owns the streams the request starts, and may read
// them: its token's full hash when tokens are configured, else "", for an
// open API where the stream id alone is the capability.
func ownerOf(c *gin.Context) string { return c.GetString(ownerKey) }

// lookup finds the stream the path names and checks that the caller may
// see it. It answers with the error itself and returns false when not.
func (h *Handler) lookup(c *gin.Context) (resume.Status, bool) {
	id := c.Param("id")
	if !resume.ValidID(id) {
		writeError(c, errStreamNotFound)
		return resume.Status{}, false
	}
	st, err := h.resume.Status(c.Request.Context(), id)
	if err != nil {
		writeError(c, resumeError(err))
		return resume.Status{}, false
	}
	if st.Owner != ownerOf(c) {
		writeError(c, errStreamForbidden)
		return resume.Status{}, false
	}
	return st, true
}

// resumeError turns a store's error into the answer for the client.
func resumeError(err error) *apiError {
	switch {
	case errors.Is(err, resume.ErrNotFound):
		return errStreamNotFound
	case errors.Is(err, resume.ErrBeyond):
		return errInvalidFrom
	case errors.Is(err, resume.ErrEvicted):
		return errResumeWindowPassed
	}
	return errResumeUnavailable
}

// statusBody is the answer of GET /message/stream/{id}/status.
type statusBody struct {
	State        resume.State  `json:"state"`
	Lines        int64         `json:"lines"`
	FinishReason *string       `json:"finish_reason"`
	Usage        *resume.Usage `json:"usage"`
	Error        *resume.Error `json:"error,omitempty"`
}

// status answers GET /message/stream/{id}/status: how the stream stands or
// ended, which the plain framing can't say in-band.
func (h *Handler) status(c *gin.Context) {
	st, ok := h.lookup(c)
	if !ok {
		return
	}
	body := statusBody{State: st.State, Lines: st.Lines, Usage: st.Usage, Error: st.Error}
	if st.FinishReason != "" {
		body.FinishReason = &st.FinishReason
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, body)
}

// cancelStream answers DELETE /message/stream/{id}: the generation stops,
// and a resume then ends the way a failed stream does.
func (h *Handler) cancelStream(c *gin.Context) {
	if _, ok := h.lookup(c); !ok {
		return
	}
	if err := h.resume.Cancel(c.Request.Context(), c.Param("id")); err != nil {
		writeError(c, resumeError(err))
		return
	}
	c.Status(http.StatusNoContent)
}

// resumeFrom reads where a resume starts: Last-Event-ID, else the from
// parameter, else 0. It returns -1 for a value that is not a count.
func resumeFrom(c *gin.Context) int64 {
	v := c.GetHeader("Last-Event-ID")
	if v == "" {
		v = c.Query("from")
	}
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// follow answers GET /message/stream/{id}: the stream's lines after
// from (or Last-Event-ID), those already there and then live ones, ending
// as the stream ends: cleanly after a normal end, cut after a failure, or
// with an SSE done or error event.
func (h *Handler) follow(c *gin.Context) {
	st, ok := h.lookup(c)
	if !ok {
		return
	}
	from := resumeFrom(c)
	if from < 0 {
		writeError(c, errInvalidFrom)
		return
	}
	id := c.Param("id")
	if st.State != resume.Running && from == st.Lines && c.GetHeader("Last-Event-ID") != "" {
		// EventSource reconnects after every end; 204 tells it to stop.
		c.Status(http.StatusNoContent)
		return
	}
	ctx := c.Request.Context()
	cur, err := h.resume.Follow(ctx, id, from)
	if err != nil {
		writeError(c, resumeError(err))
		return
	}
	defer cur.Close()
	c.Header("X-Stream-ID", id)
	enc := stream.Negotiate(c.GetHeader("Accept"))
	rec := recordOf(c)
	rec.lines, err = h.relay.Replay(c.Writer, cur, enc)
	switch {
	case err != nil, ctx.Err() != nil:
		rec.fail(outcomeClientAbort, err)
		return
	case cur.Err() != nil:
		rec.fail(outcome("resume_evicted"), cur.Err())
		h.cut(c)
	}
	end := cur.End()
	if h.endInBand(c, enc, endingOf(end)) || end.State == resume.Completed {
		return
	}
	h.cut(c)
}

// cut ends a started response without its terminating chunk, after giving
// its last lines a moment to reach the client (see abortGrace).
func (h *Handler) cut(c *gin.Context) {
	t := time.NewTimer(abortGrace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.Request.Context().Done():
	}
	panic(http.ErrAbortHandler)
}

// endingOf turns a log's end into what an encoder says in-band.
func endingOf(end resume.End) stream.Ending {
	e := stream.Ending{FinishReason: end.FinishReason}
	if end.Usage != nil {
		e.Usage = &stream.Usage{PromptTokens: end.Usage.PromptTokens, CompletionTokens: end.Usage.CompletionTokens}
	}
	if end.Error != nil {
		e.Code, e.Message = end.Error.Code, end.Error.Message
	} else if end.State != resume.Completed {
		e.Code, e.Message = errUpstreamCut.Code, errUpstreamCut.Message
	}
	return e
}
