package stream

import (
	"net/http"
	"sync"
	"time"
)

// client is the client side of one stream. Writes go through the writer the
// caller gave, so that middleware wrappers (Gin's) keep counting; flushes and
// write deadlines go to the innermost writer, because a wrapper's Flush
// hides the error: Gin's responseWriter.Flush returns nothing, and
// http.ResponseController stops at the first Flush it finds.
//
// A keep-alive timer may write too, so every write holds mu.
type client struct {
	w       http.ResponseWriter
	rc      *http.ResponseController // on the innermost writer
	timeout time.Duration            // for each write; 0: none

	mu          sync.Mutex
	setAt       time.Time // when the deadline was last moved
	first       time.Time // when the first line went out
	last        time.Time // when anything last went out
	committed   bool
	contentType string
	keepAlive   []byte        // what a keep-alive writes
	every       time.Duration // keep-alive interval; 0: none
	timer       *time.Timer
	stopped     bool  // the keep-alives are over
	err         error // a keep-alive's write error
	dirty       bool  // written since the last flush
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

// startKeepAlives writes keepAlive whenever nothing went out for every,
// committing the headers first if they were still held: a stream waiting
// for its first event thus answers 200 after every. The timer drives it,
// so a stream waiting for the upstream costs no goroutine.
func (c *client) startKeepAlives(every time.Duration, contentType, keepAlive string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.every, c.contentType, c.keepAlive = every, contentType, []byte(keepAlive)
	c.last = time.Now()
	c.timer = time.AfterFunc(every, c.tick)
}

// tick is the keep-alive timer's work.
func (c *client) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.err != nil {
		return
	}
	if idle := time.Since(c.last); c.committed && idle < c.every {
		c.timer.Reset(c.every - idle)
		return
	}
	err := c.commitLocked(c.contentType)
	if err == nil {
		err = c.writeLocked(c.keepAlive)
	}
	if err == nil {
		err = c.flushLocked()
	}
	if err != nil {
		c.err = err
		return
	}
	c.timer.Reset(c.every)
}

// stopKeepAlives ends the keep-alives and reports whether the headers went
// out: after it, only the caller writes.
func (c *client) stopKeepAlives() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
	return c.committed
}

// commit sends the status line and headers of a 200 streaming answer,
// unless a keep-alive already did. It returns a keep-alive's write error.
func (c *client) commit(contentType string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return c.commitLocked(contentType)
}

func (c *client) commitLocked(contentType string) error {
	if c.committed {
		return nil
	}
	c.committed = true
	h := c.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	return onOwnStack(func() error {
		c.w.WriteHeader(http.StatusOK)
		if _, err := c.w.Write(nil); err != nil { // Gin writes its header here
			return &WriteError{Err: err}
		}
		c.dirty = true
		return c.flushLocked()
	})
}

// write writes p into the response's buffer; flush sends it.
func (c *client) write(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.first.IsZero() {
		c.first = time.Now()
	}
	return c.writeLocked(p)
}

func (c *client) writeLocked(p []byte) error {
	now := time.Now()
	c.last = now
	// Moving the deadline on every line would cost a little on the hot
	// path; moving it every eighth of the timeout is as good.
	if c.timeout > 0 && now.Sub(c.setAt) > c.timeout/8 {
		c.rc.SetWriteDeadline(now.Add(c.timeout))
		c.setAt = now
	}
	if _, err := c.w.Write(p); err != nil {
		return &WriteError{Err: err}
	}
	c.dirty = true
	return nil
}

// flush sends what was written since the last flush, if anything. The
// relay calls it before it waits for the upstream, so each line reaches the
// client at once, and lines whose events arrived together go out together.
func (c *client) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *client) flushLocked() error {
	if !c.dirty {
		return nil
	}
	c.dirty = false
	if err := c.rc.Flush(); err != nil {
		return &WriteError{Err: err}
	}
	return nil
}

// close ends the keep-alives and lifts the write deadline, so that a
// kept-alive connection's next request doesn't inherit it.
func (c *client) close() {
	c.stopKeepAlives()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.setAt.IsZero() {
		c.rc.SetWriteDeadline(time.Time{})
	}
}

// firstAt returns when the first line went out; zero for none.
func (c *client) firstAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}
