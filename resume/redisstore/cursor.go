package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"streamrelay/resume"
)

// Bounds of one read.
const (
	readCount = 512
	// readBlock bounds XREAD BLOCK, and so how late a cursor notices its
	// context is done: the client does not cancel a blocked command.
	readBlock = 500 * time.Millisecond
)

// cursor replays a log with XRANGE, then follows it with XREAD BLOCK.
type cursor struct {
	s    *Store
	id   string
	ctx  context.Context
	last int64 // the number of the last line handed out

	buf   []redis.XMessage
	cur   []byte
	end   resume.End
	ended bool
	err   error
	once  sync.Once
}

// Next waits for the next line, or the end.
func (c *cursor) Next() bool {
	for c.err == nil && !c.ended {
		if len(c.buf) > 0 {
			m := c.buf[0]
			c.buf = c.buf[1:]
			if c.take(m) {
				return true
			}
			continue
		}
		c.fill()
	}
	c.cur = nil
	return false
}

// take makes m current, or notes the end or a gap, and reports whether m
// was a line.
func (c *cursor) take(m redis.XMessage) bool {
	_, n, _ := cutID(m.ID)
	if n != c.last+1 {
		// Lines before this entry were dropped by the length cap, or never
		// written: Redis was away for a moment.
		c.err = resume.ErrEvicted
		return false
	}
	if e, isEnd := m.Values["end"]; isEnd {
		json.Unmarshal([]byte(str(e)), &c.end)
		c.ended = true
		return false
	}
	c.last, c.cur = n, []byte(str(m.Values["l"]))
	return true
}

// fill reads what follows the last line: what is there with XRANGE, else
// what comes with XREAD BLOCK.
func (c *cursor) fill() {
	if err := c.ctx.Err(); err != nil {
		c.err = context.Cause(c.ctx)
		return
	}
	key := c.s.streamKey(c.id)
	after := "0-" + strconv.FormatInt(c.last, 10)
	msgs, err := c.s.conn.XRangeN(c.ctx, key, "("+after, "+", readCount).Result()
	if err == nil && len(msgs) == 0 {
		var streams []redis.XStream
		streams, err = c.s.conn.Blocking.XRead(c.ctx, &redis.XReadArgs{Streams: []string{key, after}, Count: readCount, Block: readBlock}).Result()
		if errors.Is(err, redis.Nil) {
			c.checkGone()
			return
		}
		for _, st := range streams {
			msgs = append(msgs, st.Messages...)
		}
	}
	switch {
	case c.ctx.Err() != nil:
		c.err = context.Cause(c.ctx)
	case err != nil:
		c.err = unavailable(err)
	}
	c.buf = msgs
}

// checkGone ends the cursor if the log expired while it waited.
func (c *cursor) checkGone() {
	n, err := c.s.conn.Exists(c.ctx, c.s.metaKey(c.id)).Result()
	switch {
	case c.ctx.Err() != nil:
		c.err = context.Cause(c.ctx)
	case err != nil:
		c.err = unavailable(err)
	case n == 0:
		c.err = resume.ErrNotFound
	}
}

// Line returns the current line's number and content.
func (c *cursor) Line() (int64, []byte) { return c.last, c.cur }

// End returns how the stream ended.
func (c *cursor) End() resume.End { return c.end }

// Err returns the error that stopped Next.
func (c *cursor) Err() error { return c.err }

// Close detaches the cursor.
func (c *cursor) Close() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		attach.Run(ctx, c.s.conn, []string{c.s.metaKey(c.id)}, -1, time.Now().UnixMilli())
	})
	return nil
}

// attach counts a follower in (ARGV[1] 1) or out (-1, at ARGV[2] ms) of a
// log that still exists: never making a key without a TTL.
var attach = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'followers', ARGV[1])
if tonumber(ARGV[1]) < 0 then redis.call('HSET', KEYS[1], 'left', ARGV[2]) end
return 1`)
