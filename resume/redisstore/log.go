package redisstore

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"streamrelay/resume"
)

// log is the write side of one stream. Append only queues the line; a
// goroutine of its own writes what gathered every FlushEvery in one
// pipeline, so the stream never waits on Redis.
type log struct {
	s  *Store
	id string

	mu      sync.Mutex
	pending []string
	next    int64 // the number of the next line appended
	err     error // the first failed write
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

func newLog(s *Store, id string) *log {
	l := &log{s: s, id: id, next: 1, wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go l.flushLoop()
	return l
}

// Append queues the next line.
func (l *log) Append(content string) {
	l.mu.Lock()
	l.pending = append(l.pending, content)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// flushLoop writes the queued lines, FlushEvery after the first of a
// batch came, until Finish stops it.
func (l *log) flushLoop() {
	defer close(l.stopped)
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-l.stop:
			return
		case <-l.wake:
		}
		timer.Reset(l.s.opts.FlushEvery)
		select {
		case <-l.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		l.flush()
	}
}

// flush writes the queued lines in one pipeline: an XADD each, with the
// line's number as its id and the length cap, then the line count and
// the keys' time to live.
func (l *log) flush() {
	l.mu.Lock()
	lines, first, broken := l.pending, l.next, l.err != nil
	l.pending = nil
	l.next += int64(len(lines))
	l.mu.Unlock()
	if len(lines) == 0 || broken {
		// After a failed write the log has a gap: later lines would not
		// help a resume, which stops at the gap.
		return
	}
	ctx := context.Background()
	key, meta := l.s.streamKey(l.id), l.s.metaKey(l.id)
	pipe := l.s.conn.Pipeline()
	for i, content := range lines {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: "0-" + strconv.FormatInt(first+int64(i), 10),
			MaxLen: l.s.opts.MaxLines, Values: []any{"l", content}})
	}
	pipe.HSet(ctx, meta, "lines", first+int64(len(lines))-1)
	pipe.PExpire(ctx, key, l.s.opts.RunningTTL)
	pipe.PExpire(ctx, meta, l.s.opts.RunningTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		l.fail(err)
	}
}

func (l *log) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = unavailable(err)
	}
	l.mu.Unlock()
}

// Finish writes what is queued, then the end entry, and starts the TTL.
func (l *log) Finish(end resume.End) error {
	close(l.stop)
	<-l.stopped
	l.flush()
	l.s.forget(l.id)
	l.mu.Lock()
	if l.err != nil {
		// A resume reads the lines kept, then this end, and so learns the
		// rest was lost rather than seeing a complete answer.
		end = resume.End{State: resume.Failed, Error: &resume.Error{Code: "resume_incomplete",
			Message: "Part of this answer could not be kept for resuming; ask again for the rest."}}
	}
	l.mu.Unlock()
	data, _ := json.Marshal(end)
	ctx := context.Background()
	key, meta := l.s.streamKey(l.id), l.s.metaKey(l.id)
	pipe := l.s.conn.TxPipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: "0-" + strconv.FormatInt(l.next, 10), Values: []any{"end", data}})
	pipe.HSet(ctx, meta, "state", string(end.State), "end", data)
	pipe.PExpire(ctx, key, l.s.opts.TTL)
	pipe.PExpire(ctx, meta, l.s.opts.TTL)
	if _, err := pipe.Exec(ctx); err != nil {
		l.fail(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Attached reports how many cursors, on any instance, follow the log.
func (l *log) Attached() (int, time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := l.s.conn.HMGet(ctx, l.s.metaKey(l.id), "followers", "left").Result()
	if err != nil || len(v) != 2 {
		return 0, time.Time{}
	}
	n, _ := strconv.Atoi(str(v[0]))
	ms, _ := strconv.ParseInt(str(v[1]), 10, 64)
	var left time.Time
	if ms > 0 {
		left = time.UnixMilli(ms)
	}
	return max(n, 0), left
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
