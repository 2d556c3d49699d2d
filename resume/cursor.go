package resume

import (
	"context"
	"sync"
)

// memCursor follows a memLog. It copies the log's slices under the lock and
// then reads lines from that snapshot without it, so a slow reader never
// holds up the producer.
type memCursor struct {
	log  *memLog
	ctx  context.Context
	next int64 // number of the next line to hand out

	data []byte // the snapshot
	ends []int
	idx  int // index in ends of line next
	pos  int // where line next starts in data

	cur       []byte
	n         int64
	end       End
	err       error
	closeOnce sync.Once
}

// Next waits for the next line, or the end.
func (c *memCursor) Next() bool {
	for c.err == nil && c.end.State == "" {
		if c.idx < len(c.ends) {
			c.cur = c.data[c.pos:c.ends[c.idx]]
			c.pos = c.ends[c.idx]
			c.idx++
			c.n = c.next
			c.next++
			return true
		}
		wake := c.refill()
		if wake == nil {
			continue
		}
		select {
		case <-wake:
		case <-c.ctx.Done():
			c.err = context.Cause(c.ctx)
		}
	}
	c.cur = nil
	return false
}

// refill takes a new snapshot of the lines from next on, or notes the end.
// When there is nothing new yet it returns a channel closed when there is.
func (c *memCursor) refill() <-chan struct{} {
	l := c.log
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case c.next < l.first:
		c.err = ErrEvicted
	case c.next <= l.lines:
		c.data, c.ends = l.data, l.ends
		c.idx = l.head + int(c.next-l.first)
		c.pos = l.base
		if c.idx > l.head {
			c.pos = l.ends[c.idx-1]
		}
	case l.end.State != Running:
		c.end = l.end
	default:
		if l.wake == nil {
			l.wake = make(chan struct{})
		}
		return l.wake
	}
	return nil
}

// Line returns the current line's number and content.
func (c *memCursor) Line() (int64, []byte) { return c.n, c.cur }

// End returns how the stream ended.
func (c *memCursor) End() End { return c.end }

// Err returns what stopped Next, if not the end.
func (c *memCursor) Err() error { return c.err }

// Close detaches the cursor.
func (c *memCursor) Close() error {
	c.closeOnce.Do(c.log.detach)
	return nil
}
