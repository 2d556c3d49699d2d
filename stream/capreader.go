package stream

import (
	"bytes"
	"io"
)

// capReader passes an event stream through and fails with ErrEventTooLarge
// once one event, counted from the blank line that ended the one before,
// runs past max bytes. It stops short of the line end that would let the
// decoder dispatch the oversized event, so no part of it is relayed, and
// the decoder's buffers stay within about max bytes.
//
// It also calls beforeRead, if set, before each read from the network:
// the decoder reads only when it has no whole line left, so that is the
// moment the relay is about to wait for the upstream.
type capReader struct {
	rc         io.ReadCloser
	beforeRead func() error
	max        int
	event      int  // bytes of the event so far, line ends included
	line       int  // bytes of the current line so far
	cr         bool // the current line so far is a lone "\r"
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.beforeRead != nil {
		if err := c.beforeRead(); err != nil {
			return 0, err
		}
	}
	n, err := c.rc.Read(p)
	if k := c.scan(p[:n]); k < n {
		return k, ErrEventTooLarge
	}
	return n, err
}

func (c *capReader) Close() error { return c.rc.Close() }

// scan counts b into the current event and returns len(b), or the offset
// at which the event went past the cap.
func (c *capReader) scan(b []byte) int {
	off := 0
	for off < len(b) {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			c.addToLine(b[off:])
			if c.event > c.max {
				return off
			}
			return len(b)
		}
		c.addToLine(b[off : off+i])
		if c.event > c.max {
			return off
		}
		if c.line == 0 || c.cr {
			c.event = 0 // a blank line: the event ends
		} else {
			c.event++
		}
		c.line, c.cr = 0, false
		off += i + 1
	}
	return len(b)
}

// addToLine counts part of a line, not its '\n', into the line and the event.
func (c *capReader) addToLine(part []byte) {
	if len(part) == 0 {
		return
	}
	c.cr = c.line == 0 && len(part) == 1 && part[0] == '\r'
	c.line += len(part)
	c.event += len(part)
}
