package redisstore

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"streamrelay/resume"
)

// log is the write side of one stream. Append only queues the line for
// the Store's writer; the stream never waits on Redis.
type log struct {
	s         *Store
	id        string
	key, meta string // its keys, made once rather than on every write
	next      int64  // the number of the last line appended; the producer's alone

	// Written by the writer's goroutine, read by Finish.
	mu       sync.Mutex
	err      error     // the first failed write: the log has a gap from there
	expireAt time.Time // when the keys' running TTL needs renewing
}

// Append queues the next line.
func (l *log) Append(content string) {
	l.next++
	// The op waits for the next batch, past this call: keep a copy.
	l.s.w.add(op{log: l, n: l.next, content: strings.Clone(content)})
}

// Finish queues the end entry after the lines, waits for the write that
// carries it, and reports the first failed write. The end marks a log
// with a gap as failed, so that a resume reads the lines kept and then
// learns the rest was lost rather than seeing a complete answer. While
// Redis is known to be down it does not wait: the client's response ends
// after Finish, and should not wait for a dial that will time out.
func (l *log) Finish(end resume.End) error {
	l.s.forget(l.id)
	if err := l.failed(); err != nil {
		end = resume.End{State: resume.Failed, Error: &resume.Error{Code: "resume_incomplete",
			Message: "Part of this answer could not be kept for resuming; ask again for the rest."}}
	}
	data, _ := json.Marshal(end)
	done := make(chan struct{})
	l.s.w.add(op{log: l, n: l.next + 1, end: data, state: string(end.State), done: done})
	if !l.s.conn.Up() {
		l.fail(errDown)
		return l.failed()
	}
	<-done
	return l.failed()
}

func (l *log) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *log) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = unavailable(err)
	}
	l.mu.Unlock()
}

// Attached reports how many cursors, on any instance, follow the log.
func (l *log) Attached() (int, time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := l.s.conn.HMGet(ctx, l.meta, "followers", "left").Result()
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

// op is one queued write: a log's start (n 0), its line n, or its end
// (end not nil).
type op struct {
	log     *log
	n       int64
	owner   string // a start's
	content string
	end     []byte
	state   string
	done    chan struct{} // a start's or an end's: closed once it was written or failed
}

// maxBatch bounds the commands of one pipeline.
const maxBatch = 4096

// writer gathers the lines of every stream of this instance and writes
// them every FlushEvery in one pipeline, on a connection of its own: a
// line costs a share of a round trip, not one, and no stream holds a
// goroutine of its own. A start or an end, which a request waits for,
// is written at once, with whatever else is queued.
type writer struct {
	s      *Store
	wake   chan struct{}
	urgent chan struct{}
	stop   chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	ops    []op
	closed bool
}

func newWriter(s *Store) *writer {
	w := &writer{s: s, wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

// add queues o. While Redis is known to be down a line is dropped and its
// log marked as failed at once, so that nothing piles up.
func (w *writer) add(o op) {
	if o.n > 0 && o.end == nil && !w.s.conn.Up() {
		o.log.fail(errDown)
		return
	}
	w.mu.Lock()
	if w.closed { // a stream that outlived the Store's Close
		w.mu.Unlock()
		o.log.fail(errClosed)
		if o.done != nil {
			close(o.done)
		}
		return
	}
	w.ops = append(w.ops, o)
	w.mu.Unlock()
	signal := w.wake
	if o.done != nil {
		signal = w.urgent
	}
	select {
	case signal <- struct{}{}:
	default:
	}
}

// loop writes what gathered, FlushEvery after the first line of a batch
// came or at once for a start or an end, until close; then it writes
// what is left.
func (w *writer) loop() {
	defer close(w.done)
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-w.stop:
			w.flush()
			return
		case <-w.urgent:
			w.flush()
			continue
		case <-w.wake:
		}
		timer.Reset(w.s.opts.FlushEvery)
		select {
		case <-w.stop:
			timer.Stop()
			w.flush()
			return
		case <-w.urgent:
			timer.Stop()
		case <-timer.C:
		}
		w.flush()
	}
}

// close writes what is queued and stops the writer.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
}

// flush writes the queued ops, maxBatch at a time.
func (w *writer) flush() {
	w.mu.Lock()
	ops := w.ops
	w.ops = nil
	w.mu.Unlock()
	for len(ops) > 0 {
		n := min(len(ops), maxBatch)
		w.write(ops[:n])
		ops = ops[n:]
	}
}

// write sends ops in one pipeline: an XADD per line, with the line's
// number as its id and the length cap; the running TTL on a log's keys
// when it first wrote and then every third of that TTL; for an end, the
// end entry, the state and the TTL after the end. A failed command marks
// its log as failed.
func (w *writer) write(ops []op) {
	ctx := context.Background()
	s := w.s
	pipe := s.conn.Writer.Pipeline()
	owners := make([]*log, 0, len(ops)*2)
	now := time.Now()
	for _, o := range ops {
		key, meta := o.log.key, o.log.meta
		id := "0-" + strconv.FormatInt(o.n, 10)
		if o.n == 0 {
			pipe.HSet(ctx, meta, "owner", o.owner, "state", string(resume.Running), "lines", 0)
			pipe.PExpire(ctx, meta, s.opts.RunningTTL)
			owners = append(owners, o.log, o.log)
			continue
		}
		if o.end != nil {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: id, Values: []any{"end", o.end}})
			pipe.HSet(ctx, meta, "state", o.state, "end", o.end, "lines", o.n-1)
			pipe.PExpire(ctx, key, s.opts.TTL)
			pipe.PExpire(ctx, meta, s.opts.TTL)
			owners = append(owners, o.log, o.log, o.log, o.log)
			continue
		}
		if o.log.failed() != nil {
			continue // a gap already: later lines can't help a resume
		}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: id, MaxLen: s.opts.MaxLines, Values: []any{"l", o.content}})
		owners = append(owners, o.log)
		if now.After(o.log.expireAt) { // only the writer touches expireAt
			o.log.expireAt = now.Add(s.opts.RunningTTL / 3)
			pipe.PExpire(ctx, key, s.opts.RunningTTL)
			pipe.PExpire(ctx, meta, s.opts.RunningTTL)
			owners = append(owners, o.log, o.log)
		}
	}
	cmds, _ := pipe.Exec(ctx)
	for i, c := range cmds {
		if err := c.Err(); err != nil && i < len(owners) {
			owners[i].fail(err)
		}
	}
	for _, o := range ops {
		if o.done != nil {
			close(o.done)
		}
	}
}
