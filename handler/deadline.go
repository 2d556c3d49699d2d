package handler

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// bound keeps every request to a bounded time, whatever the client does.
//
// A request that announces a body gets a read deadline of BodyReadTimeout
// from now: after its handler, net/http drains an unread body (up to 256
// KiB) before it answers, and without a deadline a body that never comes
// holds the connection forever. Every response gets a write deadline of
// WriteTimeout; the stream route lifts both once its body is read (see
// liftDeadlines), and keeps its own deadline per write.
//
// If the handler did not read the body to its end, the answer says
// Connection: close, which makes net/http skip the drain and answer at once.
func (h *Handler) bound(c *gin.Context) {
	rc := http.NewResponseController(c.Writer)
	now := time.Now()
	if h.cfg.WriteTimeout > 0 {
		rc.SetWriteDeadline(now.Add(h.cfg.WriteTimeout))
	}
	if c.Request.ContentLength == 0 {
		c.Next()
		return
	}
	if h.cfg.BodyReadTimeout > 0 {
		rc.SetReadDeadline(now.Add(h.cfg.BodyReadTimeout))
	}
	body := &eofBody{ReadCloser: c.Request.Body}
	c.Request.Body = body
	c.Next()
	c.Request.Body = body.ReadCloser
	if !body.eof.Load() && !c.Writer.Written() {
		c.Header("Connection", "close")
	}
}

// liftDeadlines lifts the deadlines bound set, once a stream's body is
// read: the server reads on to notice a client that leaves, which must go on
// for the whole stream, and the stream sets its own deadline per write.
func liftDeadlines(c *gin.Context) {
	rc := http.NewResponseController(c.Writer)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
}

// eofBody is a request body that notes whether it was read to its end.
type eofBody struct {
	io.ReadCloser
	eof atomic.Bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof.Store(true)
	}
	return n, err
}
