package stream

import (
	"net/http"
	"time"
)

// client is the client side of one stream. Writes go through the writer the
// caller gave, so that middleware wrappers (Gin's) keep counting; flushes and
// write deadlines go to the innermost writer, because a wrapper's Flush
// hides the error: Gin's responseWriter.Flush returns nothing, and
// http.ResponseController stops at the first Flush it finds.
type client struct {
	w       http.ResponseWriter
	rc      *http.ResponseController // on the innermost writer
	timeout time.Duration            // for each write; 0: none
	setAt   time.Time                // when the deadline was last moved
	first   time.Time                // when the first line went out
}

func newClient(w http.ResponseWriter, writeTimeout time.Duration) *client {
	return &client{w: w, rc: http.NewResponseController(innermost(w)), timeout: writeTimeout}
}

// innermost unwraps w down to the writer that reports flush errors, or the
// last one there is.
func innermost(w http.ResponseWriter) http.ResponseWriter {
	for {
		if _, ok := w.(interface{ FlushError() error }); ok {
			return w
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// commit sends the status line and headers of a 200 streaming answer.
func (c *client) commit(contentType string) error {
	h := c.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	c.w.WriteHeader(http.StatusOK)
	if _, err := c.w.Write(nil); err != nil { // Gin writes its header here
		return &WriteError{Err: err}
	}
	return c.flush()
}

// write writes p and flushes it, so that it reaches the client at once.
func (c *client) write(p []byte) error {
	now := time.Now()
	if c.first.IsZero() {
		c.first = now
	}
	// Moving the deadline on every line would cost a little on the hot
	// path; moving it every eighth of the timeout is as good.
	if c.timeout > 0 && now.Sub(c.setAt) > c.timeout/8 {
		c.rc.SetWriteDeadline(now.Add(c.timeout))
		c.setAt = now
	}
	if _, err := c.w.Write(p); err != nil {
		return &WriteError{Err: err}
	}
	return c.flush()
}

func (c *client) flush() error {
	if err := c.rc.Flush(); err != nil {
		return &WriteError{Err: err}
	}
	return nil
}

// close lifts the write deadline, so that a kept-alive connection's next
// request doesn't inherit it.
func (c *client) close() {
	if !c.setAt.IsZero() {
		c.rc.SetWriteDeadline(time.Time{})
	}
}
